"""Hotel search logic over fakes: the every-night rule, filters, ranking, pages, rendering, cache."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from core.errors import InvalidParameter
from core.page_token import PageTokens
from domains.hotels.query import HotelQuery, parse_hotel_query
from domains.hotels.rates import NightlyRate, rate_from_item, rate_to_item
from domains.hotels.search import HotelSearch
from tests.fakes import DictCache

TODAY = date(2026, 11, 28)
STAY = {"city": "PAR", "check_in": "2026-12-01", "check_out": "2026-12-04"}  # nights of Dec 1, 2 and 3
NIGHTS = ("2026-12-01", "2026-12-02", "2026-12-03")

BASE = NightlyRate(
    hotel_id="PAR-001",
    name="Hotel Opera Plaza",
    city="PAR",
    stars=4,
    rating=Decimal("8.5"),
    date="2026-12-01",
    amount=Decimal("120"),
    currency="EUR",
    available=True,
    max_guests=2,
    provider="staylink",
    sequence=3,
    updated_at="2026-11-27T10:00:00Z",
)


class InMemoryRates:
    """RateSource over a list, answering like the key-range Query: one city, nights in a range."""

    def __init__(self, rates: list[NightlyRate]) -> None:
        self._rates = rates
        self.queries: list[tuple[str, str, str]] = []

    def rates(self, city: str, first_night: str, last_night: str) -> list[NightlyRate]:
        self.queries.append((city, first_night, last_night))
        return [r for r in self._rates if r.city == city and first_night <= r.date <= last_night]


def hotel(hotel_id: str, amounts: tuple[str, ...], **fields: Any) -> list[NightlyRate]:
    """One hotel's rates for the nights of STAY (plus any extra nights given by position)."""
    nights = ("2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04")
    return [
        replace(BASE, hotel_id=hotel_id, date=night, amount=Decimal(amount), **fields)
        for night, amount in zip(nights, amounts, strict=False)
    ]


def rates() -> list[NightlyRate]:
    sold_out = hotel("PAR-005", ("80", "80", "80"), name="Bastille Inn", stars=2, rating=Decimal("6.9"))
    sold_out[2] = replace(sold_out[2], available=False)
    small_room = hotel("PAR-006", ("150", "150", "150"), name="Marais Lofts", max_guests=4, rating=Decimal("8.5"))
    small_room[1] = replace(small_room[1], max_guests=1)
    two_currencies = hotel("PAR-007", ("60", "60", "60"), name="Canal Rooms", stars=3, rating=Decimal("7"))
    two_currencies[2] = replace(two_currencies[2], currency="USD")
    return [
        # total 390; its Dec 4 night is cheap but is not part of the stay
        *hotel("PAR-001", ("120", "130", "140", "1")),
        *hotel("PAR-002", ("90", "90", "90"), name="Gare du Nord Hotel", stars=3, rating=Decimal("7.2"), max_guests=4),
        *hotel("PAR-003", ("300", "300", "300"), name="Le Grand Palais", stars=5, rating=Decimal("9.4"), max_guests=3),
        *[r for r in hotel("PAR-004", ("50", "50", "50"), name="Hotel Sans Mardi") if r.date != "2026-12-02"],
        *sold_out,
        *small_room,
        *two_currencies,
        *hotel("LON-001", ("10", "10", "10"), city="LON", name="Soho Rooms"),  # another city
        replace(BASE, hotel_id="PAR-008", date="2026-11-30", amount=Decimal("1")),  # night before the stay
    ]


def service(source: InMemoryRates | None = None) -> HotelSearch:
    return HotelSearch(source or InMemoryRates(rates()), DictCache(), PageTokens(b"k"))


def query(**params: str) -> HotelQuery:
    return parse_hotel_query({**STAY, **params}, TODAY, PageTokens(b"k"))


def body(q: HotelQuery, source: InMemoryRates | None = None) -> dict[str, Any]:
    return orjson.loads(service(source).search(q).body)  # type: ignore[no-any-return]


def ids(q: HotelQuery) -> list[str]:
    return [result["hotel_id"] for result in body(q)["results"]]


def test_only_hotels_available_for_every_night_in_one_currency_are_found_cheapest_first() -> None:
    # PAR-004 misses a night, PAR-005 is sold out on the last, PAR-007 mixes currencies.
    assert ids(query()) == ["PAR-002", "PAR-001", "PAR-006", "PAR-003"]


def test_the_source_is_asked_for_exactly_the_nights_of_the_stay_in_the_city() -> None:
    source = InMemoryRates(rates())
    body(query(), source)
    assert source.queries == [("PAR", "2026-12-01", "2026-12-03")]


@pytest.mark.parametrize(
    ("guests", "expected"),
    [
        ("1", ["PAR-002", "PAR-001", "PAR-006", "PAR-003"]),
        ("2", ["PAR-002", "PAR-001", "PAR-003"]),  # PAR-006 takes one guest on Dec 2
        ("3", ["PAR-002", "PAR-003"]),
        ("4", ["PAR-002"]),
        ("5", []),
    ],
)
def test_every_night_must_take_all_the_guests(guests: str, expected: list[str]) -> None:
    assert ids(query(guests=guests)) == expected


def test_min_stars_filters_on_the_hotel_class() -> None:
    assert ids(query(min_stars="4")) == ["PAR-001", "PAR-006", "PAR-003"]
    assert ids(query(min_stars="5")) == ["PAR-003"]


def test_max_price_applies_to_the_total_of_the_stay_not_to_a_night() -> None:
    assert ids(query(max_price="390")) == ["PAR-002", "PAR-001"]  # PAR-001's nights are 120-140, its total 390
    assert ids(query(max_price="389.99")) == ["PAR-002"]
    assert ids(query(max_price="150")) == []  # every night of PAR-006 costs 150, but the stay 450


def test_sort_by_rating_puts_the_best_rated_first_and_breaks_ties_by_total() -> None:
    # PAR-001 and PAR-006 are both rated 8.5: the cheaper stay (390 < 450) comes first.
    assert ids(query(sort="rating")) == ["PAR-003", "PAR-001", "PAR-006", "PAR-002"]


def test_results_are_rendered_exactly_as_documented() -> None:
    found = body(query(guests="2"))
    assert set(found) == {"results", "count", "next_page_token"}
    assert (found["count"], found["next_page_token"]) == (3, None)
    assert found["results"][1] == {
        "hotel_id": "PAR-001",
        "name": "Hotel Opera Plaza",
        "city": "PAR",
        "stars": 4,
        "rating": 8.5,
        "nightly": [
            {"date": "2026-12-01", "amount": "120.00"},
            {"date": "2026-12-02", "amount": "130.00"},
            {"date": "2026-12-03", "amount": "140.00"},
        ],
        "total": {"amount": "390.00", "currency": "EUR"},
        "provider": "staylink",
    }


def test_rating_is_a_number_with_one_decimal() -> None:
    source = InMemoryRates([replace(rate, rating=Decimal("9")) for rate in hotel("PAR-001", ("99.5", "100", "0.5"))])
    raw = service(source).search(query()).body
    assert '"rating":9.0' in raw and '"total":{"amount":"200.00","currency":"EUR"}' in raw


def test_pages_cover_every_result_exactly_once_through_their_tokens() -> None:
    searcher = service()
    seen: list[str] = []
    params: dict[str, str] = {"limit": "1", "sort": "rating"}
    for _ in range(10):
        page = orjson.loads(searcher.search(parse_hotel_query({**STAY, **params}, TODAY, searcher.tokens)).body)
        assert page["count"] == len(page["results"]) == 1
        seen += [result["hotel_id"] for result in page["results"]]
        if page["next_page_token"] is None:
            break
        params["page_token"] = page["next_page_token"]
    assert seen == ["PAR-003", "PAR-001", "PAR-006", "PAR-002"]


def test_tampered_and_foreign_page_tokens_are_rejected_as_page_token() -> None:
    searcher = service()
    token = orjson.loads(searcher.search(query(limit="1")).body)["next_page_token"]
    tampered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    foreign_key = PageTokens(b"another key").encode(1, query(limit="1").selection())
    for params in (
        {"limit": "1", "page_token": tampered},
        {"limit": "1", "page_token": foreign_key},
        {"limit": "2", "page_token": token},  # another query's token
        {"limit": "1", "min_stars": "3", "page_token": token},
    ):
        with pytest.raises(InvalidParameter) as raised:
            parse_hotel_query({**STAY, **params}, TODAY, searcher.tokens)
        assert raised.value.parameter == "page_token"


def test_empty_result_is_reported_as_empty() -> None:
    found, empty = service().render(query(city="NYC"))
    assert empty and orjson.loads(found) == {"results": [], "count": 0, "next_page_token": None}


def test_second_identical_search_is_served_by_the_cache_without_a_query() -> None:
    source = InMemoryRates(rates())
    cache = DictCache()
    searcher = HotelSearch(source, cache, PageTokens(b"k"))
    first = searcher.search(query())
    second = searcher.search(query(city="par"))
    assert (first.status, second.status, len(source.queries)) == ("MISS", "HIT", 1)
    assert first.body == second.body
    assert [scope for scope, _ in cache.bodies] == ["PAR"]  # the city is the unit of invalidation


def test_newest_sequence_wins_when_a_source_returns_a_night_twice() -> None:
    stale = replace(BASE, amount=Decimal("999"), sequence=1)
    source = InMemoryRates([*hotel("PAR-001", ("120", "130", "140")), stale])
    assert body(query(), source)["results"][0]["total"]["amount"] == "390.00"


def test_item_round_trip_keeps_every_field() -> None:
    item = rate_to_item(BASE)
    assert item["pk"] == {"S": "PAR"} and item["sk"] == {"S": "2026-12-01#PAR-001"}
    assert item["available"] == {"BOOL": True}
    assert item["expires_at"] == {"N": str(int(datetime(2026, 12, 2, tzinfo=UTC).timestamp()))}
    assert rate_from_item(item) == BASE
    sold_out = replace(BASE, available=False, rating=Decimal("9.8"), amount=Decimal("1234.56"))
    assert rate_from_item(rate_to_item(sold_out)) == sold_out
