"""A fake skylink fares API for the local stack: ``GET /fares`` with ``Authorization: Bearer <token>``.

It speaks the format :mod:`integrations.providers.skylink` reads (``{"fares": [{"id", "from", "to",
"flight", "airline", "dep", "arr", "minutes", "class", "fare", "currency", "seats",
"changed_at"}]}``) for a few seeded routes a few days ahead. Every call answers all fares and
moves some: the fares of one route and day (each in turn) drift a little in price (never more than
15 % from where they started) and get new, larger ``id``s. So every scheduled refresh changes
something, a later pull always wins, and unchanged fares cost ingest only a refused conditional
write (moto spends tens of milliseconds of CPU on each real one).

The routes are seeded flagship routes other than the flights example, so a refresh never
invalidates the example search that ``stack.json`` and the tests use.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from local.http_server import LocalServer
from local.seed import CARRIERS_BY_COUNTRY, FLAGSHIP_ROUTES, airports, block_minutes, fare, great_circle_km

logger = logging.getLogger(__name__)

NAME = "skylink"
DEFAULT_ROUTES: tuple[tuple[str, str], ...] = FLAGSHIP_ROUTES[1:3]  # always seeded; [0] is the flights example
DEFAULT_DAYS_AHEAD = (3, 4)
FLIGHTS_PER_ROUTE = 2
CLASSES = {"Y": "economy", "J": "business"}
MAX_DRIFT = Decimal("0.15")
FIRST_ID = 1_000


@dataclass
class _Fare:
    origin: str
    destination: str
    flight: str
    airline: str
    departure: datetime
    minutes: int
    fare_class: str
    base: Decimal
    price: Decimal
    seats: int
    id: int = 0
    changed_at: str = ""

    @property
    def group(self) -> tuple[str, str, str]:
        """What one skylink event covers: a route and a departure day."""
        return (self.origin, self.destination, self.departure.date().isoformat())

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.origin,
            "to": self.destination,
            "flight": self.flight,
            "airline": self.airline,
            "dep": self.departure.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "arr": (self.departure + timedelta(minutes=self.minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "minutes": self.minutes,
            "class": self.fare_class,
            "fare": float(self.price),
            "currency": "USD",
            "seats": self.seats,
            "changed_at": self.changed_at,
        }


def _fares(
    routes: Iterable[tuple[str, str]], days_ahead: Sequence[int], today: date, rng: random.Random
) -> list[_Fare]:
    table = airports()
    fares = []
    for origin, destination in routes:
        a, b = table[origin], table[destination]
        distance = great_circle_km(a, b)
        carriers = sorted({*CARRIERS_BY_COUNTRY[a.country], *CARRIERS_BY_COUNTRY[b.country]})
        flights = [
            (carrier, f"{carrier}{rng.randint(100, 4999)}", rng.randrange(6 * 60, 22 * 60, 5))
            for carrier in (rng.choice(carriers) for _ in range(FLIGHTS_PER_ROUTE))
        ]
        for days in days_ahead:
            day = today + timedelta(days=days)
            for carrier, flight, minute in flights:
                departure = datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=minute)
                for fare_class, cabin in CLASSES.items():
                    price = fare(distance, cabin, day, days, rng)
                    fares.append(
                        _Fare(origin, destination, flight, carrier, departure, block_minutes(distance), fare_class,
                              price, price, rng.randint(1, 9))
                    )  # fmt: skip
    return fares


class FakeSkylink:
    """The fake provider's state and its WSGI app, served on 127.0.0.1 (a free port by default)."""

    def __init__(
        self,
        *,
        routes: Iterable[tuple[str, str]] = DEFAULT_ROUTES,
        days_ahead: Sequence[int] = DEFAULT_DAYS_AHEAD,
        today: date | None = None,
        seed: int = 7,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.routes = tuple(routes)
        self._rng = random.Random(seed)
        self._fares = _fares(self.routes, days_ahead, today or datetime.now(UTC).date(), self._rng)
        self._groups = sorted({item.group for item in self._fares})
        self._next_id = FIRST_ID
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for item in self._fares:
            item.id, self._next_id = self._next_id, self._next_id + 1
            item.changed_at = created
        self._lock = threading.Lock()
        self._host, self._port = host, port
        self._server: LocalServer | None = None
        self.calls = 0

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSkylink is not started")
        return self._server.url

    def start(self) -> FakeSkylink:
        self._server = LocalServer(self, self._host, self._port, name="fake-skylink").start()
        logger.info("fake %s provider on %s: %d fares on %s", NAME, self.url, len(self._fares),
                    ", ".join(f"{o}-{d}" for o, d in self.routes))  # fmt: skip
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def snapshot(self) -> list[dict[str, Any]]:
        """The next answer: every fare, those of the next route and day with a new price and a larger id."""
        changed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            moving = self._groups[self.calls % len(self._groups)]
            self.calls += 1
            for item in self._fares:
                if item.group != moving:
                    continue
                drift = Decimal(str(round(self._rng.uniform(-0.02, 0.02), 4)))
                low, high = item.base * (1 - MAX_DRIFT), item.base * (1 + MAX_DRIFT)
                item.price = min(max(item.price * (1 + drift), low), high).quantize(Decimal("0.01"))
                item.id, self._next_id = self._next_id, self._next_id + 1
                item.changed_at = changed_at
            return [item.document() for item in self._fares]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self.respond(request)
        logger.debug("fake %s: %s %s → %d", NAME, request.method, request.path, response.status_code)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/fares":
            return _json({"error": "not found"}, 404)
        if request.method != "GET":
            return _json({"error": "method not allowed"}, 405)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self.token.encode()):
            return _json({"error": "missing or wrong bearer token"}, 401)
        return _json({"fares": self.snapshot()}, 200)


def _json(document: Any, status: int) -> Response:
    return Response(json.dumps(document), status=status, content_type="application/json")
