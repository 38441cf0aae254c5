"""The installed ways to start the client."""

from __future__ import annotations

import subprocess
import sys


def test_python_dash_m(tmp_path):
    result = subprocess.run([sys.executable, "-m", "imgbatch", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: imgbatch" in result.stdout and "submit" in result.stdout


def test_usage_errors_exit_2_without_a_server(tmp_path):
    env = {"IMGBATCH_CONFIG": str(tmp_path / "none.toml"), "PATH": ""}
    result = subprocess.run([sys.executable, "-m", "imgbatch", "submit", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "Missing option '-p' / '--pipeline'" in result.stderr


def test_unreachable_api_exits_3(tmp_path):
    # Port 9 (discard) on localhost is closed on any sane test machine: a real refused connection.
    env = {"IMGBATCH_CONFIG": str(tmp_path / "none.toml"), "IMGBATCH_API_URL": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "imgbatch", "--json", "stats"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 3
    assert result.stdout == ""
    assert "cannot reach the API at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
