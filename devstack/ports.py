"""The local stack's ports: taken ones fail the start at once, with what to change."""
from __future__ import annotations

import errno
import socket


class PortInUse(RuntimeError):
    pass


def listen(host: str, port: int, variable: str) -> socket.socket:
    """A listening socket on (host, port), bound the way the stack's servers bind (SO_REUSEADDR:
    a port left in TIME_WAIT by the previous run is free, one another program listens on is not)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise PortInUse(_message(host, port, variable, exc)) from None
        raise
    return sock


def check_free(host: str, ports: dict[str, int]) -> None:
    """Raise PortInUse naming the variable when any port is taken (or two are the same)."""
    by_port: dict[int, str] = {}
    for variable, port in ports.items():
        if port in by_port:
            raise PortInUse(f"{by_port[port]} and {variable} are both {port}; the API and moto need a port each")
        by_port[port] = variable
    for variable, port in ports.items():
        listen(host, port, variable).close()


def _message(host: str, port: int, variable: str, exc: OSError) -> str:
    reason = "is already in use by another program" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
    return (f"port {port} on {host} ({variable}) {reason}. Stop that program, or choose another port: "
            f"{variable}={_suggestion(host)} make run")


def _suggestion(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
