"""API Gateway REST proxy events in, JSON responses out, and the one error shape.

Every response is JSON, carries ``X-Request-Id`` and ``X-Cache``, and every error has the body
``{"error": {"code": ..., "message": ...}}``. Domain errors are mapped to status codes here and
nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from core.errors import (
    DomainError,
    Forbidden,
    InvalidParameter,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)

LambdaResponse = dict[str, Any]

STATUS_BY_ERROR: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidParameter, 400),
    (InvalidRequest, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (PayloadTooLarge, 413),
    (ServiceUnavailable, 503),
)


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """The parts of a proxy event that endpoint code may use (single-valued parameters only)."""

    query: Mapping[str, str]
    path: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-cased
    body: str | None
    request_id: str
    api_key_id: str = ""  # the id (not the value) of the API key API Gateway checked
    body_is_base64: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful endpoint result: an already rendered JSON body and how the cache served it."""

    body: str
    cache: str = "BYPASS"  # HIT | MISS | BYPASS | STALE
    status: int = 200


class Headers(Mapping[str, str]):
    """Request headers by lower-cased name, lowered on first use: an endpoint that reads none (a search
    answered from the cache) does not pay for lowering the twenty-odd headers API Gateway forwards."""

    __slots__ = ("_lowered", "_raw")

    def __init__(self, raw: Mapping[str, str]) -> None:
        self._raw = raw
        self._lowered: dict[str, str] | None = None

    def _names(self) -> dict[str, str]:
        if self._lowered is None:
            self._lowered = {name.lower(): value for name, value in self._raw.items()}
        return self._lowered

    def __getitem__(self, name: str) -> str:
        return self._names()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"Headers({self._names()!r})"


def request_id_of(event: Mapping[str, Any]) -> str:
    context = event.get("requestContext") or {}
    return str(context.get("requestId") or "")


def parse_event(event: Mapping[str, Any], request_id: str | None = None) -> ApiRequest:
    """Read a REST (v1.0 payload) proxy event; a query parameter given twice is a 400.

    ``request_id``: the event's, when the caller has read it already.
    """
    for name, values in (event.get("multiValueQueryStringParameters") or {}).items():
        if values is not None and len(values) > 1:
            raise InvalidParameter(name, "must be given once")
    headers = event.get("headers") or {}
    identity = (event.get("requestContext") or {}).get("identity") or {}
    return ApiRequest(
        query=event.get("queryStringParameters") or {},
        path=event.get("pathParameters") or {},
        headers=Headers(headers),
        body=event.get("body"),
        request_id=request_id_of(event) if request_id is None else request_id,
        api_key_id=str(identity.get("apiKeyId") or ""),
        body_is_base64=bool(event.get("isBase64Encoded")),
    )


def json_response(status: int, body: str, request_id: str, cache: str = "BYPASS") -> LambdaResponse:
    """A proxy response around an already rendered JSON body (never re-parsed)."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "X-Request-Id": request_id, "X-Cache": cache},
        "body": body,
        "isBase64Encoded": False,
    }


def status_of(error: DomainError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 400


def error_body(code: str, message: str) -> str:
    return orjson.dumps({"error": {"code": code, "message": message}}).decode()


def error_response(error: DomainError, request_id: str) -> LambdaResponse:
    response = json_response(status_of(error), error_body(error.code, error.message), request_id)
    if isinstance(error, ServiceUnavailable):
        response["headers"]["Retry-After"] = str(error.retry_after)
    return response


def handle(
    event: Mapping[str, Any], endpoint: Callable[[ApiRequest], Reply], logger: logging.Logger | Any
) -> LambdaResponse:
    """Run one endpoint: parse the event, map domain errors to 4xx/503, anything else to a logged 500."""
    request_id = request_id_of(event)
    try:
        reply = endpoint(parse_event(event, request_id))
    except DomainError as error:
        logger.info("request rejected", extra={"error_code": error.code, "reason": error.message})
        return error_response(error, request_id)
    except Exception:
        logger.exception("unhandled error")
        return json_response(500, error_body("internal_error", "internal error"), request_id)
    return json_response(reply.status, reply.body, request_id, reply.cache)
