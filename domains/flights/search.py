"""Flight search: cache-aside over the offers of one route and day, filtered, ranked and paged.

Works on ports only (an offer source, a result cache, page tokens), so unit tests use fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from core.cache import Cached
from core.page_token import PageTokens
from domains.flights.offers import FlightOffer
from domains.flights.query import FlightQuery


class OfferSource(Protocol):
    def offers(self, origin: str, destination: str, date: str) -> list[FlightOffer]: ...


class ResultCache(Protocol):
    def get_or_build(self, scope: str, canonical_query: str, build: Callable[[], tuple[str, bool]]) -> Cached: ...


SORT_KEYS: dict[str, Callable[[FlightOffer], Any]] = {
    "price": lambda offer: (offer.price, offer.duration_minutes, offer.departure, offer.flight_id, offer.provider),
    "duration": lambda offer: (offer.duration_minutes, offer.price, offer.departure, offer.flight_id, offer.provider),
    "departure": lambda offer: (offer.departure, offer.price, offer.flight_id, offer.provider),
}


def render_offer(offer: FlightOffer) -> dict[str, Any]:
    return {
        "flight_id": offer.flight_id,
        "carrier": offer.carrier,
        "origin": offer.origin,
        "destination": offer.destination,
        "departure": offer.departure,
        "arrival": offer.arrival,
        "duration_minutes": offer.duration_minutes,
        "cabin": offer.cabin,
        "price": {"amount": f"{offer.price:.2f}", "currency": offer.currency},
        "seats_left": offer.seats_left,
        "provider": offer.provider,
    }


class FlightSearch:
    def __init__(self, source: OfferSource, cache: ResultCache, tokens: PageTokens) -> None:
        self._source = source
        self._cache = cache
        self.tokens = tokens

    def search(self, query: FlightQuery) -> Cached:
        """The rendered page for ``query``: from the cache, or built from the offers and cached."""
        return self._cache.get_or_build(query.route, query.canonical(), lambda: self.render(query))

    def render(self, query: FlightQuery) -> tuple[str, bool]:
        """(JSON body, empty) of one page, straight from the offer source."""
        matching = [
            offer
            for offer in self._source.offers(query.origin, query.destination, query.date)
            if offer.seats_left >= query.adults
            and (not query.cabin or offer.cabin == query.cabin)
            and (query.max_price is None or offer.price <= query.max_price)
        ]
        matching.sort(key=SORT_KEYS[query.sort])
        end = query.offset + query.limit
        page = matching[query.offset : end]
        next_token = self.tokens.encode(end, query.selection()) if end < len(matching) else None
        body = {"results": [render_offer(offer) for offer in page], "count": len(page), "next_page_token": next_token}
        return orjson.dumps(body).decode(), not page
