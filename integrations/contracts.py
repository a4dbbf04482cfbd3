"""Partner event contracts: versioned JSON Schemas (Draft 2020-12, formats checked), compiled once.

``schemas/events/<Type>.v<N>.json`` describes a whole event (the envelope plus its ``data``).
An event is checked against the envelope first, then against the schema of its ``type`` and
``version``, so a sender of v1 keeps working when v2 of the same type is added. A rejection reason
names the failing field (``data.offers[0].price.amount: '41.3' does not match …``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "events"
ENVELOPE = "envelope.v1.json"
MAX_REASON = 300
_SCHEMA_NAME = re.compile(r"([A-Z][A-Za-z]+)\.v([0-9]+)\.json")


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    id: str | None
    reason: str


def _field(error: ValidationError) -> str:
    path = error.json_path.removeprefix("$").removeprefix(".")
    # A missing property is reported on its parent: name the property itself.
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        if missing:
            path = f"{path}.{missing[0]}" if path else missing[0]
    return path or "event"


def reason_of(error: ValidationError) -> str:
    message = error.message
    if error.validator == "required":
        message = "is required"
    elif error.validator == "additionalProperties":
        message = error.message.split(" (", 1)[-1].rstrip(")") if "(" in error.message else error.message
    reason = f"{_field(error)}: {message}"
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


class EventContracts:
    """Every event schema in a folder, compiled once; :meth:`problem` explains why an event is invalid."""

    def __init__(self, schema_dir: Path = SCHEMA_DIR) -> None:
        documents = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in schema_dir.glob("*.json")}
        registry: Registry = Registry().with_resources(
            (document["$id"], Resource.from_contents(document)) for document in documents.values()
        )
        checker = Draft202012Validator.FORMAT_CHECKER
        self._envelope = Draft202012Validator(documents[ENVELOPE], registry=registry, format_checker=checker)
        self.validators: dict[tuple[str, int], Draft202012Validator] = {}
        for name, document in documents.items():
            match = _SCHEMA_NAME.fullmatch(name)
            if match:
                Draft202012Validator.check_schema(document)
                key = (match.group(1), int(match.group(2)))
                self.validators[key] = Draft202012Validator(document, registry=registry, format_checker=checker)

    @property
    def types(self) -> set[str]:
        return {event_type for event_type, _ in self.validators}

    def problem(self, event: Any) -> str | None:
        """None when ``event`` is valid; otherwise a reason that names the failing field."""
        error = best_match(self._envelope.iter_errors(event))
        if error is not None:
            return reason_of(error)
        key = (event["type"], event["version"])
        validator = self.validators.get(key)
        if validator is None:
            if event["type"] not in self.types:
                return f"type: unknown event type {event['type']!r}"
            return f"version: {event['type']} has no version {event['version']}"
        error = best_match(validator.iter_errors(event))
        return None if error is None else reason_of(error)


@lru_cache(maxsize=1)
def event_contracts() -> EventContracts:
    """The container's compiled contracts (compiled at first use, not at import)."""
    return EventContracts()
