"""`make run` (python -m devstack) fails at once, saying what to change, when it cannot start:
a port taken by another program, or a data directory another stack is using."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from devstack.persistence import Persistence
from tests.e2e.conftest import ROOT, free_port

pytestmark = pytest.mark.e2e


def _start(tmp_path, **env) -> subprocess.CompletedProcess:
    """The stack in a child process; the timeout only guards against the hang this is about."""
    full = {**os.environ, "PORT": str(free_port()), "MOTO_PORT": str(free_port()), "DATA_DIR": str(tmp_path / "data"),
            **{k: str(v) for k, v in env.items()}}
    return subprocess.run([sys.executable, "-m", "devstack"], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("variable", ["PORT", "MOTO_PORT"])
def test_a_taken_port_stops_the_start_naming_the_port_and_its_variable(tmp_path, variable):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start(tmp_path, **{variable: port})
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 ({variable}) is already in use by another program" in proc.stderr
    assert f"{variable}=" in proc.stderr   # what to run instead
    assert "is ready" not in proc.stdout


def test_the_same_port_twice_is_refused(tmp_path):
    port = free_port()
    proc = _start(tmp_path, PORT=port, MOTO_PORT=port)
    assert proc.returncode == 1 and f"PORT and MOTO_PORT are both {port}" in proc.stderr


def test_a_data_directory_in_use_stops_the_start(tmp_path):
    holder = Persistence(tmp_path / "data")
    holder.open()   # as a running stack holds it
    try:
        proc = _start(tmp_path)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert f"data directory {tmp_path / 'data'} is in use by another local stack (pid {os.getpid()})" in proc.stderr
    assert "is ready" not in proc.stdout
