"""The local stack's moto server binds its port before it starts serving, so a port taken
between the start-up check and the bind fails the start instead of hanging it."""
from __future__ import annotations

import socket

import pytest

from devstack.moto_server import MotoServer
from devstack.ports import PortInUse, check_free


@pytest.fixture
def taken():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_moto_on_a_taken_port_raises_instead_of_waiting_forever(taken):
    with pytest.raises(PortInUse, match=rf"port {taken} on 127.0.0.1 \(MOTO_PORT\) is already in use"):
        MotoServer("127.0.0.1", taken).start()


def test_moto_serves_on_a_free_port_and_stops():
    import requests
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = MotoServer("127.0.0.1", port)
    server.start()
    try:
        assert requests.get(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=10).status_code == 200
    finally:
        server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=2)


def test_check_free_names_the_variable(taken):
    with pytest.raises(PortInUse, match=r"\(PORT\).*PORT=\d+ make run"):
        check_free("127.0.0.1", {"PORT": taken, "MOTO_PORT": taken + 1 if taken < 65535 else taken - 1})
