"""FlightsIngest: ``FlightOffersUpdated`` events from the flights queue into the flights table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from core.observability import FunctionTelemetry
from domains.flights.offers import route_key
from integrations.ingest import DomainIngest, IngestPipeline, InvalidEvent, Upsert
from integrations.wiring import ingest_pipeline

DOMAIN = "flights"
EXPIRES_AFTER_DEPARTURE_SECONDS = 86_400  # DynamoDB TTL removes an offer a day after departure (offers.py)


def flight_upserts(event: Mapping[str, Any], provider: str, received_at: str) -> list[Upsert]:
    """One conditional write per offer of a (schema-valid) ``FlightOffersUpdated`` event.

    The items are built here directly, not through :class:`FlightOffer` and :func:`offer_to_item`:
    ingest runs this for every offer it receives and the dataclass round trip cost twice as much.
    ``tests/unit/test_ingest.py`` holds the two to the same item for every example event.
    """
    data = event["data"]
    origin, destination, day = data["origin"], data["destination"], data["date"]
    if origin == destination:
        raise InvalidEvent("event.data.destination: must differ from origin")
    route = route_key(origin, destination)
    partition, shared = (
        {"S": route},
        {
            "origin": {"S": origin},
            "destination": {"S": destination},
            "provider": {"S": provider},
            "updated_at": {"S": received_at},
        },
    )
    sequence = event["sequence"]
    upserts = []
    for index, raw in enumerate(data["offers"]):
        departure_text, arrival_text = raw["departure"], raw["arrival"]
        departure, arrival = datetime.fromisoformat(departure_text), datetime.fromisoformat(arrival_text)
        if departure_text[:10] != day:
            raise InvalidEvent(f"event.data.offers[{index}].departure: is not on {day}")
        if arrival <= departure:
            raise InvalidEvent(f"event.data.offers[{index}].arrival: must be after departure")
        flight_id, cabin, price = raw["flight_id"], raw["cabin"], raw["price"]
        attributes = {
            "flight_id": {"S": flight_id},
            "carrier": {"S": raw["carrier"]},
            "departure": {"S": departure_text},
            "arrival": {"S": arrival_text},
            "duration_minutes": {"N": str(raw["duration_minutes"])},
            "cabin": {"S": cabin},
            "price": {"N": price["amount"]},
            "currency": {"S": price["currency"]},
            "seats_left": {"N": str(raw["seats_left"])},
            "expires_at": {"N": str(int(departure.timestamp()) + EXPIRES_AFTER_DEPARTURE_SECONDS)},
            **shared,
        }
        key = {"pk": partition, "sk": {"S": f"{day}#{flight_id}#{cabin}#{provider}"}}
        upserts.append(Upsert(route, key, attributes, sequence))
    return upserts


FLIGHTS = DomainIngest(DOMAIN, frozenset({"FlightOffersUpdated"}), flight_upserts)

telemetry = FunctionTelemetry("flights-ingest", DOMAIN)


@lru_cache(maxsize=1)
def pipeline() -> IngestPipeline:
    return ingest_pipeline(FLIGHTS, "FLIGHTS_TABLE", telemetry.sink, telemetry.logger)


@telemetry.entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline().run(event)
