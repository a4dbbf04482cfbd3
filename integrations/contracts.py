"""Partner event contracts: versioned JSON Schemas (Draft 2020-12, formats checked), compiled once.

``schemas/events/<Type>.v<N>.json`` describes a whole event (the envelope plus its ``data``).
An event is checked against the envelope first, then against the schema of its ``type`` and
``version``, so a sender of v1 keeps working when v2 of the same type is added. A rejection reason
names the failing field (``data.offers[0].price.amount: '41.3' does not match …``).

Two validators read the same schema files. ``jsonschema_rs`` (Rust) compiles each event schema, with the
envelope it ``$ref``s, once per container: the fast path, which matters because ingest validates every
record. ``jsonschema`` stays the reference: an event the fast path refuses is always re-judged by it, so
every verdict and every reason is jsonschema's. What the fast path must never do is accept an event
jsonschema refuses; it must also accept what jsonschema accepts, or the event pays for both. Where
jsonschema-rs judges differently, the fast copy of a schema is guarded (:data:`FORMAT_GUARDS`: its date and
date-time checks are laxer than jsonschema's) or the schema is refused at compile time
(:func:`divergences`). The fast copy is also rewritten where an equivalent keyword costs less
(:func:`fast_copy`). Both read ``pattern`` as ECMA-262 (``$`` ends the input). ``tests/contract``
holds the two to the same verdict on the examples and on generated mutations of them.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "events"
ENVELOPE = "envelope.v1.json"
MAX_REASON = 300
_SCHEMA_NAME = re.compile(r"([A-Z][A-Za-z]+)\.v([0-9]+)\.json")
# An unescaped "$": JSON Schema patterns are ECMA-262 regexes, where "$" (no multiline flag) ends the
# input. Python's "$" also matches before a final newline, so "JFK\n" would pass "^[A-Z]{3}$" and be
# written as a route. jsonschema-rs reads "$" as ECMA-262 does.
_DOLLAR = re.compile(r"(?<!\\)\$")
# No keyword allow-list: jsonschema-rs implements all of Draft 2020-12 (unevaluated*, prefixItems,
# $dynamicRef, dependent* …), so the fast path skips no keyword, as fastjsonschema's draft 2019 generator
# did. What remains is where the two implement something differently (found by tests/contract):
# * format: jsonschema-rs's "date" and "date-time" accept year 0000, and its "date-time" a leap second
#   ("23:59:60Z"); jsonschema refuses both (date.fromisoformat, rfc3339-validator). The fast copy of a
#   schema adds keywords that refuse them (FORMAT_GUARDS) and leaves the rest of each format, calendar
#   included, to jsonschema-rs. Python checkers passed as ``formats=`` would agree by construction but cost
#   ~5 µs a value, as much as the whole fast path.
#   The fast path stays stricter in two places, which costs a jsonschema run but changes no verdict:
#   a date-time ending in "\n" (rfc3339-validator's "$") and a uuid that uuid.UUID reads but is not
#   8-4-4-4-12 hex ("…-0d6f-2f4d9b11", a trailing "}", "٣" or "_" among the digits). Any other format
#   is refused at compile time until a test proves the two agree on it.
# * pattern: \d \w \s \b are Unicode classes in Python's re ("٣" is a \d), not in jsonschema-rs.
# * patternProperties: jsonschema matches property names with Python's "$" (EventValidator overrides
#   ``pattern`` only). dependencies: jsonschema-rs enforces this draft-7 keyword in 2020-12, jsonschema
#   ignores it. A fractional multipleOf: jsonschema divides floats (0.07 is no multiple of 0.01 there).
# What the fast copy adds beside each format: no year 0000 (date() has none) and, in a date-time, seconds
# below 60 (no leap second). The pattern is a plain sequence of ASCII classes, which jsonschema-rs matches
# without its regex engine; it need not say more, as the format has fixed the shape it reads.
_NOT_YEAR_0000 = {"not": {"pattern": "^0000"}}
FORMAT_GUARDS: dict[str, dict[str, Any]] = {
    "date": _NOT_YEAR_0000,
    "date-time": {"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5]", **_NOT_YEAR_0000},
    "uuid": {},
}
_CLASS_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\[dDwWsSbB]")
# Draft 2020-12 keywords whose value is a subschema, a list of them, or a map of names to them.
_SUBSCHEMA = frozenset(
    {"additionalProperties", "items", "contains", "propertyNames", "if", "then", "else", "not",
     "unevaluatedItems", "unevaluatedProperties", "contentSchema"}
)  # fmt: skip
_SUBSCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


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


def subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema object of a schema document, the document first (``true``/``false`` schemas skipped)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for key, value in schema.items():
        if key in _SUBSCHEMA:
            yield from subschemas(value)
        elif key in _SUBSCHEMA_LIST and isinstance(value, list):
            for item in value:
                yield from subschemas(item)
        elif key in _SUBSCHEMA_MAP and isinstance(value, dict):
            for item in value.values():
                yield from subschemas(item)


def divergences(document: Any) -> Iterator[str]:
    """What in a schema document jsonschema-rs would judge differently from jsonschema (guards aside)."""
    for schema in subschemas(document):
        form = schema.get("format")
        if form is not None and not (isinstance(form, str) and form in FORMAT_GUARDS):
            yield f"format {form!r} (agreement with jsonschema unproven)"
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and _CLASS_ESCAPE.search(pattern):
            yield f"pattern {pattern!r} (\\d \\w \\s \\b are Unicode in Python's re: spell the class out, e.g. [0-9])"
        if "patternProperties" in schema:
            yield "patternProperties (jsonschema matches names with Python's '$')"
        if "dependencies" in schema:
            yield "dependencies (jsonschema ignores it in Draft 2020-12; use dependentRequired/dependentSchemas)"
        multiple = schema.get("multipleOf")
        if multiple is not None and not isinstance(multiple, int):
            yield f"multipleOf {multiple!r} (jsonschema divides floats)"


def fast_copy(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` as jsonschema-rs should check it: the same verdicts, judged more cheaply.

    * Each format gets its guard (:data:`FORMAT_GUARDS`): its keywords beside the format, or as one more
      ``allOf`` entry where the schema has one of them already.
    * A schema that is only ``{"$ref": "#/$defs/<name>"}`` becomes a copy of that definition (when it holds
      no reference or identifier of its own): following the references costs jsonschema-rs ~2 % of a
      flights event.
    """
    document = copy.deepcopy(document)
    _inline_local_refs(document)
    for schema in list(subschemas(document)):
        form = schema.get("format")
        guard = copy.deepcopy(FORMAT_GUARDS.get(form, {})) if isinstance(form, str) else {}
        if guard.keys() & schema.keys():
            schema["allOf"] = [*schema.get("allOf", []), guard]
        else:
            schema.update(guard)
    return document


_LOCAL_DEFINITION = re.compile(r"#/\$defs/([A-Za-z0-9_.-]+)")
_RESOLVING_KEYWORDS = frozenset({"$ref", "$dynamicRef", "$id", "$anchor", "$dynamicAnchor"})


def _inline_local_refs(document: dict[str, Any]) -> None:
    """Replace each ``{"$ref": "#/$defs/<name>"}`` of ``document`` by a copy of the definition, in place.

    Only a definition without references or identifiers is copied, so what it means cannot depend on where
    it stands; a definition that refers to others is copied once those are inlined in it (a recursive one,
    never).
    """
    definitions = document.get("$defs")
    if not isinstance(definitions, dict):
        return
    while True:
        inlined = 0
        for schema in list(subschemas(document)):
            ref = schema["$ref"] if list(schema) == ["$ref"] else None
            match = _LOCAL_DEFINITION.fullmatch(ref) if isinstance(ref, str) else None
            target = definitions.get(match.group(1)) if match else None
            if isinstance(target, dict) and not any(_RESOLVING_KEYWORDS & set(sub) for sub in subschemas(target)):
                schema.clear()
                schema.update(copy.deepcopy(target))
                inlined += 1
        if not inlined:
            return


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"{uri}: not a schema in {SCHEMA_DIR.name}/ (remote $refs are not fetched)")


def compile_fast(document: dict[str, Any], documents_by_id: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
    """jsonschema-rs's validator of one event schema; ``$ref``s resolve to the given documents only."""
    problems = sorted({problem for doc in documents_by_id.values() for problem in divergences(doc)})
    if problems:
        raise ValueError(f"schemas the fast validator would judge differently from jsonschema: {'; '.join(problems)}")
    registry = jsonschema_rs.Registry(
        [(schema_id, fast_copy(doc)) for schema_id, doc in documents_by_id.items()], retriever=_refuse_remote
    )
    try:
        return jsonschema_rs.Draft202012Validator(
            fast_copy(document),
            registry=registry,
            retriever=_refuse_remote,
            validate_formats=True,
            pattern_options=jsonschema_rs.RegexOptions(),
        )
    except jsonschema_rs.ValidationError as error:  # an unresolvable $ref, an invalid schema
        raise ValueError(f"{document.get('$id')}: {error.message}") from None


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
        # By type, then version: two plain lookups cost less than building and hashing a (type, version) key.
        self._fast: dict[str, dict[int, jsonschema_rs.Draft202012Validator]] = {}
        for name, document in documents.items():
            match = _SCHEMA_NAME.fullmatch(name)
            if match:
                EventValidator.check_schema(document)
                key = (match.group(1), int(match.group(2)))
                self.validators[key] = EventValidator(document, registry=registry, format_checker=checker)
                self._fast.setdefault(key[0], {})[key[1]] = compile_fast(document, by_id)

    @property
    def types(self) -> set[str]:
        return {event_type for event_type, _ in self.validators}

    def problem(self, event: Any) -> str | None:
        """None when ``event`` is valid; otherwise a reason that names the failing field."""
        if self.accepts_fast(event):
            return None
        return self.explain(event)

    def accepts_fast(self, event: Any) -> bool:
        """The fast path: True when the compiled schema of the event's type and version accepts it.

        Anything unusual is False, for jsonschema to judge: not an object, no such type or version (or an
        unhashable one), a value jsonschema-rs cannot read (not JSON, nested too deep)."""
        try:
            return self._fast[event["type"]][event["version"]].is_valid(event)
        except (KeyError, TypeError, ValueError):
            return False

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
