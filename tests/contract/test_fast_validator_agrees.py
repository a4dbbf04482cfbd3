"""The fast validator (fastjsonschema) and the reference (jsonschema) judge every event alike.

Ingest accepts an event when the fast path does and asks jsonschema only to explain a refusal, so a
fast path that accepted what jsonschema refuses would let invalid events into the tables. These tests
hold the two to the same verdict on every shipped example and on generated mutations of them: values
swapped for wrong types, format-shaped and almost-format-shaped strings, keys removed and added,
arrays emptied and overfilled.
"""

from __future__ import annotations

import copy
import json
import re
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.contracts import SCHEMA_DIR, EventContracts, event_contracts

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


def verdicts(contracts: EventContracts, event: Any) -> tuple[bool, bool]:
    """(fast path accepts, jsonschema accepts)."""
    return contracts.accepts_fast(event), contracts.explain(event) is None


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
    "economy", "Economy", "first", "business ", "FlightOffersUpdated", "HotelRatesUpdated", "Flight",
    "USD", "usd", "US", "skylink",
]  # fmt: skip

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.sampled_from([0, 1, 2, -1, 99, 100, 200, 999, 1000, 1500, 1501, 9007199254740991, 9007199254740992]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, 2.0, 1.5, -0.0, 42.0]),
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
        (
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}T.*",
            st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat().replace("+00:00", "Z")),
        ),
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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(VALID) | st.sampled_from(INVALID), data=st.data())
def test_mutated_examples_get_the_same_verdict(name: str, data: st.DataObject) -> None:
    # Given a shipped example, mutated
    event = mutate(EVENTS[name], data)
    # When both validators judge it
    fast, reference = verdicts(event_contracts(), event)
    # Then they agree, and problem() (what ingest calls) gives jsonschema's answer
    assert fast == reference, f"fast={fast} jsonschema={reference}: {json.dumps(event, default=str)[:2000]}"
    assert event_contracts().problem(event) == event_contracts().explain(event)


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


def test_a_schema_keyword_the_fast_path_cannot_check_is_refused_at_compile_time(tmp_path: Path) -> None:
    # Given a schema that uses unevaluatedProperties (Draft 2020-12; fastjsonschema would ignore it)
    for path in SCHEMA_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    schema = json.loads((SCHEMA_DIR / "FlightOffersUpdated.v1.json").read_text(encoding="utf-8"))
    schema["unevaluatedProperties"] = False
    (tmp_path / "FlightOffersUpdated.v1.json").write_text(json.dumps(schema), encoding="utf-8")
    # Then compiling the contracts fails loudly instead of accepting what it cannot check
    with pytest.raises(ValueError, match="unevaluatedProperties"):
        EventContracts(tmp_path)
