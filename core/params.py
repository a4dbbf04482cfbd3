"""Strict readers of query-string parameters, shared by every search domain.

Each reader names the parameter in the :class:`InvalidParameter` it raises, accepts ASCII only
and bounds every number, so hostile input becomes a 400 with a reason, never a 5xx.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from core.errors import InvalidParameter

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_IATA = re.compile(r"[A-Z]{3}")
_WHOLE = re.compile(r"[0-9]{1,3}")
_AMOUNT = re.compile(r"[0-9]{1,7}(\.[0-9]{1,2})?")


def text(params: Mapping[str, str], name: str) -> str | None:
    """The raw value, None when absent; an empty value is an error."""
    value = params.get(name)
    if value is None:
        return None
    if value == "":
        raise InvalidParameter(name, "must not be empty")
    return value


def iata_code(params: Mapping[str, str], name: str, kind: str, example: str) -> str:
    """A required 3-letter IATA code (``kind``: "airport", "city or airport"); lower case is upper-cased."""
    value = text(params, name)
    if value is None:
        raise InvalidParameter(name, f"is required (a 3-letter IATA {kind} code)")
    code = value.upper() if value.isascii() else ""
    if not _IATA.fullmatch(code):
        raise InvalidParameter(name, f"must be a 3-letter IATA {kind} code such as {example}")
    return code


def calendar_date(params: Mapping[str, str], name: str) -> date:
    """A required real calendar date written YYYY-MM-DD."""
    value = text(params, name)
    if value is None:
        raise InvalidParameter(name, "is required (YYYY-MM-DD)")
    if not value.isascii() or not _DATE.fullmatch(value):
        raise InvalidParameter(name, "must be a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(name, "is not a real calendar date") from None


def whole_number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An optional integer in ``[low, high]`` (at most three digits)."""
    if name not in params:
        return default  # the common case, without a call
    value = text(params, name)
    if value is None:
        return default
    if not value.isascii() or not _WHOLE.fullmatch(value) or not low <= int(value) <= high:
        raise InvalidParameter(name, f"must be a whole number from {low} to {high}")
    return int(value)


def choice(params: Mapping[str, str], name: str, options: tuple[str, ...], default: str) -> str:
    """An optional value from ``options`` (case-insensitive)."""
    if name not in params:
        return default
    value = text(params, name)
    if value is None:
        return default
    if not value.isascii() or value.lower() not in options:
        raise InvalidParameter(name, f"must be one of {', '.join(options)}")
    return value.lower()


def amount(params: Mapping[str, str], name: str) -> Decimal | None:
    """An optional positive money amount with at most two decimals."""
    if name not in params:
        return None
    value = text(params, name)
    if value is None:
        return None
    if not value.isascii() or not _AMOUNT.fullmatch(value) or Decimal(value) <= 0:
        raise InvalidParameter(name, "must be a positive amount such as 450 or 450.50")
    return Decimal(value)


def reject_unknown(params: Mapping[str, str], known: frozenset[str]) -> None:
    """Strictness: a parameter the endpoint does not define is an error, not silently ignored."""
    for name in params:
        if name not in known:
            raise InvalidParameter(name[:40], "is not a parameter of this endpoint")
