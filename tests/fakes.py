"""Fakes for the ports of core and the domains (fakes beat mocks: they behave, they are not scripted)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from core.cache import Cached
from core.store import StoreUnavailable
from domains.flights.offers import FlightOffer


class CountingMetrics:
    """MetricsSink that remembers what was counted."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.timings: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def count(self, name: str, value: int = 1) -> None:
        with self._lock:
            self.counts[name] += value

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


class NewestWinsStore:
    """UpsertStore with DynamoDB's semantics as core.store.Writes uses them: a write lands only with a
    newer sequence (per attribute, for a write versioned per attribute), of several writes of the same
    attributes to one item only the newest is tried, in order; the write of a key whose sort key is in
    ``fail_keys`` raises, after the writes before it have landed."""

    def __init__(self, fail_keys: set[str] | None = None) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail_keys = fail_keys or set()
        self.unavailable = False  # True: every call fails as a throttled or unreachable DynamoDB does
        self.calls = 0

    def upsert_all(self, writes: Sequence[Any]) -> list[bool]:
        self.calls += 1
        if self.unavailable:
            raise StoreUnavailable("flights: ProvisionedThroughputExceededException")
        newest: dict[tuple[str, str, tuple[str, ...]], int] = {}
        for index, write in enumerate(writes):
            identity = (write.key["pk"]["S"], write.key["sk"]["S"], tuple(write.attributes))
            if identity not in newest or writes[newest[identity]].sequence < write.sequence:
                newest[identity] = index
        landed = [False] * len(writes)
        for (partition, sort, _), index in sorted(newest.items(), key=lambda pair: pair[1]):
            if sort in self.fail_keys:
                raise ConnectionError(f"store unavailable for {sort}")
            write, current = writes[index], self.items.get((partition, sort), {})
            if write.per_attribute:
                newer = {
                    name: value
                    for name, value in write.attributes.items()
                    if name not in current or int(current[name]["M"]["sequence"]["N"]) < write.sequence
                }
                if not newer:
                    continue
                updated = {**current, **newer}
            else:
                if current and int(current["sequence"]["N"]) >= write.sequence:
                    continue
                updated = {**current, **write.attributes, "sequence": {"N": str(write.sequence)}}
            for name, value in write.defaults.items():
                updated.setdefault(name, value)
            self.items[(partition, sort)] = updated
            landed[index] = True
        return landed

    def offers(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Every offer attribute of the items, as (pk, sk, attribute name) → the offer's map."""
        return {
            (partition, sort, name): value["M"]
            for (partition, sort), item in self.items.items()
            for name, value in item.items()
            if name.startswith("offer#")
        }


class QuarantineList:
    """QuarantineStore that keeps items; the first ``unprocessed`` items are refused once each call."""

    def __init__(self, unprocessed: int = 0) -> None:
        self.items: list[dict[str, Any]] = []
        self.unprocessed = unprocessed

    def put_all(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        refused, accepted = items[: self.unprocessed], items[self.unprocessed :]
        self.items += accepted
        return refused
