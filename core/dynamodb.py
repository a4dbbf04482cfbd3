"""A lean DynamoDB client: the JSON protocol over one pooled connection, signed by :mod:`core.sigv4`.

Why not botocore's client: per call it validates the parameters against the service model, serializes
every AttributeValue through that model, resolves the endpoint ruleset and builds a user agent; with
the response stubbed that is ~300 µs of CPU per Query or UpdateItem here. Creating the client (loading
the model) adds ~200 ms to the first miss of a container. The DynamoDB JSON protocol needs none of it:
the request body *is* the low-level request (``{"TableName": ..., "Key": {"pk": {"S": ...}}}``),
serialized here by orjson in a few µs, and the response body is the low-level response, parsed by
orjson. ``make bench`` measures the difference (docs/performance.md).

What it keeps from botocore, on purpose:

* the same calls and shapes (``client.query(TableName=..., ...)`` returns the low-level response
  dict), so :mod:`core.store` works with either client and tests may hand it a botocore client
  behind ``Stubber``;
* errors as ``botocore.exceptions.ClientError`` with ``response["Error"]["Code"]`` (and the other
  fields of the error body), botocore imported only when an error happens;
* the endpoint: ``AWS_ENDPOINT_URL_DYNAMODB``, else ``AWS_ENDPOINT_URL``, else the regional one;
* credentials: the Lambda environment's (``AWS_ACCESS_KEY_ID`` …), else botocore's provider chain;
* standard retry mode: at most 3 calls, full-jitter exponential backoff (≤ 1 s, then ≤ 2 s) for
  throttling, transient and 5xx errors, connection errors, timeouts and a response whose CRC32
  does not match ``x-amz-crc32``.

Not supported: binary attributes (``B``/``BS``; no table here has one), other services.
"""

from __future__ import annotations

import os
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from core.sigv4 import Credentials, RequestSigner

API_VERSION = "DynamoDB_20120810"
OPERATIONS = frozenset({"Query", "GetItem", "UpdateItem", "BatchWriteItem"})
# Three calls, the first included, back off at most 1 + 2 s: a throttled search is a prompt 503, and even
# three read timeouts plus the backoff (9 s) stay under the search functions' 10 s timeout.
MAX_ATTEMPTS = 3
MAX_BACKOFF_SECONDS = 20.0
CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
# botocore standard mode's retryable error codes (throttling and transient) for DynamoDB.
RETRYABLE_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
        "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
        "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException", "RequestTimeout",
        "RequestTimeoutException", "InternalServerError", "ServiceUnavailable",
    }
)  # fmt: skip


class DynamoUnavailable(Exception):
    """DynamoDB could not be reached (connection refused, timeouts) on every attempt."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    crc32: str | None  # the x-amz-crc32 header, when sent


class Transport(Protocol):
    """Sends one signed POST / to the endpoint; raises :class:`TransportError` when no reply came."""

    host: str

    def post(self, body: bytes, headers: dict[str, str]) -> HttpReply: ...


class TransportError(Exception):
    """No HTTP reply: connection refused or reset, connect or read timeout."""


class Urllib3Transport:
    """A keep-alive urllib3 connection pool to one endpoint, with botocore's timeouts and no retries of its own."""

    def __init__(self, endpoint_url: str) -> None:
        import socket  # noqa: PLC0415

        import urllib3  # noqa: PLC0415 - a cache hit never needs it
        from urllib3.connection import HTTPConnection  # noqa: PLC0415

        self.host = urlsplit(endpoint_url).netloc
        self._errors = (urllib3.exceptions.HTTPError, OSError)
        self._pool = urllib3.connection_from_url(
            endpoint_url,
            maxsize=10,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
            socket_options=[*HTTPConnection.default_socket_options, (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
        )

    def post(self, body: bytes, headers: dict[str, str]) -> HttpReply:
        try:
            response = self._pool.urlopen("POST", "/", body=body, headers=headers, retries=False, redirect=False)
        except self._errors as error:
            raise TransportError(f"{type(error).__name__}: {error}") from error
        return HttpReply(response.status, response.data, response.headers.get("x-amz-crc32"))


def endpoint_url(region: str) -> str:
    """Where DynamoDB is: the service-specific override, the global override (moto locally), or AWS."""
    return (
        os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
        or os.environ.get("AWS_ENDPOINT_URL")
        or f"https://dynamodb.{region}.amazonaws.com"
    )


def region_from_env() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def credentials_provider() -> Callable[[], Credentials]:
    """The function's role credentials: Lambda puts them in the environment (read once, as botocore's
    environment provider does); elsewhere botocore's chain, whose credentials may refresh."""
    access_key, secret_key = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if access_key and secret_key:
        fixed = Credentials(access_key, secret_key, os.environ.get("AWS_SESSION_TOKEN") or None)
        return lambda: fixed
    import botocore.session  # noqa: PLC0415 - profiles, SSO, container and instance credentials

    found = botocore.session.get_session().get_credentials()
    if found is None:
        raise DynamoUnavailable("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")

    def refreshed() -> Credentials:
        frozen = found.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    return refreshed


class DynamoDBClient:
    """The DynamoDB operations this project sends, with botocore's call shapes (keyword arguments in,
    the low-level response dict out)."""

    def __init__(
        self,
        region: str,
        transport: Transport,
        credentials: Callable[[], Credentials] | None = None,  # None: credentials_provider() on first use
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._transport = transport
        self._signer = RequestSigner("dynamodb", region, transport.host)
        self._credentials = credentials
        self._sleep, self._clock, self._jitter = sleep, clock, jitter

    def query(self, **request: Any) -> dict[str, Any]:
        return self.call("Query", request)

    def get_item(self, **request: Any) -> dict[str, Any]:
        return self.call("GetItem", request)

    def update_item(self, **request: Any) -> dict[str, Any]:
        return self.call("UpdateItem", request)

    def batch_write_item(self, **request: Any) -> dict[str, Any]:
        return self.call("BatchWriteItem", request)

    def call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """One operation, retried as botocore's standard mode would; the body is serialized once."""
        if operation not in OPERATIONS:
            # Reads are by key only (a Scan would read the whole table on a search's hot path).
            raise ValueError(f"{operation}: not an operation of this client ({', '.join(sorted(OPERATIONS))})")
        body = orjson.dumps(request)
        target = f"{API_VERSION}.{operation}"
        failure = ""
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                self._sleep(min(MAX_BACKOFF_SECONDS, self._jitter() * 2 ** (attempt - 1)))
            if self._credentials is None:
                self._credentials = credentials_provider()
            headers = self._signer.headers(self._credentials(), target, body, self._clock())
            try:
                reply = self._transport.post(body, headers)
            except TransportError as error:
                failure = str(error)
                continue
            if reply.crc32 is not None and reply.crc32 != str(zlib.crc32(reply.body)):
                failure = "the response's CRC32 does not match x-amz-crc32"
                continue
            if reply.status == 200:
                response: dict[str, Any] = orjson.loads(reply.body) if reply.body else {}
                return response
            error_response = _error_response(reply)
            code = error_response["Error"]["Code"]
            if attempt + 1 < MAX_ATTEMPTS and (code in RETRYABLE_CODES or reply.status >= 500):
                continue
            from botocore.exceptions import ClientError  # noqa: PLC0415 - only errors need it

            raise ClientError(error_response, operation)
        raise DynamoUnavailable(f"DynamoDB {operation}: {failure} ({MAX_ATTEMPTS} attempts)")


def _error_response(reply: HttpReply) -> dict[str, Any]:
    """botocore's shape of an error reply: ``{"Error": {"Code", "Message"}, "ResponseMetadata", ...}``."""
    try:
        parsed = orjson.loads(reply.body) if reply.body else {}
    except orjson.JSONDecodeError:
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    code = str(parsed.pop("__type", "") or "").rpartition("#")[2] or f"HTTP{reply.status}"
    message = parsed.pop("message", None) or parsed.pop("Message", None) or ""
    return {
        **parsed,
        "Error": {"Code": code, "Message": str(message)},
        "ResponseMetadata": {"HTTPStatusCode": reply.status},
    }


def dynamodb_client() -> DynamoDBClient:
    """A client for this environment's region, endpoint and credentials (no I/O until the first call)."""
    region = region_from_env()
    return DynamoDBClient(region, Urllib3Transport(endpoint_url(region)))
