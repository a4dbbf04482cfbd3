"""Seed data of the destinations table: every usable airport of ``airportsdata``, as DynamoDB items.

Pure functions (no AWS calls): another part of the local stack writes the items. The data set's
release (e.g. 20260905) is every record's ``sequence`` and its date the ``updated_at``, so a
re-seed from the same release writes identical items, and a newer release wins the conditional
writes of ingest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import airportsdata

from domains.destinations.airports import UNRANKED, Airport, airport_items, major_airport_ranks

_IATA = re.compile(r"[A-Z]{3}")
_RELEASE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def _release() -> tuple[int, str]:
    version = str(getattr(airportsdata, "__version__", ""))
    found = _RELEASE.fullmatch(version)
    if found is None:
        return 0, "1970-01-01T00:00:00Z"
    year, month, day = found.groups()
    return int(version), f"{year}-{month}-{day}T00:00:00Z"


def _usable(entry: Mapping[str, Any]) -> bool:
    lat, lon = entry.get("lat"), entry.get("lon")
    return (
        bool(_IATA.fullmatch(str(entry.get("iata", ""))))
        and bool(str(entry.get("name", "")).strip())
        and bool(str(entry.get("country", "")).strip())
        and bool(str(entry.get("tz", "")).strip())
        and isinstance(lat, int | float)
        and isinstance(lon, int | float)
        and math.isfinite(lat)
        and math.isfinite(lon)
        and -90 <= lat <= 90
        and -180 <= lon <= 180
    )


def airports() -> list[Airport]:
    """Every airportsdata entry with a 3-letter IATA code, a name, coordinates, a country and a time zone."""
    ranks = major_airport_ranks()
    sequence, updated_at = _release()
    found = [
        Airport(
            code=entry["iata"],
            name=entry["name"].strip(),
            city=(entry.get("city") or "").strip(),
            country=entry["country"].strip(),
            lat=float(entry["lat"]),
            lon=float(entry["lon"]),
            time_zone=entry["tz"].strip(),
            icao=(entry.get("icao") or "").strip(),
            subdivision=(entry.get("subd") or "").strip(),
            elevation_ft=float(entry.get("elevation") or 0.0),
            rank=ranks.get(entry["iata"], UNRANKED),
            sequence=sequence,
            updated_at=updated_at,
        )
        for entry in airportsdata.load("IATA").values()
        if _usable(entry)
    ]
    return sorted(found, key=lambda airport: airport.code)


def destination_items(airports: Iterable[Airport]) -> Iterator[dict[str, Any]]:
    """The DynamoDB items (AttributeValue form) of ``airports``: per airport its code item, then its term items."""
    for airport in airports:
        yield from airport_items(airport)


if __name__ == "__main__":
    seeded = airports()
    count = sum(1 for _ in destination_items(seeded))
    print(f"{len(seeded)} airports → {count} items")  # noqa: T201 - a command-line report
