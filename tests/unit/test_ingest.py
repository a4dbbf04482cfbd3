"""Ingest pipeline over fakes: validation, newest-sequence-wins writes, quarantine, invalidation."""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domains.flights.offers import FlightOffer, offers_from_item, offers_to_items
from integrations.contracts import SCHEMA_DIR, event_contracts
from integrations.flights_ingest import FLIGHTS, flight_upserts
from integrations.hotels_ingest import HOTELS
from integrations.ingest import DomainIngest, IngestPipeline
from tests.fakes import CountingMetrics, NewestWinsStore, QuarantineList

EXAMPLES = SCHEMA_DIR / "examples"
FLIGHT_EVENT = json.loads((EXAMPLES / "FlightOffersUpdated.v1/valid/two-cabins.json").read_text())
HOTEL_EVENT = json.loads((EXAMPLES / "HotelRatesUpdated.v1/valid/two-nights.json").read_text())
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class Harness:
    def __init__(
        self, spec: DomainIngest = FLIGHTS, store: NewestWinsStore | None = None, cache_up: bool = True
    ) -> None:
        self.store = store or NewestWinsStore()
        self.quarantine = QuarantineList()
        self.invalidated: Counter[str] = Counter()
        self.metrics = CountingMetrics()
        self.cache_up = cache_up
        self.pipeline = IngestPipeline(
            spec,
            event_contracts(),
            self.store,
            self.quarantine,
            self._invalidate,
            self.metrics,
            logging.getLogger("ingest"),
            clock=lambda: NOW,
        )

    def _invalidate(self, scope: str) -> int | None:
        if not self.cache_up:
            return None
        self.invalidated[scope] += 1
        return self.invalidated[scope]

    def run(self, *bodies: str, receive_count: int = 1) -> list[str]:
        records = [
            {"messageId": f"m{i}", "body": body, "attributes": {"ApproximateReceiveCount": str(receive_count)}}
            for i, body in enumerate(bodies)
        ]
        result = self.pipeline.run({"Records": records})
        return [failure["itemIdentifier"] for failure in result["batchItemFailures"]]


def delivered(event: Any, provider: str = "skylink") -> str:
    """The SQS body an EventBridge rule delivers for a partner event."""
    return json.dumps(
        {
            "detail-type": "FlightOffersUpdated",
            "source": "travel.partners",
            "detail": {"provider": provider, "event": event},
        }
    )


def with_sequence(event: dict[str, Any], sequence: int, price: str) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["sequence"] = sequence
    for offer in changed["data"]["offers"]:
        offer["price"]["amount"] = price
    return changed


def test_valid_event_writes_every_offer_and_invalidates_its_route_once() -> None:
    harness = Harness()
    assert harness.run(delivered(FLIGHT_EVENT), delivered(with_sequence(FLIGHT_EVENT, 43, "399.00"))) == []
    # One item for the provider's route and day, one attribute per offer
    assert sorted(harness.store.offers()) == [
        ("JFK-LHR", "2026-12-01#skylink", "offer#BA178#business"),
        ("JFK-LHR", "2026-12-01#skylink", "offer#BA178#economy"),
    ]
    assert {offer["price"]["N"] for offer in harness.store.offers().values()} == {"399.00"}
    assert harness.invalidated == Counter({"JFK-LHR": 1})
    assert harness.quarantine.items == []


def test_duplicate_delivery_changes_nothing_and_invalidates_nothing() -> None:
    harness = Harness()
    harness.run(delivered(FLIGHT_EVENT))
    state = copy.deepcopy(harness.store.items)
    harness.invalidated.clear()
    assert harness.run(delivered(FLIGHT_EVENT), delivered(FLIGHT_EVENT)) == []
    assert harness.store.items == state
    assert harness.invalidated == Counter()
    assert harness.metrics.counts["RecordUnchanged"] == 2  # one item write per event


@settings(max_examples=60, deadline=None)
@given(st.permutations([(1, "100.00"), (2, "200.00"), (3, "300.00"), (4, "400.00"), (5, "500.00")]), st.integers(1, 5))
def test_any_delivery_order_ends_at_the_newest_sequence(order: list[tuple[int, str]], batch: int) -> None:
    harness = Harness()
    bodies = [delivered(with_sequence(FLIGHT_EVENT, sequence, price)) for sequence, price in order]
    for start in range(0, len(bodies), batch):
        assert harness.run(*bodies[start : start + batch]) == []
    offers = harness.store.offers().values()
    assert len(offers) == 2
    assert {(offer["sequence"]["N"], offer["price"]["N"]) for offer in offers} == {("5", "500.00")}


def test_invalid_event_is_quarantined_with_the_reason_and_the_valid_ones_still_land() -> None:
    invalid = json.loads((EXAMPLES / "FlightOffersUpdated.v1/invalid/price-amount-one-decimal.json").read_text())[
        "event"
    ]
    harness = Harness()
    assert harness.run(delivered(invalid), delivered(FLIGHT_EVENT)) == []
    [record] = harness.quarantine.items
    assert record["reason"]["S"].startswith("event.data.offers[0].price.amount: ")
    assert record["message_id"]["S"] == "m0" and json.loads(record["body"]["S"])["detail"]["event"] == invalid
    assert record["pk"]["S"] == "2026-11-28" and int(record["expires_at"]["N"]) > NOW.timestamp()
    assert len(harness.store.offers()) == 2  # only the valid event's two offers; nothing of the invalid one


def test_semantically_impossible_offer_is_quarantined_and_no_offer_of_it_is_written() -> None:
    event = copy.deepcopy(FLIGHT_EVENT)
    event["data"]["offers"][1]["arrival"] = "2026-12-01T10:00:00Z"  # before departure
    harness = Harness()
    harness.run(delivered(event))
    assert [item["reason"]["S"] for item in harness.quarantine.items] == [
        "event.data.offers[1].arrival: must be after departure"
    ]
    assert harness.store.items == {}


def test_bodies_that_are_not_partner_events_are_quarantined_with_a_reason() -> None:
    harness = Harness()
    bodies = [
        "not json",
        json.dumps({"detail": "x"}),
        json.dumps({"detail": {"provider": "Sky Link!", "event": FLIGHT_EVENT}}),
        json.dumps({"detail": {"provider": "skylink", "event": HOTEL_EVENT}}),
    ]
    assert harness.run(*bodies) == []
    assert [item["reason"]["S"] for item in harness.quarantine.items] == [
        "body: is not JSON",
        "detail: is missing (not an EventBridge event)",
        "detail.provider: must be a provider name like 'skylink'",
        "event.type: HotelRatesUpdated is not handled by flights ingest",
    ]


def test_a_failed_write_is_reported_for_redelivery_and_the_rest_of_the_batch_lands() -> None:
    other_day = copy.deepcopy(FLIGHT_EVENT)
    other_day["data"]["date"] = "2026-12-02"
    for offer in other_day["data"]["offers"]:
        offer["departure"], offer["arrival"] = "2026-12-02T18:30:00Z", "2026-12-03T01:35:00Z"
    store = NewestWinsStore(fail_keys={"2026-12-01#skylink"})
    harness = Harness(store=store)
    assert harness.run(delivered(FLIGHT_EVENT), delivered(other_day)) == ["m0"]
    assert ("JFK-LHR", "2026-12-02#skylink", "offer#BA178#economy") in store.offers()
    # Redelivery after the fault: the record is written exactly once in effect.
    store.fail_keys.clear()
    assert harness.run(delivered(FLIGHT_EVENT)) == []
    assert len(store.offers()) == 4


@pytest.mark.parametrize(
    "example", sorted((EXAMPLES / "FlightOffersUpdated.v1/valid").glob("*.json")), ids=lambda path: path.stem
)
def test_flight_upserts_write_the_item_offers_to_items_describes(example: Path) -> None:
    """Ingest builds items directly (it is the hot path); the layout stays the one of domains.flights.offers."""
    event = json.loads(example.read_text())
    data = event["data"]
    offers = [
        FlightOffer(
            flight_id=raw["flight_id"],
            carrier=raw["carrier"],
            origin=data["origin"],
            destination=data["destination"],
            departure=raw["departure"],
            arrival=raw["arrival"],
            duration_minutes=raw["duration_minutes"],
            cabin=raw["cabin"],
            price=Decimal(raw["price"]["amount"]),
            currency=raw["price"]["currency"],
            seats_left=raw["seats_left"],
            provider="skylink",
            sequence=event["sequence"],
            updated_at="2026-11-28T09:00:00Z",
        )
        for raw in data["offers"]
    ]
    (upsert,) = flight_upserts(event, "skylink", "2026-11-28T09:00:00Z")
    (item,) = offers_to_items(offers)

    assert upsert.per_attribute and upsert.scope == f"{data['origin']}-{data['destination']}"
    assert {**upsert.key, **upsert.defaults, **upsert.attributes} == item
    # Every offer of the event is in the item, the last one listed where a flight and cabin repeat.
    assert sorted(offers_from_item(item)) == sorted({(o.flight_id, o.cabin): o for o in offers}.values())


def test_a_batch_is_written_in_one_store_call_and_an_offer_superseded_within_it_counts_as_unchanged() -> None:
    harness = Harness()
    newer = with_sequence(FLIGHT_EVENT, FLIGHT_EVENT["sequence"] + 1, "99.00")
    # Given one batch carrying the same offers twice, the newer event first
    assert harness.run(delivered(newer), delivered(FLIGHT_EVENT), "not json") == []
    # Then the store was asked once for the whole batch, and only the newer prices were written
    assert harness.store.calls == 1
    assert {offer["price"]["N"] for offer in harness.store.offers().values()} == {"99.00"}
    assert (harness.metrics.counts["RecordWritten"], harness.metrics.counts["RecordUnchanged"]) == (1, 1)
    assert harness.metrics.counts["EventIngested"] == 2
    assert harness.invalidated == Counter({"JFK-LHR": 1})


def test_after_a_failed_batch_write_each_event_is_written_alone_and_invalidates_what_it_touches() -> None:
    other_day = copy.deepcopy(FLIGHT_EVENT)
    other_day["data"]["date"] = "2026-12-02"
    for offer in other_day["data"]["offers"]:
        offer["departure"], offer["arrival"] = "2026-12-02T18:30:00Z", "2026-12-03T01:35:00Z"
    other_route = copy.deepcopy(FLIGHT_EVENT)
    other_route["data"]["destination"] = "CDG"
    store = NewestWinsStore(fail_keys={"2026-12-02#skylink"})
    harness = Harness(store=store)
    # When the batch's write fails part-way (the first event's offers landed before the failure)
    assert harness.run(delivered(FLIGHT_EVENT), delivered(other_day), delivered(other_route)) == ["m1"]
    # Then the events were written one by one: the failing one is handed back, the others landed,
    # and the route whose offers landed before the failure is invalidated although its retry changed nothing
    assert store.calls == 4
    assert ("JFK-CDG", "2026-12-01#skylink", "offer#BA178#business") in store.offers()
    assert harness.invalidated == Counter({"JFK-LHR": 1, "JFK-CDG": 1})


def test_an_unavailable_store_hands_the_whole_batch_back_without_retrying_message_by_message() -> None:
    store = NewestWinsStore()
    store.unavailable = True
    harness = Harness(store=store)
    other_day = copy.deepcopy(FLIGHT_EVENT)
    other_day["data"]["date"] = "2026-12-02"
    for offer in other_day["data"]["offers"]:
        offer["departure"], offer["arrival"] = "2026-12-02T18:30:00Z", "2026-12-03T01:35:00Z"
    # When DynamoDB throttles through the client's retries
    assert harness.run(delivered(FLIGHT_EVENT), delivered(other_day), "not json") == ["m0", "m1"]
    # Then the store was asked once, both events go back to SQS, the bad one is still quarantined
    assert store.calls == 1
    assert harness.metrics.counts["IngestFailed"] == 2
    assert [item["message_id"]["S"] for item in harness.quarantine.items] == ["m2"]
    assert harness.invalidated == Counter()


def test_unwritten_quarantine_records_are_reported_not_lost() -> None:
    harness = Harness()
    harness.quarantine.unprocessed = 1
    assert harness.run("not json", "also not json") == ["m0"]
    assert [item["message_id"]["S"] for item in harness.quarantine.items] == ["m1"]


def test_cache_down_during_ingest_writes_then_catches_up_on_redelivery() -> None:
    harness = Harness(cache_up=False)
    # Given the cache is away: the writes land, the missed invalidation is counted and the message
    # is handed back for redelivery rather than acknowledged
    assert harness.run(delivered(FLIGHT_EVENT)) == ["m0"]
    assert len(harness.store.offers()) == 2
    assert harness.metrics.counts["InvalidationFailed"] == 1
    # When SQS delivers it again with the cache back, nothing is rewritten but the route is invalidated
    state = copy.deepcopy(harness.store.items)
    harness.cache_up = True
    assert harness.run(delivered(FLIGHT_EVENT), receive_count=2) == []
    assert harness.store.items == state
    assert harness.invalidated == Counter({"JFK-LHR": 1})


def test_hotel_rates_keep_rating_and_guests_they_do_not_mention() -> None:
    harness = Harness(HOTELS)
    assert harness.run(delivered(HOTEL_EVENT)) == []
    first, second = (harness.store.items[("PAR", f"2026-12-0{n}#PAR-0042")] for n in (1, 2))
    assert (first["rating"], first["max_guests"], second["max_guests"]) == ({"N": "8.7"}, {"N": "3"}, {"N": "2"})
    update = copy.deepcopy(HOTEL_EVENT)
    update["sequence"] += 1
    del update["data"]["rating"]
    update["data"]["rates"][0].pop("max_guests")
    assert harness.run(delivered(update)) == []
    first = harness.store.items[("PAR", "2026-12-01#PAR-0042")]
    assert (first["rating"], first["max_guests"], first["sequence"]) == ({"N": "8.7"}, {"N": "3"}, {"N": "8"})
    assert harness.invalidated == Counter({"PAR": 2})


def test_every_valid_example_maps_to_writes_in_its_domain(tmp_path: Path) -> None:
    for path in sorted(EXAMPLES.glob("*/valid/*.json")):
        event = json.loads(path.read_text())
        harness = Harness(FLIGHTS if event["type"] == "FlightOffersUpdated" else HOTELS)
        assert harness.run(delivered(event)) == [], path
        assert harness.store.items and not harness.quarantine.items, path
