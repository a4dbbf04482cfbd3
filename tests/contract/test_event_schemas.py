"""Every example payload shipped beside the event schemas is judged as documented."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from integrations.contracts import SCHEMA_DIR, EventContracts, event_contracts

EXAMPLES = SCHEMA_DIR / "examples"
VALID = sorted(EXAMPLES.glob("*/valid/*.json"))
INVALID = sorted(EXAMPLES.glob("*/invalid/*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_schema_is_valid_draft_2020_12_and_has_examples() -> None:
    for path in SCHEMA_DIR.glob("*.json"):
        document = load(path)
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        Draft202012Validator.check_schema(document)
    for event_type, version in event_contracts().validators:
        folder = EXAMPLES / f"{event_type}.v{version}"
        assert list(folder.glob("valid/*.json")), f"{folder} has no valid example"
        assert list(folder.glob("invalid/*.json")), f"{folder} has no invalid example"


@pytest.mark.parametrize("path", VALID, ids=lambda path: f"{path.parent.parent.name}/{path.stem}")
def test_valid_example_is_accepted(path: Path) -> None:
    assert event_contracts().problem(load(path)) is None


@pytest.mark.parametrize("path", INVALID, ids=lambda path: f"{path.parent.parent.name}/{path.stem}")
def test_invalid_example_is_rejected_naming_the_field(path: Path) -> None:
    example = load(path)
    reason = event_contracts().problem(example["event"])
    assert reason is not None
    assert reason.split(": ", 1)[0] == example["expect_field"], reason


@pytest.mark.parametrize("garbage", [None, [], "event", 42, {}, {"data": {}}])
def test_garbage_is_rejected_without_raising(garbage: object) -> None:
    assert event_contracts().problem(garbage)


def test_adding_a_v2_schema_keeps_v1_senders_valid(tmp_path: Path) -> None:
    # Given a v2 of FlightOffersUpdated that requires a new field
    for path in SCHEMA_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    v2 = load(SCHEMA_DIR / "FlightOffersUpdated.v1.json")
    v2["$id"] = v2["$id"].replace(".v1.", ".v2.")
    v2["properties"]["version"] = {"const": 2}
    v2["$defs"]["offer"]["required"].append("fare_brand")
    v2["$defs"]["offer"]["properties"]["fare_brand"] = {"type": "string", "minLength": 1}
    (tmp_path / "FlightOffersUpdated.v2.json").write_text(json.dumps(v2), encoding="utf-8")
    contracts = EventContracts(tmp_path)
    v1_event = load(VALID[0]) if "FlightOffersUpdated" in str(VALID[0]) else None
    assert v1_event is not None
    # When a v1 sender sends what it always sent, and a v2 sender sends v2
    v2_event = copy.deepcopy(v1_event)
    v2_event["version"] = 2
    # Then v1 is still valid, v2 without the new field is not, and with it is
    assert contracts.problem(v1_event) is None
    assert contracts.problem(v2_event) == "data.offers[0].fare_brand: is required"
    for offer in v2_event["data"]["offers"]:
        offer["fare_brand"] = "Basic"
    assert contracts.problem(v2_event) is None
