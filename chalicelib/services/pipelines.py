"""Pipeline use cases: create, read, list, replace, delete (owner-scoped)."""
from __future__ import annotations

import uuid

from ..ports import ConditionFailed
from ..domain.pipelines import validate_pipeline, with_defaults
from ..domain.validation import Invalid
from ..errors import BadRequest, Conflict, NotFound
from .clock import iso, utcnow
from .ownership import is_uuid


class PipelineService:
    def __init__(self, repository, clock=utcnow, new_id=lambda: str(uuid.uuid4())):
        self.repo = repository
        self.clock = clock
        self.new_id = new_id

    def create(self, owner: str, payload) -> dict:
        spec = _valid(payload)
        try:
            return with_defaults(self.repo.create_pipeline(owner, self.new_id(), spec, iso(self.clock())))
        except ConditionFailed:
            raise Conflict(f"a pipeline named {spec['name']!r} already exists; choose another name") from None

    def get(self, owner: str, pipeline_id: str) -> dict:
        # ids are UUIDs; anything else cannot exist (and may exceed DynamoDB's key size: a 500 in AWS)
        found = self.repo.get_pipeline(owner, pipeline_id) if is_uuid(pipeline_id) else None
        if found is None:
            raise NotFound(f"pipeline {pipeline_id} not found")
        return with_defaults(found)

    def list(self, owner: str) -> list[dict]:
        return sorted((with_defaults(p) for p in self.repo.list_pipelines(owner)),
                      key=lambda p: (p["name"].casefold(), p["id"]))

    def replace(self, owner: str, pipeline_id: str, payload) -> dict:
        spec = _valid(payload)
        current = self.get(owner, pipeline_id)
        try:
            return with_defaults(self.repo.replace_pipeline(owner, pipeline_id, current["name"], spec,
                                                            iso(self.clock())))
        except ConditionFailed:
            if self.repo.get_pipeline(owner, pipeline_id) is None:
                raise NotFound(f"pipeline {pipeline_id} not found") from None
            raise Conflict(f"a pipeline named {spec['name']!r} already exists; choose another name") from None

    def delete(self, owner: str, pipeline_id: str) -> None:
        current = self.get(owner, pipeline_id)
        try:
            self.repo.delete_pipeline(owner, pipeline_id, current["name"])
        except ConditionFailed:
            raise NotFound(f"pipeline {pipeline_id} not found") from None


def _valid(payload) -> dict:
    try:
        return validate_pipeline(payload)
    except Invalid as exc:
        raise BadRequest(exc.message, errors=exc.errors) from None
