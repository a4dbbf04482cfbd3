"""``hit_ratio_vs_oracle``: the real SearchCache on a real redis-server, replaying a synthetic day, ÷ the oracle.

The day is :mod:`bench.trace` (100,000 searches, 30,000 distinct queries with Zipf popularity, a daily
curve, 3,000 route invalidations weighted to popular routes) over the local stack's seed data. Redis
expires keys in real time, so the day is replayed compressed: every event is paced to the wall clock
at ``COMPRESSION`` × real time (24 h → 120 s) and the TTLs are divided by the same factor. Searches go
through ``SearchCache.get_or_build`` with the canonical key of the real query parser and the body the
real renderer makes from the seeded offers; invalidations are ``SearchCache.invalidate`` (one INCR).
The TTL is the template's default ``SearchCacheTtlSeconds`` with the policy ``core.redis_client``
derives from it. The in-memory model of the same policy (:func:`bench.trace.simulate`) is reported
beside it as a cross-check, and how far the replay lagged behind its schedule.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import redis

from bench import fixtures, trace
from bench.results import Figure
from core.cache import CachePolicy, SearchCache
from core.page_token import PageTokens
from core.redis_client import RedisCacheStore, cache_policy, connect
from core.settings import CacheSettings
from domains.flights.offers import FlightOffer
from domains.flights.query import parse_flight_query
from domains.flights.search import FlightSearch
from local.redis_server import RedisServer
from local.seed import generate_offers
from local.template import load_template

COMPRESSION = 720.0  # 24 h in 120 s: the replay keeps pace at the daily peak on 2 busy cores
GOAL = 0.95
TOKENS = PageTokens(b"the canonical query does not depend on the secret")


class _Count:
    """MetricsSink that only counts."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def count(self, name: str, value: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value

    def milliseconds(self, name: str, value: float) -> None:
        return


def template_ttl_seconds() -> int:
    """The template's default ``SearchCacheTtlSeconds`` (read fresh: the sweep may have just changed it)."""
    return int(load_template()["Parameters"]["SearchCacheTtlSeconds"]["Default"])


@dataclass
class SeededDay:
    today: date
    offers: dict[tuple[str, int], list[FlightOffer]]  # (route, days ahead) → offers
    trace: trace.Trace
    oracle: float


@lru_cache(maxsize=1)
def seeded_day() -> SeededDay:
    today = fixtures.today()
    offers: dict[tuple[str, int], list[FlightOffer]] = {}
    for offer in generate_offers(today=today):
        offers.setdefault((offer.route, (date.fromisoformat(offer.date) - today).days), []).append(offer)
    day = trace.build(offers)
    return SeededDay(today, offers, day, trace.oracle(day))


class _Offers:
    """OfferSource over the seeded offers."""

    def __init__(self, offers: dict[tuple[str, int], list[FlightOffer]], today: date) -> None:
        self._offers, self._today = offers, today

    def offers(self, origin: str, destination: str, day: str) -> list[FlightOffer]:
        ahead = (date.fromisoformat(day) - self._today).days
        return self._offers.get((f"{origin}-{destination}", ahead), [])


def renderer(day: SeededDay) -> Callable[[int], tuple[str, bool]]:
    """Query index → (body, empty), rendered by the real FlightSearch once per query."""
    search = FlightSearch(_Offers(day.offers, day.today), cache=None, tokens=TOKENS)  # type: ignore[arg-type]
    rendered: dict[int, tuple[str, bool]] = {}

    def render(index: int) -> tuple[str, bool]:
        if index not in rendered:
            params = day.trace.queries[index].params(day.today)
            rendered[index] = search.render(parse_flight_query(params, day.today, TOKENS))
        return rendered[index]

    return render


def value_sizes(day: SeededDay) -> Callable[[int], int]:
    """Bytes one cached query costs in Redis: its framed body plus key and entry overhead (~100 bytes)."""
    render = renderer(day)
    return lambda index: len(render(index)[0].encode()) + 13 + 160


def measure(compression: float = COMPRESSION, ttl_seconds: int | None = None) -> Figure:
    return replay(compression, ttl_seconds).figure()


@dataclass
class Replay:
    ttl_seconds: int
    compression: float
    hits: int
    searches: int
    statuses: dict[str, int]
    oracle: float
    simulated: float
    lags: list[float]  # seconds behind schedule, per event
    seconds: float
    used_memory_bytes: int
    simulated_stored_bytes: float

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.searches

    def figure(self) -> Figure:
        ratio = self.hit_ratio / self.oracle
        return Figure(
            name="hit_ratio_vs_oracle",
            value=ratio,
            goal=GOAL,
            unit="ratio",
            samples=[ratio],
            higher_is_better=True,
            details={
                "what": "hit ratio of the real SearchCache on redis-server replaying the day / the oracle's",
                "ttl_seconds": self.ttl_seconds,
                "searches": self.searches,
                "hit_ratio": self.hit_ratio,
                "oracle_hit_ratio": self.oracle,
                "simulated_hit_ratio": self.simulated,
                "simulated_vs_oracle": self.simulated / self.oracle,
                "real_minus_simulated": self.hit_ratio - self.simulated,
                "statuses": self.statuses,
                "compression": self.compression,
                "replay_seconds": self.seconds,
                "pacing_lag_ms": {
                    "p50": fixtures.quantile(self.lags, 0.5) * 1000,
                    "p99": fixtures.quantile(self.lags, 0.99) * 1000,
                    "max": max(self.lags) * 1000,
                },
                "pacing_lag_trace_seconds_p99": fixtures.quantile(self.lags, 0.99) * self.compression,
                "redis_used_memory_bytes_at_end": self.used_memory_bytes,
                "simulated_mean_stored_bytes": self.simulated_stored_bytes,
            },
        )


def replay(compression: float = COMPRESSION, ttl_seconds: int | None = None) -> Replay:
    day = seeded_day()
    ttl = ttl_seconds or template_ttl_seconds()
    policy = cache_policy(ttl)
    scaled = CachePolicy(
        ttl_seconds=policy.ttl_seconds / compression,  # type: ignore[arg-type]
        negative_ttl_seconds=policy.negative_ttl_seconds / compression,  # type: ignore[arg-type]
        jitter=policy.jitter,
    )
    render = renderer(day)
    canonical = [
        parse_flight_query(query.params(day.today), day.today, TOKENS).canonical() for query in day.trace.queries
    ]
    events = list(day.trace.events())
    simulated = trace.simulate(
        day.trace, policy.ttl_seconds, value_sizes(day), negative_ttl_seconds=policy.negative_ttl_seconds
    )
    with RedisServer() as server:
        settings = CacheSettings(server.host, server.port, False, "none", "", "", ttl, fixtures.REGION)
        metrics = _Count()
        cache = SearchCache("flights", RedisCacheStore(lambda: connect(settings)), metrics, scaled)
        statuses: dict[str, int] = {}
        lags: list[float] = []
        clock, sleep = time.perf_counter, time.sleep
        start = clock() + 0.5
        for moment, index, route in events:
            target = start + moment / compression
            now = clock()
            if now < target:
                sleep(target - now)
            lags.append(max(0.0, clock() - target))
            if index < 0:
                cache.invalidate(route)
            else:
                status = cache.get_or_build(route, canonical[index], lambda index=index: render(index)).status
                statuses[status] = statuses.get(status, 0) + 1
        seconds = clock() - start
        used = int(redis.Redis(host=server.host, port=server.port).info("memory")["used_memory_dataset"])
    return Replay(
        ttl_seconds=ttl,
        compression=compression,
        hits=statuses.get("HIT", 0),
        searches=len(day.trace.searches),
        statuses=statuses,
        oracle=day.oracle,
        simulated=simulated.hit_ratio,
        lags=lags,
        seconds=seconds,
        used_memory_bytes=used,
        simulated_stored_bytes=simulated.mean_stored_bytes,
    )
