"""Lambda entry point of ``GET /v1/hotels/search``: event in, JSON out. Logic lives in search.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from core.http import ApiRequest, Reply, handle
from core.observability import FunctionTelemetry
from domains.hotels.bootstrap import DOMAIN, hotel_search
from domains.hotels.query import parse_hotel_query

telemetry = FunctionTelemetry("hotels-search", DOMAIN, correlation_paths.API_GATEWAY_REST)


def search(request: ApiRequest) -> Reply:
    started = time.perf_counter()
    service = hotel_search(telemetry.sink)
    query = parse_hotel_query(request.query, datetime.now(UTC).date(), service.tokens)
    result = service.search(query)
    telemetry.sink.milliseconds("SearchLatency", (time.perf_counter() - started) * 1000)
    return Reply(result.body, result.status)


@telemetry.entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, search, telemetry.logger)
