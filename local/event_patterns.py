"""EventBridge event patterns, as the local pipes and SQS event sources filter with them.

Covers what filter criteria in this project use: exact values (``{"eventName": ["INSERT"]}``),
nested fields, and the ``prefix``, ``exists`` and ``anything-but`` operators. Any other operator
is refused when the stack starts (:class:`UnsupportedPatternError`), never silently matched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_MISSING = object()
_OPERATORS = frozenset({"prefix", "exists", "anything-but"})


class UnsupportedPatternError(ValueError):
    """A pattern uses an operator the local stack does not evaluate."""


def parse_pattern(pattern: str | Mapping[str, Any]) -> dict[str, Any]:
    """A pattern (JSON text or already parsed), checked for operators the local stack understands."""
    document = json.loads(pattern) if isinstance(pattern, str) else dict(pattern)
    if not isinstance(document, dict):
        raise UnsupportedPatternError(f"an event pattern must be a JSON object, got {document!r}")
    _check(document, "")
    return document


def _check(pattern: Mapping[str, Any], path: str) -> None:
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            _check(value, where)
        elif isinstance(value, list):
            for option in value:
                if isinstance(option, dict) and (len(option) != 1 or next(iter(option)) not in _OPERATORS):
                    raise UnsupportedPatternError(f"{where}: operator {option!r} is not emulated locally")
        else:
            raise UnsupportedPatternError(f"{where}: pattern values must be lists or objects, got {value!r}")


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Whether ``event`` matches ``pattern`` (every field of the pattern must match)."""
    for key, expected in pattern.items():
        actual = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(expected, dict):
            if not matches(expected, actual):
                return False
        elif not any(_matches_option(option, actual) for option in expected):
            return False
    return True


def _matches_option(option: Any, actual: Any) -> bool:
    if isinstance(option, dict):
        ((operator, argument),) = option.items()
        if operator == "exists":
            return (actual is not _MISSING) == bool(argument)
        if actual is _MISSING:
            return False
        if operator == "prefix":
            return isinstance(actual, str) and actual.startswith(str(argument))
        excluded = argument if isinstance(argument, list) else [argument]  # anything-but
        values = actual if isinstance(actual, list) else [actual]
        return not any(value in excluded for value in values)
    if actual is _MISSING:
        return False
    # A list in the event matches when any of its elements does.
    values = actual if isinstance(actual, list) else [actual]
    return option in values
