"""Parse and validate a hotel search request into a canonical :class:`HotelQuery`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

from core import params as p
from core.errors import InvalidParameter
from core.page_token import PageTokens

SORTS = ("price", "rating")
ANY_STARS = 0
MAX_DAYS_AHEAD = 365
MAX_NIGHTS = 30
PARAMETERS = frozenset(
    {"city", "check_in", "check_out", "guests", "min_stars", "max_price", "sort", "limit", "page_token"}
)


@dataclass(frozen=True, slots=True)
class HotelQuery:
    city: str
    check_in: str  # YYYY-MM-DD, the first night
    check_out: str  # YYYY-MM-DD, the morning after the last night
    guests: int = 1
    min_stars: int = ANY_STARS
    sort: str = "price"
    limit: int = 20
    max_price: Decimal | None = None  # of the whole stay
    offset: int = 0

    @property
    def nights(self) -> list[str]:
        """The nights of the stay: check_in … check_out − 1 day."""
        first, end = date.fromisoformat(self.check_in), date.fromisoformat(self.check_out)
        return [(first + timedelta(days=n)).isoformat() for n in range((end - first).days)]

    def selection(self) -> str:
        """Everything that selects and orders results, without the page: what a page token is bound to."""
        max_price = "" if self.max_price is None else f"{self.max_price:.2f}"
        return (
            f"hotels|{self.city}|{self.check_in}|{self.check_out}|{self.guests}|{self.min_stars}"
            f"|{self.sort}|{max_price}|{self.limit}"
        )

    def canonical(self) -> str:
        """One string per distinct result page: the input of the cache key."""
        return f"{self.selection()}|{self.offset}"


def city_code(params: Mapping[str, str], name: str) -> str:
    return p.iata_code(params, name, "city or airport", "PAR")


def parse_hotel_query(params: Mapping[str, str], today: date, tokens: PageTokens) -> HotelQuery:
    """A validated query; :class:`InvalidParameter` naming the first bad parameter otherwise."""
    p.reject_unknown(params, PARAMETERS)
    city = city_code(params, "city")
    check_in = p.calendar_date(params, "check_in")
    if check_in < today:
        raise InvalidParameter("check_in", "must not be in the past")
    if check_in > today + timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidParameter("check_in", f"must be at most {MAX_DAYS_AHEAD} days ahead")
    check_out = p.calendar_date(params, "check_out")
    if check_out <= check_in:
        raise InvalidParameter("check_out", "must be after check_in")
    if (check_out - check_in).days > MAX_NIGHTS:
        raise InvalidParameter("check_out", f"must be at most {MAX_NIGHTS} nights after check_in")
    query = HotelQuery(
        city=city,
        check_in=check_in.isoformat(),
        check_out=check_out.isoformat(),
        guests=p.whole_number(params, "guests", 1, 1, 9),
        min_stars=p.whole_number(params, "min_stars", ANY_STARS, 1, 5),
        sort=p.choice(params, "sort", SORTS, "price"),
        limit=p.whole_number(params, "limit", 20, 1, 50),
        max_price=p.amount(params, "max_price"),
    )
    token = p.text(params, "page_token")
    if token is None:
        return query
    return replace(query, offset=tokens.decode(token, query.selection()))
