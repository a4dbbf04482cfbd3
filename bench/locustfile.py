"""Locust users for ``make load``: travellers' apps searching all three domains, and a partner pushing offers.

Reads the local stack's state file (``LOAD_STATE``: url, API keys, examples) and the seed parameters
(``LOAD_SEED_SCALE``), so every query is for seeded data: flights on the seeded routes and days,
hotels in the seeded cities, destination prefixes of the seeded airports, each domain with Zipf
popularity. Searches go out under the basic key and stay inside its usage plan (10 rps, burst 20):
the travellers' app is one basic-tier customer, and a request over its plan is a 429 by design, which
this test counts as an error. Partner pushes (about 1 % of requests, ten events each) go out under the
partner key, ``POST /v1/providers/skylink/events`` with new offers for seeded routes and days; every
accepted event is appended to ``LOAD_PUSH_LOG`` so the driver (bench/load.py) can check it landed.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

from locust import HttpUser, constant_throughput, task

from domains.destinations.airports import UNRANKED, words
from local import seed_destinations, seed_hotels
from local.seed import DAYS, DEFAULT_SEED, FULL_ROUTE_COUNT, choose_routes

STATE = json.loads(Path(os.environ["LOAD_STATE"]).read_text(encoding="utf-8"))
SCALE = float(os.environ.get("LOAD_SEED_SCALE", "0.1"))
PUSH_LOG = Path(os.environ.get("LOAD_PUSH_LOG", os.devnull))
USERS = int(os.environ.get("LOAD_USERS", "50"))
# The basic plan allows 10 rps (burst 20): the apps together send a little under that.
SEARCH_RPS = float(os.environ.get("LOAD_SEARCH_RPS", "9"))
PUSH_SHARE = 0.01
TODAY = datetime.now(UTC).date()
RNG = random.Random(DEFAULT_SEED)


def zipf(count: int, s: float = 1.0) -> list[float]:
    return list(accumulate(1 / (rank + 1) ** s for rank in range(count)))


ROUTES = choose_routes(max(4, round(FULL_ROUTE_COUNT * SCALE)), random.Random(DEFAULT_SEED))
ROUTE_WEIGHTS = zipf(len(ROUTES))
DAY_WEIGHTS = list(accumulate(0.95**day for day in range(1, DAYS + 1)))
CITIES = [STATE["examples"]["hotels"]["city"]] + [
    code
    for code in seed_hotels.CITY_CODES[: max(1, round(len(seed_hotels.CITY_CODES) * SCALE))]
    if code != STATE["examples"]["hotels"]["city"]
]
CITY_WEIGHTS = zipf(len(CITIES))
RANKED = sorted((airport for airport in seed_destinations.airports() if airport.rank != UNRANKED), key=lambda a: a.rank)
PREFIXES = list(dict.fromkeys(words(a.city or a.name)[0][:3] for a in RANKED if words(a.city or a.name)))
PREFIX_WEIGHTS = zipf(len(PREFIXES))
_push_lock = threading.Lock()
_pushes = iter(range(1, 10**6))


def flight_params() -> dict[str, str]:
    origin, destination = RNG.choices(ROUTES, cum_weights=ROUTE_WEIGHTS)[0]
    day = TODAY + timedelta(days=RNG.choices(range(1, DAYS + 1), cum_weights=DAY_WEIGHTS)[0])
    params = {"origin": origin, "destination": destination, "date": day.isoformat()}
    if RNG.random() < 0.3:
        params["adults"] = str(RNG.choice((2, 3)))
    if RNG.random() < 0.3:
        params["cabin"] = RNG.choice(("economy", "business"))
    if RNG.random() < 0.2:
        params["sort"] = RNG.choice(("duration", "departure"))
    return params


def hotel_params() -> dict[str, str]:
    nights = RNG.choice((1, 2, 3, 3, 4, 7))
    start = RNG.choices(range(0, seed_hotels.DAYS - nights), cum_weights=DAY_WEIGHTS[: seed_hotels.DAYS - nights])[0]
    check_in = TODAY + timedelta(days=start)
    return {
        "city": RNG.choices(CITIES, cum_weights=CITY_WEIGHTS)[0],
        "check_in": check_in.isoformat(),
        "check_out": (check_in + timedelta(days=nights)).isoformat(),
        "guests": str(RNG.choice((1, 2, 2, 3))),
    }


def destination_params() -> dict[str, str]:
    return {"q": RNG.choices(PREFIXES, cum_weights=PREFIX_WEIGHTS)[0]}


def push_events(count: int = 10) -> list[dict[str, Any]]:
    """FlightOffersUpdated events, each with one new offer (a flight number of its own) on a seeded route and day."""
    events = []
    for _ in range(count):
        with _push_lock:
            number = next(_pushes)
        origin, destination = RNG.choices(ROUTES, cum_weights=ROUTE_WEIGHTS)[0]
        day: date = TODAY + timedelta(days=RNG.randint(1, DAYS))
        departure = datetime(day.year, day.month, day.day, 6, 0, tzinfo=UTC) + timedelta(
            minutes=5 * RNG.randint(0, 200)
        )
        offer = {
            "flight_id": f"LT{number}",
            "carrier": "LT",
            "departure": departure.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "arrival": (departure + timedelta(minutes=420)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_minutes": 420,
            "cabin": "economy",
            "price": {"amount": f"{RNG.randint(90, 900)}.{RNG.randint(0, 99):02d}", "currency": "USD"},
            "seats_left": 9,
        }
        events.append(
            {
                "id": str(uuid.uuid4()),
                "type": "FlightOffersUpdated",
                "version": 1,
                "sequence": int(time.time() * 1000),
                "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data": {"origin": origin, "destination": destination, "date": day.isoformat(), "offers": [offer]},
            }
        )
    return events


class TravellerApp(HttpUser):
    """A traveller's app (basic key): half flights, a third hotels, the rest destination autocomplete."""

    weight = 99
    wait_time = constant_throughput(SEARCH_RPS / USERS)

    def on_start(self) -> None:
        self.client.headers["x-api-key"] = STATE["api_keys"]["basic"]

    def _search(self, path: str, params: dict[str, str]) -> None:
        with self.client.get(path, params=params, name=path, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            elif response.headers.get("X-Cache") not in ("HIT", "MISS", "STALE", "BYPASS"):
                response.failure(f"no X-Cache header: {dict(response.headers)}")

    @task(50)
    def flights(self) -> None:
        self._search("/v1/flights/search", flight_params())

    @task(30)
    def hotels(self) -> None:
        self._search("/v1/hotels/search", hotel_params())

    @task(20)
    def destinations(self) -> None:
        self._search("/v1/destinations/search", destination_params())


class Partner(HttpUser):
    """A partner (partner key) pushing new offers: about 1 % of all requests."""

    weight = 1
    wait_time = constant_throughput(SEARCH_RPS * PUSH_SHARE)
    fixed_count = 1

    def on_start(self) -> None:
        self.client.headers["x-api-key"] = STATE["api_keys"]["partner"]

    @task
    def push(self) -> None:
        events = push_events()
        path = "/v1/providers/skylink/events"
        with self.client.post(path, json={"events": events}, name=path, catch_response=True) as response:
            body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:300]}")
                return
            rejected = {rejection["index"] for rejection in body.get("rejected", [])}
            if rejected:
                response.failure(f"{len(rejected)} events rejected: {body['rejected'][:3]}")
        with _push_lock, PUSH_LOG.open("a", encoding="utf-8") as log:
            for index, event in enumerate(events):
                if index not in rejected:
                    log.write(
                        json.dumps({"event_id": event["id"], "sequence": event["sequence"], **event["data"]}) + "\n"
                    )
