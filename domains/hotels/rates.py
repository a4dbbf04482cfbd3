"""Nightly hotel rates: the record a provider publishes and its DynamoDB item layout.

Table layout (``HotelsTable``): partition key ``pk`` = city ``PAR``; sort key ``sk`` =
``<night>#<hotel_id>``. The night comes first so that one Query with
``sk BETWEEN <first night> AND <last night>#~`` returns the nights of a stay for every hotel of
the city (``~`` sorts after every character of a hotel id). ``expires_at`` (epoch seconds) lets
DynamoDB TTL remove a night's rate one day after that night's date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

# The upper bound of a night's sort keys: '~' (0x7E) sorts after the letters, digits, '-' and '_'
# that hotel ids are made of.
NIGHT_END = "#~"


@dataclass(frozen=True, slots=True)
class NightlyRate:
    hotel_id: str
    name: str
    city: str  # IATA city (or airport) code, e.g. PAR
    stars: int  # 1–5
    rating: Decimal  # guest rating 0–10, one decimal
    date: str  # the night, YYYY-MM-DD (check-in day of that night)
    amount: Decimal  # price of the night in `currency`, two decimal places
    currency: str
    available: bool
    max_guests: int
    provider: str
    sequence: int = 0
    updated_at: str = ""


def night_key(night: str, hotel_id: str) -> str:
    return f"{night}#{hotel_id}"


def rate_to_item(rate: NightlyRate) -> dict[str, dict[str, Any]]:
    """The DynamoDB item (low-level AttributeValue form) of one hotel's rate for one night."""
    night = datetime.combine(date.fromisoformat(rate.date), time.min, UTC)
    expires_at = int((night + timedelta(days=1)).timestamp())
    return {
        "pk": {"S": rate.city},
        "sk": {"S": night_key(rate.date, rate.hotel_id)},
        "hotel_id": {"S": rate.hotel_id},
        "name": {"S": rate.name},
        "city": {"S": rate.city},
        "stars": {"N": str(rate.stars)},
        "rating": {"N": str(rate.rating)},
        "date": {"S": rate.date},
        "amount": {"N": str(rate.amount)},
        "currency": {"S": rate.currency},
        "available": {"BOOL": rate.available},
        "max_guests": {"N": str(rate.max_guests)},
        "provider": {"S": rate.provider},
        "sequence": {"N": str(rate.sequence)},
        "updated_at": {"S": rate.updated_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "expires_at": {"N": str(expires_at)},
    }


def rate_from_item(item: dict[str, dict[str, Any]]) -> NightlyRate:
    """Inverse of :func:`rate_to_item`."""
    return NightlyRate(
        hotel_id=item["hotel_id"]["S"],
        name=item["name"]["S"],
        city=item["city"]["S"],
        stars=int(item["stars"]["N"]),
        rating=Decimal(item["rating"]["N"]),
        date=item["date"]["S"],
        amount=Decimal(item["amount"]["N"]),
        currency=item["currency"]["S"],
        available=bool(item["available"]["BOOL"]),
        max_guests=int(item["max_guests"]["N"]),
        provider=item["provider"]["S"],
        sequence=int(item["sequence"]["N"]),
        updated_at=item["updated_at"]["S"],
    )
