"""Small strict checks for JSON payloads; each error names the field and what to fix."""
from __future__ import annotations

from typing import Any, Iterable


class Invalid(ValueError):
    """Bad input; `too_large` marks limits (HTTP 413) as opposed to malformed input (400).
    `errors` lists every problem as {"field", "message"} when a validator reports them all at once."""

    def __init__(self, message: str, too_large: bool = False, errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.too_large = too_large
        self.errors = errors


def require_object(value: Any, what: str = "request body") -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be a JSON object, got {type_name(value)}")
    return value


def reject_unknown(payload: dict, allowed: Iterable[str], what: str = "request body") -> None:
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        raise Invalid(f"{what} has unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def integer(payload: dict, field: str, lo: int, hi: int, default: int | None = None, what: str = "") -> int | None:
    value = payload.get(field, default)
    if value is None:
        return None
    # bool is an int in Python; JSON true is not a number.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{what}{field} must be an integer, got {type_name(value)}")
    if not lo <= value <= hi:
        raise Invalid(f"{what}{field} must be between {lo} and {hi}, got {value}")
    return value


def boolean(payload: dict, field: str, default: bool) -> bool:
    value = payload.get(field, default)
    if not isinstance(value, bool):
        raise Invalid(f"{field} must be true or false, got {type_name(value)}")
    return value


def string(payload: dict, field: str, max_length: int, required: bool = False, default: str | None = None,
           what: str = "") -> str | None:
    value = payload.get(field, default)
    if value is None:
        if required:
            raise Invalid(f"{what}{field} is required")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{what}{field} must be a string, got {type_name(value)}")
    if required and not value.strip():
        raise Invalid(f"{what}{field} must not be empty")
    if len(value) > max_length:
        raise Invalid(f"{what}{field} must be at most {max_length} characters, got {len(value)}")
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise Invalid(f"{what}{field} must not contain control characters")
    return value


def choice(payload: dict, field: str, options: Iterable[str], default: str | None = None,
           required: bool = False) -> str | None:
    options = tuple(options)
    value = payload.get(field, default)
    if value is None:
        if required:
            raise Invalid(f"{field} is required; one of: {', '.join(options)}")
        return None
    if value not in options:
        raise Invalid(f"{field} must be one of: {', '.join(options)}; got {value!r}")
    return value
