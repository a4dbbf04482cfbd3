"""A synthetic day of flight searches and ingest invalidations, its oracle, and a fast TTL-cache model.

The day (deterministic for a seed):

* **Queries.** A universe of ``DISTINCT_QUERIES`` distinct flight searches over the local stack's seed:
  its 240 routes (Zipf popularity, flagships first), 60 days ahead (nearer days more popular), and
  the parameters travellers vary (adults, a cabin that is on sale that day, sort order). Drawing from
  that mix ranks the queries by first appearance; requests then pick query ``i`` with Zipf weight
  ``1 / i**ZIPF_S``.
* **Arrivals.** ``SEARCHES`` timestamps over 24 h following a daily curve (low at 04:00, peak at 16:00,
  about 3.3x the trough).
* **Invalidations.** ``INVALIDATIONS`` ingest INCRs of route generations through the day, each route
  chosen in proportion to its share of searches (popular routes change most), times on a flatter curve.

:func:`oracle` is the best any TTL cache can do on the trace (infinite TTL, every invalidation
respected: a request hits iff its query was seen since its route's last invalidation).
:func:`simulate` is SearchCache's policy in memory (generation in the value, TTL with ±10 % jitter from
the fill, shorter TTL for empty results, no refresh on a hit), fast enough for a TTL sweep.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate

from domains.flights.offers import CABINS, FlightOffer
from local.seed import DAYS, DEFAULT_SEED, FULL_ROUTE_COUNT, choose_routes

SEARCHES = 100_000
DISTINCT_QUERIES = 30_000
INVALIDATIONS = 3_000
ZIPF_S = 1.0
DAY_SECONDS = 86_400
NEGATIVE_TTL_SECONDS = 30  # core.redis_client.search_cache: min(30, ttl)
JITTER = 0.1  # core.cache.CachePolicy.jitter


@dataclass(frozen=True, slots=True)
class Query:
    origin: str
    destination: str
    days_ahead: int  # 1..60
    adults: int
    cabin: str  # "" = any
    sort: str

    @property
    def route(self) -> str:
        return f"{self.origin}-{self.destination}"

    def params(self, today: date) -> dict[str, str]:
        params = {
            "origin": self.origin,
            "destination": self.destination,
            "date": (today + timedelta(days=self.days_ahead)).isoformat(),
        }
        if self.adults != 1:
            params["adults"] = str(self.adults)
        if self.cabin:
            params["cabin"] = self.cabin
        if self.sort != "price":
            params["sort"] = self.sort
        return params


@dataclass
class Trace:
    queries: list[Query]  # by popularity rank
    searches: list[tuple[float, int]]  # (second of the day, query index), in time order
    invalidations: list[tuple[float, str]]  # (second of the day, route), in time order
    empty: set[int] = field(default_factory=set)  # queries whose result is empty (cached briefly)

    def events(self) -> Iterator[tuple[float, int, str]]:
        """(time, query index or -1, route) in time order; an invalidation sorts before a search at the same time."""
        searches, invalidations = self.searches, self.invalidations
        i = j = 0
        while i < len(searches) or j < len(invalidations):
            if j < len(invalidations) and (i == len(searches) or invalidations[j][0] <= searches[i][0]):
                yield invalidations[j][0], -1, invalidations[j][1]
                j += 1
            else:
                moment, index = searches[i]
                yield moment, index, self.queries[index].route
                i += 1


def daily_rate(second: float) -> float:
    """Relative search rate over the day: 0.3 at 04:00, 1.0 at 16:00."""
    return 0.3 + 0.7 * (1 - math.cos(2 * math.pi * (second / DAY_SECONDS - 4 / 24))) / 2


def _times(count: int, rate: Callable[[float], float], rng: random.Random) -> list[float]:
    times: list[float] = []
    while len(times) < count:
        moment = rng.uniform(0, DAY_SECONDS)
        if rng.random() < rate(moment):
            times.append(moment)
    return sorted(times)


def build(
    offers_by_route_day: dict[tuple[str, int], list[FlightOffer]] | None = None,
    *,
    searches: int = SEARCHES,
    distinct: int = DISTINCT_QUERIES,
    invalidations: int = INVALIDATIONS,
    zipf_s: float = ZIPF_S,
    seed: int = DEFAULT_SEED,
) -> Trace:
    """The day's trace. ``offers_by_route_day`` (route, days ahead) → offers: cabins are drawn from those on
    sale that day, and queries with no matching offer are marked empty."""
    rng = random.Random(seed)
    routes = choose_routes(FULL_ROUTE_COUNT, random.Random(seed))
    route_weights = list(accumulate(1 / (rank + 1) for rank in range(len(routes))))
    day_weights = list(accumulate(math.exp(-day / 20) + 0.1 for day in range(1, DAYS + 1)))
    adults, adult_weights = (1, 2, 3, 4), list(accumulate((60, 30, 6, 4)))
    sorts, sort_weights = ("price", "duration", "departure"), list(accumulate((75, 15, 10)))
    seen: dict[Query, int] = {}
    queries: list[Query] = []
    empty: set[int] = set()
    while len(queries) < distinct:
        origin, destination = rng.choices(routes, cum_weights=route_weights)[0]
        days_ahead = rng.choices(range(1, DAYS + 1), cum_weights=day_weights)[0]
        offers = (offers_by_route_day or {}).get((f"{origin}-{destination}", days_ahead))
        on_sale = sorted({offer.cabin for offer in offers}) if offers else list(CABINS)
        cabin = "" if rng.random() < 0.6 else rng.choice(on_sale)
        query = Query(
            origin,
            destination,
            days_ahead,
            rng.choices(adults, cum_weights=adult_weights)[0],
            cabin,
            rng.choices(sorts, cum_weights=sort_weights)[0],
        )
        if query in seen:
            continue
        seen[query] = len(queries)
        if offers_by_route_day is not None and not any(
            offer.seats_left >= query.adults and (not cabin or offer.cabin == cabin) for offer in offers or ()
        ):
            empty.add(len(queries))
        queries.append(query)
    popularity = list(accumulate(1 / (rank + 1) ** zipf_s for rank in range(distinct)))
    total = popularity[-1]
    search_times = _times(searches, daily_rate, rng)
    picks = [bisect.bisect_left(popularity, rng.random() * total) for _ in search_times]
    trace_searches = list(zip(search_times, [min(pick, distinct - 1) for pick in picks], strict=True))
    share: dict[str, int] = {}
    for _, index in trace_searches:
        share[queries[index].route] = share.get(queries[index].route, 0) + 1
    popular_routes = sorted(share)
    route_cum = list(accumulate(share[route] for route in popular_routes))
    invalidation_times = _times(invalidations, lambda second: 0.5 + 0.5 * daily_rate(second), rng)
    trace_invalidations = [
        (moment, rng.choices(popular_routes, cum_weights=route_cum)[0]) for moment in invalidation_times
    ]
    return Trace(queries, trace_searches, trace_invalidations, empty)


def oracle(trace: Trace) -> float:
    """Hit ratio of an infinite-TTL cache that honours every invalidation."""
    last_seen: dict[int, float] = {}
    invalidated: dict[str, float] = {}
    hits = 0
    for moment, index, route in trace.events():
        if index < 0:
            invalidated[route] = moment
            continue
        previous = last_seen.get(index)
        if previous is not None and previous >= invalidated.get(route, -1.0):
            hits += 1
        last_seen[index] = moment
    return hits / len(trace.searches)


@dataclass
class Simulated:
    hit_ratio: float
    hits: int
    misses: int
    mean_stored_bytes: float  # time-averaged bytes of cached values (ElastiCache bills GB-hours)


def simulate(
    trace: Trace,
    ttl_seconds: float,
    value_bytes: Callable[[int], int] = lambda index: 1200,
    negative_ttl_seconds: float = NEGATIVE_TTL_SECONDS,
    jitter: float = JITTER,
    seed: int = 1,
) -> Simulated:
    """SearchCache's policy on the trace in memory: a hit needs the entry's generation to be current and
    its (jittered) TTL, counted from when it was stored, not to have run out."""
    rng = random.Random(seed)
    generation: dict[str, int] = {}
    entries: dict[int, tuple[float, float, int]] = {}  # query → (stored at, expires at, generation)
    stored_byte_seconds = 0.0
    hits = 0
    for moment, index, route in trace.events():
        if index < 0:
            generation[route] = generation.get(route, 0) + 1
            continue
        current = generation.get(route, 0)
        entry = entries.get(index)
        if entry is not None and entry[2] == current and moment < entry[1]:
            hits += 1
            continue
        if entry is not None:  # overwritten: it occupied memory until now or until it expired
            stored_byte_seconds += value_bytes(index) * (min(entry[1], moment) - entry[0])
        ttl = negative_ttl_seconds if index in trace.empty else ttl_seconds
        entries[index] = (moment, moment + ttl * (1 + rng.uniform(-jitter, jitter)), current)
    for index, (stored_at, expires_at, _) in entries.items():
        stored_byte_seconds += value_bytes(index) * (min(expires_at, DAY_SECONDS) - stored_at)
    total = len(trace.searches)
    return Simulated(hits / total, hits, total - hits, stored_byte_seconds / DAY_SECONDS)
