"""Files above the service's multipart threshold: uploaded in parts through the API's part URLs,
each part retried on its own, and `resume` sending only the parts S3 does not hold yet."""

from __future__ import annotations

import httpx

from .conftest import make_image, parse_json, plain

PART = 1000


def big_image(tmp_path, name="PL_DXB1_Big.png", size=10_500):
    """A real PNG (the CLI sniffs the first bytes) padded to `size` bytes: 11 parts of 1,000."""
    path = make_image(tmp_path / "shoot" / name, "PNG")
    data = path.read_bytes()
    path.write_bytes(data + bytes(i % 251 for i in range(size - len(data))))
    return path


def setup(fake):
    fake.add_pipeline("web")
    fake.multipart_threshold, fake.part_size = 5000, PART


def test_a_large_file_goes_in_parts_and_a_small_one_as_a_post(run, fake, tmp_path):
    setup(fake)
    big = big_image(tmp_path)
    make_image(tmp_path / "shoot" / "PL_DXB1_Small.png", "PNG")
    result = run("--json", "submit", str(tmp_path / "shoot"), "-p", "web")
    assert result.exit_code == 0, result.output
    out = parse_json(result)
    by_name = {u["file_name"]: u for u in out["uploads"]}
    assert by_name["PL_DXB1_Big.png"] == {**by_name["PL_DXB1_Big.png"], "ok": True, "method": "MULTIPART",
                                          "parts_total": 11, "parts_already": 0, "parts_sent": 11,
                                          "first_part_sent": 1}
    assert by_name["PL_DXB1_Small.png"]["method"] == "POST" and "parts_total" not in by_name["PL_DXB1_Small.png"]
    assert fake.assembled("PL_DXB1_Big.png") == big.read_bytes()
    assert sorted(n for f, n in fake.parts_received if f == "PL_DXB1_Big.png") == list(range(1, 12))
    assert ("complete", "PL_DXB1_Big.png") in fake.multipart_calls
    assert fake.violations == []


def test_a_failing_part_is_retried_on_its_own(run, fake, tmp_path):
    setup(fake)
    big_image(tmp_path)
    fake.part_faults[("PL_DXB1_Big.png", 4)] = [503, httpx.ReadError("connection reset")]
    result = run("--json", "submit", str(tmp_path / "shoot"), "-p", "web")
    assert result.exit_code == 0, result.output
    [upload] = parse_json(result)["uploads"]
    assert upload["ok"] and upload["attempts"] == 3 and upload["parts_sent"] == 11
    sent = [n for f, n in fake.parts_received if f == "PL_DXB1_Big.png"]
    assert sorted(sent) == list(range(1, 12))   # every part landed once; only part 4 was tried again
    assert len(fake.sleeps) == 2


def test_resume_sends_only_the_missing_parts(run, fake, tmp_path):
    setup(fake)
    big = big_image(tmp_path)
    fake.part_faults[("PL_DXB1_Big.png", 5)] = [403]   # the first run stops at part 5
    first = run("submit", str(tmp_path / "shoot"), "-p", "web", "--concurrency", "1")
    assert first.exit_code == 1
    assert "part 5 of PL_DXB1_Big.png: HTTP 403" in plain(first.output)
    assert "imgbatch resume" in plain(first.output)
    held_before = set(fake.parts_held[next(iter(fake.parts_held))])
    assert 5 not in held_before and held_before
    fake.parts_received.clear()
    batch_id = next(iter(fake.batches))
    again = run("resume", batch_id, str(tmp_path / "shoot"))
    assert again.exit_code == 0, again.output
    sent = sorted(n for f, n in fake.parts_received)
    assert sent == sorted(set(range(1, 12)) - held_before)
    assert fake.assembled("PL_DXB1_Big.png") == big.read_bytes()
    text = plain(again.output)
    assert f"in 11 parts: {len(held_before)} already uploaded, sent {len(sent)} from part {sent[0]}" in text


def test_each_part_is_reported_as_it_lands(fake, tmp_path):
    from imgbatch.batches import upload_tasks
    from imgbatch.client import ApiClient, make_storage_client
    from imgbatch.files import collect
    from imgbatch.upload import Uploader

    from .fake_api import TOKEN
    setup(fake)
    big_image(tmp_path)
    found = collect((tmp_path / "shoot",))
    api = ApiClient("http://api.test", TOKEN, transport=fake.api_transport, sleep=fake.sleep)
    created = api.create_batch({"pipeline_ids": list(fake.pipelines), "files": [
        {"name": i.name, "size": i.size, "content_type": i.content_type} for i in found.images]})
    tasks = upload_tasks(found.images, created["uploads"], created["batch"]["id"])
    seen = []
    uploader = Uploader(make_storage_client(fake.s3_transport), api=api, sleep=fake.sleep, concurrency=1)
    [result] = uploader.run(tasks, on_part=lambda task, done, total: seen.append((task.file_name, done, total)))
    assert result.ok
    assert seen[0] == ("PL_DXB1_Big.png", 0, 11) and seen[-1] == ("PL_DXB1_Big.png", 11, 11)
    assert [done for _, done, _ in seen] == list(range(12))


def test_the_progress_line_names_the_part_in_flight(monkeypatch):
    from imgbatch import live
    lines = []

    class Bar:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def add_task(self, *a, **k):
            return 0

        def update(self, task, **fields):
            lines.append(fields.get("files"))

        def advance(self, *a):
            pass

    class Runner:
        def __init__(self, *a, **k):
            pass

        def run(self, tasks, on_bytes, on_done, on_part):
            on_part(tasks[0], 3, 11)
            return []

    class App:
        err, show_progress, storage, api = None, False, None, None
        deps = type("D", (), {"sleep": None})

    monkeypatch.setattr(live.render, "upload_progress", lambda *a, **k: Bar())
    monkeypatch.setattr(live, "Uploader", Runner)
    task = type("T", (), {"file_name": "big.tif", "size": 1})()
    live.upload_with_progress(App(), [task], 1)
    assert lines == ["0/1 files · big.tif: part 3/11"]


def test_a_file_that_changed_since_the_batch_was_created_is_not_sent(run, fake, tmp_path):
    setup(fake)
    big = big_image(tmp_path)
    first = run("submit", str(tmp_path / "shoot"), "-p", "web")
    assert first.exit_code == 0
    batch = next(iter(fake.batches.values()))
    job = fake.jobs[batch["id"]][0]
    job["status"] = "awaiting_upload"          # as if the service had not seen it yet
    fake.parts_held.clear()
    fake.parts_received.clear()
    big.write_bytes(big.read_bytes() + b"more")
    again = run("resume", batch["id"], str(tmp_path / "shoot"))
    assert again.exit_code == 1 and "file changed since the batch was created" in plain(again.output)
    assert fake.parts_received == []
