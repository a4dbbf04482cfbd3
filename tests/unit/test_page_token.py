"""Page tokens are opaque and tamper-evident."""

from __future__ import annotations

import base64

import pytest

from core.errors import InvalidParameter
from core.page_token import PageTokens

TOKENS = PageTokens(b"secret-a")
QUERY = "flights|JFK-LHR|2026-12-01|1||price||20"


def test_round_trip() -> None:
    assert TOKENS.decode(TOKENS.encode(40, QUERY), QUERY) == 40


def test_every_altered_character_is_detected() -> None:
    token = TOKENS.encode(40, QUERY)
    for position in range(len(token)):
        replacement = "A" if token[position] != "A" else "B"
        altered = token[:position] + replacement + token[position + 1 :]
        with pytest.raises(InvalidParameter):
            TOKENS.decode(altered, QUERY)


def test_token_signed_with_another_key_is_rejected() -> None:
    with pytest.raises(InvalidParameter):
        TOKENS.decode(PageTokens(b"secret-b").encode(40, QUERY), QUERY)


def test_token_of_another_query_is_rejected() -> None:
    with pytest.raises(InvalidParameter):
        TOKENS.decode(TOKENS.encode(40, QUERY), QUERY.replace("JFK", "EWR"))


@pytest.mark.parametrize(
    "garbage", ["", "!!!!", "a" * 65, "é" * 10, base64.urlsafe_b64encode(b"\x01" * 29).decode(), "AAAA"]
)
def test_garbage_is_rejected(garbage: str) -> None:
    with pytest.raises(InvalidParameter):
        TOKENS.decode(garbage, QUERY)
