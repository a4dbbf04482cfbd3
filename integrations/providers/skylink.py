"""Skylink, a flight-fare provider: ``GET {base}/fares`` → ``FlightOffersUpdated`` events.

Skylink answers ``{"fares": [{"id", "from", "to", "flight", "airline", "dep", "arr", "minutes",
"class", "fare", "currency", "seats", "changed_at"}]}``, where ``id`` grows with every change.
Fares are grouped by route and departure day into one event each; the event's ``sequence`` is the
largest fare id in it, so a later pull always wins over an earlier one.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from integrations.providers.http import get_json

NAME = "skylink"
CABINS = {"Y": "economy", "W": "premium", "J": "business", "F": "first"}
_EVENT_IDS = uuid.UUID("5d6a7c1e-0c8f-4a4e-9d36-6a3f1f2b9c10")


class SkylinkAdapter:
    def __init__(self, base_url: str, token: str, fetch: Callable[..., Any] = get_json) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._fetch = fetch

    def events(self) -> list[dict[str, Any]]:
        """The provider's current fares as partner events (validated later, like any partner's)."""
        document = self._fetch(f"{self._base_url}/fares", self._token)
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for fare in document.get("fares", []):
            groups[(fare["from"], fare["to"], str(fare["dep"])[:10])].append(fare)
        return [self._event(origin, destination, day, fares) for (origin, destination, day), fares in groups.items()]

    @staticmethod
    def _event(origin: str, destination: str, day: str, fares: list[dict[str, Any]]) -> dict[str, Any]:
        sequence = max(int(fare["id"]) for fare in fares)
        return {
            "id": str(uuid.uuid5(_EVENT_IDS, f"{NAME}:{origin}-{destination}:{day}:{sequence}")),
            "type": "FlightOffersUpdated",
            "version": 1,
            "sequence": sequence,
            "occurred_at": max(str(fare["changed_at"]) for fare in fares),
            "data": {
                "origin": origin,
                "destination": destination,
                "date": day,
                "offers": [
                    {
                        "flight_id": fare["flight"],
                        "carrier": fare["airline"],
                        "departure": fare["dep"],
                        "arrival": fare["arr"],
                        "duration_minutes": fare["minutes"],
                        "cabin": CABINS.get(fare["class"], fare["class"]),
                        "price": {"amount": f"{float(fare['fare']):.2f}", "currency": fare["currency"]},
                        "seats_left": fare["seats"],
                    }
                    for fare in fares
                ],
            },
        }
