"""Lambda entry point of ``GET /v1/flights/search``: event in, JSON out. Logic lives in search.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from core.http import ApiRequest, Reply, handle
from core.observability import FunctionTelemetry
from domains.flights.bootstrap import DOMAIN, flight_search
from domains.flights.query import parse_flight_query

telemetry = FunctionTelemetry("flights-search", DOMAIN, correlation_paths.API_GATEWAY_REST)


def search(request: ApiRequest) -> Reply:
    started = time.perf_counter()
    service = flight_search(telemetry.sink)
    query = parse_flight_query(request.query, datetime.now(UTC).date(), service.tokens)
    result = service.search(query)
    telemetry.sink.milliseconds("SearchLatency", (time.perf_counter() - started) * 1000)
    return Reply(result.body, result.status)


@telemetry.entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, search, telemetry.logger)
