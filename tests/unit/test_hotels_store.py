"""The hotels data access: one key-range Query per search, over botocore's Stubber (no socket)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ServiceUnavailable
from core.store import DynamoTable
from domains.hotels.bootstrap import DynamoRateSource
from domains.hotels.rates import NIGHT_END, NightlyRate, night_key, rate_to_item

BASE = NightlyRate(
    hotel_id="PAR-001",
    name="Hotel Opera Plaza",
    city="PAR",
    stars=4,
    rating=Decimal("8.5"),
    date="2026-12-01",
    amount=Decimal("120.00"),
    currency="EUR",
    available=True,
    max_guests=2,
    provider="staylink",
    sequence=1,
    updated_at="2026-11-27T10:00:00Z",
)
EXPECTED_QUERY = {
    "TableName": "hotels",
    "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
    "ExpressionAttributeValues": {":pk": {"S": "PAR"}, ":low": {"S": "2026-12-01"}, ":high": {"S": "2026-12-03#~"}},
}


@pytest.fixture
def dynamodb() -> Iterator[tuple[Any, Stubber]]:
    client = botocore.session.get_session().create_client(
        "dynamodb", region_name="eu-west-1", aws_access_key_id="unit", aws_secret_access_key="unit"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_one_key_range_query_reads_every_page_of_the_stay(dynamodb: tuple[Any, Stubber]) -> None:
    client, stubber = dynamodb
    first, second = BASE, replace(BASE, date="2026-12-02", amount=Decimal("130.00"))
    last_key = {"pk": {"S": "PAR"}, "sk": {"S": "2026-12-01#PAR-001"}}
    stubber.add_response("query", {"Items": [rate_to_item(first)], "LastEvaluatedKey": last_key}, EXPECTED_QUERY)
    stubber.add_response("query", {"Items": [rate_to_item(second)]}, {**EXPECTED_QUERY, "ExclusiveStartKey": last_key})
    source = DynamoRateSource(DynamoTable("hotels", client))
    assert source.rates("PAR", "2026-12-01", "2026-12-03") == [first, second]


def test_throttling_becomes_service_unavailable(dynamodb: tuple[Any, Stubber]) -> None:
    client, stubber = dynamodb
    stubber.add_client_error("query", "ProvisionedThroughputExceededException", http_status_code=400)
    with pytest.raises(ServiceUnavailable):
        DynamoRateSource(DynamoTable("hotels", client)).rates("PAR", "2026-12-01", "2026-12-03")


HOTEL_IDS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=24
)


@given(hotel_id=HOTEL_IDS, day=st.integers(min_value=1, max_value=28))
def test_the_key_range_holds_the_stays_nights_and_nothing_else(hotel_id: str, day: int) -> None:
    first, last = "2026-12-10", "2026-12-12"
    low, high = first, f"{last}{NIGHT_END}"
    key = night_key(f"2026-12-{day:02d}", hotel_id)
    assert (low <= key <= high) == (10 <= day <= 12)
