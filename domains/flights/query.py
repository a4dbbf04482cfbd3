"""Parse and validate a flight search request into a canonical :class:`FlightQuery`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

from core import params as p
from core.errors import InvalidParameter
from core.page_token import PageTokens
from domains.flights.offers import CABINS, route_key

SORTS = ("price", "duration", "departure")
ANY_CABIN = ""
MAX_DAYS_AHEAD = 365
PARAMETERS = frozenset({"origin", "destination", "date", "adults", "cabin", "sort", "limit", "max_price", "page_token"})

_MAX_AHEAD = timedelta(days=MAX_DAYS_AHEAD)


@dataclass(frozen=True, slots=True)
class FlightQuery:
    origin: str
    destination: str
    date: str
    adults: int = 1
    cabin: str = ANY_CABIN
    sort: str = "price"
    limit: int = 20
    max_price: Decimal | None = None
    offset: int = 0

    @property
    def route(self) -> str:
        return route_key(self.origin, self.destination)

    def selection(self) -> str:
        """Everything that selects and orders results, without the page: what a page token is bound to."""
        max_price = "" if self.max_price is None else f"{self.max_price:.2f}"
        return f"flights|{self.route}|{self.date}|{self.adults}|{self.cabin}|{self.sort}|{max_price}|{self.limit}"

    def canonical(self) -> str:
        """One string per distinct result page: the input of the cache key."""
        return f"{self.selection()}|{self.offset}"


def airport(params: Mapping[str, str], name: str) -> str:
    return p.iata_code(params, name, "airport", "JFK")


def parse_flight_query(params: Mapping[str, str], today: date, tokens: PageTokens) -> FlightQuery:
    """A validated query; :class:`InvalidParameter` naming the first bad parameter otherwise."""
    p.reject_unknown(params, PARAMETERS)
    origin = airport(params, "origin")
    destination = airport(params, "destination")
    if origin == destination:
        raise InvalidParameter("destination", "must differ from origin")
    day = p.calendar_date(params, "date")
    if day < today:
        raise InvalidParameter("date", "must not be in the past")
    if day > today + _MAX_AHEAD:
        raise InvalidParameter("date", f"must be at most {MAX_DAYS_AHEAD} days ahead")
    query = FlightQuery(
        origin=origin,
        destination=destination,
        date=day.isoformat(),
        adults=p.whole_number(params, "adults", 1, 1, 9),
        cabin=p.choice(params, "cabin", CABINS, ANY_CABIN),
        sort=p.choice(params, "sort", SORTS, "price"),
        limit=p.whole_number(params, "limit", 20, 1, 50),
        max_price=p.amount(params, "max_price"),
    )
    token = p.text(params, "page_token")
    if token is None:
        return query
    return replace(query, offset=tokens.decode(token, query.selection()))
