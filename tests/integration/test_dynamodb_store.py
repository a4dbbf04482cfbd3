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
