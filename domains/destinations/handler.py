"""Lambda entry point of ``GET /v1/destinations/search`` and ``GET /v1/destinations/{code}``.

Event in, JSON out; the proxy event's ``resource`` picks the endpoint. Logic lives in search.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from core.errors import NotFound
from core.http import ApiRequest, Reply, handle
from core.observability import FunctionTelemetry
from domains.destinations.bootstrap import DOMAIN, destination_search
from domains.destinations.query import parse_code, parse_destination_query

SEARCH_RESOURCE = "/v1/destinations/search"
LOOKUP_RESOURCE = "/v1/destinations/{code}"

telemetry = FunctionTelemetry("destinations-search", DOMAIN, correlation_paths.API_GATEWAY_REST)


def search(request: ApiRequest) -> Reply:
    started = time.perf_counter()
    query = parse_destination_query(request.query)  # before wiring: bad input never needs the cache or table
    result = destination_search(telemetry.sink).search(query)
    telemetry.sink.milliseconds("SearchLatency", (time.perf_counter() - started) * 1000)
    return Reply(result.body, result.status)


def lookup(request: ApiRequest) -> Reply:
    code = parse_code(request.path, request.query)
    result = destination_search(telemetry.sink).lookup(code)
    return Reply(result.body, result.status)


def unknown_resource(request: ApiRequest) -> Reply:
    raise NotFound("no such destinations resource")


ENDPOINTS: dict[str, Callable[[ApiRequest], Reply]] = {SEARCH_RESOURCE: search, LOOKUP_RESOURCE: lookup}


@telemetry.entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, ENDPOINTS.get(str(event.get("resource")), unknown_resource), telemetry.logger)
