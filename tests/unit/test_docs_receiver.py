"""The 15-line receiver in docs/events.md accepts what the service signs and refuses the rest."""
from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from chalicelib.domain.webhooks import signature

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_the_documented_receiver_verifies_signatures():
    [code] = [c for c in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "Imgbatch-Signature" in c]
    assert len(code.strip().splitlines()) <= 20
    code = code.replace('SECRET = b"whsec_..."', 'SECRET = b"whsec_doc"').replace(
        'HTTPServer(("0.0.0.0", 8787), Receiver).serve_forever()', 'SERVER = HTTPServer(("127.0.0.1", 0), Receiver)')
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)   # noqa: S102 (our own documentation)
    server = scope["SERVER"]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    body = b'{"id": "e1", "type": "ping", "created_at": "2026-12-01T10:00:00Z", "data": {}}'

    def post(headers):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
    try:
        now = int(time.time())
        assert post({"Imgbatch-Signature": signature("whsec_doc", now, body)}) == 204
        assert post({"Imgbatch-Signature": signature("whsec_other", now, body)}) == 401
        assert post({"Imgbatch-Signature": signature("whsec_doc", now - 3600, body)}) == 401
        assert post({}) == 401
    finally:
        server.shutdown()
        server.server_close()
