"""The destinations Lambda entry point: routing by resource and 4xx answers that never need AWS.

Bad input is rejected before the function wires its cache and table, so these run without any
environment, socket or fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from domains.destinations.handler import LOOKUP_RESOURCE, SEARCH_RESOURCE, lambda_handler


@dataclass(frozen=True)
class LambdaContext:
    function_name: str = "DestinationsSearch"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:DestinationsSearch"
    aws_request_id: str = "invocation-1"


def event(
    resource: str,
    query: dict[str, str] | None = None,
    path: dict[str, str] | None = None,
    multi: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    return {
        "resource": resource,
        "httpMethod": "GET",
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi or {name: [value] for name, value in (query or {}).items()},
        "pathParameters": path,
        "headers": {"x-api-key": "k"},
        "requestContext": {"requestId": "req-1"},
    }


def call(payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = lambda_handler(payload, LambdaContext())
    assert response["headers"]["X-Request-Id"] == "req-1"
    return response["statusCode"], orjson.loads(response["body"])


# A rejected request records no metric; Powertools warns about the empty flush, which is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [({"q": "p"}, "q"), ({"q": "par%00"}, "q"), ({"q": "par", "limit": "21"}, "limit"), ({"where": "1"}, "where")],
)
def test_bad_search_is_a_400_naming_the_parameter(query: dict[str, str], parameter: str) -> None:
    status, body = call(event(SEARCH_RESOURCE, query))
    assert status == 400
    assert body["error"]["code"] == "invalid_parameter" and body["error"]["message"].startswith(f"{parameter}: ")


def test_repeated_query_parameter_is_a_400() -> None:
    status, body = call(event(SEARCH_RESOURCE, {"q": "lon"}, multi={"q": ["par", "lon"]}))
    assert status == 400 and body["error"]["message"].startswith("q: ")


def test_malformed_code_is_a_400_naming_code() -> None:
    status, body = call(event(LOOKUP_RESOURCE, path={"code": "C-G"}))
    assert status == 400 and body["error"]["message"].startswith("code: ")


def test_unknown_resource_is_a_404() -> None:
    status, body = call(event("/v1/destinations/{code}/nearby", path={"code": "CDG"}))
    assert status == 404 and body["error"]["code"] == "not_found"
