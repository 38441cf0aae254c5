"""The web UI in a real browser (Playwright + Debian's chromium) against the local stack.

The tests run in file order and share a few batches (RUN): sign in, pipelines, submit three
images, watch them complete, download the ZIP, filter, cancel, delete, phone layout.
Screenshots of the main views go to test-artifacts/screenshots/ (not committed).
"""
from __future__ import annotations

import json
import re
import zipfile
from datetime import datetime, timezone

import pytest
import requests

from tests.e2e.conftest import OTHER_TOKEN, TOKEN, wait_for
from tests.e2e.ui_helpers import missing_browser_reason, png_bytes, screenshot

pytestmark = pytest.mark.e2e

_reason = missing_browser_reason()
if _reason:
    pytest.skip(f"web UI tests need a browser: {_reason}", allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402

expect.set_options(timeout=10_000)

TOKEN_KEY = "imgbatch.apiToken"
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
THUMBS = {"name": "ui-thumbs", "format": "png", "width": 32, "height": 32, "fit": "contain"}
IMAGES = {"UI_DXB101_Front.png": (120, 90), "UI_DXB101_Back.png": (90, 120), "UI_DXB101_Side.png": (100, 100)}
RUN: dict = {}  # state handed from one test to the next (they run in file order)


# -- fixtures ---------------------------------------------------------------------
def new_page(browser, stack, viewport=(1280, 900), signed_in=True) -> Page:
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
    if signed_in:
        context.add_init_script(f"localStorage.getItem({TOKEN_KEY!r}) || localStorage.setItem({TOKEN_KEY!r}, {TOKEN!r});")
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return page


@pytest.fixture
def page(browser, stack):
    p = new_page(browser, stack)
    yield p
    errors = p.errors
    p.context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def phone(browser, stack):
    p = new_page(browser, stack, viewport=(375, 800))
    yield p
    errors = p.errors
    p.context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def api(stack):
    return stack.session()


@pytest.fixture(scope="module")
def thumbs(stack, api):
    """The pipeline the batches use; made by the pipeline test through the UI, else here."""
    for p in api.get(f"{stack.url}/pipelines").json()["pipelines"]:
        if p["name"] == THUMBS["name"]:
            return p
    r = api.post(f"{stack.url}/pipelines", json=THUMBS)
    assert r.status_code == 201, r.text
    return r.json()["pipeline"]


def create_batch_via_api(stack, api, pipeline_id, names, **extra) -> dict:
    files = [{"name": n, "size": 100, "content_type": "image/png"} for n in names]
    r = api.post(f"{stack.url}/batches", json={"pipeline_ids": [pipeline_id], "files": files, **extra})
    assert r.status_code == 201, r.text
    return r.json()["batch"]


def open_batches(page: Page, stack) -> None:
    page.goto(f"{stack.url}/#batches")
    expect(page.locator("#view-batches")).to_be_visible()
    settled(page)


def settled(page: Page) -> None:
    """Wait until no list reload is scheduled or running (filters are debounced)."""
    expect(page.locator("#list-section")).not_to_have_attribute("aria-busy", "true")


def batch_row(page: Page, batch_id: str):
    return page.locator(f'tbody.batch[data-batch-id="{batch_id}"]')


def expand(page: Page, batch_id: str):
    row = batch_row(page, batch_id)
    toggle = row.locator("button.toggle")
    if toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(row.locator("tr.detail-row")).to_be_visible()
    return row


def api_message(response: requests.Response) -> str:
    body = response.json()
    assert set(body) >= {"Code", "Message"}, body
    return body["Message"]


def utc_today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


# -- sign in ---------------------------------------------------------------------------
def test_sign_in_remembers_the_token_and_signs_out(browser, stack):
    page = new_page(browser, stack, signed_in=False)
    try:
        page.goto(f"{stack.url}/")
        token_input = page.get_by_label("API token")
        expect(token_input).to_be_visible()
        expect(page.locator(".tabs")).to_be_hidden()
        screenshot(page, "01-sign-in", full_page=False)

        token_input.fill("not-a-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-error")).to_contain_text("not accepted")
        expect(page.locator("#view-batches")).to_be_hidden()

        token_input.fill(TOKEN)
        token_input.press("Enter")
        expect(page.locator("#view-batches")).to_be_visible()
        expect(page.get_by_role("link", name="Batches", exact=True)).to_have_attribute("aria-current", "page")
        assert page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") == TOKEN

        expect(page.locator("#session-label")).to_have_text("Signed in as studio")
        page.reload()  # remembered
        expect(page.locator("#view-batches")).to_be_visible()
        expect(page.locator("#stat-total")).to_have_text(re.compile(r"^\d[\d,]*$"))

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("API token")).to_be_visible()
        expect(page.locator("#view-batches")).to_be_hidden()
        assert page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") is None
        assert not page.errors, page.errors
    finally:
        page.context.close()


# -- pipelines -------------------------------------------------------------------------
def test_pipelines_create_edit_delete_with_api_messages(page, stack, api):
    page.goto(f"{stack.url}/#pipelines")
    expect(page.locator("#view-pipelines")).to_be_visible()
    form_error = page.locator("#pipeline-form-error")

    # An invalid value: the API's own message is shown, word for word.
    page.get_by_label("Name").fill("ui-bad")
    page.get_by_label("Format").select_option("jpeg")
    page.get_by_label("Quality").fill("150")
    page.get_by_role("button", name="Create pipeline").click()
    expected = api_message(api.post(f"{stack.url}/pipelines", json={
        "name": "ui-bad", "format": "jpeg", "fit": "contain", "quality": 150, "compression": 70,
        "background": "#ffffff", "keep_metadata": False, "upscale": False}))
    expect(form_error).to_have_text(expected)
    assert "quality" in expected

    # The pipeline the batch tests use, created through the form.
    page.get_by_label("Name").fill(THUMBS["name"])
    page.get_by_label("Format").select_option("png")
    page.get_by_label("Width").fill("32")
    page.get_by_label("Height").fill("32")
    page.get_by_label("Quality").fill("85")
    page.get_by_role("button", name="Create pipeline").click()
    expect(form_error).to_be_empty()
    expect(page.locator("#pipeline-rows tr", has_text=THUMBS["name"])).to_be_visible()
    saved = next(p for p in api.get(f"{stack.url}/pipelines").json()["pipelines"] if p["name"] == THUMBS["name"])
    assert (saved["format"], saved["width"], saved["height"], saved["fit"]) == ("png", 32, 32, "contain")

    # A second one to edit (PUT, full replace) and delete.
    page.get_by_label("Name").fill("ui-temp")
    page.get_by_label("Format").select_option("webp")
    page.get_by_label("Width").fill("40")
    page.get_by_role("button", name="Create pipeline").click()
    row = page.locator("#pipeline-rows tr", has_text="ui-temp")
    expect(row).to_be_visible()
    temp_id = row.get_attribute("data-pipeline-id")

    row.get_by_role("button", name="Edit ui-temp").click()
    expect(page.locator("#pipeline-form-title")).to_contain_text("ui-temp")
    expect(page.get_by_label("Width")).to_have_value("40")
    page.get_by_label("Width").fill("50")
    page.get_by_label("Fit").select_option("cover")
    page.get_by_label("Height").fill("")
    page.get_by_role("button", name="Save changes").click()
    # cover needs both sides: the API says so and the form shows it.
    expect(form_error).to_contain_text("needs both width and height")
    page.get_by_label("Height").fill("30")
    page.locator("#pl-background").fill("#336699")
    page.get_by_label("Allow upscaling").check()
    page.get_by_role("button", name="Save changes").click()
    expect(form_error).to_be_empty()
    expect(page.locator("#pipeline-form-title")).to_have_text("New pipeline")
    edited = api.get(f"{stack.url}/pipelines/{temp_id}").json()["pipeline"]
    assert (edited["width"], edited["height"], edited["fit"], edited["background"], edited["upscale"]) == (
        50, 30, "cover", "#336699", True)

    # Same name again: the API's conflict message.
    page.get_by_label("Name").fill("UI-TEMP")
    page.get_by_role("button", name="Create pipeline").click()
    expect(form_error).not_to_be_empty()
    assert "ui-temp" in form_error.inner_text().lower()
    page.get_by_role("button", name="New pipeline").click()
    screenshot(page, "02-pipelines")

    # Delete, with the confirmation dialog (first declined).
    row.get_by_role("button", name="Delete ui-temp").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(row).to_be_visible()
    row.get_by_role("button", name="Delete ui-temp").click()
    dialog.get_by_role("button", name="Delete pipeline").click()
    expect(row).to_have_count(0)
    assert api.get(f"{stack.url}/pipelines/{temp_id}").status_code == 404


# -- submit ----------------------------------------------------------------------------
def test_api_validation_errors_are_shown_verbatim_near_the_form(page, stack, api, thumbs, tmp_path):
    path = tmp_path / "AB_CD1_x.png"
    path.write_bytes(png_bytes())
    open_batches(page, stack)
    page.set_input_files("#file-input", [str(path)])
    page.get_by_role("checkbox", name=thumbs["name"]).check()
    page.get_by_label("Customer prefix (optional)").fill("bad prefix!")
    expect(page.locator("#preview-directory")).to_have_text(f"bad prefix!_{utc_today()}_batch-?")
    page.get_by_role("button", name="Upload batch").click()
    expected = api_message(api.post(f"{stack.url}/batches", json={
        "pipeline_ids": [thumbs["id"]], "customer_prefix": "bad prefix!",
        "files": [{"name": path.name, "size": path.stat().st_size, "content_type": "image/png"}]}))
    expect(page.locator("#submit-error")).to_have_text(expected)
    assert "customer_prefix" in expected
    expect(page.locator("#upload-sessions .upload-session")).to_have_count(0)


def test_submit_three_images_with_per_file_progress(page, stack, api, thumbs, tmp_path):
    paths = []
    for (name, size), colour in zip(IMAGES.items(), [(200, 30, 30), (30, 160, 60), (40, 60, 200)]):
        path = tmp_path / name
        path.write_bytes(png_bytes(size, colour))
        paths.append(str(path))
    open_batches(page, stack)
    page.set_input_files("#file-input", paths)
    expect(page.locator("#file-list li")).to_have_count(3)

    # The naming preview, before anything is sent.
    today = utc_today()
    expect(page.locator("#preview-prefix")).to_contain_text("UI_DXB")
    expect(page.locator("#preview-directory")).to_have_text(f"UI_DXB_{today}_batch-?")
    expect(page.locator("#preview-description")).to_contain_text("3-view Render")
    expect(page.locator("#preview-note")).to_contain_text("batch-N")
    page.get_by_label("Customer prefix (optional)").fill("ACME")
    expect(page.locator("#preview-directory")).to_have_text(f"ACME_{today}_batch-?")
    page.get_by_label("Customer prefix (optional)").fill("")
    expect(page.locator("#preview-directory")).to_have_text(f"UI_DXB_{today}_batch-?")
    page.get_by_role("checkbox", name=thumbs["name"]).check()
    screenshot(page, "03-submit-preview")

    # Record every status each file row shows, to see the progress as it happens.
    page.evaluate("""() => {
        window.__uploadStates = {};
        new MutationObserver(() => {
            for (const li of document.querySelectorAll('.upload-file')) {
                const seen = window.__uploadStates[li.dataset.file] ||= [];
                const s = li.dataset.status;
                if (seen[seen.length - 1] !== s) seen.push(s);
            }
        }).observe(document.getElementById('upload-sessions'), {subtree: true, childList: true, attributes: true});
    }""")
    page.get_by_role("button", name="Upload batch").click()

    session = page.locator("#upload-sessions .upload-session").first
    expect(session).to_be_visible()
    files = session.locator(".upload-file")
    expect(files).to_have_count(3)
    for name in IMAGES:
        item = session.locator(f'.upload-file[data-file="{name}"]')
        expect(item).to_have_attribute("data-status", "done", timeout=30_000)
        expect(item.locator(".upload-status")).to_have_text("Uploaded")
        assert item.locator("progress").evaluate("p => p.value === p.max")
    expect(session.locator(".bar[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    expect(session.locator(".upload-counts")).to_contain_text("3 of 3 files uploaded")
    states = page.evaluate("window.__uploadStates")
    assert set(states) == set(IMAGES), states
    for name, seen in states.items():
        assert seen[-1] == "done" and len(seen) >= 2, (name, seen)  # e.g. queued -> uploading -> done

    batch_id = session.get_attribute("data-batch-id")
    assert re.fullmatch(UUID_RE, batch_id)
    batch = api.get(f"{stack.url}/batches/{batch_id}").json()["batch"]
    assert re.fullmatch(rf"UI_DXB_{today}_batch-\d+", batch["base_directory_name"])
    assert batch["description"] == "3-view Render" and batch["total_files"] == 3
    RUN["batch"] = batch

    row = batch_row(page, batch_id)
    expect(row).to_be_visible()
    expect(row.locator(".toggle")).to_have_text(batch["base_directory_name"])
    expect(row.locator(".cell-files")).to_have_text("3 files")
    wait_for(lambda: api.get(f"{stack.url}/batches/{batch_id}").json()["batch"]["progress"]["uploaded"] == 3,
             timeout=30, what="the three uploads to reach the handler")
    # The list follows the batch live (polling while it is queued/processing).
    expect(row.locator(".cell-progress .counts")).to_contain_text("3 uploaded", timeout=15_000)
    screenshot(page, "04-uploaded")


def test_batch_reaches_completed_and_shows_output_dimensions(page, stack, api):
    batch = RUN.get("batch") or pytest.skip("no batch: the submit test did not get that far")
    open_batches(page, stack)
    row = batch_row(page, batch["id"])
    expect(row).to_be_visible()
    # Per-file processing is what moves the batch on; allow it time.
    expect(row).to_have_attribute("data-status", "completed", timeout=120_000)
    expect(row.locator(".cell-status .badge")).to_have_text("completed")
    expect(row.locator(".cell-progress [role=progressbar]")).to_have_attribute("aria-valuenow", "100")

    expand(page, batch["id"])
    expect(row.locator(".thumb")).to_have_count(3)   # thumbnails first; the table is one click away
    row.get_by_role("button", name="Table", exact=True).click()
    expect(row.get_by_role("button", name="Table", exact=True)).to_have_attribute("aria-pressed", "true")
    jobs = row.locator("tr.job")
    expect(jobs).to_have_count(3)
    api_jobs = {j["file_name"]: j for j in api.get(f"{stack.url}/batches/{batch['id']}").json()["batch"]["jobs"]}
    for name in IMAGES:
        job_row = row.locator("tr.job", has_text=name)
        expect(job_row.locator(".badge")).to_have_text("completed")
        (output,) = api_jobs[name]["outputs"]
        expect(job_row.locator(".output-dims")).to_have_text(f"{output['width']}×{output['height']}")
        expect(job_row.locator(".output-format")).to_have_text(output["format"].upper())
        assert max(output["width"], output["height"]) <= 32
    screenshot(page, "05-batch-expanded")


def test_download_zip(page, stack, tmp_path):
    batch = RUN.get("batch") or pytest.skip("no batch: the submit test did not get that far")
    open_batches(page, stack)
    row = expand(page, batch["id"])
    with page.expect_download(timeout=90_000) as info:
        row.get_by_role("button", name="Download ZIP", exact=True).click()
        # The UI says "Downloading X.zip" when the URL is ready, or shows why not.
        notice = row.locator(".notice-success, .notice-error, .notice-warning")
        expect(notice).to_be_visible(timeout=90_000)
        if "notice-success" not in (notice.get_attribute("class") or ""):
            raise AssertionError(f"the UI could not download the ZIP: {notice.inner_text()}")
    download = info.value
    assert download.suggested_filename == f"{batch['base_directory_name']}.zip"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
    directory = batch["base_directory_name"]
    images = [n for n in names if not n.endswith("manifest.csv")]
    assert any(n.endswith("manifest.csv") for n in names), names
    assert len(images) == 3 and all(n.startswith(f"{directory}/") for n in images), names
    stems = {n.rsplit("/", 1)[-1].rsplit(".", 1)[0] for n in images}
    assert stems == {name.rsplit(".", 1)[0] for name in IMAGES}, names


def test_download_waits_while_the_zip_is_building(page, stack):
    """202 {"status": "building", "retry_after"}: the UI says so, waits, asks again, then downloads."""
    batch = RUN.get("batch") or pytest.skip("no batch: the submit test did not get that far")
    calls = []

    def first_building(route):
        calls.append(route.request.url)
        if len(calls) == 1:
            route.fulfill(status=202, headers={"Retry-After": "1", "Access-Control-Allow-Origin": "*"},
                          json={"status": "building", "retry_after": 1})
        else:
            route.continue_()

    page.route(re.compile(r".*/batches/[^/]+/download\?.*"), first_building)
    open_batches(page, stack)
    row = expand(page, batch["id"])
    with page.expect_download(timeout=90_000) as info:
        row.get_by_role("button", name="Download ZIP", exact=True).click()
        expect(row.locator(".notice-info")).to_contain_text("Building the ZIP")
        expect(row.get_by_role("button", name="Preparing ZIP…")).to_have_attribute("aria-disabled", "true")
        expect(row.locator(".notice-success, .notice-error, .notice-warning")).to_be_visible(timeout=90_000)
    assert info.value.suggested_filename == f"{batch['base_directory_name']}.zip"
    assert len(calls) >= 2 and all("redirect=false" in c for c in calls), calls


# -- list: filters, search, sort, stats, live refresh --------------------------------------------
@pytest.fixture(scope="module")
def other_batch(stack, api, thumbs):
    """A batch nobody uploads to: it stays queued."""
    return create_batch_via_api(stack, api, thumbs["id"], ["ZZ_OTHER1_a.png", "ZZ_OTHER1_b.png"])


def test_filter_by_status_search_by_prefix_sort_and_stats(page, stack, api, other_batch):
    ui_batch = RUN.get("batch") or pytest.skip("no batch: the submit test did not get that far")
    ui_status = api.get(f"{stack.url}/batches/{ui_batch['id']}").json()["batch"]["status"]
    open_batches(page, stack)
    rows = page.locator("tbody.batch")
    expect(batch_row(page, other_batch["id"])).to_be_visible()

    stats = api.get(f"{stack.url}/batches/stats").json()
    expect(page.locator("#stat-total")).to_have_text(f"{stats['total_batches']:,}")
    expect(page.locator("#stat-files")).to_have_text(f"{stats['total_files_all_time']:,}")
    expect(page.locator('.chip[data-status="queued"] .chip-count')).to_have_text(f"{stats['queued']:,}")

    # status filter
    page.get_by_label("Status", exact=True).select_option("queued")
    settled(page)
    expect(batch_row(page, other_batch["id"])).to_be_visible()
    if ui_status != "queued":
        expect(batch_row(page, ui_batch["id"])).to_have_count(0)
    for status in rows.evaluate_all("rs => rs.map(r => r.dataset.status)"):
        assert status == "queued"

    page.get_by_label("Status", exact=True).select_option(ui_status)
    settled(page)
    expect(batch_row(page, ui_batch["id"])).to_be_visible()
    expect(batch_row(page, other_batch["id"])).to_have_count(0)

    # Every visible batch is final: the page stops polling.
    if ui_status == "completed":
        expect(rows.first).to_have_attribute("data-status", "completed")
        page.wait_for_timeout(500)
        polls = []
        page.on("request", lambda r: polls.append(r.url) if re.search(rf"/batches/{UUID_RE}", r.url) else None)
        page.wait_for_timeout(5000)
        assert polls == [], polls

    page.get_by_label("Status", exact=True).select_option("")
    settled(page)

    # search (debounced, case-insensitive) by the customer prefix
    page.get_by_label("Search").fill("ui_dxb")
    settled(page)
    expect(batch_row(page, ui_batch["id"])).to_be_visible()
    expect(batch_row(page, other_batch["id"])).to_have_count(0)
    for name in rows.locator(".toggle").all_inner_texts():
        assert "UI_DXB" in name
    screenshot(page, "06-search")
    page.get_by_label("Search").fill("")
    settled(page)

    # customer prefix filter
    page.get_by_label("Customer prefix", exact=True).fill("ZZ_OTHER")
    settled(page)
    expect(batch_row(page, other_batch["id"])).to_be_visible()
    expect(batch_row(page, ui_batch["id"])).to_have_count(0)
    page.get_by_label("Customer prefix", exact=True).fill("")
    settled(page)
    expect(batch_row(page, ui_batch["id"])).to_be_visible()

    # sort by number of files, ascending
    page.get_by_label("Sort by").select_option("total_files")
    page.get_by_label("Order").select_option("asc")
    settled(page)
    counts = [int(t.split()[0].replace(",", "")) for t in rows.locator(".cell-files").all_inner_texts()]
    assert counts and counts == sorted(counts), counts

    # clicking a status chip filters by it
    page.locator('.chip[data-status="queued"]').click()
    expect(page.get_by_label("Status", exact=True)).to_have_value("queued")
    expect(page.locator('.chip[data-status="queued"]')).to_have_attribute("aria-pressed", "true")


def test_load_more_pages_through_the_list(page, stack, api, thumbs):
    for n in range(3):
        create_batch_via_api(stack, api, thumbs["id"], [f"PG_PAGE{n}_x.png"])
    page.route(re.compile(r".*/batches\?.*"), lambda route: route.continue_(
        url=re.sub(r"limit=\d+", "limit=2", route.request.url)))
    open_batches(page, stack)
    page.get_by_label("Customer prefix", exact=True).fill("PG_PAGE")
    settled(page)
    rows = page.locator("tbody.batch")
    expect(rows.locator(".toggle")).to_have_text([re.compile(r"^PG_PAGE_")] * 2)
    more = page.get_by_role("button", name="Load more")
    expect(more).to_be_visible()
    more.click()
    expect(rows).to_have_count(3)
    expect(more).to_be_hidden()
    # the first new row gets focus, so keyboard users continue where they were
    assert page.evaluate("document.activeElement.classList.contains('toggle')")


# -- actions ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def second_batch(stack, api, thumbs):
    return create_batch_via_api(stack, api, thumbs["id"], ["CX_CANCEL1_Front.png", "CX_CANCEL1_Back.png"])


def test_download_of_unfinished_batch_offers_partial(page, stack, api, second_batch):
    open_batches(page, stack)
    row = expand(page, second_batch["id"])
    row.get_by_role("button", name="Download ZIP", exact=True).click()
    expected = api.get(f"{stack.url}/batches/{second_batch['id']}/download", params={"redirect": "false"})
    assert expected.status_code == 409, expected.text
    notice = row.locator(".notice")
    expect(notice).to_contain_text(api_message(expected))
    expect(notice.get_by_role("button", name="Download partial")).to_be_visible()
    expect(page.locator("#toast-alert")).to_contain_text(api_message(expected))


def test_cancel_a_batch_that_was_never_uploaded(page, stack, api, second_batch):
    open_batches(page, stack)
    row = expand(page, second_batch["id"])
    expect(row).to_have_attribute("data-status", "queued")
    row.get_by_role("button", name="Cancel", exact=True).click()
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#toast-status")).to_contain_text("Cancelled")
    expect(row.locator(".thumb .badge")).to_have_text(["cancelled", "cancelled"])
    expect(row.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)
    assert api.get(f"{stack.url}/batches/{second_batch['id']}").json()["batch"]["status"] == "cancelled"
    screenshot(page, "07-cancelled")


def test_delete_a_batch_with_the_confirmation_dialog(page, stack, api, second_batch):
    open_batches(page, stack)
    row = expand(page, second_batch["id"])
    dialog = page.locator("#confirm-dialog")
    row.get_by_role("button", name="Delete", exact=True).click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(second_batch["base_directory_name"])
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    screenshot(page, "08-delete-dialog", full_page=False)
    page.keyboard.press("Escape")  # declining keeps it
    expect(dialog).to_be_hidden()
    expect(row).to_be_visible()
    assert api.get(f"{stack.url}/batches/{second_batch['id']}").status_code == 200

    row.get_by_role("button", name="Delete", exact=True).click()
    dialog.get_by_role("button", name="Delete batch").click()
    expect(row).to_have_count(0)
    expect(page.locator("#toast-status")).to_contain_text(f"Deleted {second_batch['base_directory_name']}")
    assert api.get(f"{stack.url}/batches/{second_batch['id']}").status_code == 404


def test_action_conflicts_are_announced_in_the_toast_region(page, stack, api, thumbs):
    """Someone else cancelled the batch meanwhile: the UI's Cancel gets a 409, shown in the aria-live toast."""
    batch = create_batch_via_api(stack, api, thumbs["id"], ["RT_STALE1_x.png"])
    stale = api.get(f"{stack.url}/batches/{batch['id']}").json()
    # Keep this page's view of the batch stale, so its Cancel button stays.
    page.route(re.compile(rf".*/batches/{batch['id']}(\?.*)?$"),
               lambda route: route.fulfill(json=stale) if route.request.method == "GET" else route.continue_())
    open_batches(page, stack)
    row = expand(page, batch["id"])
    assert api.post(f"{stack.url}/batches/{batch['id']}/cancel").status_code == 200
    again = api.post(f"{stack.url}/batches/{batch['id']}/cancel")
    assert again.status_code == 409, again.text
    row.get_by_role("button", name="Cancel", exact=True).click()
    region = page.locator("#toast-alert")
    expect(region).to_have_attribute("aria-live", "assertive")
    expect(region).to_contain_text(api_message(again))
    # another owner's batch does not exist for them
    assert stack.session(OTHER_TOKEN).get(f"{stack.url}/batches/{batch['id']}").status_code == 404


# -- storage errors and paged upload URLs ----------------------------------------------------------
def test_storage_errors_are_shown_per_file_and_can_be_retried(page, stack, thumbs, tmp_path):
    path = tmp_path / "ER_ROR1_Front.png"
    path.write_bytes(png_bytes())
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
           "<Message>Invalid according to Policy: Policy expired.</Message><RequestId>X</RequestId></Error>")
    s3 = re.compile(re.escape(stack.s3_url) + r"/.*")
    page.route(s3, lambda route: route.fulfill(status=403, body=xml, content_type="application/xml",
                                               headers={"Access-Control-Allow-Origin": "*"}))
    open_batches(page, stack)
    page.set_input_files("#file-input", [str(path)])
    page.get_by_role("checkbox", name=thumbs["name"]).check()
    page.get_by_role("button", name="Upload batch").click()
    session = page.locator("#upload-sessions .upload-session").first
    item = session.locator(".upload-file")
    expect(item).to_have_attribute("data-status", "failed")
    expect(item.locator(".upload-error")).to_have_text("HTTP 403 AccessDenied: Invalid according to Policy: Policy expired.")
    expect(page.locator("#toast-alert")).to_contain_text("failed")
    screenshot(page, "09-upload-error")

    page.unroute(s3)
    session.get_by_role("button", name="Retry failed uploads").click()
    expect(item).to_have_attribute("data-status", "done")
    expect(item.locator(".upload-error")).to_be_hidden()


def test_upload_urls_are_fetched_page_by_page(page, stack, api, thumbs, tmp_path):
    """The create response carries at most 1000 uploads; the rest come from GET .../uploads?cursor=."""
    paths = []
    for n, side in enumerate(["Front", "Back", "Side"]):
        path = tmp_path / f"PG_UPL1_{side}.png"
        path.write_bytes(png_bytes((20 + n, 20)))
        paths.append(str(path))

    def first_page_only(route):
        response = route.fetch()
        body = response.json()
        batch_id = body["batch"]["id"]
        cursor = api.get(f"{stack.url}/batches/{batch_id}/uploads", params={"limit": 1}).json()["next_cursor"]
        assert cursor
        body["uploads"] = body["uploads"][:1]
        body["uploads_next_cursor"] = cursor
        route.fulfill(response=response, body=json.dumps(body))

    page.route(re.compile(r".*/batches$"), lambda route: first_page_only(route) if route.request.method == "POST"
               else route.continue_())
    paged = []
    page.on("request", lambda r: paged.append(r.url) if "/uploads?cursor=" in r.url else None)
    open_batches(page, stack)
    page.set_input_files("#file-input", paths)
    page.get_by_role("checkbox", name=thumbs["name"]).check()
    page.get_by_role("button", name="Upload batch").click()
    session = page.locator("#upload-sessions .upload-session").first
    expect(session.locator('.upload-file[data-status="done"]')).to_have_count(3, timeout=30_000)
    assert paged, "the UI never asked for the next page of upload URLs"


# -- choosing files, and uploads the service has not counted yet ------------------------------------
def test_non_images_are_skipped_per_file_with_the_reason(page, stack, thumbs, tmp_path):
    """Decided by extension and first bytes, as the CLI does; only the images are sent."""
    files = {
        "SK_IP1_Front.png": png_bytes(),
        "SK_IP1_Back.jpg": png_bytes(fmt="WEBP"),  # a WebP named .jpg: sent, as image/webp
        "notes.txt": b"not an image",
        "looks_like.png": b"plain text with a png name",
        "phone.heic": bytes.fromhex("000000186674797068656963000000006d69663168656963"),  # sent: the service takes HEIC
        "layers.psd": bytes.fromhex("384250530001"),
    }
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    open_batches(page, stack)
    page.set_input_files("#file-input", paths)

    expect(page.locator("#file-list li .file-name")).to_have_text(["SK_IP1_Front.png", "SK_IP1_Back.jpg", "phone.heic"])
    skipped = page.locator("#file-skipped")
    expect(skipped.locator("li")).to_have_count(3)
    for name, reason in [("notes.txt", "'.txt' is not an image extension"),
                         ("looks_like.png", "content is not a recognised image"),
                         ("layers.psd", "Photoshop PSD images are not supported by the service")]:
        expect(skipped.locator(f'li[data-file="{name}"] .skip-reason')).to_have_text(reason)
    expect(page.locator("#file-summary")).to_contain_text("3 files chosen")
    expect(page.locator("#file-summary")).to_contain_text("3 files skipped")
    page.get_by_role("checkbox", name=thumbs["name"]).check()
    screenshot(page, "13-skipped-files")

    with page.expect_request(lambda r: r.url.endswith("/batches") and r.method == "POST") as created:
        page.get_by_role("button", name="Upload batch").click()
    sent = {f["name"]: f["content_type"] for f in json.loads(created.value.post_data)["files"]}
    assert sent == {"SK_IP1_Front.png": "image/png", "SK_IP1_Back.jpg": "image/webp", "phone.heic": "image/heif"}
    expect(page.locator("#submit-error")).to_be_empty()
    session = page.locator("#upload-sessions .upload-session").first
    expect(session.locator('.upload-file[data-status="done"]')).to_have_count(3, timeout=30_000)
    expect(skipped).to_be_hidden()


def test_uploaded_is_never_below_what_this_page_uploaded(page, stack, thumbs, tmp_path):
    """The service's `uploaded` can lag behind storage while its events queue behind processing."""
    paths = []
    for side in ("Front", "Back", "Side"):
        path = tmp_path / f"LG_LAG1_{side}.png"
        path.write_bytes(png_bytes())
        paths.append(str(path))
    held = {"on": True}

    def lagging(route):
        # The service under a backlog: it has counted none of these uploads, processed none.
        if route.request.method != "GET" or not held["on"]:
            route.continue_()
            return
        response = route.fetch()
        body = response.json()
        for batch in body.get("batches", []) + ([body["batch"]] if "batch" in body else []):
            if batch["base_directory_name"].startswith("LG_LAG_"):
                batch.update(status="queued", started_at=None, completed_at=None,
                             progress={"uploaded": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "percent": 0})
                for job in batch.get("jobs") or []:
                    job.update(status="awaiting_upload", outputs=[], error=None, started_at=None, completed_at=None)
        route.fulfill(response=response, body=json.dumps(body))

    page.route(re.compile(r".*/batches(\?.*|/[0-9a-f-]{36}(\?.*)?)$"), lagging)
    open_batches(page, stack)
    page.set_input_files("#file-input", paths)
    page.get_by_role("checkbox", name=thumbs["name"]).check()
    page.get_by_role("button", name="Upload batch").click()
    session = page.locator("#upload-sessions .upload-session").first
    expect(session.locator(".upload-counts")).to_contain_text("3 of 3 files uploaded", timeout=30_000)
    row = batch_row(page, session.get_attribute("data-batch-id"))

    # Two more rounds of the service saying "0 uploaded": the row still counts the three.
    for _ in range(2):
        with page.expect_response(lambda r: "/batches" in r.url and r.request.method == "GET", timeout=15_000):
            pass
    counts = row.locator(".cell-progress .counts")
    expect(counts).to_have_text("3 uploaded · 0 of 3 processed")
    expand(page, row.get_attribute("data-batch-id"))
    expect(row.locator(".thumb .badge")).to_have_text(["uploaded"] * 3)
    screenshot(page, "14-uploaded-ahead-of-the-service")

    held["on"] = False  # the service catches up: processing is its own figure, and it moves
    expect(row).to_have_attribute("data-status", "completed", timeout=120_000)
    expect(counts).to_have_text("3 uploaded · 3 of 3 processed")
    expect(row.locator(".thumb .badge")).to_have_text(["completed"] * 3)


# -- phone width, keyboard -------------------------------------------------------------------------
def test_phone_layout_and_keyboard_expansion(phone, stack):
    page = phone
    open_batches(page, stack)
    rows = page.locator("tbody.batch")
    expect(rows.first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "the page scrolls sideways at 375px"
    # The table has become cards: no visible header row, each batch a block.
    expect(page.locator("#batch-table thead")).to_have_css("position", "absolute")
    expect(rows.first).to_have_css("display", "block")
    expect(page.get_by_label("API token")).to_be_hidden()
    screenshot(page, "10-phone-list")

    # Keyboard: Tab from the Refresh button reaches the first batch's toggle; Enter/Space work.
    page.get_by_role("button", name="Refresh").focus()
    expect(page.locator("#list-status")).to_contain_text("Showing")
    page.keyboard.press("Tab")
    toggle = rows.first.locator("button.toggle")
    expect(toggle).to_be_focused()
    assert toggle.evaluate("el => getComputedStyle(el).outlineStyle") != "none", "no visible focus"
    expect(toggle).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    detail = rows.first.locator("tr.detail-row")
    expect(detail).to_be_visible()
    expect(detail.get_by_role("button", name="Download ZIP", exact=True)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "11-phone-expanded")
    page.keyboard.press("Space")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(detail).to_be_hidden()


def test_pipelines_page_at_phone_width(phone, stack):
    page = phone
    page.goto(f"{stack.url}/#pipelines")
    expect(page.locator("#pipeline-rows tr").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "12-phone-pipelines")
