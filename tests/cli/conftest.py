"""Every CLI test runs in-process against the fake API and fake S3: no network, no real config."""

from __future__ import annotations

import json
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
               deps: Deps | None = None) -> Result:
        deps = deps or Deps(
            api_transport=fake.api_transport,
            storage_transport=fake.s3_transport,
            sleep=fake.sleep,
            env={"IMGBATCH_CONFIG": str(missing_config), **(env or {})},
        )
        # A wide terminal so table cells are not truncated in assertions.
        return CliRunner().invoke(cli, list(args), obj=deps, input=input, env={"COLUMNS": "250"})

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


def parse_json(result: Result):
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)
