"""The web UI under its Content-Security-Policy, in chromium against the local stack.

The policy is enforced (an injected inline script does not run) and the UI's whole path still
works under it without a single violation: sign in, the pipelines table, a browser upload
straight to the storage origin (connect-src), progress bars, the batch detail with its thumbnails
and the larger view of an output (img-src: presigned storage URLs), the ZIP download, the delete
dialog.
"""
from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import TOKEN, wait_for
from tests.e2e.ui_helpers import missing_browser_reason, png_bytes

pytestmark = pytest.mark.e2e

_reason = missing_browser_reason()
if _reason:
    pytest.skip(f"web UI tests need a browser: {_reason}", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

expect.set_options(timeout=15_000)

# Every violation the page reports, kept across navigations of the page.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(
    {directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample, source: e.sourceFile}));
"""


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(accept_downloads=True)
    context.add_init_script(RECORD_VIOLATIONS)
    context.add_init_script(f"localStorage.setItem('imgbatch.apiToken', {TOKEN!r});")
    p = context.new_page()
    p.errors, p.csp_console = [], []
    p.on("pageerror", lambda exc: p.errors.append(str(exc)))
    p.on("console", lambda m: "Content Security Policy" in m.text and p.csp_console.append(m.text))
    yield p
    context.close()


def violations(page) -> list:
    return page.evaluate("window.__csp") + page.csp_console


def test_the_policy_is_sent_and_enforced(page, stack):
    response = page.goto(f"{stack.url}/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert f"connect-src 'self' {stack.s3_url}" in policy
    assert f"img-src 'self' {stack.s3_url}" in policy
    expect(page.locator("#view-batches")).to_be_visible()
    assert violations(page) == []
    page.evaluate("""() => {
        const s = document.createElement("script");
        s.textContent = "window.__inlineRan = true";
        document.head.append(s);
    }""")
    assert page.evaluate("window.__inlineRan") is None
    wait_for(lambda: any(v.get("directive", "").startswith("script-src") for v in page.evaluate("window.__csp")),
             timeout=5, what="the blocked inline script to be reported")


def test_the_whole_ui_path_runs_without_a_violation(page, stack, tmp_path):
    api = stack.session()
    pipeline = api.post(f"{stack.url}/pipelines", json={"name": f"csp-{uuid.uuid4().hex[:8]}", "format": "png",
                                                        "width": 16, "background": "#123456"}).json()["pipeline"]

    page.goto(f"{stack.url}/#pipelines")
    swatch = page.locator(f'tr:has-text("{pipeline["name"]}") .swatch')
    expect(swatch).to_be_visible()
    assert swatch.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(18, 52, 86)"  # set via CSSOM

    image = tmp_path / "CS_PX1_Front.png"
    image.write_bytes(png_bytes((40, 30)))
    page.goto(f"{stack.url}/#batches")
    page.set_input_files("#file-input", [str(image)])
    page.get_by_role("checkbox", name=pipeline["name"]).check()
    page.get_by_role("button", name="Upload batch").click()
    session = page.locator("#upload-sessions .upload-session").first
    item = session.locator('.upload-file[data-file="CS_PX1_Front.png"]')
    expect(item).to_have_attribute("data-status", "done", timeout=30_000)  # the POST to the storage origin
    batch_id = session.get_attribute("data-batch-id")

    row = page.locator(f'tbody.batch[data-batch-id="{batch_id}"]')
    expect(row).to_have_attribute("data-status", "completed", timeout=120_000)
    segment = row.locator(".cell-progress .seg").first
    assert segment.evaluate("e => e.style.width") == "100%"
    toggle = row.locator("button.toggle")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    thumb = row.locator(".thumb img")
    wait_for(lambda: thumb.evaluate("i => i.complete && i.naturalWidth > 0"), timeout=15, what="the thumbnail")
    row.locator(".thumb button").click()
    output = page.locator("dialog.viewer figure img")
    wait_for(lambda: output.count() == 1 and output.evaluate("i => i.complete && i.naturalWidth > 0"), timeout=15,
             what="the output in the larger view")
    page.keyboard.press("Escape")

    with page.expect_download(timeout=90_000) as info:
        row.get_by_role("button", name="Download ZIP", exact=True).click()
    assert info.value.suggested_filename.endswith(".zip")

    row.get_by_role("button", name="Delete", exact=True).click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete batch").click()
    expect(row).to_have_count(0)

    assert violations(page) == []
    assert page.errors == []
