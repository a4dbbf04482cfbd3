"""What every benchmark stands on: a private redis-server, the flights function's environment, real
proxy events, seeded offers as DynamoDB items, stubbed DynamoDB, silenced stdout.

Nothing here talks to AWS. DynamoDB is stubbed on both sides of a comparison, with responses queued
outside timed regions: the functions' own client (core.dynamodb) gets the response as DynamoDB sends
it, JSON bytes on its transport port (:class:`CannedReplies`), which it must still parse; a botocore
client gets the same response through botocore's ``Stubber``, already parsed. Credentials are fake and
instance metadata lookups are switched off, so a benchmark never leaves 127.0.0.1.
"""

from __future__ import annotations

import collections
import contextlib
import os
import secrets
import statistics
import sys
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import groupby
from typing import Any

import orjson

from core.dynamodb import DynamoDBClient, HttpReply
from domains.flights.offers import FlightOffer, offers_to_items
from local.environ import EnvironmentOverride
from local.redis_server import RedisServer
from local.seed import DEFAULT_SEED, generate_offers

REGION = "us-east-1"
FLIGHTS_TABLE = "bench-flights"
SEARCH_PATH = "/v1/flights/search"
DAYS_AHEAD = 14  # the example query's day, as the local stack's example

# No AWS account: fake credentials (so botocore never walks the credential chain to instance
# metadata) and no X-Ray (tracing is off outside Lambda anyway).
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def function_environment(redis: RedisServer, ttl_seconds: int = 300) -> dict[str, str]:
    """The variables the template gives FlightsSearchFunction, pointed at the private Redis."""
    return {
        **AWS_ENVIRONMENT,
        "FLIGHTS_TABLE": FLIGHTS_TABLE,
        "QUARANTINE_TABLE": "bench-quarantine",
        "CACHE_HOST": redis.host,
        "CACHE_PORT": str(redis.port),
        "CACHE_TLS": "false",
        "CACHE_AUTH": "none",
        "CACHE_TTL_SECONDS": str(ttl_seconds),
        "PAGE_TOKEN_SECRET": secrets.token_urlsafe(32),
        "POWERTOOLS_METRICS_NAMESPACE": "TravelSearch",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


@contextlib.contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` in os.environ for the block, restoring what was there."""
    override = EnvironmentOverride()
    override.apply(variables)
    try:
        yield
    finally:
        override.restore()


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """EMF lines and logs go nowhere while timing (Lambda would hand them to a pipe)."""
    saved = sys.stdout
    with open(os.devnull, "w") as devnull:  # noqa: PTH123
        sys.stdout = devnull
        try:
            yield
        finally:
            sys.stdout = saved


def today() -> date:
    return datetime.now(UTC).date()


def search_day() -> str:
    return (today() + timedelta(days=DAYS_AHEAD)).isoformat()


def proxy_event(
    query: Mapping[str, str], path: str = SEARCH_PATH, method: str = "GET", body: str | None = None
) -> dict[str, Any]:
    """A REST API (payload 1.0) proxy event as API Gateway sends it behind its CloudFront edge."""
    request_id = str(uuid.uuid4())
    epoch_ms = int(datetime.now(UTC).timestamp() * 1000)
    headers = {
        "Accept": "application/json",
        "Accept-Encoding": "gzip, deflate, br",
        "CloudFront-Forwarded-Proto": "https",
        "CloudFront-Is-Desktop-Viewer": "false",
        "CloudFront-Is-Mobile-Viewer": "true",
        "CloudFront-Is-SmartTV-Viewer": "false",
        "CloudFront-Is-Tablet-Viewer": "false",
        "CloudFront-Viewer-ASN": "16509",
        "CloudFront-Viewer-Country": "US",
        "Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "TravelApp/4.12.0 (iPhone; iOS 18.1; Scale/3.00)",
        "Via": "2.0 9f5b3c0d4a1e2f3b4c5d6e7f8a9b0c1d.cloudfront.net (CloudFront)",
        "X-Amz-Cf-Id": "Zq3hQ0mF8dJ2pX1vT7cW9yK4sN6bL5aR0eU3iO8gH2jM1kC7fD4xV==",
        "X-Amzn-Trace-Id": f"Root=1-{epoch_ms // 1000:08x}-{secrets.token_hex(12)}",
        "x-api-key": "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7cDE0f",
        "X-Forwarded-For": "203.0.113.24, 64.252.86.11",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    query_parameters = dict(query) or None
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": query_parameters,
        "multiValueQueryStringParameters": {name: [value] for name, value in query.items()} or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "x1y2z3",
            "resourcePath": path,
            "httpMethod": method,
            "extendedRequestId": "Dl3sKFcDIAMFq7w=",
            "requestTime": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/prod{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "a1b2c3d4e5",
            "requestTimeEpoch": epoch_ms,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": "203.0.113.24",
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": headers["User-Agent"],
                "user": None,
                "apiKey": headers["x-api-key"],
                "apiKeyId": "k1l2m3n4o5",
            },
            "domainName": headers["Host"],
            "apiId": "a1b2c3d4e5",
        },
        "body": body,
        "isBase64Encoded": False,
    }


@dataclass(frozen=True)
class LambdaContext:
    function_name: str = "travel-search-flights-search"
    memory_limit_in_mb: str = "512"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:travel-search-flights-search"
    aws_request_id: str = "5c8f2b1e-3d4a-4b6c-9e7f-1a2b3c4d5e6f"
    log_group_name: str = "/aws/lambda/travel-search-flights-search"
    log_stream_name: str = "2026/11/28/[$LATEST]0123456789abcdef0123456789abcdef"


@lru_cache(maxsize=1)
def seeded_offers() -> tuple[FlightOffer, ...]:
    """The local stack's seed for its first (flagship) routes: every offer of JFK-LHR and LHR-JFK."""
    routes = {("JFK", "LHR"), ("LHR", "JFK")}
    found = []
    # generate_offers yields route by route, flagships first: stop at the first other route.
    for offer in generate_offers(scale=1.0, seed=DEFAULT_SEED, today=today()):
        if (offer.origin, offer.destination) not in routes:
            break
        found.append(offer)
    return tuple(found)


def offers_by_day(origin: str = "JFK", destination: str = "LHR") -> dict[str, list[FlightOffer]]:
    """The seeded offers of one route, grouped by departure day."""
    route = [offer for offer in seeded_offers() if (offer.origin, offer.destination) == (origin, destination)]
    return {day: list(group) for day, group in groupby(sorted(route, key=lambda o: o.date), key=lambda o: o.date)}


def query_response(offers: list[FlightOffer]) -> dict[str, Any]:
    """DynamoDB Query's response (parsed form, as botocore returns it) for these offers."""
    items = offers_to_items(offers)
    return {"Items": items, "Count": len(items), "ScannedCount": len(items)}


def botocore_dynamodb_client() -> Any:
    """A botocore DynamoDB client configured as the functions' client behaves (3 attempts, 1 s/2 s
    timeouts), for a ``Stubber``: the reference a benchmark compares the functions' client against."""
    import botocore.session
    from botocore.config import Config

    config = Config(
        connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 3}, tcp_keepalive=True
    )
    return botocore.session.get_session().create_client("dynamodb", config=config)


class CannedReplies:
    """core.dynamodb's Transport port answering from a queue of responses, as DynamoDB sends them
    (JSON bytes with their CRC32), so the functions' client signs, sends and parses as in Lambda."""

    host = f"dynamodb.{REGION}.amazonaws.com"

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[str, HttpReply]] = collections.deque()

    def add_response(self, operation: str, response: Mapping[str, Any]) -> None:
        body = orjson.dumps(response)
        self._queue.append((operation, HttpReply(200, body, str(zlib.crc32(body)))))

    def post(self, body: bytes, headers: dict[str, str]) -> HttpReply:
        operation, reply = self._queue.popleft()
        sent = headers["x-amz-target"].rpartition(".")[2]
        if sent != operation:
            raise AssertionError(f"expected a {operation} request, the client sent {sent}")
        return reply

    def assert_no_pending_responses(self) -> None:
        if self._queue:
            raise AssertionError(f"{len(self._queue)} queued responses were never asked for")


def functions_dynamodb_client(replies: CannedReplies) -> DynamoDBClient:
    """The functions' DynamoDB client (core.dynamodb) with its transport answered by ``replies``."""
    return DynamoDBClient(REGION, replies)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])
