"""Ingest under at-least-once delivery: duplicates, reordering, poison, a cache that is away, a timeout.

Events go through the real ingest handlers (the SQS event Lambda hands them) into the stack's moto
tables and Redis, and the tests read back the table, the quarantine and what a search answers.
Each test writes routes and cities of its own (codes starting with Q), so none sees another's data.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from core.cache import entry_key, generation_key, query_digest
from core.page_token import PageTokens
from core.redis_client import CONNECT_TIMEOUT_SECONDS, SOCKET_TIMEOUT_SECONDS, search_cache
from core.settings import cache_settings_from_env
from core.store import DynamoTable, Writes
from domains.flights.query import parse_flight_query
from integrations.contracts import SCHEMA_DIR, event_contracts
from integrations.flights_ingest import FLIGHTS
from integrations.flights_ingest import lambda_handler as flights_ingest
from integrations.hotels_ingest import lambda_handler as hotels_ingest
from integrations.ingest import IngestPipeline, Item, Upsert
from local.redis_server import RedisServer
from local.stack import LocalStack
from tests.fakes import CountingMetrics
from tests.faults.harness import emf_counts, eventbridge_body, failed_ids, flight_event, hotel_event, sqs_batch

pytestmark = pytest.mark.integration

SEARCH = "/v1/flights/search"
INVALID_EXAMPLES = sorted((SCHEMA_DIR / "examples").glob("*/invalid/*.json"))
CACHE_BUDGET_SECONDS = 2 * (CONNECT_TIMEOUT_SECONDS + SOCKET_TIMEOUT_SECONDS)
JITTER = 0.1  # core.cache.CachePolicy: TTLs vary by ±10 %
logger = logging.getLogger("fault-tests")


def items_of(aws: Callable[[str], Any], table: str, partition: str) -> dict[str, Item]:
    """Every item of one partition, by sort key, as DynamoDB returns it."""
    response = aws("dynamodb").query(
        TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": partition}}
    )
    return {item["sk"]["S"]: item for item in response["Items"]}


def offers_of(aws: Callable[[str], Any], table: str, partition: str) -> dict[str, Item]:
    """Every flight offer of one route, by ``<day>#<flight>#<cabin>#<provider>``: the map its day's item holds."""
    offers: dict[str, Item] = {}
    for sort_key, item in items_of(aws, table, partition).items():
        day, provider = sort_key.split("#")
        for name, value in item.items():
            if name.startswith("offer#"):
                offers[f"{day}#{name.removeprefix('offer#')}#{provider}"] = value["M"]
    return offers


def quarantined(aws: Callable[[str], Any], table: str, message_ids: set[str]) -> dict[str, Item]:
    """Quarantine records of these messages, by message id (pk is the UTC day of arrival)."""
    today = datetime.now(UTC).date()
    found: dict[str, Item] = {}
    for day in (today, today - timedelta(days=1)):
        response = aws("dynamodb").query(
            TableName=table, KeyConditionExpression="pk = :day", ExpressionAttributeValues={":day": {"S": str(day)}}
        )
        for item in response["Items"]:
            if item["message_id"]["S"] in message_ids:
                found[item["message_id"]["S"]] = item
    return found


def search_params(route: tuple[str, str], day: date) -> dict[str, str]:
    return {"origin": route[0], "destination": route[1], "date": day.isoformat()}


def prices(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [offer["price"]["amount"] for offer in response.get_json()["results"]]


# --- 8. duplicate delivery ----------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["flights", "hotels"])
def test_every_event_delivered_again_and_again_leaves_exactly_the_state_of_one_delivery(
    domain: str,
    stack: LocalStack,
    aws: Callable[[str], Any],
    stack_redis: redis.Redis,
    travel_day: date,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nights = [travel_day + timedelta(days=n) for n in range(3)]
    if domain == "flights":
        handler, table, partition, scope = flights_ingest, stack.tables["FlightsTable"], "QDA-QDB", "QDA-QDB"
        events = [
            flight_event(
                "QDA", "QDB", travel_day, [("QD101", "economy", "300.00"), ("QD101", "business", "900.00")], 5
            ),
            flight_event("QDA", "QDB", travel_day, [("QD102", "economy", "250.00")], 6),
            flight_event("QDA", "QDB", nights[1], [("QD101", "economy", "310.00")], 7),
            flight_event("QDA", "QDB", travel_day, [("QD101", "economy", "280.00")], 8),  # a newer price
        ]
    else:
        handler, table, partition, scope = hotels_ingest, stack.tables["HotelsTable"], "QDC", "QDC"
        events = [
            hotel_event("QDC", "QDC-1", [(nights[0], "120.00"), (nights[1], "125.00")], 3),
            hotel_event("QDC", "QDC-2", [(nights[0], "80.00")], 4),
            hotel_event("QDC", "QDC-1", [(nights[1], "99.00"), (nights[2], "101.00")], 9),
        ]
    bodies = [eventbridge_body(event) for event in events]
    # Given every event delivered once
    assert failed_ids(handler(sqs_batch(bodies), None)) == []
    once = items_of(aws, table, partition)
    generation = stack_redis.get(f"gen:{{{domain}:{scope}}}")
    capsys.readouterr()
    # When each is delivered again: twice more within one batch, then once more in reverse order
    assert failed_ids(handler(sqs_batch(bodies + bodies), None)) == []
    assert failed_ids(handler(sqs_batch(bodies[::-1]), None)) == []
    metrics = emf_counts(capsys.readouterr().out)
    # Then every item is exactly as after one delivery (not even rewritten: updated_at is unchanged)
    assert items_of(aws, table, partition) == once
    # (one write per flights event, which holds its offers; one per hotel night)
    writes = len(events) if domain == "flights" else sum(len(event["data"]["rates"]) for event in events)
    assert (metrics["RecordWritten"], metrics["RecordUnchanged"]) == (0, 3 * writes)
    # And no cached search was invalidated for nothing
    assert stack_redis.get(f"gen:{{{domain}:{scope}}}") == generation
    # And what one delivery wrote is what the events say, the newest sequence winning
    if domain == "flights":
        offers = offers_of(aws, table, partition)
        newest = {key: (offer["sequence"]["N"], Decimal(offer["price"]["N"])) for key, offer in offers.items()}
        day = travel_day.isoformat()
        assert newest == {
            f"{day}#QD101#economy#skylink": ("8", Decimal("280.00")),
            f"{day}#QD101#business#skylink": ("5", Decimal("900.00")),
            f"{day}#QD102#economy#skylink": ("6", Decimal("250.00")),
            f"{nights[1]}#QD101#economy#skylink": ("7", Decimal("310.00")),
        }
    else:
        newest = {sk: (item["sequence"]["N"], Decimal(item["amount"]["N"])) for sk, item in once.items()}
        assert newest == {
            f"{nights[0]}#QDC-1": ("3", Decimal("120.00")),
            f"{nights[1]}#QDC-1": ("9", Decimal("99.00")),
            f"{nights[2]}#QDC-1": ("9", Decimal("101.00")),
            f"{nights[0]}#QDC-2": ("4", Decimal("80.00")),
        }


# --- 9. out-of-order delivery (property) --------------------------------------------------------

_EXAMPLES = itertools.count()
OFFERS_PER_EXAMPLE = 3


def price_of(sequence: int) -> str:
    return f"{100 + sequence}.00"


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    deliveries=st.lists(st.tuples(st.integers(0, OFFERS_PER_EXAMPLE - 1), st.integers(0, 40)), min_size=1, max_size=10),
    batch_size=st.integers(1, 4),
)
def test_any_order_of_deliveries_ends_at_the_newest_sequence_of_each_offer(
    stack: LocalStack,
    aws: Callable[[str], Any],
    travel_day: date,
    deliveries: list[tuple[int, int]],
    batch_size: int,
) -> None:
    # Given offers of their own (fresh flight ids in every example) and deliveries in any order,
    # repeated, in batches of any size
    block = next(_EXAMPLES) * OFFERS_PER_EXAMPLE
    flight_ids = [f"QO{block + offer:05d}" for offer in range(OFFERS_PER_EXAMPLE)]
    bodies = [
        eventbridge_body(
            flight_event("QOA", "QOB", travel_day, [(flight_ids[offer], "economy", price_of(sequence))], sequence)
        )
        for offer, sequence in deliveries
    ]
    for start in range(0, len(bodies), batch_size):
        assert failed_ids(flights_ingest(sqs_batch(bodies[start : start + batch_size]), None)) == []
    # Then each offer holds its newest sequence and that sequence's price
    stored = {
        item["flight_id"]["S"]: (int(item["sequence"]["N"]), Decimal(item["price"]["N"]))
        for item in offers_of(aws, stack.tables["FlightsTable"], "QOA-QOB").values()
        if item["flight_id"]["S"] in flight_ids
    }
    newest = {flight_ids[offer]: max(sequence for o, sequence in deliveries if o == offer) for offer, _ in deliveries}
    assert stored == {flight_id: (sequence, Decimal(price_of(sequence))) for flight_id, sequence in newest.items()}


# --- 10. schema-invalid payloads ------------------------------------------------------------------


def test_invalid_payloads_are_quarantined_with_their_reason_nothing_of_them_written_and_the_valid_ones_land(
    stack: LocalStack, aws: Callable[[str], Any], travel_day: date
) -> None:
    route = ("QVA", "QVB")
    valid = [
        flight_event(*route, travel_day, [("QV101", "economy", "120.00")], 1),
        flight_event(*route, travel_day, [("QV105", "business", "800.00")], 4),
    ]
    impossible = flight_event(*route, travel_day, [("QV103", "economy", "150.00"), ("QV104", "first", "1600.00")], 3)
    impossible["data"]["offers"][1]["arrival"] = impossible["data"]["offers"][1]["departure"]  # arrives as it leaves
    one_decimal = flight_event(*route, travel_day, [("QV102", "economy", "99.90")], 2)
    one_decimal["data"]["offers"][0]["price"]["amount"] = "99.9"
    # Given a batch mixing valid events with events invalid in every way: every schema example that must
    # fail, one with a price of one decimal, one whose second offer is impossible, another domain's
    # event, and bodies that are not events at all
    cases: list[tuple[str, str | None]] = [(eventbridge_body(event), None) for event in valid]
    for path in INVALID_EXAMPLES:  # each fails its own schema, which is checked before the event's type
        example = json.loads(Path(path).read_text())
        cases.append((eventbridge_body(example["event"]), f"event.{example['expect_field']}"))
    cases += [
        (eventbridge_body(one_decimal), "event.data.offers[0].price.amount: "),
        (eventbridge_body(impossible), "event.data.offers[1].arrival: must be after departure"),
        (eventbridge_body(hotel_event("QVC", "QVC-1", [(travel_day, "10.00")], 1)), "event.type: HotelRatesUpdated"),
        ("{not json", "body: is not JSON"),
        (json.dumps({"detail": {"provider": "Not A Provider", "event": valid[0]}}), "detail.provider: "),
    ]
    ids = [f"invalid-{uuid.uuid4()}" for _ in cases]
    # When the ingest function runs it
    result = flights_ingest(sqs_batch([body for body, _ in cases], ids), None)
    # Then nothing is retried: invalid events are acknowledged (they never become valid)
    assert failed_ids(result) == []
    # And each invalid one is kept in the quarantine with the reason naming the failing field, and its body
    expected = {message_id: reason for message_id, (_, reason) in zip(ids, cases, strict=True) if reason is not None}
    records = quarantined(aws, stack.tables["QuarantineTable"], set(expected))
    assert set(records) == set(expected)
    for message_id, reason in expected.items():
        assert records[message_id]["reason"]["S"].startswith(reason), records[message_id]["reason"]["S"]
        assert records[message_id]["domain"]["S"] == "flights"
    bodies = dict(zip(ids, (body for body, _ in cases), strict=True))
    assert all(records[message_id]["body"]["S"] == bodies[message_id] for message_id in expected)
    # And only the valid events were written: not even the possible first offer of the impossible event
    stored = {item["flight_id"]["S"] for item in offers_of(aws, stack.tables["FlightsTable"], "QVA-QVB").values()}
    assert stored == {"QV101", "QV105"}


# --- 17. Redis away during ingest ------------------------------------------------------------------


def test_redis_stalled_during_ingest_writes_land_and_a_cached_search_is_stale_for_at_most_its_ttl(
    stack: LocalStack,
    client: Client,
    keys: dict[str, dict[str, str]],
    aws: Callable[[str], Any],
    private_redis: RedisServer,
    functions_on: Callable[..., Any],
    today: date,
    travel_day: date,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ttl = 2
    route, params = ("QRA", "QRB"), search_params(("QRA", "QRB"), travel_day)
    query = parse_flight_query(params, today, PageTokens(b"-"))
    old = eventbridge_body(flight_event(*route, travel_day, [("QR101", "economy", "300.00")], 1))
    new = eventbridge_body(flight_event(*route, travel_day, [("QR101", "economy", "150.00")], 2))
    raw = redis.Redis(port=private_redis.port)
    with functions_on(private_redis.port, CACHE_TTL_SECONDS=str(ttl)):
        # Given a search cached with the old price
        assert failed_ids(flights_ingest(sqs_batch([old]), None)) == []
        assert prices(client.get(SEARCH, query_string=params, headers=keys["basic"])) == ["300.00"]
        assert client.get(SEARCH, query_string=params, headers=keys["basic"]).headers["X-Cache"] == "HIT"
        # When the new price is ingested while Redis does not answer
        capsys.readouterr()
        private_redis.pause()
        try:
            started = time.monotonic()
            result = flights_ingest(sqs_batch([new]), None)
            ingest_seconds = time.monotonic() - started
        finally:
            private_redis.resume()
        landed = time.monotonic()
        metrics = emf_counts(capsys.readouterr().out)
        # Then the write lands in DynamoDB, promptly, and the message is handed back for redelivery
        assert failed_ids(result) == ["m0"]
        assert ingest_seconds < CACHE_BUDGET_SECONDS + 1.0
        (item,) = offers_of(aws, stack.tables["FlightsTable"], "QRA-QRB").values()
        assert (item["sequence"]["N"], Decimal(item["price"]["N"])) == ("2", Decimal("150.00"))
        # And the missed invalidation is counted
        assert (metrics["RecordWritten"], metrics["InvalidationFailed"]) == (1, 1)
        # And the stale entry can live at most its TTL: its remaining TTL says so
        remaining_ms = raw.pttl(entry_key("flights", query.route, query_digest(query.canonical())))
        assert remaining_ms <= ttl * (1 + JITTER) * 1000
        # And travellers see the new price at the latest when that TTL runs out
        deadline = landed + ttl * (1 + JITTER) + 1.0
        seen = prices(client.get(SEARCH, query_string=params, headers=keys["basic"]))
        while seen != ["150.00"] and time.monotonic() < deadline:
            time.sleep(0.1)
            seen = prices(client.get(SEARCH, query_string=params, headers=keys["basic"]))
        assert seen == ["150.00"]
        assert time.monotonic() - landed <= ttl * (1 + JITTER) + 0.5
        # And when SQS delivers the message again (after its visibility timeout: here, once the cache's
        # circuit breaker lets a probe through), the generation catches up
        generation = int(raw.get(generation_key("flights", query.route)) or 0)
        redelivered = sqs_batch([new], receive_count=2)
        deadline = time.monotonic() + 8.0
        while failed_ids(flights_ingest(redelivered, None)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert int(raw.get(generation_key("flights", query.route)) or 0) == generation + 1
    raw.close()


# --- 18. Lambda timeout mid-batch -----------------------------------------------------------------


class LambdaTimedOut(BaseException):
    """Lambda stopping an invocation: nothing in the function catches it, nothing is acknowledged."""


class TimesOutAfter:
    """The UpsertStore port over the real table writes, until the invocation's time runs out."""

    def __init__(self, store: Writes, writes: int) -> None:
        self._store = store
        self._left = writes

    def upsert_all(self, writes: Sequence[Upsert]) -> list[bool]:
        landed = self._store.upsert_all(writes[: self._left])
        if len(writes) > self._left:
            self._left = 0
            raise LambdaTimedOut("Task timed out after 60.00 seconds")
        self._left -= len(writes)
        return landed


def test_a_lambda_timeout_mid_batch_is_redelivered_and_written_exactly_once_in_effect(
    stack: LocalStack,
    client: Client,
    keys: dict[str, dict[str, str]],
    aws: Callable[[str], Any],
    travel_day: date,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = ("QTA", "QTB"), ("QTC", "QTD")
    # Given both routes have offers, and searches of them are cached
    before = [
        eventbridge_body(flight_event(*first, travel_day, [("QT101", "economy", "500.00")], 1)),
        eventbridge_body(flight_event(*second, travel_day, [("QT201", "economy", "600.00")], 1)),
    ]
    assert failed_ids(flights_ingest(sqs_batch(before), None)) == []
    for route in (first, second):
        client.get(SEARCH, query_string=search_params(route, travel_day), headers=keys["basic"])
        assert (
            client.get(SEARCH, query_string=search_params(route, travel_day), headers=keys["basic"]).headers["X-Cache"]
            == "HIT"
        )
    # And a batch of new prices: the first route's event, then two of the second route
    batch = [
        eventbridge_body(
            flight_event(*first, travel_day, [("QT101", "economy", "450.00"), ("QT102", "first", "3000.00")], 2)
        ),
        eventbridge_body(
            flight_event(*second, travel_day, [("QT201", "economy", "550.00"), ("QT202", "first", "3100.00")], 2)
        ),
        eventbridge_body(flight_event(*second, travel_day, [("QT203", "premium", "900.00")], 3)),
    ]
    ids = [f"timeout-{uuid.uuid4()}" for _ in batch]
    metrics = CountingMetrics()
    cache = search_cache("flights", cache_settings_from_env(), metrics)
    dying = IngestPipeline(
        FLIGHTS,
        event_contracts(),
        TimesOutAfter(Writes(DynamoTable(stack.tables["FlightsTable"])), writes=2),
        Writes(DynamoTable(stack.tables["QuarantineTable"])),
        cache.invalidate,
        metrics,
        logger,
    )
    # When the invocation times out after two writes (one per event): the first route's and one of the second's
    with pytest.raises(LambdaTimedOut):
        dying.run(sqs_batch(batch, ids))
    assert "RecordWritten" not in metrics.counts  # it died before counting (or invalidating) anything
    # Then SQS delivers the whole batch again (nothing was acknowledged), to a new invocation
    capsys.readouterr()
    assert failed_ids(flights_ingest(sqs_batch(batch, ids, receive_count=2), None)) == []
    redelivery = emf_counts(capsys.readouterr().out)
    # And every event was written exactly once: two before the timeout, the other one now
    assert (redelivery["RecordWritten"], redelivery["RecordUnchanged"]) == (1, 2)
    stored = {
        item["flight_id"]["S"]: Decimal(item["price"]["N"])
        for route in ("QTA-QTB", "QTC-QTD")
        for item in offers_of(aws, stack.tables["FlightsTable"], route).values()
    }
    assert stored == {
        "QT101": Decimal("450.00"),
        "QT102": Decimal("3000.00"),
        "QT201": Decimal("550.00"),
        "QT202": Decimal("3100.00"),
        "QT203": Decimal("900.00"),
    }
    # And travellers see the new prices on both routes at once, including the route whose writes all
    # landed before the timeout (its invalidation died with the first invocation)
    assert prices(client.get(SEARCH, query_string=search_params(first, travel_day), headers=keys["basic"])) == [
        "450.00",
        "3000.00",
    ]
    assert prices(client.get(SEARCH, query_string=search_params(second, travel_day), headers=keys["basic"])) == [
        "550.00",
        "900.00",
        "3100.00",
    ]
