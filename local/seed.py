"""Deterministic seed data for the local stack: flight offers between real airports.

Same seed + same day → same data. Dates are relative to today (UTC), starting tomorrow, so they
are never in the past. Airports and their coordinates come from ``airportsdata``; durations
follow the great-circle distance, prices the distance, cabin, weekday and how soon the flight is.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import chain, groupby, islice, permutations
from typing import Any

import airportsdata

from domains.flights.offers import FlightOffer, offers_to_items, route_key

logger = logging.getLogger(__name__)

DEFAULT_SEED = 20260101
FULL_ROUTE_COUNT = 240
DAYS = 60
PROVIDERS = ("skylink", "aerodata")
# Large hubs on every continent; each is checked against airportsdata at load time.
AIRPORT_CODES = (
    "ATL", "LAX", "ORD", "DFW", "DEN", "JFK", "SFO", "SEA", "MIA", "BOS", "YYZ", "MEX", "GRU",
    "LHR", "CDG", "AMS", "FRA", "MAD", "BCN", "FCO", "MUC", "ZRH", "IST", "DXB", "DOH", "DEL",
    "BOM", "SIN", "HKG", "NRT", "ICN", "PVG", "BKK", "SYD", "MEL", "JNB",
)  # fmt: skip
# Routes every seed includes first (whatever the scale), so examples and docs stay stable.
FLAGSHIP_ROUTES = (
    ("JFK", "LHR"), ("LHR", "JFK"), ("CDG", "JFK"), ("SFO", "NRT"), ("LAX", "SYD"), ("DXB", "LHR"),
    ("SIN", "HKG"), ("FRA", "ORD"), ("MAD", "MEX"), ("JFK", "LAX"), ("LHR", "CDG"), ("AMS", "BCN"),
)  # fmt: skip
CARRIERS_BY_COUNTRY = {
    "US": ("AA", "DL", "UA"), "CA": ("AC",), "MX": ("AM",), "BR": ("LA", "G3"), "GB": ("BA", "VS"),
    "FR": ("AF",), "NL": ("KL",), "DE": ("LH",), "ES": ("IB", "UX"), "IT": ("AZ",), "CH": ("LX",),
    "TR": ("TK",), "AE": ("EK",), "QA": ("QR",), "IN": ("AI", "6E"), "SG": ("SQ",), "HK": ("CX",),
    "JP": ("NH", "JL"), "KR": ("KE", "OZ"), "CN": ("MU", "CA"), "TH": ("TG",), "AU": ("QF", "VA"),
    "ZA": ("SA",),
}  # fmt: skip
# Fare multipliers over economy, and how often each cabin is on sale.
CABIN_FARE = {"economy": 1.0, "premium": 1.7, "business": 3.9, "first": 6.5}
CABIN_WEIGHTS = {"economy": 50, "premium": 18, "business": 24, "first": 8}
BATCH_SIZE = 25  # BatchWriteItem limit
MAX_BATCH_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Airport:
    code: str
    country: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class ScheduledFlight:
    carrier: str
    flight_id: str
    departure_minute: int  # minutes after 00:00 UTC
    duration_minutes: int


@lru_cache(maxsize=1)
def airports() -> dict[str, Airport]:
    """The seed airports, checked against airportsdata (a typo fails loudly, not silently)."""
    known = airportsdata.load("IATA")
    missing = [code for code in AIRPORT_CODES if code not in known]
    if missing:
        raise ValueError(f"airport codes not in airportsdata: {missing}")
    return {
        code: Airport(code, known[code]["country"], float(known[code]["lat"]), float(known[code]["lon"]))
        for code in AIRPORT_CODES
    }


def great_circle_km(a: Airport, b: Airport) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def block_minutes(distance_km: float) -> int:
    """Gate-to-gate time: cruise at ~840 km/h plus taxi, climb and approach, to 5 minutes."""
    minutes = distance_km / 840 * 60 + 35
    return int(round(minutes / 5) * 5)


def choose_routes(count: int, rng: random.Random) -> list[tuple[str, str]]:
    """Flagship routes first, then a seeded sample of other airport pairs (300 km or more apart)."""
    table = airports()
    others = [
        pair
        for pair in permutations(AIRPORT_CODES, 2)
        if pair not in FLAGSHIP_ROUTES and great_circle_km(table[pair[0]], table[pair[1]]) >= 300
    ]
    rng.shuffle(others)
    return list(islice([*FLAGSHIP_ROUTES, *others], count))


def route_schedule(origin: Airport, destination: Airport, rng: random.Random) -> list[ScheduledFlight]:
    """The route's daily flights: home carriers of both ends, fixed numbers and times."""
    carriers = sorted({*CARRIERS_BY_COUNTRY[origin.country], *CARRIERS_BY_COUNTRY[destination.country]})
    base = block_minutes(great_circle_km(origin, destination))
    flights = []
    for _ in range(rng.randint(2, 4)):
        carrier = rng.choice(carriers)
        flights.append(
            ScheduledFlight(
                carrier=carrier,
                flight_id=f"{carrier}{rng.randint(10, 2999)}",
                departure_minute=rng.randrange(5 * 60, 23 * 60, 5),
                duration_minutes=base + rng.choice((-10, -5, 0, 5, 10, 15)),
            )
        )
    return flights


def fare(distance_km: float, cabin: str, day: date, days_ahead: int, rng: random.Random) -> Decimal:
    economy = 49 + 0.085 * distance_km
    soon = 1 + 0.6 * math.exp(-days_ahead / 10)  # last-minute fares cost more
    weekday = 1.08 if day.weekday() in (4, 6) else 1.0  # Friday and Sunday peaks
    price = economy * CABIN_FARE[cabin] * soon * weekday * rng.uniform(0.85, 1.2)
    return Decimal(f"{price:.2f}")


def generate_offers(
    *, scale: float = 1.0, seed: int = DEFAULT_SEED, today: date | None = None, days: int = DAYS
) -> Iterator[FlightOffer]:
    """Every seeded offer: ``scale`` × 240 routes (at least the flagships' first 4) × ``days`` days × 3–6 offers."""
    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    updated_at = f"{today.isoformat()}T00:00:00Z"
    table = airports()
    route_count = max(4, round(FULL_ROUTE_COUNT * scale))
    cabins, weights = zip(*CABIN_WEIGHTS.items(), strict=True)
    for origin_code, destination_code in choose_routes(route_count, rng):
        origin, destination = table[origin_code], table[destination_code]
        distance = great_circle_km(origin, destination)
        schedule = route_schedule(origin, destination, rng)
        for days_ahead in range(1, days + 1):
            day = today + timedelta(days=days_ahead)
            seen: set[tuple[str, str, str]] = set()
            for _ in range(rng.randint(3, 6)):
                flight = rng.choice(schedule)
                cabin = rng.choices(cabins, weights)[0]
                provider = rng.choice(PROVIDERS)
                if (flight.flight_id, cabin, provider) in seen:
                    continue  # one offer per flight, cabin and provider (they name its attribute)
                seen.add((flight.flight_id, cabin, provider))
                departure = datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=flight.departure_minute)
                arrival = departure + timedelta(minutes=flight.duration_minutes)
                yield FlightOffer(
                    flight_id=flight.flight_id,
                    carrier=flight.carrier,
                    origin=origin_code,
                    destination=destination_code,
                    departure=departure.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    arrival=arrival.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    duration_minutes=flight.duration_minutes,
                    cabin=cabin,
                    price=fare(distance, cabin, day, days_ahead, rng),
                    currency="USD",
                    seats_left=rng.randint(0, 9),
                    provider=provider,
                    sequence=1,
                    updated_at=updated_at,
                )


def example_flight_query(offers: Sequence[FlightOffer], today: date) -> dict[str, str]:
    """JFK→LHR about two weeks out, on a day with an economy seat for sale."""
    origin, destination = FLAGSHIP_ROUTES[0]
    bookable = sorted(
        {
            offer.date
            for offer in offers
            if offer.route == route_key(origin, destination) and offer.cabin == "economy" and offer.seats_left > 0
        }
    )
    target = (today + timedelta(days=14)).isoformat()
    chosen = next((day for day in bookable if day >= target), bookable[0] if bookable else target)
    return {"origin": origin, "destination": destination, "date": chosen}


def _write_batch(dynamodb: Any, table_name: str, items: Sequence[dict[str, Any]]) -> None:
    request: dict[str, list[dict[str, Any]]] = {table_name: [{"PutRequest": {"Item": item}} for item in items]}
    for attempt in range(MAX_BATCH_ATTEMPTS):
        unprocessed = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        if not unprocessed:
            return
        request = unprocessed
        time.sleep(min(0.05 * 2**attempt, 1.0))
    left = sum(len(requests) for requests in request.values())
    raise RuntimeError(f"{left} items still unprocessed after {MAX_BATCH_ATTEMPTS} BatchWriteItem attempts")


def write_items(
    dynamodb: Any,
    table_name: str,
    records: Iterable[Any],
    to_item: Callable[[Any], dict[str, Any]],
    *,
    stop: threading.Event | None = None,
) -> int:
    """BatchWriteItem in batches of 25 with bounded retries; returns how many were written.

    Sequential on purpose: moto spends ~1 ms of CPU per item (it re-sizes the whole item on every
    attribute), so threads only queue behind the GIL. ``stop`` ends a long write between batches.
    """
    written = 0
    iterator = iter(records)
    while not (stop is not None and stop.is_set()):
        batch = list(islice(iterator, BATCH_SIZE))
        if not batch:
            break
        _write_batch(dynamodb, table_name, [to_item(record) for record in batch])
        written += len(batch)
    return written


@dataclass
class Dataset:
    """One table's seed: what is written before serving, what may follow, and an example query."""

    domain: str
    to_item: Callable[[Any], dict[str, Any]]
    example: dict[str, str]
    first: list[Any]  # the example's partitions: always written before the stack serves
    rest: Iterator[Any]  # generated lazily, so a background write does not delay serving


def _split(records: Iterator[Any], belongs_first: Callable[[Any], bool]) -> tuple[list[Any], Iterator[Any]]:
    """Leading records that belong first, and an iterator over everything after them."""
    first: list[Any] = []
    for record in records:
        if not belongs_first(record):
            return first, chain([record], records)
        first.append(record)
    return first, iter(())


def flight_dataset(scale: float, seed: int, today: date) -> Dataset:
    # generate_offers yields the flagship routes first; they hold the example query.
    flagships = set(FLAGSHIP_ROUTES)
    first, rest = _split(
        generate_offers(scale=scale, seed=seed, today=today), lambda o: (o.origin, o.destination) in flagships
    )
    return Dataset(
        "flights", lambda item: item, example_flight_query(first, today), offers_to_items(first), flight_items(rest)
    )


def flight_items(offers: Iterator[FlightOffer]) -> Iterator[dict[str, Any]]:
    """The items of ``offers`` (which come a route and day at a time), a route and day at a time."""
    for _, same_day in groupby(offers, key=lambda offer: (offer.route, offer.date)):
        yield from offers_to_items(same_day)


def hotel_dataset(scale: float, seed: int, today: date) -> Dataset:
    # Imported here: the hotels domain is optional until its table is in the template.
    from domains.hotels.rates import rate_to_item
    from local import seed_hotels

    example = seed_hotels.hotel_example(today, seed_hotels.DAYS, seed=seed)
    # The example's city first, then the others (a city's rates do not depend on the order).
    codes = seed_hotels.CITY_CODES[: max(1, round(len(seed_hotels.CITY_CODES) * scale))]
    cities = (example["city"], *(code for code in codes if code != example["city"]))
    rates = seed_hotels.hotel_rates(today, seed_hotels.DAYS, cities, seed=seed)
    first, rest = _split(rates, lambda rate: rate.city == example["city"])
    return Dataset("hotels", rate_to_item, example, first, rest)


def destination_dataset(scale: float, seed: int, today: date) -> Dataset:
    """Airports for lookup and autocomplete: the ranked (busiest) ones first, then every other airport.

    ``seed`` and ``today`` do not matter: the airports are airportsdata's, stamped with its release.
    """
    from domains.destinations.airports import UNRANKED, words
    from local import seed_destinations

    every = sorted(seed_destinations.airports(), key=lambda airport: (airport.rank, airport.code))
    ranked = sum(1 for airport in every if airport.rank != UNRANKED)
    chosen = every if scale >= 1 else every[: max(ranked, round(len(every) * scale))]
    paris = next((airport for airport in chosen if airport.code == "CDG"), chosen[0])
    example = {"q": words(paris.city or paris.name)[0][:3]}
    first, rest = _split(seed_destinations.destination_items(chosen), lambda item: int(item["rank"]["N"]) != UNRANKED)
    return Dataset("destinations", lambda item: item, example, first, rest)


# Table logical id → how to build its seed. Tables not in the template are simply not seeded.
DATASETS: dict[str, Callable[[float, int, date], Dataset]] = {
    "FlightsTable": flight_dataset,
    "HotelsTable": hotel_dataset,
    "DestinationsTable": destination_dataset,
}


@dataclass
class SeedReport:
    """What :func:`seed_tables` wrote before returning, and whether more is being written."""

    items: int = 0
    seconds: float = 0.0
    examples: dict[str, dict[str, str]] = field(default_factory=dict)
    background: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def seeding(self) -> bool:
        """True while background seeding is still writing."""
        return self.background is not None and self.background.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until background seeding ends; True when it has."""
        if self.background is not None:
            self.background.join(timeout)
        return not self.seeding

    def cancel(self, timeout: float = 10.0) -> None:
        """Stop background seeding between batches (before the emulator goes away)."""
        self.stop.set()
        self.wait(timeout)


def seed_tables(
    dynamodb: Any,
    tables: Mapping[str, str],
    *,
    scale: float = 1.0,
    seed: int = DEFAULT_SEED,
    today: date | None = None,
    background: bool = False,
) -> SeedReport:
    """Seed every table that has a dataset; the report holds an example query per domain.

    ``background=True`` writes each dataset's example partitions before returning and generates
    and writes the rest from a daemon thread, so the stack serves within seconds.
    """
    today = today or datetime.now(UTC).date()
    started = time.perf_counter()
    report = SeedReport()
    later: list[tuple[str, Dataset]] = []
    for logical_id, table_name in tables.items():
        build = DATASETS.get(logical_id)
        if build is None:
            continue
        dataset = build(scale, seed, today)
        report.examples[dataset.domain] = dataset.example
        report.items += write_items(dynamodb, table_name, dataset.first, dataset.to_item)
        if background:
            later.append((table_name, dataset))
        else:
            report.items += write_items(dynamodb, table_name, dataset.rest, dataset.to_item)
    report.seconds = time.perf_counter() - started
    logger.info("seeded %d items in %.1fs%s", report.items, report.seconds, " (more in the background)" * bool(later))
    if later:
        report.background = threading.Thread(
            target=_seed_rest, args=(dynamodb, later, report), name="seed-background", daemon=True
        )
        report.background.start()
    return report


def _seed_rest(dynamodb: Any, later: list[tuple[str, Dataset]], report: SeedReport) -> None:
    began = time.perf_counter()
    for table_name, dataset in later:
        try:
            report.items += write_items(dynamodb, table_name, dataset.rest, dataset.to_item, stop=report.stop)
        except Exception:
            if not report.stop.is_set():  # after cancel(), errors are the emulator going away
                logger.exception("background seeding of %s failed", table_name)
            return
    if not report.stop.is_set():
        logger.info("background seeding done: %d items in all (%.1fs more)", report.items, time.perf_counter() - began)
