"""The webhook HTTP sender against a real receiver on 127.0.0.1: the address is checked at
delivery time too (DNS can change after the webhook was saved), the connection goes to the very
address that was checked, and the host name still names the request."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from chalicelib.adapters.webhook_http import HttpSender
from chalicelib.domain.validation import Invalid
from tests.receiver import Receiver


def resolver(answers: dict[str, list[str]], calls: list | None = None):
    def resolve(host, port):
        if calls is not None:
            calls.append(host)
        return answers[host]
    return resolve


def test_a_name_that_turns_private_after_saving_is_refused_when_delivering():
    answers = {"hooks.example": ["93.184.215.14"]}
    sender = HttpSender(allow_private=False, timeout=2, resolver=resolver(answers))
    sender.check("https://hooks.example/x")   # public when saved
    answers["hooks.example"] = ["127.0.0.1"]  # then DNS answers otherwise (rebinding)
    response = sender.post("https://hooks.example/x", b"{}", {})
    assert response.status_code is None and "127.0.0.1" in response.error and "loopback" in response.error
    with pytest.raises(Invalid, match="only public addresses"):
        sender.check("https://hooks.example/x")


def test_any_private_answer_among_several_is_refused():
    sender = HttpSender(allow_private=False, timeout=2,
                        resolver=resolver({"mixed.example": ["93.184.215.14", "10.0.0.7"]}))
    with pytest.raises(Invalid, match="10.0.0.7"):
        sender.check("http://mixed.example/")


def test_the_connection_goes_to_the_checked_address_under_the_host_name():
    with Receiver() as receiver:
        port = urlsplit(receiver.url).port
        calls: list[str] = []
        # the name resolves exactly once per delivery, to the receiver's address
        sender = HttpSender(allow_private=True, timeout=5,
                            resolver=resolver({"hooks.example": ["127.0.0.1"]}, calls))
        response = sender.post(f"http://hooks.example:{port}/hook?x=1", b'{"a": 1}', {"Imgbatch-Event-Id": "e1"})
        assert (response.status_code, response.error) == (200, None)
        [request] = receiver.requests
        assert request["headers"]["Host"] == f"hooks.example:{port}" and request["path"] == "/hook?x=1"
        assert request["headers"]["Imgbatch-Event-Id"] == "e1" and request["body"] == b'{"a": 1}'
        assert calls == ["hooks.example"]


def test_a_name_that_does_not_resolve_is_a_failed_attempt_not_an_error():
    def nowhere(host, port):
        raise OSError("Name or service not known")
    response = HttpSender(allow_private=True, timeout=2, resolver=nowhere).post("http://gone.example/", b"{}", {})
    assert response.status_code is None and "does not resolve" in response.error
