"""FlightsIngest: ``FlightOffersUpdated`` events from the flights queue into the flights table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from core.observability import FunctionTelemetry
from domains.flights.offers import FlightOffer, offer_to_item, route_key
from integrations.ingest import DomainIngest, IngestPipeline, InvalidEvent, Upsert
from integrations.wiring import ingest_pipeline

DOMAIN = "flights"


def flight_upserts(event: Mapping[str, Any], provider: str, received_at: str) -> list[Upsert]:
    """One conditional write per offer of a (schema-valid) ``FlightOffersUpdated`` event."""
    data = event["data"]
    if data["origin"] == data["destination"]:
        raise InvalidEvent("event.data.destination: must differ from origin")
    route = route_key(data["origin"], data["destination"])
    upserts = []
    for index, raw in enumerate(data["offers"]):
        departure, arrival = datetime.fromisoformat(raw["departure"]), datetime.fromisoformat(raw["arrival"])
        if raw["departure"][:10] != data["date"]:
            raise InvalidEvent(f"event.data.offers[{index}].departure: is not on {data['date']}")
        if arrival <= departure:
            raise InvalidEvent(f"event.data.offers[{index}].arrival: must be after departure")
        offer = FlightOffer(
            flight_id=raw["flight_id"],
            carrier=raw["carrier"],
            origin=data["origin"],
            destination=data["destination"],
            departure=raw["departure"],
            arrival=raw["arrival"],
            duration_minutes=raw["duration_minutes"],
            cabin=raw["cabin"],
            price=Decimal(raw["price"]["amount"]),
            currency=raw["price"]["currency"],
            seats_left=raw["seats_left"],
            provider=provider,
            sequence=event["sequence"],
            updated_at=received_at,
        )
        item = offer_to_item(offer)
        key = {"pk": item.pop("pk"), "sk": item.pop("sk")}
        del item["sequence"]
        upserts.append(Upsert(route, key, item, offer.sequence))
    return upserts


FLIGHTS = DomainIngest(DOMAIN, frozenset({"FlightOffersUpdated"}), flight_upserts)

telemetry = FunctionTelemetry("flights-ingest", DOMAIN)


@lru_cache(maxsize=1)
def pipeline() -> IngestPipeline:
    return ingest_pipeline(FLIGHTS, "FLIGHTS_TABLE", telemetry.sink, telemetry.logger)


@telemetry.entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline().run(event)
