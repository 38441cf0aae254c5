"""The Webhooks screen and a batch's integration fields, in chromium against the local stack,
under the UI's Content-Security-Policy (no violation, no page error)."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.e2e.conftest import TOKEN, wait_for
from tests.e2e.ui_helpers import missing_browser_reason, screenshot
from tests.receiver import Receiver

pytestmark = pytest.mark.e2e

_reason = missing_browser_reason()
if _reason:
    pytest.skip(f"web UI tests need a browser: {_reason}", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

from tests.e2e.test_web_csp import RECORD_VIOLATIONS, violations  # noqa: E402
from tests.e2e.test_web_ui import expand  # noqa: E402

expect.set_options(timeout=15_000)


@pytest.fixture
def page(browser, stack):
    context = browser.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    context.add_init_script(f"localStorage.setItem('imgbatch.apiToken', {TOKEN!r});")
    p = context.new_page()
    p.errors, p.csp_console = [], []
    p.on("pageerror", lambda exc: p.errors.append(str(exc)))
    p.on("console", lambda m: "Content Security Policy" in m.text and p.csp_console.append(m.text))
    yield p
    errors, seen = p.errors, violations(p)
    context.close()
    assert not errors and not seen, (errors, seen)


def test_create_ping_read_the_log_and_redeliver(page, stack):
    with Receiver() as receiver:
        page.goto(f"{stack.url}/#webhooks")
        expect(page.locator("#view-webhooks")).to_be_visible()
        page.fill("#wh-url", receiver.url)
        page.fill("#wh-description", "ui test")
        page.click("#webhook-save")
        secret = page.locator("#webhook-secret-value")
        expect(secret).to_have_text(re.compile(r"^whsec_\S{30,}$"))
        row = page.locator("#webhook-rows tr", has_text=receiver.url)
        expect(row).to_have_count(1)
        expect(row).to_contain_text("ui test")
        row.locator("[data-action=ping]").click()
        receiver.wait_for(1)
        row.locator("[data-action=deliveries]").click()
        log = page.locator("#delivery-rows tr")

        def delivered():
            page.click("#deliveries-refresh")
            return log.first.get_attribute("data-status") == "delivered"
        wait_for(delivered, timeout=20, what="the ping to show as delivered")
        expect(log.first).to_contain_text("ping")
        screenshot(page, "webhooks-log")
        log.first.locator("[data-action=redeliver]").click()
        receiver.wait_for(2)
        expect(log).to_have_count(2)
        assert len({e["id"] for e in receiver.events()}) == 1
        # the secret was shown once: reloading the page shows it nowhere
        page.reload()
        expect(page.locator("#webhook-rows tr", has_text=receiver.url)).to_have_count(1)
        assert "whsec_" not in page.content()
        page.locator("#webhook-rows tr", has_text=receiver.url).locator("[data-action=delete]").click()
        page.click("#confirm-ok")
        expect(page.locator("#webhook-rows tr", has_text=receiver.url)).to_have_count(0)


def test_bad_urls_are_explained(page, stack):
    page.goto(f"{stack.url}/#webhooks")
    page.fill("#wh-url", "ftp://example.com/")
    page.click("#webhook-save")
    expect(page.locator("#webhook-form-error")).to_contain_text("http:// or https://")


def test_integration_fields_are_shown_and_edited_on_the_batch(page, stack):
    api = stack.session()
    pipeline = api.post(f"{stack.url}/pipelines", json={"name": f"int-{uuid.uuid4().hex[:8]}", "format": "png"}).json()
    created = api.post(f"{stack.url}/batches", json={"pipeline_ids": [pipeline["pipeline"]["id"]], "files": [
        {"name": "IN_TG_Front.png", "size": 100}], "metadata": {"order": "A-17"}}).json()
    bid = created["batch"]["id"]
    page.goto(f"{stack.url}/")
    row = expand(page, bid)
    block = row.locator(".integrations")
    expect(block).to_contain_text("order")
    expect(block).to_contain_text("A-17")
    block.locator("[data-action=edit-integrations]").click()
    page.fill(f"#mon-{bid}", "123456")
    # the list's poll re-renders an open detail while its files move on: what is typed stays
    page.evaluate("""async (bid) => {
        const { store } = await import("./ui/store.js");
        const batch = await (await fetch(`batches/${bid}`, {headers: {Authorization:
            `Bearer ${localStorage.getItem("imgbatch.apiToken")}`}})).json();
        store.emit("batch-changed", { batch: batch.batch });
    }""", bid)
    expect(page.locator(f"#mon-{bid}")).to_have_value("123456")
    page.check(f"#sync-{bid}")
    page.fill(f"#md-{bid}", "order=A-18\nshoot=2")
    row.locator("[data-action=save-integrations]").click()
    expect(row.locator(".integrations")).to_contain_text("123456")
    batch = api.get(f"{stack.url}/batches/{bid}").json()["batch"]
    assert (batch["monday_item_id"], batch["monday_sync_enabled"], batch["metadata"]) == \
        ("123456", True, {"order": "A-18", "shoot": "2"})
    # a line that is not key=value is refused in the page, nothing is sent
    row.locator("[data-action=edit-integrations]").click()
    page.fill(f"#md-{bid}", "no equals sign")
    row.locator("[data-action=save-integrations]").click()
    expect(row.locator(".integrations-form .form-error")).to_contain_text("not key=value")
    api.delete(f"{stack.url}/batches/{bid}")


def test_the_webhooks_page_fits_a_phone(browser, stack):
    context = browser.new_context(viewport={"width": 375, "height": 800})
    context.add_init_script(f"localStorage.setItem('imgbatch.apiToken', {TOKEN!r});")
    page = context.new_page()
    try:
        api = stack.session()
        hook = api.post(f"{stack.url}/webhooks", json={"url": "http://127.0.0.1:9/a-rather-long-receiver-path/imgbatch",
                                                       "events": ["batch.completed", "archive.ready"]}).json()
        api.post(f"{stack.url}/webhooks/{hook['webhook']['id']}/ping")
        page.goto(f"{stack.url}/#webhooks")
        row = page.locator("#webhook-rows tr", has_text="a-rather-long-receiver-path")
        row.locator("[data-action=deliveries]").click()
        expect(page.locator("#delivery-rows tr").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        screenshot(page, "webhooks-phone")
        api.delete(f"{stack.url}/webhooks/{hook['webhook']['id']}")
    finally:
        context.close()
