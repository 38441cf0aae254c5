"""Every CLI test runs in-process against the fake API and fake S3: no network, no real config."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from imgbatch.cli import Deps, cli
from .fake_api import FakeService


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def missing_config(tmp_path: Path) -> Path:
    # A config path that does not exist: no test may pick up the developer's real config.
    return tmp_path / "no-such-config.toml"


@pytest.fixture
def run(fake: FakeService, missing_config: Path) -> Callable[..., Result]:
    def invoke(*args: str, env: dict | None = None, input: str | None = None,
               deps: Deps | None = None, terminal: int | None = None, interactive: bool = False) -> Result:
        """Output goes to a pipe, or with `terminal=N` to a terminal N columns wide.

        rich decides by TTY_COMPATIBLE (set either way, so the caller's shell cannot change
        a result); an `interactive` terminal also draws the live progress displays.
        """
        deps = deps or Deps(
            api_transport=fake.api_transport,
            storage_transport=fake.s3_transport,
            sleep=fake.sleep,
            env={"IMGBATCH_CONFIG": str(missing_config), **(env or {})},
        )
        if terminal is None:
            console_env = {"TTY_COMPATIBLE": "0", "COLUMNS": "80"}
        else:
            console_env = {"TTY_COMPATIBLE": "1", "COLUMNS": str(terminal), "LINES": "50",
                           "TERM": "xterm-256color" if interactive else "dumb",
                           "TTY_INTERACTIVE": "1" if interactive else "0"}
        return CliRunner().invoke(cli, list(args), obj=deps, input=input,
                                  env={"FORCE_COLOR": None, "NO_COLOR": None, **console_env})

    return invoke


def make_image(path: Path, fmt: str, size=(8, 6), colour=(200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """Three images (one nested), a text file, a fake image and hidden files."""
    root = tmp_path / "shoot"
    make_image(root / "PL_DXB191_Front.png", "PNG")
    make_image(root / "PL_DXB191_Back.jpg", "JPEG")
    make_image(root / "more" / "PL_DXB191_Side.webp", "WEBP")
    (root / "notes.txt").write_text("not an image")
    (root / "looks_like.png").write_text("plain text with a png name")
    make_image(root / ".hidden.png", "PNG")
    make_image(root / ".thumbs" / "thumb.png", "PNG")
    return root


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """Terminal output without escape codes (colours, cursor moves)."""
    return ANSI.sub("", text)


def parse_json(result: Result):
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)
