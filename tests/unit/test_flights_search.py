"""Flight search logic over fakes: filters, ranking, pages, rendering."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import orjson

from core.page_token import PageTokens
from domains.flights.offers import FlightOffer, offers_from_item, offers_to_items
from domains.flights.query import FlightQuery
from domains.flights.search import FlightSearch
from tests.fakes import DictCache, InMemoryOffers

BASE = FlightOffer(
    flight_id="BA0178",
    carrier="BA",
    origin="JFK",
    destination="LHR",
    departure="2026-12-01T18:30:00Z",
    arrival="2026-12-02T01:35:00Z",
    duration_minutes=425,
    cabin="economy",
    price=Decimal("412.30"),
    currency="USD",
    seats_left=4,
    provider="skylink",
    sequence=3,
    updated_at="2026-11-27T10:00:00Z",
)


def offers() -> list[FlightOffer]:
    return [
        BASE,
        BASE._replace(flight_id="AA0100", carrier="AA", price=Decimal("380"), duration_minutes=440, seats_left=1),
        BASE._replace(flight_id="VS0004", carrier="VS", price=Decimal("455.10"), departure="2026-12-01T08:00:00Z"),
        BASE._replace(flight_id="BA0178", cabin="business", price=Decimal("2100"), seats_left=9),
        BASE._replace(flight_id="DL0001", departure="2026-12-02T09:00:00Z"),  # another day
    ]


def search(source: InMemoryOffers | None = None) -> FlightSearch:
    return FlightSearch(source or InMemoryOffers(offers()), DictCache(), PageTokens(b"k"))


def results(query: FlightQuery) -> list[dict[str, object]]:
    return orjson.loads(search().search(query).body)["results"]  # type: ignore[no-any-return]


def test_results_are_that_day_sorted_by_price_and_rendered_as_documented() -> None:
    found = results(FlightQuery("JFK", "LHR", "2026-12-01"))
    assert [r["flight_id"] for r in found] == ["AA0100", "BA0178", "VS0004", "BA0178"]
    assert found[1] == {
        "flight_id": "BA0178",
        "carrier": "BA",
        "origin": "JFK",
        "destination": "LHR",
        "departure": "2026-12-01T18:30:00Z",
        "arrival": "2026-12-02T01:35:00Z",
        "duration_minutes": 425,
        "cabin": "economy",
        "price": {"amount": "412.30", "currency": "USD"},
        "seats_left": 4,
        "provider": "skylink",
    }
    assert found[0]["price"] == {"amount": "380.00", "currency": "USD"}


def test_adults_cabin_and_max_price_filter() -> None:
    assert [r["flight_id"] for r in results(FlightQuery("JFK", "LHR", "2026-12-01", adults=2, cabin="economy"))] == [
        "BA0178",
        "VS0004",
    ]
    assert [r["price"] for r in results(FlightQuery("JFK", "LHR", "2026-12-01", max_price=Decimal("412.30")))] == [
        {"amount": "380.00", "currency": "USD"},
        {"amount": "412.30", "currency": "USD"},
    ]


def test_sort_by_duration_and_departure() -> None:
    by_duration = results(FlightQuery("JFK", "LHR", "2026-12-01", sort="duration"))
    assert [r["duration_minutes"] for r in by_duration] == sorted(r["duration_minutes"] for r in by_duration)
    by_departure = results(FlightQuery("JFK", "LHR", "2026-12-01", sort="departure"))
    assert by_departure[0]["flight_id"] == "VS0004"


def test_pages_cover_every_result_exactly_once() -> None:
    service = search()
    query = FlightQuery("JFK", "LHR", "2026-12-01", limit=3)
    seen: list[str] = []
    for _ in range(10):
        body = orjson.loads(service.search(query).body)
        seen += [f"{r['flight_id']}/{r['cabin']}" for r in body["results"]]
        assert body["count"] == len(body["results"])
        if body["next_page_token"] is None:
            break
        query = replace(query, offset=service.tokens.decode(body["next_page_token"], query.selection()))
    assert sorted(seen) == sorted(["AA0100/economy", "BA0178/economy", "VS0004/economy", "BA0178/business"])


def test_empty_result_is_reported_as_empty() -> None:
    body, empty = search().render(FlightQuery("JFK", "CDG", "2026-12-01"))
    assert empty and orjson.loads(body) == {"results": [], "count": 0, "next_page_token": None}


def test_second_identical_search_is_served_by_the_cache_without_a_query() -> None:
    source = InMemoryOffers(offers())
    service = search(source)
    first = service.search(FlightQuery("JFK", "LHR", "2026-12-01"))
    second = service.search(FlightQuery("JFK", "LHR", "2026-12-01"))
    assert (first.status, second.status, source.queries) == ("MISS", "HIT", 1)
    assert first.body == second.body


def test_item_round_trip_keeps_every_field() -> None:
    economy, business = BASE, BASE._replace(cabin="business", price=Decimal("2100.00"), sequence=3)
    other_provider = BASE._replace(provider="aerodata")
    items = offers_to_items([economy, business, other_provider])
    assert [(item["pk"]["S"], item["sk"]["S"]) for item in items] == [
        ("JFK-LHR", "2026-12-01#skylink"),
        ("JFK-LHR", "2026-12-01#aerodata"),
    ]
    assert sorted(name for name in items[0] if name.startswith("offer#")) == [
        "offer#BA0178#business",
        "offer#BA0178#economy",
    ]
    assert offers_from_item(items[0]) == [economy, business]
    assert offers_from_item(items[1]) == [other_provider]


def test_an_item_of_the_earlier_one_item_per_offer_layout_holds_no_offers() -> None:
    """Items written before offers became attributes of a day's item are skipped until TTL removes them."""
    earlier = {
        "pk": {"S": "JFK-LHR"},
        "sk": {"S": "2026-12-01#BA0178#economy#skylink"},
        **{name: {"S": "x"} for name in ("origin", "destination", "provider", "flight_id", "carrier", "cabin")},
        "price": {"N": "412.30"},
        "sequence": {"N": "1"},
    }
    assert offers_from_item(earlier) == []


def test_of_two_offers_of_one_flight_and_cabin_the_newer_is_kept() -> None:
    older, newer = BASE._replace(sequence=1, price=Decimal("1.00")), BASE._replace(sequence=2)
    assert offers_from_item(offers_to_items([newer, older])[0]) == [newer]
    assert offers_from_item(offers_to_items([older, newer])[0]) == [newer]
