"""The partner push example of ``stack.json``: a new lowest price for the seeded flights example.

It is built from what the flights table holds for the example route and day after seeding, so
pushing it visibly changes the example search: the pushed offer comes back first, 10 % under the
cheapest seeded fare. The event is fixed for the run (id and ``sequence``), so pushing it a second
time changes nothing, which is the point of showing it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from domains.flights.offers import offers_from_item, route_key

PARTNER = "aerodata"  # a seeded provider, here pushing rather than being pulled
DISCOUNT = Decimal("0.90")
_EVENT_IDS = uuid.UUID("0b7f3f64-2f6e-4a52-9a43-5be1b8d1e6c2")


def partner_push_example(
    dynamodb: Any, table_name: str, query: Mapping[str, str], path_template: str, now: datetime
) -> dict[str, Any] | None:
    """``{"path", "body", "search", "lowest_price"}``, or None when the example day has no bookable offer."""
    origin, destination, day = query["origin"], query["destination"], query["date"]
    response = dynamodb.query(
        TableName=table_name,
        KeyConditionExpression="pk = :route AND begins_with(sk, :day)",
        ExpressionAttributeValues={":route": {"S": route_key(origin, destination)}, ":day": {"S": f"{day}#"}},
    )
    offers = [offer for item in response.get("Items") or [] for offer in offers_from_item(item)]
    bookable = [offer for offer in offers if offer.seats_left > 0]
    if not bookable:
        return None
    cheapest = min(bookable, key=lambda offer: offer.price)
    price = (min(offer.price for offer in offers) * DISCOUNT).quantize(Decimal("0.01"))
    sequence = int(now.timestamp())
    event = {
        "id": str(uuid.uuid5(_EVENT_IDS, f"{PARTNER}:{origin}-{destination}:{day}:{sequence}")),
        "type": "FlightOffersUpdated",
        "version": 1,
        "sequence": sequence,
        "occurred_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {
            "origin": origin,
            "destination": destination,
            "date": day,
            "offers": [
                {
                    "flight_id": cheapest.flight_id,
                    "carrier": cheapest.carrier,
                    "departure": cheapest.departure,
                    "arrival": cheapest.arrival,
                    "duration_minutes": cheapest.duration_minutes,
                    "cabin": cheapest.cabin,
                    "price": {"amount": f"{price:.2f}", "currency": cheapest.currency},
                    "seats_left": 9,
                }
            ],
        },
    }
    return {
        "path": path_template.replace("{provider}", PARTNER),
        "body": {"events": [event]},
        "search": dict(query),
        "lowest_price": f"{price:.2f}",
    }
