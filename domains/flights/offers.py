"""Flight offers: the record a provider publishes and its DynamoDB item layout.

Table layout (``FlightsTable``): one item per route, day and provider. Partition key ``pk`` = route
``JFK-LHR``; sort key ``sk`` = ``<date>#<provider>``, so one Query with ``begins_with(sk, "<date>#")``
returns every offer of a route on a day. Each offer is a map attribute of its item, named
``offer#<flight_id>#<cabin>`` and holding the offer's fields with its own ``sequence`` and
``updated_at``: ingest writes all the offers of a provider's event with one conditional UpdateItem
(each offer is replaced only by a newer one, see ``core.store.Writes``), and offers an event does
not mention stay as they are. The item also holds ``origin``, ``destination``, ``provider`` and
``expires_at`` (epoch seconds): DynamoDB TTL removes the item three days after its day began (UTC),
which is at least a day after any departure dated that day, whatever its UTC offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

CABINS = ("economy", "premium", "business", "first")


class FlightOffer(NamedTuple):
    """One provider's offer of one flight in one cabin.

    A NamedTuple rather than a frozen dataclass: a search builds one per item its Query returns, and a
    frozen dataclass sets each of the 14 fields through ``object.__setattr__`` (~3.2 µs an offer here,
    against ~0.5 µs for the tuple).
    """

    flight_id: str
    carrier: str
    origin: str
    destination: str
    departure: str  # ISO 8601, UTC, e.g. 2026-12-01T08:30:00Z
    arrival: str
    duration_minutes: int
    cabin: str
    price: Decimal  # in `currency`, two decimal places
    currency: str
    seats_left: int
    provider: str
    sequence: int = 0
    updated_at: str = ""

    @property
    def route(self) -> str:
        return f"{self.origin}-{self.destination}"

    @property
    def date(self) -> str:
        return self.departure[:10]


def route_key(origin: str, destination: str) -> str:
    return f"{origin}-{destination}"


OFFER_PREFIX = "offer#"
EXPIRES_AFTER_DAY_STARTS = timedelta(days=3)


def offer_attribute(flight_id: str, cabin: str) -> str:
    """The name of an offer's attribute in its item: one per flight and cabin (of the item's provider)."""
    return f"{OFFER_PREFIX}{flight_id}#{cabin}"


def item_key(route: str, date: str, provider: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": route}, "sk": {"S": f"{date}#{provider}"}}


@lru_cache(maxsize=1024)
def expires_at(date: str) -> int:
    """When DynamoDB TTL may remove the item of ``date`` (an ISO day): epoch seconds."""
    return int((datetime.fromisoformat(date).replace(tzinfo=UTC) + EXPIRES_AFTER_DAY_STARTS).timestamp())


def offer_value(offer: FlightOffer) -> dict[str, Any]:
    """An offer's attribute value: the map of its own fields (route, day and provider are the item's)."""
    return {
        "M": {
            "flight_id": {"S": offer.flight_id},
            "carrier": {"S": offer.carrier},
            "departure": {"S": offer.departure},
            "arrival": {"S": offer.arrival},
            "duration_minutes": {"N": str(offer.duration_minutes)},
            "cabin": {"S": offer.cabin},
            "price": {"N": str(offer.price)},
            "currency": {"S": offer.currency},
            "seats_left": {"N": str(offer.seats_left)},
            "sequence": {"N": str(offer.sequence)},
            "updated_at": {"S": offer.updated_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        }
    }


def offers_to_items(offers: Iterable[FlightOffer]) -> list[dict[str, dict[str, Any]]]:
    """The DynamoDB items (low-level AttributeValue form) holding ``offers``: one per route, day and
    provider. Of two offers of the same flight and cabin, the one with the higher sequence is kept
    (the later one on a tie)."""
    items: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for offer in offers:
        group = (offer.route, offer.date, offer.provider)
        item = items.get(group)
        if item is None:
            item = items[group] = {
                **item_key(*group),
                "origin": {"S": offer.origin},
                "destination": {"S": offer.destination},
                "provider": {"S": offer.provider},
                "expires_at": {"N": str(expires_at(offer.date))},
            }
        name = offer_attribute(offer.flight_id, offer.cabin)
        kept = item.get(name)
        if kept is None or int(kept["M"]["sequence"]["N"]) <= offer.sequence:
            item[name] = offer_value(offer)
    return list(items.values())


def offers_from_item(item: dict[str, dict[str, Any]]) -> list[FlightOffer]:
    """Inverse of :func:`offers_to_items` for one item: its offers, in attribute order."""
    origin, destination, provider = item["origin"]["S"], item["destination"]["S"], item["provider"]["S"]
    offers = []
    for name, value in item.items():
        if not name.startswith(OFFER_PREFIX):
            continue
        fields = value["M"]
        # Positional, in field order: keyword arguments double the cost of building the tuple.
        offers.append(
            FlightOffer(
                fields["flight_id"]["S"],
                fields["carrier"]["S"],
                origin,
                destination,
                fields["departure"]["S"],
                fields["arrival"]["S"],
                int(fields["duration_minutes"]["N"]),
                fields["cabin"]["S"],
                Decimal(fields["price"]["N"]),
                fields["currency"]["S"],
                int(fields["seats_left"]["N"]),
                provider,
                int(fields["sequence"]["N"]),
                fields["updated_at"]["S"],
            )
        )
    return offers
