"""Hostile traffic at the front door: bad bodies, hostile parameters, forged page tokens, keys, bursts.

Everything goes through the gateway built from template.yaml, with the real handlers behind it.
What a client must see is a 4xx in the one error shape, never a 5xx; what the platform must see
is nothing: no event on the bus, no raw input in a cache key.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any
from urllib.parse import quote

import pytest
import redis
from werkzeug.test import Client, TestResponse

from local.gateway import Gateway
from local.stack import LocalStack
from tests.faults.harness import flight_event

pytestmark = pytest.mark.integration

FLIGHTS, HOTELS, DESTINATIONS, LOOKUP, HEALTH = (
    "/v1/flights/search",
    "/v1/hotels/search",
    "/v1/destinations/search",
    "/v1/destinations/{code}",
    "/v1/health",
)
MAX_PARTNER_BODY = 256 * 1024
PARTNER = "qa-partner"


def error_of(response: TestResponse, status: int) -> dict[str, str]:
    """The one error shape, as JSON, with the status expected."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


@pytest.fixture
def bus_capture(stack: LocalStack, aws: Callable[[str], Any]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """A queue behind a rule that takes every partner event put on the bus; the reader drains it."""
    sqs, events = aws("sqs"), aws("events")
    bus = stack.environment["EVENT_BUS_NAME"]
    name = f"fault-capture-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["travel-search.partners"]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "capture", "Arn": arn}])

    def read() -> list[dict[str, Any]]:
        found = []
        for _ in range(20):  # bounded: at most 200 messages
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []
            if not messages:
                break
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    yield read
    events.remove_targets(Rule=name, EventBusName=bus, Ids=["capture"])
    events.delete_rule(Name=name, EventBusName=bus)
    sqs.delete_queue(QueueUrl=url)


# --- 11. oversized and malformed pushes --------------------------------------------------------


def valid_push(day: date) -> dict[str, Any]:
    return {"events": [flight_event("QPA", "QPB", day, [("QP101", "economy", "99.00")], 1)]}


def padded_to(size: int, day: date) -> bytes:
    """A push of exactly ``size`` bytes: valid events, padded with spaces JSON ignores."""
    body = json.dumps(valid_push(day)).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_oversized_and_malformed_pushes_are_4xx_json_and_nothing_reaches_the_bus(
    client: Client,
    keys: dict[str, dict[str, str]],
    bus_capture: Callable[[], list[dict[str, Any]]],
    travel_day: date,
) -> None:
    path = f"/v1/providers/{PARTNER}/events"
    headers = {**keys["partner"], "content-type": "application/json"}
    post = lambda data, **extra: client.post(path, data=data, headers={**headers, **extra})  # noqa: E731
    # Over the 256 KB the function accepts, by one byte → 413; also when not UTF-8 (it arrives base64-encoded)
    oversized = padded_to(MAX_PARTNER_BODY + 1, travel_day)
    assert error_of(post(oversized), 413)["code"] == "payload_too_large"
    assert error_of(post(oversized[:-2] + b"\xff}"), 413)["code"] == "payload_too_large"
    # Over API Gateway's 10 MB: refused by the gateway itself, still in the one error shape
    assert error_of(post(b" " * (10 * 1024 * 1024 + 1)), 413)
    # Not JSON, in every way a body can fail to be JSON → 400 naming the body
    malformed = [
        b'{"events": [',
        b"",
        b"null",
        b"[]",
        b'"events"',
        b'{"events": {}}',
        b'{"events": []}',
        b'{"events": [' + b",".join([b"{}"] * 101) + b"]}",
        b"\xff\xfe\x00{not utf-8",
        b'{"events": [NaN]}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"events": [1]}' + b"trailing",
    ]
    for body in malformed:
        assert error_of(post(body), 400)["code"] == "invalid_request", body[:40]
    # Then none of it reached the bus
    assert bus_capture() == []
    # While a push of exactly 256 KB is taken and put on the bus (so the silence above means something)
    accepted = post(padded_to(MAX_PARTNER_BODY, travel_day))
    assert (accepted.status_code, accepted.get_json()) == (202, {"accepted": 1, "rejected": []})
    assert [event["detail-type"] for event in bus_capture()] == ["FlightOffersUpdated"]


# --- 12. hostile query parameters ----------------------------------------------------------------

HOSTILE_VALUES = [
    "' OR '1'='1",
    "'; DROP TABLE flights; --",
    "1; WAITFOR DELAY '0:0:5'--",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "${jndi:ldap://127.0.0.1/x}",
    "{{7*7}}",
    '{"$gt": ""}',
    "*",
    "%",
    "\\",
    "\x00",
    "JFK\r\nX-Injected: 1",
    "ＪＦＫ",  # fullwidth letters
    "\u202eKFJ",  # right-to-left override
    "\ufeffJFK",
    "😀✈",
    "İstanbul",
    "9" * 400,
    "-1",
    "-0",
    "1e309",
    "NaN",
    "Infinity",
    "0x10",
    "1.5",
    "99999999999999999999999999",
    "",
    " ",
    "a" * 5000,
]


# What kind of value each parameter takes, and the hostile-looking values that are nevertheless valid
# for that kind (so a 200 is the right answer): "NaN" is three letters, "1.5" an amount, "İstanbul" a
# word a traveller may type.
KINDS = {
    "origin": "code", "destination": "code", "city": "code", "date": "date", "check_in": "date",
    "check_out": "date", "adults": "count", "guests": "count", "min_stars": "count", "limit": "count",
    "cabin": "choice", "sort": "choice", "max_price": "amount", "q": "text", "page_token": "token",
}  # fmt: skip
VALID_FOR_KIND = {
    "code": {"NaN"},
    "amount": {"1.5"},
    "text": {"ＪＦＫ", "İstanbul", "1e309", "NaN", "Infinity", "0x10", "99999999999999999999999999"},
}


def hostile_cases(valid: dict[str, str]) -> list[tuple[str, str, int]]:
    """About 30 requests per endpoint: (label, query string, expected status).

    Each hostile value in turn goes into one of the endpoint's parameters (the others stay valid);
    then a parameter given twice, one given twice with an empty value, an unknown one, a huge one.
    """
    names = list(valid)
    cases = []
    for index, value in enumerate(HOSTILE_VALUES):
        name = names[index % len(names)]
        status = 200 if value in VALID_FOR_KIND.get(KINDS[name], set()) else 400
        cases.append((f"{name}={value!r}"[:60], _encode({**valid, name: value}), status))
    first = names[0]
    cases += [
        ("repeated", _encode(valid) + f"&{first}={quote(valid[first])}", 400),
        ("repeated, one empty", _encode(valid) + f"&{first}=", 400),
        ("unknown", _encode(valid) + "&debug=true", 400),
        ("unknown, huge name", _encode(valid) + "&" + "x" * 3000 + "=1", 400),
    ]
    return cases


def _encode(params: dict[str, str]) -> str:
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params.items())


@pytest.fixture(scope="module")
def valid_queries(stack: LocalStack) -> dict[str, dict[str, str]]:
    hotels = stack.examples["hotels"]
    return {
        FLIGHTS: {**stack.examples["flights"], "adults": "1", "cabin": "economy", "max_price": "900", "limit": "5"},
        HOTELS: {**hotels, "min_stars": "3", "sort": "rating", "limit": "5"},
        DESTINATIONS: {"q": "par", "limit": "5"},
    }


@pytest.mark.parametrize("route", [FLIGHTS, HOTELS, DESTINATIONS])
def test_hostile_query_parameters_are_400_json_never_5xx(
    route: str, client: Client, keys: dict[str, dict[str, str]], valid_queries: dict[str, dict[str, str]]
) -> None:
    valid = valid_queries[route]
    assert client.get(f"{route}?{_encode(valid)}", headers=keys["basic"]).status_code == 200
    cases = hostile_cases(valid)
    assert sum(status == 400 for _, _, status in cases) >= 30
    for label, query, status in cases:
        response = client.get(f"{route}?{query}", headers=keys["basic"])
        assert response.status_code < 500, (label, response.get_data(as_text=True)[:200])
        assert response.status_code == status, (label, response.get_data(as_text=True)[:200])
        if status == 400:
            assert error_of(response, 400)["code"] in ("invalid_parameter", "bad_request"), label
            assert response.headers["X-Cache"] == "BYPASS", label


LOOKUP_VALUES = [
    *(value for value in HOSTILE_VALUES if value.strip() and "/" not in value),
    "CD",
    "CDGX",
    "C D",
    "ÇDG",
    "cd1",
    "%2e%2e",
]


def test_hostile_destination_codes_and_lookup_parameters_are_400_json_never_5xx(
    client: Client, keys: dict[str, dict[str, str]]
) -> None:
    assert client.get("/v1/destinations/cdg", headers=keys["basic"]).status_code == 200
    assert len(LOOKUP_VALUES) >= 30
    for value in LOOKUP_VALUES:
        response = client.get(f"/v1/destinations/{quote(value, safe='')}", headers=keys["basic"])
        assert response.status_code < 500, (value, response.get_data(as_text=True)[:200])
        if value in VALID_FOR_KIND["code"]:  # well-formed, and no such airport
            assert error_of(response, 404)["code"] == "not_found", value
        else:
            assert error_of(response, 400)["code"] == "invalid_parameter", value
    # A code with a slash in it is another path (no route: 404); the lookup takes no parameters at all
    assert error_of(client.get("/v1/destinations/C%2FG", headers=keys["basic"]), 404)
    for query in ("code=CDG", "q=par", "CDG", "x=" + "9" * 1000):
        assert error_of(client.get(f"/v1/destinations/CDG?{query}", headers=keys["basic"]), 400)
    # A well-formed code nobody has is a 404 in the same shape, not a 5xx
    assert error_of(client.get("/v1/destinations/QQQ", headers=keys["basic"]), 404)["code"] == "not_found"


def test_health_ignores_hostile_parameters(client: Client) -> None:
    for value in HOSTILE_VALUES:
        response = client.get(f"{HEALTH}?x={quote(value, safe='')}&x=2")
        assert (response.status_code, response.get_json()) == (200, {"status": "ok"}), value


# The cache keys the functions may write: a scope made of validated codes (or, for autocomplete, the
# two-letter prefix of a normalised word) and a SHA-256 of the canonical query. Never raw input.
KEY_PATTERNS = [
    re.compile(r"search:\{flights:[A-Z]{3}-[A-Z]{3}\}:[0-9a-f]{64}"),
    re.compile(r"search:\{hotels:[A-Z]{3}\}:[0-9a-f]{64}"),
    re.compile(r"search:\{destinations:(code:[A-Z]{3}|[^\W_]{2})\}:[0-9a-f]{64}"),
    re.compile(r"gen:\{(flights:[A-Z]{3}-[A-Z]{3}|hotels:[A-Z]{3}|destinations:(code:[A-Z]{3}|[^\W_]{2}))\}"),
    re.compile(r"lock:search:\{[^{}]+\}:[0-9a-f]{64}:g[0-9]+"),
]


def test_cache_keys_are_hashes_of_validated_input_never_raw_input(
    client: Client,
    keys: dict[str, dict[str, str]],
    stack_redis: redis.Redis,
    valid_queries: dict[str, dict[str, str]],
) -> None:
    # Given hostile traffic on every search route, and odd but valid input that does reach the cache
    for route, valid in valid_queries.items():
        for _, query, _ in hostile_cases(valid):
            client.get(f"{route}?{query}", headers=keys["basic"])
    odd_but_valid = [
        (DESTINATIONS, {"q": "Zürich"}),
        (DESTINATIONS, {"q": "São Paulo"}),
        (DESTINATIONS, {"q": "o'hare"}),
        (DESTINATIONS, {"q": "東京"}),
        (DESTINATIONS, {"q": "  new   york  "}),
        (FLIGHTS, {**valid_queries[FLIGHTS], "origin": "jfk", "max_price": "0000900.5"}),
        (HOTELS, {**valid_queries[HOTELS], "city": "par", "sort": "RATING"}),
    ]
    for route, params in odd_but_valid:
        assert client.get(f"{route}?{_encode(params)}", headers=keys["basic"]).status_code == 200, params
    # Then every key in Redis has the documented shape, and no raw input appears in any of them
    stored = [key.decode() for key in stack_redis.scan_iter(count=1000)]
    assert {key.split(":", 1)[0] for key in stored} >= {"search", "gen"}
    assert {key.split("{", 1)[1].split(":", 1)[0] for key in stored if key.startswith("search:")} == {
        "flights",
        "hotels",
        "destinations",
    }
    for key in stored:
        assert any(pattern.fullmatch(key) for pattern in KEY_PATTERNS), key
        for value in [*HOSTILE_VALUES, "Zürich", "São", "hare", "york", "0000900.5"]:
            if len(value.strip()) >= 3:
                assert value not in key, (value, key)


# --- 13. tampered page tokens ---------------------------------------------------------------------


def _flip(token: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return token[:index] + alphabet[(alphabet.index(token[index]) + 1) % len(alphabet)] + token[index + 1 :]


@pytest.mark.parametrize("route", [FLIGHTS, HOTELS])
def test_a_tampered_page_token_is_a_400_and_the_genuine_one_pages(
    route: str, client: Client, keys: dict[str, dict[str, str]], stack: LocalStack
) -> None:
    example = stack.examples["flights" if route == FLIGHTS else "hotels"]
    params = {**example, "limit": "1"}
    first = client.get(route, query_string=params, headers=keys["basic"])
    token = first.get_json()["next_page_token"]
    assert token, "the seeded example needs a second page"
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    other_offset = base64.urlsafe_b64encode(raw[:1] + (10**6).to_bytes(4, "big") + raw[5:]).rstrip(b"=").decode()
    other_query = client.get(route, query_string={**example, "limit": "2"}, headers=keys["basic"]).get_json()
    other_route = FLIGHTS if route == HOTELS else HOTELS
    other_example = stack.examples["flights" if other_route == FLIGHTS else "hotels"]
    foreign = client.get(other_route, query_string={**other_example, "limit": "1"}, headers=keys["basic"]).get_json()
    forged = [
        *(_flip(token, index) for index in range(0, len(token), 3)),  # every third character altered
        token[:-1],
        token + "A",
        token[::-1],
        other_offset,  # the offset changed, the MAC kept
        other_query["next_page_token"],  # a genuine token of another query (limit 2)
        foreign["next_page_token"],  # a genuine token of another endpoint
        base64.urlsafe_b64encode(b"\x00" * len(raw)).decode(),
        "A" * 65,
        "%%%",
        "tökén",
        "0",
    ]
    for forgery in forged:
        response = client.get(route, query_string={**params, "page_token": forgery}, headers=keys["basic"])
        assert "page_token" in error_of(response, 400)["message"], forgery
    genuine = client.get(route, query_string={**params, "page_token": token}, headers=keys["basic"])
    assert genuine.status_code == 200
    assert genuine.get_json()["results"] != first.get_json()["results"]


# --- 14. keys and bursts on the partner route ------------------------------------------------------


def test_missing_wrong_or_non_partner_keys_cannot_push_events(
    client: Client,
    keys: dict[str, dict[str, str]],
    bus_capture: Callable[[], list[dict[str, Any]]],
    travel_day: date,
) -> None:
    path = f"/v1/providers/{PARTNER}/events"
    body = json.dumps(valid_push(travel_day))
    partner_key = keys["partner"]["x-api-key"]
    refused = {
        "no key": {},
        "empty key": {"x-api-key": ""},
        "unknown key": {"x-api-key": "k" * 40},
        "partner key with one character changed": {"x-api-key": partner_key[:-1] + chr(ord(partner_key[-1]) ^ 1)},
        "partner key in another header": {"authorization": partner_key},
        "basic key": keys["basic"],
    }
    for label, headers in refused.items():
        response = client.post(path, data=body, headers={**headers, "content-type": "application/json"})
        assert error_of(response, 403)["code"] == "forbidden", label
    # A partner key in the query string is not a key either
    response = client.post(f"{path}?x-api-key={partner_key}", data=body, headers={"content-type": "application/json"})
    assert error_of(response, 403)["code"] == "forbidden"
    assert bus_capture() == []


def test_a_burst_beyond_a_tier_is_throttled_with_a_json_429(stack: LocalStack) -> None:
    # Given the template's gateway with the real clock, and the partner tier's limits from its usage plan
    gateway = Gateway(stack.gateway.intrinsics)
    client = Client(gateway)
    value = gateway.keys_by_tier()["partner"]
    throttle = gateway.api_keys[value].throttle
    assert throttle is not None
    path = f"/v1/providers/{PARTNER}/events"
    headers = {"x-api-key": value, "content-type": "application/json"}
    # When the partner sends cheap requests as fast as it can (malformed bodies: the function answers 400)
    answered, throttled = 0, None
    started = time.monotonic()
    for _ in range(throttle.burst_limit * 5 + 50):  # bounded, whatever the machine's speed
        response = client.post(path, data=b"{", headers=headers)
        if response.status_code == 429:
            throttled = response
            break
        assert response.status_code == 400
        answered += 1
    elapsed = time.monotonic() - started
    # Then the burst is served, and the request over it is a 429 in the one error shape
    assert throttled is not None
    assert throttle.burst_limit <= answered <= throttle.burst_limit + throttle.rate_limit * elapsed + 1
    assert error_of(throttled, 429)["code"] == "throttled"
    assert throttled.headers["X-Cache"] == "BYPASS"
    # And another tier's key is not affected by the partner's burst
    basic = {"x-api-key": gateway.keys_by_tier()["basic"]}
    assert client.get(FLIGHTS, query_string=stack.examples["flights"], headers=basic).status_code == 200
