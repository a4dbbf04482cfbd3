"""Fakes for the ports of core and the domains (fakes beat mocks: they behave, they are not scripted)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from core.cache import Cached
from domains.flights.offers import FlightOffer


class CountingMetrics:
    """MetricsSink that remembers what was counted."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.timings: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def milliseconds(self, name: str, value: float) -> None:
        with self._lock:
            self.timings.setdefault(name, []).append(value)


class InMemoryOffers:
    """OfferSource over a list; counts the queries it answers."""

    def __init__(self, offers: list[FlightOffer]) -> None:
        self._offers = offers
        self.queries = 0

    def offers(self, origin: str, destination: str, date: str) -> list[FlightOffer]:
        self.queries += 1
        return [o for o in self._offers if (o.origin, o.destination, o.date) == (origin, destination, date)]


class DictCache:
    """ResultCache that stores rendered bodies in a dict (no TTL, no generations)."""

    def __init__(self) -> None:
        self.bodies: dict[tuple[str, str], str] = {}

    def get_or_build(self, scope: str, canonical_query: str, build: Callable[[], tuple[str, bool]]) -> Cached:
        key = (scope, canonical_query)
        if key in self.bodies:
            return Cached(self.bodies[key], "HIT")
        body, _ = build()
        self.bodies[key] = body
        return Cached(body, "MISS")
