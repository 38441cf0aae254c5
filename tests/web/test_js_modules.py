"""The pure web modules beside the vectors: the progress vocabulary and the store."""
from __future__ import annotations


def progress(js, batch, known=0):
    return js("format.js", "(m, [batch, known]) => { const p = m.progressOf(batch, known); return [p, m.progressText(p)]; }",
              [batch, known])


def batch(total=20, **counts):
    return {"total_files": total, "progress": {"uploaded": 0, "succeeded": 0, "failed": 0, "cancelled": 0,
                                               "percent": 0, **counts}}


def test_uploaded_takes_the_largest_of_the_service_this_page_and_succeeded(js):
    assert progress(js, batch(uploaded=2), known=20)[1] == "20 uploaded · 0 of 20 processed"
    assert progress(js, batch(uploaded=2, succeeded=5), known=0)[1] == "5 uploaded · 5 of 20 processed"
    assert progress(js, batch(uploaded=12), known=3)[1] == "12 uploaded · 0 of 20 processed"
    # never more than the batch holds (a page may have uploaded into a batch resumed elsewhere)
    assert progress(js, batch(total=3, uploaded=1), known=7)[0]["uploaded"] == 3


def test_processed_is_succeeded_plus_failed_and_cancelled_is_apart(js):
    p, text = progress(js, batch(total=10, uploaded=10, succeeded=6, failed=2, cancelled=1, percent=90))
    assert (p["processed"], p["percent"]) == (8, 90)
    assert text == "10 uploaded · 8 of 10 processed · 2 failed · 1 cancelled"


def test_sample_names_with_the_rest_counted(js):
    sample = lambda b: js("format.js", "(m, b) => m.sampleText(b)", b)  # noqa: E731
    assert sample({"sample_file_names": ["a.png", "b.png"], "total_files": 2}) == "a.png, b.png"
    assert sample({"sample_file_names": [f"{n}.png" for n in "abcde"], "total_files": 1205}) == \
        "a.png, b.png, c.png, d.png, e.png +1,200 more"
    assert sample({"total_files": 3}) == " +3 more"


def test_every_job_error_code_has_words_and_unknown_ones_stay_readable(js):
    from chalicelib.domain.imaging import ERROR_CODES

    labels = js("format.js", "(m) => m.ERROR_LABELS")
    assert set(ERROR_CODES) | {"size_mismatch", "upload_expired", "missing_upload"} <= set(labels)
    assert "max bytes" in labels["exceeds_max_bytes"]
    assert js("format.js", "(m) => m.errorLabel('some_new_code')") == "some new code"


def test_store_notifies_subscribers_until_they_unsubscribe(js):
    got = js("store.js", """(m) => {
        const s = m.createStore({});
        const seen = [];
        const off = s.on("batch-changed", (d) => seen.push(["a", d.id]));
        s.on("batch-changed", (d) => seen.push(["b", d.id]));
        s.emit("batch-changed", {id: 1});
        off();
        s.emit("batch-changed", {id: 2});
        s.emit("nobody-listens");
        return seen;
    }""")
    assert got == [["a", 1], ["b", 1], ["b", 2]]


def test_modules_import_flat_siblings_without_cycles():
    """app.py serves only files directly in web/ (as /ui/<name>); a cycle would make init order fragile."""
    import re

    from tests.web.conftest import WEB

    graph = {}
    for path in WEB.glob("*.js"):
        targets = re.findall(r'^import [^;]*? from "([^"]+)";', path.read_text(), flags=re.M | re.S)
        for target in targets:
            assert re.fullmatch(r"\./[a-z-]+\.js", target) and (WEB / target[2:]).is_file(), (path.name, target)
        graph[path.name] = {t[2:] for t in targets}

    def visit(name, trail):
        assert name not in trail, " -> ".join([*trail, name])
        for dep in graph[name]:
            visit(dep, [*trail, name])

    for name in graph:
        visit(name, [])
    assert len(graph) >= 15 and "app.js" in graph


def test_an_upload_session_fetches_the_next_page_of_links_only_as_its_queue_runs_short(js):
    """A big batch's pages of links were fetched back to back while the first page uploaded, so
    a 100,000-file batch's last links waited hours before use (they are signed with temporary
    credentials). The next page is fetched once fewer than LINKS_AHEAD per worker are queued."""
    got = js("uploader.js", """async (m) => {
        const { api } = await import('/ui/api.js');
        const files = Array.from({ length: 30 }, (_, i) => new File(["x"], `PL_A${i}.png`));
        const links = (start) => files.slice(start, start + 10).map((f) => ({ file_name: f.name, url: "u", fields: {} }));
        const log = [];
        let sent = 0;
        const real = api.uploads;
        api.uploads = async (id, cursor) => {
            log.push([cursor, sent]);
            const start = Number(cursor);
            return { uploads: links(start), next_cursor: start + 10 < 30 ? String(start + 10) : null };
        };
        try {
            const session = new m.UploadSession({ id: "b" }, files, { concurrency: 2 });
            session.send = async (item) => {
                await new Promise((resolve) => setTimeout(resolve, 2));
                sent += 1;
                item.status = "done";
            };
            await session.start(links(0), "10");
            return { log, ahead: m.LINKS_AHEAD, statuses: session.items.map((i) => i.status) };
        } finally {
            api.uploads = real;
        }
    }""")
    assert got["statuses"] == ["done"] * 30
    assert [cursor for cursor, _ in got["log"]] == ["10", "20"]
    # fetched once fewer than ahead x 2 workers were queued: all but those and the 2 in flight sent
    least = got["ahead"] * 2 + 2
    assert got["log"][0][1] >= 10 - least and got["log"][1][1] >= 20 - least, got["log"]
