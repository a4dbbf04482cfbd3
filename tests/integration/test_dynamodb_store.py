"""core.store over the functions' own DynamoDB client (core.dynamodb) against the moto server: the wire
format, the conditions and the errors as DynamoDB's API defines them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from core.dynamodb import dynamodb_client
from core.store import DynamoTable, Writes
from integrations.ingest import Upsert
from local.aws import MotoEndpoint

pytestmark = pytest.mark.integration


@pytest.fixture
def table(moto_endpoint: MotoEndpoint, aws: Callable[[str], Any]) -> DynamoTable:
    name = f"store-{uuid.uuid4().hex[:8]}"
    aws("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoTable(name, dynamodb_client())


def offer(sk: str, sequence: int, price: str, rating: str | None = None) -> Upsert:
    defaults = {"rating": {"N": rating}} if rating else {}
    return Upsert("JFK-LHR", {"pk": {"S": "JFK-LHR"}, "sk": {"S": sk}}, {"price": {"N": price}}, sequence, defaults)


def test_newest_sequence_wins_and_defaults_only_fill_what_is_missing(table: DynamoTable) -> None:
    writes = Writes(table)
    assert writes.upsert_all([offer("d#1", 5, "100", "7"), offer("d#2", 5, "200")]) == [True, True]
    # A duplicate, an older write, a newer one, and two writes of one new item in one call
    landed = writes.upsert_all(
        [
            offer("d#1", 5, "101"),
            offer("d#2", 4, "199"),
            offer("d#2", 6, "210", "9"),
            offer("d#3", 2, "1"),
            offer("d#3", 3, "3"),
        ]
    )
    assert landed == [False, False, True, False, True]
    items = {item["sk"]["S"]: item for item in table.query_prefix("JFK-LHR", "d#")}
    assert {sk: (item["price"]["N"], item["sequence"]["N"]) for sk, item in items.items()} == {
        "d#1": ("100", "5"),
        "d#2": ("210", "6"),
        "d#3": ("3", "3"),
    }
    assert items["d#1"]["rating"] == {"N": "7"} and items["d#2"]["rating"] == {"N": "9"}
    assert table.get_item("JFK-LHR", "d#2") == items["d#2"]
    assert table.get_item("JFK-LHR", "d#9") is None


def test_an_error_from_dynamodb_is_a_client_error_with_its_code(moto_endpoint: MotoEndpoint) -> None:
    with pytest.raises(ClientError) as raised:
        DynamoTable("no-such-table", dynamodb_client()).query_prefix("JFK-LHR", "d#")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def offers_of(day: str, sequence: int, **prices: str) -> Upsert:
    """One provider's event for a day: each offer an attribute of the day's item, versioned on its own."""
    attributes = {
        f"offer#{flight}": {"M": {"price": {"N": price}, "sequence": {"N": str(sequence)}}}
        for flight, price in prices.items()
    }
    defaults = {"provider": {"S": "skylink"}}
    return Upsert("JFK-LHR", {"pk": {"S": "JFK-LHR"}, "sk": {"S": day}}, attributes, sequence, defaults, True)


def stored_offers(table: DynamoTable, day: str) -> dict[str, tuple[str, str]]:
    item = table.get_item("JFK-LHR", day) or {}
    return {
        name.removeprefix("offer#"): (value["M"]["price"]["N"], value["M"]["sequence"]["N"])
        for name, value in item.items()
        if name.startswith("offer#")
    }


def test_attributes_versioned_on_their_own_each_keep_their_newest_version(table: DynamoTable) -> None:
    writes = Writes(table)
    # Given a day's item with two offers at sequence 10
    assert writes.upsert_all([offers_of("d#1", 10, BA1="100", BA2="200")]) == [True]
    # When a newer event changes one offer, then the first event is delivered again, then an older event
    # mentions an offer the item does not hold yet and one it holds newer
    assert writes.upsert_all([offers_of("d#1", 11, BA1="110")]) == [True]
    assert writes.upsert_all([offers_of("d#1", 10, BA1="100", BA2="200")]) == [False]
    assert writes.upsert_all([offers_of("d#1", 9, BA1="90", BA3="300")]) == [True]
    # Then every offer holds its newest version, and offers an event did not mention stayed as they were
    assert stored_offers(table, "d#1") == {"BA1": ("110", "11"), "BA2": ("200", "10"), "BA3": ("300", "9")}
    assert (table.get_item("JFK-LHR", "d#1") or {})["provider"] == {"S": "skylink"}


def test_two_events_of_one_item_in_one_call_both_land_where_newer(table: DynamoTable) -> None:
    writes = Writes(table)
    landed = writes.upsert_all(
        [offers_of("d#2", 5, BA1="1", BA2="2"), offers_of("d#2", 6, BA2="22"), offers_of("d#2", 4, BA1="0", BA2="0")]
    )
    # Writes of different offers of one item are all sent; the one of the same offers, older, is not
    assert landed == [True, True, False]
    assert stored_offers(table, "d#2") == {"BA1": ("1", "5"), "BA2": ("22", "6")}


def test_an_event_with_more_offers_than_one_expression_holds_is_written_in_parts(table: DynamoTable) -> None:
    writes = Writes(table)
    many = {f"F{number}": str(number) for number in range(95)}
    assert writes.upsert_all([offers_of("d#3", 1, **many)]) == [True]
    assert writes.upsert_all([offers_of("d#3", 2, F7="700", F90="9000")]) == [True]
    stored = stored_offers(table, "d#3")
    assert len(stored) == 95
    assert (stored["F0"], stored["F7"], stored["F90"], stored["F94"]) == (
        ("0", "1"),
        ("700", "2"),
        ("9000", "2"),
        ("94", "1"),
    )
