"""Hotel search: cache-aside over a city's nightly rates for a stay, filtered, ranked and paged.

A hotel is a result only when it can be booked for the whole stay: a rate for every night,
each available for the number of guests, all in one currency. Works on ports only (a rate
source, a result cache, page tokens), so unit tests use fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import orjson

from core.cache import Cached
from core.page_token import PageTokens
from domains.hotels.query import HotelQuery
from domains.hotels.rates import NightlyRate

_TENTH = Decimal("0.1")


class RateSource(Protocol):
    def rates(self, city: str, first_night: str, last_night: str) -> list[NightlyRate]:
        """Every hotel's rate of every night from ``first_night`` to ``last_night`` (inclusive) in ``city``."""
        ...


class ResultCache(Protocol):
    def get_or_build(self, scope: str, canonical_query: str, build: Callable[[], tuple[str, bool]]) -> Cached: ...


@dataclass(frozen=True, slots=True)
class Stay:
    """One hotel booked for every night of a stay."""

    nights: tuple[NightlyRate, ...]  # in date order; the first night's record describes the hotel
    total: Decimal

    @property
    def hotel(self) -> NightlyRate:
        return self.nights[0]


SORT_KEYS: dict[str, Callable[[Stay], Any]] = {
    "price": lambda stay: (stay.total, -stay.hotel.rating, stay.hotel.hotel_id),
    "rating": lambda stay: (-stay.hotel.rating, stay.total, stay.hotel.hotel_id),
}


def bookable_stays(rates: Iterable[NightlyRate], nights: list[str], guests: int) -> list[Stay]:
    """The hotels with an available rate for ``guests`` on every one of ``nights``, in one currency."""
    wanted = set(nights)
    latest: dict[tuple[str, str], NightlyRate] = {}
    for rate in rates:
        key = (rate.hotel_id, rate.date)
        if rate.date in wanted and (key not in latest or rate.sequence > latest[key].sequence):
            latest[key] = rate
    hotels = sorted({hotel_id for hotel_id, _ in latest})
    stays = []
    for hotel_id in hotels:
        booked = [latest.get((hotel_id, night)) for night in nights]
        if not all(rate is not None and rate.available and rate.max_guests >= guests for rate in booked):
            continue
        chosen = tuple(rate for rate in booked if rate is not None)
        if len({rate.currency for rate in chosen}) != 1:
            continue
        stays.append(Stay(chosen, sum((rate.amount for rate in chosen), Decimal(0))))
    return stays


def render_stay(stay: Stay) -> dict[str, Any]:
    hotel = stay.hotel
    return {
        "hotel_id": hotel.hotel_id,
        "name": hotel.name,
        "city": hotel.city,
        "stars": hotel.stars,
        "rating": float(hotel.rating.quantize(_TENTH)),
        "nightly": [{"date": rate.date, "amount": f"{rate.amount:.2f}"} for rate in stay.nights],
        "total": {"amount": f"{stay.total:.2f}", "currency": hotel.currency},
        "provider": hotel.provider,
    }


class HotelSearch:
    def __init__(self, source: RateSource, cache: ResultCache, tokens: PageTokens) -> None:
        self._source = source
        self._cache = cache
        self.tokens = tokens

    def search(self, query: HotelQuery) -> Cached:
        """The rendered page for ``query``: from the cache, or built from the rates and cached."""
        return self._cache.get_or_build(query.city, query.canonical(), lambda: self.render(query))

    def render(self, query: HotelQuery) -> tuple[str, bool]:
        """(JSON body, empty) of one page, straight from the rate source."""
        nights = query.nights
        rates = self._source.rates(query.city, nights[0], nights[-1])
        matching = [
            stay
            for stay in bookable_stays(rates, nights, query.guests)
            if stay.hotel.stars >= query.min_stars and (query.max_price is None or stay.total <= query.max_price)
        ]
        matching.sort(key=SORT_KEYS[query.sort])
        end = query.offset + query.limit
        page = matching[query.offset : end]
        next_token = self.tokens.encode(end, query.selection()) if end < len(matching) else None
        body = {"results": [render_stay(stay) for stay in page], "count": len(page), "next_page_token": next_token}
        return orjson.dumps(body).decode(), not page
