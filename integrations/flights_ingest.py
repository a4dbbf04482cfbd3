"""FlightsIngest: ``FlightOffersUpdated`` events from the flights queue into the flights table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from core.observability import FunctionTelemetry
from domains.flights.offers import expires_at, item_key, offer_attribute, route_key
from integrations.ingest import DomainIngest, IngestPipeline, InvalidEvent, Upsert
from integrations.wiring import ingest_pipeline

DOMAIN = "flights"


def flight_upserts(event: Mapping[str, Any], provider: str, received_at: str) -> list[Upsert]:
    """One conditional write of a (schema-valid) ``FlightOffersUpdated`` event: its offers, each an
    attribute of the item of the provider's route and day, replaced only where the event is newer.

    The attribute values are built here directly, not through :class:`FlightOffer` and
    :func:`offers_to_items`: ingest runs this for every offer it receives and the tuple round trip
    cost twice as much. ``tests/unit/test_ingest.py`` holds the two to the same item for every example.
    """
    data = event["data"]
    origin, destination, day = data["origin"], data["destination"], data["date"]
    if origin == destination:
        raise InvalidEvent("event.data.destination: must differ from origin")
    route = route_key(origin, destination)
    sequence = event["sequence"]
    version, updated_at = {"N": str(sequence)}, {"S": received_at}
    offers = {}
    for index, raw in enumerate(data["offers"]):
        departure, arrival = raw["departure"], raw["arrival"]
        if departure[:10] != day:
            raise InvalidEvent(f"event.data.offers[{index}].departure: is not on {day}")
        if datetime.fromisoformat(arrival) <= datetime.fromisoformat(departure):
            raise InvalidEvent(f"event.data.offers[{index}].arrival: must be after departure")
        flight_id, cabin, price = raw["flight_id"], raw["cabin"], raw["price"]
        offers[offer_attribute(flight_id, cabin)] = {
            "M": {
                "flight_id": {"S": flight_id},
                "carrier": {"S": raw["carrier"]},
                "departure": {"S": departure},
                "arrival": {"S": arrival},
                "duration_minutes": {"N": str(raw["duration_minutes"])},
                "cabin": {"S": cabin},
                "price": {"N": price["amount"]},
                "currency": {"S": price["currency"]},
                "seats_left": {"N": str(raw["seats_left"])},
                "sequence": version,
                "updated_at": updated_at,
            }
        }
    defaults = {  # the item's own attributes, the same for every event of its route, day and provider
        "origin": {"S": origin},
        "destination": {"S": destination},
        "provider": {"S": provider},
        "expires_at": {"N": str(expires_at(day))},
    }
    return [Upsert(route, item_key(route, day, provider), offers, sequence, defaults, per_attribute=True)]


FLIGHTS = DomainIngest(DOMAIN, frozenset({"FlightOffersUpdated"}), flight_upserts)

telemetry = FunctionTelemetry("flights-ingest", DOMAIN)


@lru_cache(maxsize=1)
def pipeline() -> IngestPipeline:
    return ingest_pipeline(FLIGHTS, "FLIGHTS_TABLE", telemetry.sink, telemetry.logger)


@telemetry.entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline().run(event)
