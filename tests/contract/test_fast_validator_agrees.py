"""The fast validator (jsonschema-rs) and the reference (jsonschema) judge every event alike.

Ingest accepts an event when the fast path does and asks jsonschema only to explain a refusal, so a
fast path that accepted what jsonschema refuses would let invalid events into the tables. These tests
hold the two to the same verdict on every shipped example and on generated mutations of them: values
swapped for wrong types, format-shaped and almost-format-shaped strings (leap seconds, year 0000,
offsets, lower-case separators), keys removed and added, arrays emptied and overfilled. The fast path
is stricter than jsonschema on two documented shapes only (see ``integrations/contracts.py``), where
``problem()`` still gives jsonschema's verdict.
"""

from __future__ import annotations

import copy
import json
import re
import string
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from integrations.contracts import (
    FORMAT_GUARDS,
    SCHEMA_DIR,
    EventContracts,
    compile_fast,
    event_contracts,
    fast_copy,
)

EXAMPLES = SCHEMA_DIR / "examples"


def load_event(path: Path) -> Any:
    document = json.loads(path.read_text(encoding="utf-8"))
    return document["event"] if "invalid" in path.parts else document


EVENTS = {
    f"{path.parent.parent.name}/{path.parent.name}/{path.stem}": load_event(path)
    for path in sorted(EXAMPLES.glob("*/*/*.json"))
}

VALID = sorted(name for name in EVENTS if "/valid/" in name)
INVALID = sorted(name for name in EVENTS if "/invalid/" in name)

Path_ = tuple[str | int, ...]


FORMATS = Draft202012Validator.FORMAT_CHECKER
CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def verdicts(contracts: EventContracts, event: Any) -> tuple[bool, bool]:
    """(fast path accepts, jsonschema accepts)."""
    return contracts.accepts_fast(event), contracts.explain(event) is None


def stricter_by_design(value: str) -> bool:
    """A string jsonschema accepts as a format and the fast path refuses, as contracts.py documents."""
    newline_date_time = value.endswith("\n") and FORMATS.conforms(value, "date-time")
    return newline_date_time or FORMATS.conforms(value, "uuid") and not CANONICAL_UUID.fullmatch(value)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in strings(item)]


def paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every location in a JSON value, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def at(value: Any, path: Path_) -> Any:
    for step in path:
        value = value[step]
    return value


# Strings that sit on the edges of the schemas' patterns and formats.
ALMOST = [
    "JFK\n", "jfk", "JF", "JFKX", "ＪＦＫ", "", " ", "BA178", "BA178\n", "ba178", "B", "BA1234567",
    "412.30", "412.3", "412", "0.00", "00.10", "1234567.00", "12345678.00", "412.30\n", "412,30",
    "2026-12-01", "2026-02-30", "2026-13-01", "2026-12-01\n", "20261201", "2026-12-1",
    "2026-12-01T18:30:00Z", "2026-12-01t18:30:00z", "2026-12-01T18:30:00+05:30", "2026-12-01T18:30:00+0530",
    "2026-12-01T24:00:00Z", "2026-12-01T18:30:60Z", "2026-12-01T18:30:00.123456Z", "2026-12-01 18:30:00Z",
    "2026-12-01T18:30:00", "6f1c1c5e-8a7e-4c1e-9a55-0d6f2f4d9b11", "6f1c1c5e8a7e4c1e9a550d6f2f4d9b11",
    "{6f1c1c5e-8a7e-4c1e-9a55-0d6f2f4d9b11}", "6F1C1C5E-8A7E-4C1E-9A55-0D6F2F4D9B11", "urn:uuid:6f1c1c5e-8a7e",
    "2016-12-31T23:59:60Z", "2026-12-31T23:59:60Z", "2026-12-01T00:59:60+01:00", "0000-01-01", "0000-12-01T18:30:00Z",
    "13..-01-31", "2+26-12-01T18:30:00Z", "2026-12-2+T18:30:00Z", "2026-12-01T18:30:00Z\n", "2024-02-29", "2026-02-29",
    "2026-12-01T18:30:00-00:00", "2026-12-01T18:30:00+23:59", "2026-12-01T18:30:00+24:00", "2026-12-01T18:30:00.Z",
    "6f1c1c5e-8a7e-4c1e-9a55-0d6f-2f4d9b11", "6f1c1c5e-8a7e-4c1e-9a55-0d6f2f4d9b11}",
    "6f1c1c5e-8a7e-4c1e-9a55-0d6f2f4d9b1٣",
    "economy", "Economy", "first", "business ", "FlightOffersUpdated", "HotelRatesUpdated", "Flight",
    "USD", "usd", "US", "skylink",
]  # fmt: skip

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.sampled_from([0, 1, 2, -1, 99, 100, 200, 999, 1000, 1500, 1501, 9007199254740991, 9007199254740992]),
    st.sampled_from([2**64, -(2**64), 10**30, -(10**30)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, 2.0, 1.5, -0.0, 42.0, 1e300, -1e300, 10.000000000000002, 9007199254740991.0]),
    st.text(max_size=12),
    st.text(alphabet=string.ascii_uppercase + string.digits, min_size=1, max_size=8),
    st.sampled_from(ALMOST),
    st.dates().map(lambda day: day.isoformat()),
    st.datetimes().map(lambda moment: moment.isoformat() + "Z"),
    st.uuids().map(str),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "id", "type", "data", "x"]), inner)
    ),
    max_leaves=6,
)


# Date-times as partners write them, and as they should not: any offset, either case, fractions, a second
# of 60 (a leap second is 23:59:60 in UTC), hours of 24, year 0000.
DATE_TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat().replace("+00:00", "Z")),
    st.from_regex(
        r"(0000|19[0-9]{2}|20[0-9]{2})-(0[0-9]|1[0-3])-([0-2][0-9]|3[0-2])[Tt ]([01][0-9]|2[0-4]):[0-5][0-9]:"
        r"([0-5][0-9]|60|61)(\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-4]):[0-6][0-9]|[+-][0-9]{4})?",
        fullmatch=True,
    ),
)


def resampled(value: Any) -> st.SearchStrategy[Any]:
    """Values shaped like ``value`` (another date for a date, a UUID for a UUID …): mostly valid, some not."""
    if isinstance(value, bool) or value is None:
        return json_scalars
    if isinstance(value, int):
        return st.integers(min_value=-3, max_value=2000) | st.sampled_from([value + 1, value * 10, 1501, 999, 1000])
    if not isinstance(value, str):
        return json_scalars
    shapes = [
        (r"[0-9]{4}-[0-9]{2}-[0-9]{2}", st.dates().map(lambda day: day.isoformat())),
        (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T.*", DATE_TIMES),
        (r"[0-9a-f]{8}-.*", st.uuids().map(str)),
        (r"[A-Z]{3}", st.from_regex(r"[A-Z]{2,4}", fullmatch=True)),
        (r"[A-Z0-9]{2}[0-9]+", st.from_regex(r"[A-Z0-9]{2}[0-9]{0,6}[A-Z]?", fullmatch=True)),
        (r"[A-Z0-9]{2}", st.from_regex(r"[A-Z0-9]{1,3}", fullmatch=True)),
        (r"[0-9]+\.[0-9]{2}", st.from_regex(r"(0|[1-9][0-9]{0,7})\.[0-9]{1,3}", fullmatch=True)),
    ]
    for shape, strategy in shapes:
        if re.fullmatch(shape, value):
            return strategy
    return st.sampled_from(ALMOST)


def mutate(event: Any, data: st.DataObject) -> Any:
    """One to three random edits of a deep copy of ``event``."""
    event = copy.deepcopy(event)
    for _ in range(data.draw(st.sampled_from([1, 1, 1, 2, 3]), label="edits")):
        path = data.draw(st.sampled_from(paths(event)), label="path")
        parent, key = (at(event, path[:-1]), path[-1]) if path else (None, None)
        target = at(event, path)
        kind = data.draw(
            st.sampled_from(
                [
                    "resample",
                    "resample",
                    "resample",
                    "resample",
                    "replace",
                    "delete",
                    "add_key",
                    "edit_text",
                    "resize_list",
                ]
                + ["copy_sibling"]
            ),
            label="kind",
        )
        if kind == "resample" and parent is not None:
            parent[key] = data.draw(resampled(target), label="resampled")
        elif kind == "replace" or parent is None and kind in ("delete", "copy_sibling", "resample"):
            value = data.draw(json_values, label="value")
            if parent is None:
                event = value
            else:
                parent[key] = value
        elif kind == "delete" and isinstance(parent, dict):
            del parent[key]
        elif kind == "delete" and isinstance(parent, list):
            parent.pop(key)  # type: ignore[call-overload]
        elif kind == "add_key" and isinstance(target, dict):
            name = data.draw(st.sampled_from(["extra", "fare_brand", "id", "data", "offers", "amount"]), label="key")
            target[name] = data.draw(json_values, label="added")
        elif kind == "edit_text" and isinstance(target, str) and parent is not None:
            edit = data.draw(st.sampled_from(["newline", "upper", "lower", "drop", "insert", "space"]), label="edit")
            position = data.draw(st.integers(min_value=0, max_value=len(target)), label="position")
            parent[key] = {
                "newline": target + "\n",
                "upper": target.upper(),
                "lower": target.lower(),
                "drop": target[:position] + target[position + 1 :],
                "insert": target[:position] + data.draw(st.characters(), label="char") + target[position:],
                "space": " " + target,
            }[edit]
        elif kind == "resize_list" and isinstance(target, list) and target:
            size = data.draw(st.sampled_from([0, 1, 2, 199, 200, 201]), label="size")
            parent_list = [copy.deepcopy(target[index % len(target)]) for index in range(size)]
            if parent is None:
                event = parent_list
            else:
                parent[key] = parent_list
        elif kind == "copy_sibling" and isinstance(parent, dict) and len(parent) > 1:
            other = data.draw(st.sampled_from(sorted(name for name in parent if name != key)), label="sibling")
            parent[key] = copy.deepcopy(parent[other])
    return event


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_example_gets_the_same_verdict(name: str) -> None:
    fast, reference = verdicts(event_contracts(), EVENTS[name])
    assert fast == reference == ("/valid/" in f"/{name}/")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(VALID) | st.sampled_from(INVALID), data=st.data())
def test_mutated_examples_get_the_same_verdict(name: str, data: st.DataObject) -> None:
    # Given a shipped example, mutated
    event = mutate(EVENTS[name], data)
    # When both validators judge it
    fast, reference = verdicts(event_contracts(), event)
    # Then the fast path never accepts what jsonschema refuses, and refuses what it accepts only on the
    # documented shapes; problem() (what ingest calls) gives jsonschema's answer either way
    shown = f"fast={fast} jsonschema={reference}: {json.dumps(event, default=str)[:2000]}"
    assert fast == reference or (reference and any(map(stricter_by_design, strings(event)))), shown
    assert event_contracts().problem(event) == event_contracts().explain(event)


def format_validator(form: str) -> Any:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://schemas.travel-search.dev/events/{form}.json",
        "type": "string",
        "format": form,
    }
    return compile_fast(schema, {schema["$id"]: schema})


FAST_FORMATS = {form: format_validator(form) for form in FORMAT_GUARDS}
FORMAT_VALUES = {
    "date": st.one_of(
        st.dates().map(str),
        st.from_regex(r"(0000|[0-9]{4})-(0[0-9]|1[0-3])-([0-2][0-9]|3[0-2])", fullmatch=True),
    ),
    "date-time": DATE_TIMES,
    "uuid": st.one_of(st.uuids().map(str), st.uuids().map(lambda value: str(value).upper())),
}
EDIT_CHARACTERS = st.sampled_from(list("0123456789-:+.TtZz _{}\nabcdef") + ["٣", "\u00a0", "ＴＺ"])


@settings(max_examples=1500, deadline=None)
@given(form=st.sampled_from(sorted(FORMAT_GUARDS)), data=st.data())
def test_the_fast_path_checks_each_format_as_jsonschema_does(form: str, data: st.DataObject) -> None:
    # Given a value shaped like the format, with up to three characters inserted, dropped or replaced
    value = data.draw(FORMAT_VALUES[form], label="value")
    for _ in range(data.draw(st.integers(min_value=0, max_value=3), label="edits")):
        position = data.draw(st.integers(min_value=0, max_value=len(value)), label="position")
        character = data.draw(EDIT_CHARACTERS, label="character")
        value = data.draw(
            st.sampled_from(
                [
                    value[:position] + character + value[position:],
                    value[:position] + value[position + 1 :],
                    value[:position] + character + value[position + 1 :],
                ]
            ),
            label="edited",
        )
    # When both judge it
    fast, reference = FAST_FORMATS[form].is_valid(value), FORMATS.conforms(value, form)
    # Then they agree, or the fast path refuses one of the documented shapes
    assert fast == reference or (reference and stricter_by_design(value)), f"{form} {value!r}: {fast=} {reference=}"


# Values each format alone lets through in jsonschema-rs, and jsonschema refuses: what FORMAT_GUARDS is for.
UNGUARDED = [
    ("date", "0000-01-01", False),
    ("date-time", "0000-01-01T00:00:00Z", False),
    ("date-time", "2016-12-31T23:59:60Z", False),
    ("date-time", "2026-12-01T00:59:60+01:00", False),
]


@pytest.mark.parametrize(("form", "value", "valid"), UNGUARDED)
def test_each_guard_is_still_needed(form: str, value: str, valid: bool) -> None:
    # When a jsonschema-rs release refuses one of these itself, its guard can go (and this case with it)
    unguarded = jsonschema_rs.Draft202012Validator({"type": "string", "format": form}, validate_formats=True)
    assert unguarded.is_valid(value) and FORMATS.conforms(value, form) is valid


@pytest.mark.parametrize(
    ("form", "value", "valid"),
    [
        # jsonschema-rs alone accepts these (UNGUARDED); the guards of the fast copy refuse them as jsonschema does
        *UNGUARDED,
        # jsonschema-rs before 0.61 accepted these
        ("date", "13..-01-31", False),
        ("date-time", "2+37-12-28T21:47:37Z", False),
        ("date-time", "5941-05-2+T14:48:14-07:00", False),
        # the calendar stays jsonschema-rs's, and agrees
        ("date", "2024-02-29", True),
        ("date", "2026-02-29", False),
        ("date", "2026-02-30", False),
        ("date-time", "2026-02-29T00:00:00Z", False),
        ("date-time", "2026-12-01t18:30:00z", True),
        ("date-time", "2026-12-01T18:30:00.123456789+05:30", True),
        ("date-time", "2026-12-01T18:30:00-00:00", True),
        ("date-time", "2026-12-01T18:30:00+24:00", False),
        ("date-time", "2026-12-01T24:00:00Z", False),
        ("date-time", "2026-12-01T18:30:00+0530", False),
        ("uuid", "6F1C1C5E-8A7E-4C1E-9A55-0D6F2F4D9B11", True),
        ("uuid", "6f1c1c5e8a7e4c1e9a550d6f2f4d9b11", False),
    ],
)
def test_format_edge_cases_get_jsonschemas_verdict_from_the_fast_path(form: str, value: str, valid: bool) -> None:
    assert FORMATS.conforms(value, form) is valid
    assert FAST_FORMATS[form].is_valid(value) is valid


@pytest.mark.parametrize(
    ("form", "value"),
    [
        ("date-time", "2026-12-01T18:30:00Z\n"),
        ("uuid", "6f1c1c5e-8a7e-4c1e-9a55-0d6f-2f4d9b11"),
        ("uuid", "6f1c1c5e-8a7e-4c1e-9a55-0d6f2f4d9b11}"),
        ("uuid", "6f1c1c5e-8a7e-4c1e-9a55-0d6f2f4d9b1٣"),
        ("uuid", "6f1c1c5e-8a7e-4c1e-9a55-0d6f2f4d9_11"),
    ],
)
def test_the_fast_path_is_stricter_only_where_documented_and_problem_keeps_jsonschemas_verdict(
    form: str, value: str
) -> None:
    # Given a value jsonschema accepts and jsonschema-rs does not
    assert FORMATS.conforms(value, form) and not FAST_FORMATS[form].is_valid(value)
    assert stricter_by_design(value)
    # When an event carries it
    event = copy.deepcopy(EVENTS["FlightOffersUpdated.v1/valid/two-cabins"])
    if form == "uuid":
        event["id"] = value
    else:
        event["data"]["offers"][0]["departure"] = value
    # Then the fast path refuses it and problem() still accepts it, as jsonschema does
    assert not event_contracts().accepts_fast(event)
    assert event_contracts().problem(event) is None


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda event: event["data"].__setitem__("origin", "JFK\n"), "data.origin"),
        (lambda event: event["data"]["offers"][0].__setitem__("flight_id", "BA178\n"), "data.offers[0].flight_id"),
        (lambda event: event["data"]["offers"][0]["price"].__setitem__("amount", "412.30\n"), "data.offers[0].price"),
    ],
)
def test_a_trailing_newline_does_not_satisfy_a_pattern(edit: Any, field: str) -> None:
    # JSON Schema patterns are ECMA-262: "$" ends the input (Python's "$" also matches before a final "\n").
    event = copy.deepcopy(EVENTS["FlightOffersUpdated.v1/valid/two-cabins"])
    edit(event)
    reason = event_contracts().problem(event)
    assert reason is not None and reason.startswith(field), reason
    assert not event_contracts().accepts_fast(event)


def contracts_with(tmp_path: Path, edit: Any) -> EventContracts:
    """The shipped schemas, with FlightOffersUpdated v1 edited, compiled from ``tmp_path``."""
    for path in SCHEMA_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    schema = json.loads((SCHEMA_DIR / "FlightOffersUpdated.v1.json").read_text(encoding="utf-8"))
    edit(schema)
    (tmp_path / "FlightOffersUpdated.v1.json").write_text(json.dumps(schema), encoding="utf-8")
    return EventContracts(tmp_path)


def test_draft_2020_12_keywords_are_enforced_by_both_validators(tmp_path: Path) -> None:
    # Given offers closed with unevaluatedProperties (fastjsonschema ignored it; jsonschema-rs does not)
    def edit(schema: dict[str, Any]) -> None:
        offer = schema["$defs"]["offer"]
        del offer["additionalProperties"]
        offer["unevaluatedProperties"] = False

    contracts = contracts_with(tmp_path, edit)
    event = copy.deepcopy(EVENTS["FlightOffersUpdated.v1/valid/two-cabins"])
    assert contracts.problem(event) is None
    # When an offer carries a property the schema does not name
    event["data"]["offers"][0]["fare_brand"] = "Basic"
    # Then both refuse it
    assert verdicts(contracts, event) == (False, False)
    assert (contracts.problem(event) or "").startswith("data.offers[0]: Unevaluated properties are not allowed")


@pytest.mark.parametrize(
    ("edit", "refused"),
    [
        (lambda schema: schema["$defs"]["offer"]["properties"]["carrier"].update(format="email"), "format 'email'"),
        (lambda schema: schema["$defs"].update(iata={"type": "string", "pattern": r"^\w{3}$"}), "pattern"),
        (lambda schema: schema["$defs"]["offer"].update(patternProperties={"^x-": {}}), "patternProperties"),
        (lambda schema: schema["$defs"]["offer"].update(dependencies={"cabin": ["price"]}), "dependencies"),
        (lambda schema: schema["$defs"]["offer"]["properties"].update(tax={"multipleOf": 0.01}), "multipleOf"),
    ],
)
def test_a_schema_the_two_validators_would_judge_differently_is_refused_at_compile_time(
    tmp_path: Path, edit: Any, refused: str
) -> None:
    # Given a schema using something jsonschema-rs checks differently from jsonschema
    # Then compiling the contracts fails loudly instead of letting the fast path disagree with the reference
    with pytest.raises(ValueError, match=re.escape(refused)):
        contracts_with(tmp_path, edit)


def test_a_remote_ref_is_never_fetched(tmp_path: Path) -> None:
    # Given a schema whose $ref names a document outside schemas/events/
    def edit(schema: dict[str, Any]) -> None:
        schema["allOf"].append({"$ref": "https://schemas.example.com/elsewhere.json"})

    # Then compiling fails (jsonschema-rs would otherwise fetch it over HTTP at container start)
    with pytest.raises(ValueError, match="remote \\$refs are not fetched"):
        contracts_with(tmp_path, edit)


def test_a_recursive_definition_is_followed_not_inlined(tmp_path: Path) -> None:
    # Given a fare rule that nests rules of its own (a $defs entry that refers to itself)
    def edit(schema: dict[str, Any]) -> None:
        schema["$defs"]["rule"] = {
            "type": "object",
            "required": ["code"],
            "properties": {"code": {"$ref": "#/$defs/iata"}, "then": {"$ref": "#/$defs/rule"}},
        }
        schema["$defs"]["offer"]["properties"]["rule"] = {"$ref": "#/$defs/rule"}

    contracts = contracts_with(tmp_path, edit)
    fast = fast_copy(json.loads((tmp_path / "FlightOffersUpdated.v1.json").read_text(encoding="utf-8")))
    # Then the references to the rule, and to the offer that holds one, stay references; the rule's iata
    # code, which refers to nothing, is copied in
    assert fast["properties"]["data"]["properties"]["offers"]["items"] == {"$ref": "#/$defs/offer"}
    assert fast["$defs"]["offer"]["properties"]["rule"] == {"$ref": "#/$defs/rule"}
    assert fast["$defs"]["rule"]["properties"]["code"] == {"type": "string", "pattern": "^[A-Z]{3}$"}
    # And both validators judge nested rules alike
    event = copy.deepcopy(EVENTS["FlightOffersUpdated.v1/valid/two-cabins"])
    event["data"]["offers"][0]["rule"] = {"code": "ABC", "then": {"code": "XYZ", "then": {"code": "DEF"}}}
    assert verdicts(contracts, event) == (True, True)
    event["data"]["offers"][0]["rule"]["then"]["then"]["code"] = "de"
    assert verdicts(contracts, event) == (False, False)
