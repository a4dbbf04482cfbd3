"""The hotel seed: deterministic, plausible, and its example query finds hotels through the real search."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from statistics import mean

import orjson
import pytest

from core.page_token import PageTokens
from domains.hotels.query import parse_hotel_query
from domains.hotels.rates import rate_to_item
from domains.hotels.search import HotelSearch
from local.seed_hotels import CITY_CODES, PROVIDERS, hotel_example, hotel_rates
from tests.fakes import DictCache
from tests.unit.test_hotels_search import InMemoryRates

TODAY = date(2026, 11, 28)


def test_same_day_gives_the_same_rates_and_a_city_does_not_depend_on_the_others() -> None:
    everything = list(hotel_rates(TODAY, days=10))
    assert everything == list(hotel_rates(TODAY, days=10))
    assert list(hotel_rates(TODAY, days=10, cities=("LIS",))) == [r for r in everything if r.city == "LIS"]
    assert list(hotel_rates(TODAY, days=5)) == [r for r in everything if r.date < "2026-12-03"]


def test_rates_are_plausible() -> None:
    rates = list(hotel_rates(TODAY))
    assert len(CITY_CODES) == 25 and {r.city for r in rates} == set(CITY_CODES)
    assert "TOR" not in CITY_CODES  # TOR is Torrington, Wyoming; Toronto is YTO
    hotels_by_city: dict[str, set[str]] = defaultdict(set)
    nights_by_hotel: dict[str, set[str]] = defaultdict(set)
    for rate in rates:
        hotels_by_city[rate.city].add(rate.hotel_id)
        nights_by_hotel[rate.hotel_id].add(rate.date)
        assert 2 <= rate.stars <= 5 and 6 <= rate.rating <= 9.8 and 2 <= rate.max_guests <= 4
        assert rate.provider in PROVIDERS and rate.amount > 0 and rate.amount == round(rate.amount, 2)
    assert all(8 <= len(hotels) <= 15 for hotels in hotels_by_city.values())
    every_night = {(TODAY + timedelta(days=n)).isoformat() for n in range(60)}
    assert all(nights == every_night for nights in nights_by_hotel.values())
    assert 0.07 <= sum(not r.available for r in rates) / len(rates) <= 0.13
    by_stars = [mean(r.amount for r in rates if r.stars == stars) for stars in (2, 3, 4, 5)]
    assert by_stars == sorted(by_stars)
    weekend = mean(r.amount for r in rates if date.fromisoformat(r.date).weekday() in (4, 5))
    weekdays = mean(r.amount for r in rates if date.fromisoformat(r.date).weekday() not in (4, 5))
    assert weekend > weekdays * Decimal("1.1")


def test_every_item_has_its_own_key_for_batch_writes() -> None:
    items = [rate_to_item(rate) for rate in hotel_rates(TODAY)]
    assert len({(item["pk"]["S"], item["sk"]["S"]) for item in items}) == len(items)
    assert all(len(name) <= 60 for name in {item["name"]["S"] for item in items})


@pytest.mark.parametrize("today", [TODAY, date(2027, 2, 28), date(2027, 7, 4)])
def test_the_example_query_finds_hotels_through_the_real_search(today: date) -> None:
    example = hotel_example(today)
    assert set(example) == {"city", "check_in", "check_out", "guests"}
    tokens = PageTokens(b"k")
    search = HotelSearch(InMemoryRates(list(hotel_rates(today))), DictCache(), tokens)
    found = orjson.loads(search.search(parse_hotel_query(example, today, tokens)).body)
    assert found["count"] >= 3
    assert all(result["city"] == example["city"] and len(result["nightly"]) == 3 for result in found["results"])


@pytest.mark.parametrize("seed", [1, 20260101, 987654])
def test_the_example_city_comes_first_so_every_scaled_down_seed_holds_it(seed: int) -> None:
    example = hotel_example(TODAY, seed=seed)
    assert example["city"] == CITY_CODES[0]
    tokens = PageTokens(b"k")
    rates = list(hotel_rates(TODAY, cities=CITY_CODES[:1], seed=seed))
    search = HotelSearch(InMemoryRates(rates), DictCache(), tokens)
    assert orjson.loads(search.search(parse_hotel_query(example, TODAY, tokens)).body)["count"] >= 3
