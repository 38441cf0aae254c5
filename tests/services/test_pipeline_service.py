"""PipelineService on the in-memory adapters: defaults, every problem at once, unique names."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.services.clock import iso
from tests.services.conftest import START


def test_a_pipeline_gets_its_defaults_and_reads_back(system):
    p = system.container.pipelines.create("alice", {"name": "Web 800", "format": "webp", "width": 800})
    assert (p["fit"], p["quality"], p["compression"], p["background"], p["keep_metadata"], p["upscale"]) == (
        "contain", 85, 70, "#ffffff", False, False)
    assert p["created_at"] == p["updated_at"] == iso(START) and uuid.UUID(p["id"])
    assert system.container.pipelines.get("alice", p["id"]) == p
    assert system.container.pipelines.list("alice") == [p]
    assert system.container.pipelines.list("bob") == []


def test_every_problem_is_reported_at_once_and_nothing_is_written(system):
    with pytest.raises(BadRequest) as caught:
        system.container.pipelines.create("alice", {"format": "gif", "width": -5, "quality": 200, "colour": 1})
    assert [e["field"] for e in caught.value.errors] == ["colour", "name", "format", "width", "quality"]
    assert caught.value.message.startswith("5 problems")
    assert system.container.pipelines.list("alice") == []


def test_names_are_unique_per_owner_ignoring_case_and_list_in_name_order(system):
    pipelines = system.container.pipelines
    pipelines.create("alice", {"name": "web", "format": "png"})
    with pytest.raises(Conflict, match="already exists"):
        pipelines.create("alice", {"name": " WEB ", "format": "jpeg"})
    pipelines.create("bob", {"name": "Web", "format": "png"})
    pipelines.create("alice", {"name": "Archive", "format": "tiff"})
    pipelines.create("alice", {"name": "thumbs", "format": "webp"})
    assert [p["name"] for p in pipelines.list("alice")] == ["Archive", "thumbs", "web"]


def test_a_replace_keeps_the_creation_time_and_a_rename_frees_the_old_name(system):
    pipelines = system.container.pipelines
    p = pipelines.create("alice", {"name": "A", "format": "png", "width": 10})
    pipelines.create("alice", {"name": "B", "format": "png"})
    system.clock.advance(minutes=3)
    replaced = pipelines.replace("alice", p["id"], {"name": "C", "format": "jpeg"})
    assert replaced["width"] is None and replaced["format"] == "jpeg"
    assert (replaced["created_at"], replaced["updated_at"]) == (p["created_at"], iso(START + timedelta(minutes=3)))
    pipelines.create("alice", {"name": "a", "format": "png"})   # the old name is free
    with pytest.raises(Conflict):
        pipelines.replace("alice", p["id"], {"name": "b", "format": "png"})
    assert pipelines.get("alice", p["id"])["name"] == "C"
    with pytest.raises(NotFound):
        pipelines.replace("bob", p["id"], {"name": "D", "format": "png"})


def test_a_pipeline_deleted_is_gone_and_its_name_reusable(system):
    pipelines = system.container.pipelines
    p = pipelines.create("alice", {"name": "web", "format": "png"})
    with pytest.raises(NotFound):
        pipelines.delete("bob", p["id"])
    pipelines.delete("alice", p["id"])
    for call in (lambda: pipelines.get("alice", p["id"]), lambda: pipelines.delete("alice", p["id"]),
                 lambda: pipelines.get("alice", "not-a-uuid")):
        with pytest.raises(NotFound):
            call()
    pipelines.create("alice", {"name": "web", "format": "png"})


def test_a_replace_that_loses_to_a_delete_is_not_found(system, monkeypatch):
    pipelines = system.container.pipelines
    p = pipelines.create("alice", {"name": "web", "format": "png"})
    real_replace = system.repo.replace_pipeline

    def deleted_meanwhile(*args, **kwargs):
        pipelines.delete("alice", p["id"])
        return real_replace(*args, **kwargs)

    monkeypatch.setattr(system.repo, "replace_pipeline", deleted_meanwhile)
    with pytest.raises(NotFound):
        pipelines.replace("alice", p["id"], {"name": "web", "format": "jpeg"})
