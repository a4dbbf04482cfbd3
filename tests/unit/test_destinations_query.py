"""Destination requests: normalisation, strict validation with a reason that names the parameter."""

from __future__ import annotations

import pytest

from core.errors import InvalidParameter
from domains.destinations.airports import normalise, words
from domains.destinations.query import DestinationQuery, parse_code, parse_destination_query


def parse(**params: str) -> DestinationQuery:
    return parse_destination_query(params)


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("São Paulo", "sao paulo"),
        ("ZÜRICH", "zurich"),
        ("Zu\u0308rich", "zurich"),  # decomposed ü
        ("Kraków", "krakow"),
        ("Łódź", "lodz"),
        ("Ærøskøbing", "aeroskobing"),
        ("Straße", "strasse"),
        ("İstanbul", "istanbul"),
        ("Reykjavík", "reykjavik"),
        ("ＰＡＲＩＳ", "paris"),  # full-width forms fold to ASCII
        ("Chicago O'Hare", "chicago ohare"),
        ("O’Hare", "ohare"),
    ],
)
def test_normalisation_ignores_case_accents_and_apostrophes(text: str, normalised: str) -> None:
    assert normalise(text) == normalised


def test_words_split_on_anything_but_letters_and_digits() -> None:
    assert words("Dallas/Fort Worth Int'l (DFW)") == ["dallas", "fort", "worth", "intl", "dfw"]
    assert words("St. John's  Paris-Orly") == ["st", "johns", "paris", "orly"]
    assert words("") == []


def test_query_is_trimmed_normalised_and_gets_the_default_limit() -> None:
    assert parse(q="  São  Paulo ") == DestinationQuery(("sao", "paulo"), limit=10)
    assert parse(q="ZUR", limit="20") == DestinationQuery(("zur",), limit=20)
    assert parse(q="zu\u0308r").words == ("zur",)  # an accent typed as a combining mark is one letter
    assert parse(q="o’hare").words == ("ohare",)
    assert parse(q="x" * 50).words == ("x" * 50,)
    assert parse(q="a paris", limit="1").limit == 1


def test_differently_typed_queries_share_one_cache_entry() -> None:
    assert parse(q="São Paulo").canonical() == parse(q="  sao   PAULO").canonical()
    assert parse(q="par").canonical() != parse(q="par", limit="5").canonical()
    assert parse(q="sao paulo").canonical() != parse(q="paulo sao").canonical()  # order ranks differently


def test_anchor_is_the_longest_word_a_noise_word_cannot_start_and_sets_the_scope() -> None:
    assert parse(q="a paris").anchor == "paris" and parse(q="a paris").scope == "pa"
    assert parse(q="de gaulle").anchor == "gaulle" and parse(q="de gaulle").scope == "ga"
    assert parse(q="airport heathrow").anchor == "heathrow"  # "airport" terms are not indexed
    assert parse(q="air").anchor == "air"  # nothing better: the index answers for non-noise words
    assert parse(q="sao paulo").anchor == "paulo"  # equally long: the first


HOSTILE = [
    ({}, "q"),
    ({"q": ""}, "q"),
    ({"q": "p"}, "q"),
    ({"q": "   p   "}, "q"),
    ({"q": "      "}, "q"),
    ({"q": "a" * 51}, "q"),
    ({"q": "a" * 49 + " b"}, "q"),
    ({"q": "' OR 1=1 --"}, "q"),
    ({"q": "par\x00"}, "q"),  # %00 as API Gateway decodes it
    ({"q": "par%00"}, "q"),  # and as sent twice-encoded
    ({"q": "par;DROP TABLE destinations"}, "q"),
    ({"q": '{"$gt": ""}'}, "q"),
    ({"q": "<script>alert(1)</script>"}, "q"),
    ({"q": "pa🙂"}, "q"),
    ({"q": "✈✈"}, "q"),
    ({"q": "par\n"}, "q"),
    ({"q": "\tpar"}, "q"),
    ({"q": "pa*"}, "q"),
    ({"q": "pa_"}, "q"),
    ({"q": "../../etc/passwd"}, "q"),
    ({"q": "--"}, "q"),  # no word at all
    ({"q": "a b c"}, "q"),  # no word of two letters
    ({"q": "'.'"}, "q"),
    ({"q": "pa\u200b"}, "q"),  # zero-width space
    ({"q": "pa\u202eris"}, "q"),  # right-to-left override
    ({"q": "pa\u0301\u0301\u0301"}, "q"),  # stacked combining marks ("zalgo")
    ({"q": "PREFIX#pa"}, "q"),
    ({"q": "par\\"}, "q"),
    ({"q": "${jndi:ldap://x}"}, "q"),
    ({"q": "par", "limit": "0"}, "limit"),
    ({"q": "par", "limit": "21"}, "limit"),
    ({"q": "par", "limit": "-1"}, "limit"),
    ({"q": "par", "limit": "1e1"}, "limit"),
    ({"q": "par", "limit": "10.0"}, "limit"),
    ({"q": "par", "limit": "１０"}, "limit"),
    ({"q": "par", "limit": ""}, "limit"),
    ({"q": "par", "limit": "99999999999999999999"}, "limit"),
    ({"Q": "par"}, "Q"),  # parameter names are exact
    ({"q": "par", "q ": "par"}, "q "),
    ({"q[]": "par"}, "q[]"),
    ({"q": "par", "Limit": "5"}, "Limit"),
    ({"query": "par"}, "query"),
]


@pytest.mark.parametrize(("params", "parameter"), HOSTILE)
def test_hostile_search_input_is_rejected_with_the_parameter_named(params: dict[str, str], parameter: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        parse_destination_query(params)
    assert raised.value.parameter == parameter
    assert raised.value.message.startswith(f"{parameter}: ")


def test_lookup_code_is_upper_cased() -> None:
    assert parse_code({"code": "cdg"}, {}) == "CDG"
    assert parse_code({"code": "JFK"}, {}) == "JFK"


@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        ({}, {}, "code"),
        ({"code": ""}, {}, "code"),
        ({"code": "CD"}, {}, "code"),
        ({"code": "CDGX"}, {}, "code"),
        ({"code": "C1G"}, {}, "code"),
        ({"code": "ÇDG"}, {}, "code"),
        ({"code": "ﬀa"}, {}, "code"),  # upper-cases to FFA: non-ASCII is refused first
        ({"code": "' OR '1'='1"}, {}, "code"),
        ({"code": "CDG"}, {"q": "par"}, "q"),  # a lookup takes no query parameters
    ],
)
def test_malformed_lookup_is_rejected_with_the_parameter_named(
    path: dict[str, str], query: dict[str, str], parameter: str
) -> None:
    with pytest.raises(InvalidParameter) as raised:
        parse_code(path, query)
    assert raised.value.parameter == parameter
