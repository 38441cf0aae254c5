"""Webhook HTTP: resolve the receiver, refuse addresses we must not reach, POST to the very address
that was checked (event_ports.WebhookSender).

Checking a name and then letting the HTTP library resolve it again would let DNS answer
differently the second time (DNS rebinding); so the connection is opened to the checked address,
with the URL's host name kept for the Host header, TLS SNI and certificate verification.
Redirects are never followed (http.client does not follow them), and the whole attempt, connect
to last byte read, must fit in the timeout.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import time
from urllib.parse import urlsplit

from ..domain.validation import Invalid
from ..domain.webhooks import refused_address
from ..event_ports import Response

MAX_RESPONSE_BYTES = 64 * 1024   # read (and ignore) at most this much of a receiver's answer


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class HttpSender:
    def __init__(self, allow_private: bool, timeout: float, resolver=resolve, user_agent: str = "imgbatch-webhooks/1"):
        self.allow_private = allow_private
        self.timeout = timeout
        self.resolver = resolver
        self.user_agent = user_agent
        self.tls = ssl.create_default_context()

    def _addresses(self, url: str) -> tuple[list[str], object]:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self.resolver(parts.hostname, port)
        except (OSError, UnicodeError) as exc:
            raise Invalid(f"url host {parts.hostname!r} does not resolve: {exc}") from None
        if not addresses:
            raise Invalid(f"url host {parts.hostname!r} does not resolve")
        if not self.allow_private:
            for address in addresses:
                why = refused_address(address)
                if why:
                    raise Invalid(f"url host {parts.hostname!r} resolves to {address}, which may not receive "
                                  f"webhooks: {why} (only public addresses are allowed)")
        return addresses, parts

    def check(self, url: str) -> None:
        self._addresses(url)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        deadline = time.monotonic() + self.timeout
        try:
            addresses, parts = self._addresses(url)
        except Invalid as exc:
            return Response(None, exc.message)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.scheme == "https":
            conn = PinnedHTTPSConnection(addresses[0], parts.hostname, port, self.timeout, self.tls)
        else:
            conn = PinnedHTTPConnection(addresses[0], parts.hostname, port, self.timeout)
        try:
            conn.request("POST", path, body=body, headers={
                "Content-Type": "application/json", "User-Agent": self.user_agent, **headers})
            self._left(conn, deadline)
            response = conn.getresponse()
            status = response.status
            self._drain(conn, response, deadline)
        except TimeoutError:
            return Response(None, f"no answer within {self.timeout:g} s")
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            return Response(None, f"{type(exc).__name__}: {exc}"[:500])
        finally:
            conn.close()
        if 200 <= status < 300:
            return Response(status)
        if 300 <= status < 400:
            return Response(status, f"receiver answered {status} (redirects are not followed)")
        return Response(status, f"receiver answered {status}")

    def _drain(self, conn, response, deadline: float) -> None:
        """Read a little of the answer so the receiver is not cut off mid-write; the status
        decides, so a body that stalls or breaks changes nothing."""
        read = 0
        try:
            while read < MAX_RESPONSE_BYTES:
                self._left(conn, deadline)
                chunk = response.read(min(8192, MAX_RESPONSE_BYTES - read))
                if not chunk:
                    break
                read += len(chunk)
        except (OSError, http.client.HTTPException):
            pass

    @staticmethod
    def _left(conn, deadline: float) -> None:
        """The socket waits at most what is left of the attempt's time."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        if conn.sock is not None:
            conn.sock.settimeout(left)
