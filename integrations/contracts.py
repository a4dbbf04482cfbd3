"""Partner event contracts: versioned JSON Schemas (Draft 2020-12, formats checked), compiled once.

``schemas/events/<Type>.v<N>.json`` describes a whole event (the envelope plus its ``data``).
An event is checked against the envelope first, then against the schema of its ``type`` and
``version``, so a sender of v1 keeps working when v2 of the same type is added. A rejection reason
names the failing field (``data.offers[0].price.amount: '41.3' does not match …``).

Two validators read the same schema files. ``fastjsonschema`` compiles each event schema (with the
envelope it ``$ref``s) into Python code: the fast path, ~20× cheaper than ``jsonschema`` per event,
which matters because ingest validates every record. ``jsonschema`` stays the reference: it explains
every rejection, and an event the fast path refuses is always re-judged by it. The two agree on every
event: the same format checkers (``jsonschema``'s own), the same regex semantics, and no schema
keyword the fast path would skip (:data:`FAST_KEYWORDS`); ``tests/contract`` proves it on the examples
and on generated mutations of them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "events"
ENVELOPE = "envelope.v1.json"
MAX_REASON = 300
_SCHEMA_NAME = re.compile(r"([A-Z][A-Za-z]+)\.v([0-9]+)\.json")
# An unescaped "$": JSON Schema patterns are ECMA-262 regexes, where "$" (no multiline flag) ends the
# input. Python's "$" also matches before a final newline, so "JFK\n" would pass "^[A-Z]{3}$" and be
# written as a route. fastjsonschema makes the same substitution.
_DOLLAR = re.compile(r"(?<!\\)\$")
# Keywords the fast validator implements (fastjsonschema's draft 2019 generator) plus annotations and
# structure it need not implement. A schema using anything else (unevaluatedProperties, prefixItems,
# $dynamicRef, dependentRequired …) is refused at compile time rather than half-checked.
FAST_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$ref", "$defs", "$comment", "title", "description", "examples", "default",
        "type", "enum", "const", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
        "properties", "required", "additionalProperties", "patternProperties", "propertyNames",
        "minProperties", "maxProperties", "items", "minItems", "maxItems", "uniqueItems", "contains",
        "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    id: str | None
    reason: str


@functools.lru_cache(maxsize=256)
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with ECMA-262's end-of-input ``$``."""
    return re.compile(_DOLLAR.sub(r"\\Z", pattern))


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 2020-12 with ECMA-262 "$" in ``pattern``; everything else is jsonschema's own.
EventValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


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


def _keywords(schema: Any) -> Iterator[str]:
    """Every keyword used anywhere in a schema document (property names under ``properties`` excluded)."""
    if isinstance(schema, list):
        for item in schema:
            yield from _keywords(item)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            yield key
            if key in ("properties", "patternProperties", "$defs"):
                for subschema in value.values():
                    yield from _keywords(subschema)
            elif key not in ("enum", "const", "examples", "default"):
                yield from _keywords(value)


def _conforms(check: Callable[[Any], Any], raises: Any) -> Callable[[str], bool]:
    """A format test with jsonschema's semantics (``FormatChecker.check``): a falsy result or ``raises`` fails."""

    def conforms(instance: str) -> bool:
        try:
            return bool(check(instance))
        except raises:
            return False

    return conforms


def _formats(documents: dict[str, Any]) -> dict[str, Callable[[str], bool]]:
    """jsonschema's own format checkers, for every format the documents use (unknown ones pass, as there)."""
    checkers = Draft202012Validator.FORMAT_CHECKER.checkers
    used = {value for document in documents.values() for value in _format_values(document)}
    return {name: _conforms(*checkers[name]) if name in checkers else (lambda _: True) for name in used}


def _format_values(schema: Any) -> Iterator[str]:
    if isinstance(schema, list):
        for item in schema:
            yield from _format_values(item)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            if key == "format" and isinstance(value, str):
                yield value
            elif key not in ("enum", "const", "examples", "default"):
                yield from _format_values(value)


def compile_fast(document: dict[str, Any], documents_by_id: dict[str, Any]) -> Callable[[Any], Any]:
    """fastjsonschema's compiled validator of one event schema; ``$ref``s resolve to the given documents only."""
    unsupported = sorted({keyword for doc in documents_by_id.values() for keyword in _keywords(doc)} - FAST_KEYWORDS)
    if unsupported:
        raise ValueError(f"schema keywords the fast validator does not implement: {unsupported}")

    def resolve(uri: str) -> Any:
        try:
            return documents_by_id[uri]
        except KeyError:
            raise ValueError(f"{uri}: not a schema in {SCHEMA_DIR.name}/ (remote $refs are not fetched)") from None

    return fastjsonschema.compile(
        document,
        handlers={"https": resolve, "http": resolve},
        formats=_formats(documents_by_id),
        use_default=False,  # never fill defaults into the event being checked
    )


class EventContracts:
    """Every event schema in a folder, compiled once; :meth:`problem` explains why an event is invalid."""

    def __init__(self, schema_dir: Path = SCHEMA_DIR) -> None:
        documents = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in schema_dir.glob("*.json")}
        by_id = {document["$id"]: document for document in documents.values()}
        registry: Registry = Registry().with_resources(
            (schema_id, Resource.from_contents(document)) for schema_id, document in by_id.items()
        )
        checker = Draft202012Validator.FORMAT_CHECKER
        self._envelope = EventValidator(documents[ENVELOPE], registry=registry, format_checker=checker)
        self.validators: dict[tuple[str, int], Any] = {}
        self._fast: dict[tuple[str, int], Callable[[Any], Any]] = {}
        for name, document in documents.items():
            match = _SCHEMA_NAME.fullmatch(name)
            if match:
                EventValidator.check_schema(document)
                key = (match.group(1), int(match.group(2)))
                self.validators[key] = EventValidator(document, registry=registry, format_checker=checker)
                self._fast[key] = compile_fast(document, by_id)

    @property
    def types(self) -> set[str]:
        return {event_type for event_type, _ in self.validators}

    def problem(self, event: Any) -> str | None:
        """None when ``event`` is valid; otherwise a reason that names the failing field."""
        if self.accepts_fast(event):
            return None
        return self.explain(event)

    def accepts_fast(self, event: Any) -> bool:
        """The fast path: True when the compiled schema of the event's type and version accepts it."""
        if not isinstance(event, dict):
            return False
        try:
            check = self._fast.get((event.get("type"), event.get("version")))
        except TypeError:  # an unhashable type or version: jsonschema explains
            return False
        if check is None:
            return False
        try:
            check(event)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    def explain(self, event: Any) -> str | None:
        """jsonschema's verdict: None when valid, else the reason (envelope first, then the event's schema)."""
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
