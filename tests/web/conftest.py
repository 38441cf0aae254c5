"""The web UI's ES modules, run in chromium without the local stack.

A page on a made-up origin imports the modules from web/ exactly as the API serves them under
/ui/, so tests can call the pure ones (naming, sniffing, formatting, the store) directly.
"""
from __future__ import annotations

import mimetypes
from pathlib import Path

import pytest

from tests.e2e.ui_helpers import launch, missing_browser_reason

WEB = Path(__file__).resolve().parents[2] / "web"
ORIGIN = "http://imgbatch.test"

_reason = missing_browser_reason()
if _reason:
    pytest.skip(f"the web module tests need a browser: {_reason}", allow_module_level=True)


def _serve(route):
    path = route.request.url.removeprefix(ORIGIN)
    if path == "/":
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>modules</title>")
        return
    name = path.removeprefix("/ui/")
    file = WEB / name
    if "/" in name or not file.is_file():
        route.fulfill(status=404, body="not found")
        return
    content_type = "text/javascript" if file.suffix == ".js" else mimetypes.guess_type(file.name)[0]
    route.fulfill(status=200, content_type=content_type, body=file.read_bytes())


@pytest.fixture(scope="session")
def modules_page():
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = launch(playwright)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(f"{ORIGIN}/**", _serve)
    page.goto(f"{ORIGIN}/")
    yield page
    browser.close()
    playwright.stop()
    assert not errors, errors


@pytest.fixture
def js(modules_page):
    """js("naming.js", "(m, arg) => m.customerPrefix(arg)", arg): call into a module, get JSON back."""
    def call(module: str, body: str, arg=None):
        return modules_page.evaluate(
            f"async ([arg]) => {{ const m = await import('/ui/{module}'); return ({body})(m, arg); }}", [arg])
    return call
