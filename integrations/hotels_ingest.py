"""HotelsIngest: ``HotelRatesUpdated`` events from the hotels queue into the hotels table.

A hotel id belongs to one provider: the newest ``sequence`` per hotel and night wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from core.observability import FunctionTelemetry
from domains.hotels.rates import NightlyRate, rate_to_item
from integrations.ingest import DomainIngest, IngestPipeline, Upsert
from integrations.wiring import ingest_pipeline

DOMAIN = "hotels"
DEFAULT_MAX_GUESTS = 2


def hotel_upserts(event: Mapping[str, Any], provider: str, received_at: str) -> list[Upsert]:
    """One conditional write per night of a (schema-valid) ``HotelRatesUpdated`` event.

    A rating or a night's ``max_guests`` the event does not give keeps the stored value (or the
    default for a new hotel): v1 senders need not know them.
    """
    data = event["data"]
    upserts = []
    for raw in data["rates"]:
        rate = NightlyRate(
            hotel_id=data["hotel_id"],
            name=data["name"],
            city=data["city"],
            stars=data["stars"],
            rating=Decimal(str(data.get("rating", 0))),
            date=raw["date"],
            amount=Decimal(raw["amount"]),
            currency=raw["currency"],
            available=raw["available"],
            max_guests=raw.get("max_guests", DEFAULT_MAX_GUESTS),
            provider=provider,
            sequence=event["sequence"],
            updated_at=received_at,
        )
        item = rate_to_item(rate)
        key = {"pk": item.pop("pk"), "sk": item.pop("sk")}
        del item["sequence"]
        defaults = {}
        for optional, present in (("rating", "rating" in data), ("max_guests", "max_guests" in raw)):
            if not present:
                defaults[optional] = item.pop(optional)
        upserts.append(Upsert(data["city"], key, item, rate.sequence, defaults))
    return upserts


HOTELS = DomainIngest(DOMAIN, frozenset({"HotelRatesUpdated"}), hotel_upserts)

telemetry = FunctionTelemetry("hotels-ingest", DOMAIN)


@lru_cache(maxsize=1)
def pipeline() -> IngestPipeline:
    return ingest_pipeline(HOTELS, "HOTELS_TABLE", telemetry.sink, telemetry.logger)


@telemetry.entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline().run(event)
