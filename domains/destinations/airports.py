"""Airports: the destination record, its searchable text and its DynamoDB items.

Table layout (``DestinationsTable``, keys ``pk``/``sk``, read only by key, never scanned):

* one **code item** per airport, with every field: ``pk = "CODE#CDG"``, ``sk = "AIRPORT"``;
* one **term item** per searchable word, grouped by the word's first two letters:
  ``pk = "PREFIX#pa"``, ``sk = "paris#CDG"``, carrying what a result needs (code, name, city,
  country, lat, lon, time zone) and the airport's ``rank``.

A term is one normalised word of the city or the airport name, or the lower-case code. Whole
words rather than whole names are indexed so that "heathrow", "orly" or "kennedy" find their
airport although the name does not start with them. ``airport``, in nearly every name, is not
indexed (it would put ~7,400 items into one partition for no useful answer); it still counts as
a word when a query is matched. Every item carries ``updated_at`` and ``sequence``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

Item = dict[str, dict[str, Any]]  # low-level AttributeValue form

UNRANKED = 10_000  # the rank of every airport not in major_airports.txt
CODE_SORT_KEY = "AIRPORT"
NOISE_WORDS = ("airport",)  # searchable, but never indexed as a term
MIN_TERM_LENGTH = 2  # a search reads the partition of a word's first two letters
MAJOR_AIRPORTS_FILE = Path(__file__).with_name("major_airports.txt")

# Apostrophes join (O'Hare → ohare); they are removed before NFKD turns ´ into a space + mark.
_APOSTROPHES = str.maketrans("", "", "'’ʼ‘`´")
# Letters NFKD does not decompose into a base letter and a mark.
_LETTERS = str.maketrans(
    {"ø": "o", "đ": "d", "ð": "d", "ł": "l", "ı": "i", "ħ": "h", "ŧ": "t", "æ": "ae", "œ": "oe", "þ": "th"}
)
_WORD = re.compile(r"[^\W_]+")
_NO_TEXT, _NO_NUMBER = {"S": ""}, {"N": "0"}  # fields a term item does not carry


@dataclass(frozen=True, slots=True)
class Airport:
    code: str  # IATA, upper case
    name: str
    city: str  # may be empty: some airports have no city in the source data
    country: str  # ISO 3166-1 alpha-2
    lat: float
    lon: float
    time_zone: str  # IANA, e.g. Europe/Paris
    icao: str = ""
    subdivision: str = ""
    elevation_ft: float = 0.0
    rank: int = UNRANKED  # 1 = busiest passenger airport
    sequence: int = 0
    updated_at: str = ""


def normalise(text: str) -> str:
    """The case- and accent-free form of ``text``: ``"São Paulo"`` → ``"sao paulo"``, ``"Zürich"`` → ``"zurich"``."""
    if text.isascii():  # most names: no accents to strip (a fast path; the result is the same)
        return text.replace("'", "").replace("`", "").lower()
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES).casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char)).translate(_LETTERS)


def words(text: str) -> list[str]:
    """The normalised words of ``text``; anything but letters and digits separates words."""
    return _WORD.findall(normalise(text))


def searchable_words(airport: Airport) -> tuple[str, ...]:
    """Every word a query word may be a prefix of: city, airport name and code."""
    return (*words(airport.city), *words(airport.name), airport.code.lower())


def terms(airport: Airport) -> list[str]:
    """The indexed terms of an airport: its distinct searchable words but noise and single letters, and its code."""
    found = dict.fromkeys(
        word for word in searchable_words(airport) if len(word) >= MIN_TERM_LENGTH and word not in NOISE_WORDS
    )
    found[airport.code.lower()] = None
    return list(found)


def prefix_partition(word: str) -> str:
    """The partition of the term items whose term starts like ``word`` (its first two letters)."""
    return f"PREFIX#{word[:MIN_TERM_LENGTH]}"


def code_partition(code: str) -> str:
    return f"CODE#{code}"


def search_scope(word: str) -> str:
    """The cache scope of searches that read the term partition of ``word``."""
    return word[:MIN_TERM_LENGTH]


def code_scope(code: str) -> str:
    """The cache scope of lookups of one code."""
    return f"code:{code}"


def invalidation_scopes(airport: Airport) -> set[str]:
    """The cache scopes whose results may show this airport: invalidate them (before and after) on a change."""
    return {search_scope(term) for term in terms(airport)} | {code_scope(airport.code)}


@lru_cache(maxsize=1)
def major_airport_ranks() -> dict[str, int]:
    """Code → rank (1 = busiest) from ``major_airports.txt``."""
    codes = [
        line.strip()
        for line in MAJOR_AIRPORTS_FILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {code: rank for rank, code in enumerate(codes, start=1)}


def _number(value: float) -> str:
    # Plain notation: DynamoDB numbers are decimal strings; repr() would give 1e-05 for tiny values.
    return format(Decimal(repr(value)), "f")


def _stamp(airport: Airport) -> str:
    return airport.updated_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _result_fields(airport: Airport, updated_at: str) -> Item:
    return {
        "code": {"S": airport.code},
        "name": {"S": airport.name},
        "city": {"S": airport.city},
        "country": {"S": airport.country},
        "lat": {"N": _number(airport.lat)},
        "lon": {"N": _number(airport.lon)},
        "time_zone": {"S": airport.time_zone},
        "rank": {"N": str(airport.rank)},
        "sequence": {"N": str(airport.sequence)},
        "updated_at": {"S": updated_at},
    }


def code_item(airport: Airport) -> Item:
    """The code item of an airport: every field, keyed by code."""
    return {
        "pk": {"S": code_partition(airport.code)},
        "sk": {"S": CODE_SORT_KEY},
        **_result_fields(airport, _stamp(airport)),
        "icao": {"S": airport.icao},
        "subdivision": {"S": airport.subdivision},
        "elevation_ft": {"N": _number(airport.elevation_ft)},
    }


def term_items(airport: Airport) -> list[Item]:
    """One item per term, in the partition of the term's first two letters."""
    updated_at = _stamp(airport)
    return [
        {
            "pk": {"S": prefix_partition(term)},
            "sk": {"S": f"{term}#{airport.code}"},
            **_result_fields(airport, updated_at),
        }
        for term in terms(airport)
    ]


def airport_items(airport: Airport) -> list[Item]:
    """Every item of an airport: its code item, then its term items."""
    return [code_item(airport), *term_items(airport)]


def airport_from_item(item: Item) -> Airport:
    """The airport of a code item (every field) or of a term item (the fields of a result)."""
    return Airport(
        code=item["code"]["S"],
        name=item["name"]["S"],
        city=item["city"]["S"],
        country=item["country"]["S"],
        lat=float(item["lat"]["N"]),
        lon=float(item["lon"]["N"]),
        time_zone=item["time_zone"]["S"],
        icao=item.get("icao", _NO_TEXT)["S"],
        subdivision=item.get("subdivision", _NO_TEXT)["S"],
        elevation_ft=float(item.get("elevation_ft", _NO_NUMBER)["N"]),
        rank=int(item["rank"]["N"]),
        sequence=int(item["sequence"]["N"]),
        updated_at=item["updated_at"]["S"],
    )
