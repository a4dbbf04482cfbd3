"""The HTTP edge: one error shape, one status mapping, never a 5xx for bad input."""

from __future__ import annotations

import logging

import orjson
import pytest

from core.errors import InvalidParameter, NotFound, ServiceUnavailable
from core.http import ApiRequest, Reply, handle

LOG = logging.getLogger("test")


def event(query: dict[str, str] | None = None, multi: dict[str, list[str]] | None = None) -> dict[str, object]:
    return {
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi,
        "headers": {"X-Api-Key": "k"},
        "requestContext": {"requestId": "req-1"},
    }


def test_reply_becomes_json_response_with_request_id_and_cache_status() -> None:
    response = handle(event({"a": "1"}), lambda request: Reply('{"ok":true}', "HIT"), LOG)
    assert response["statusCode"] == 200
    assert response["body"] == '{"ok":true}'
    assert response["headers"] == {"Content-Type": "application/json", "X-Request-Id": "req-1", "X-Cache": "HIT"}


def test_endpoint_sees_lower_cased_headers_and_parameters() -> None:
    seen: list[ApiRequest] = []
    handle(event({"a": "1"}), lambda request: seen.append(request) or Reply("{}"), LOG)
    assert seen[0].query == {"a": "1"} and seen[0].headers == {"x-api-key": "k"} and seen[0].request_id == "req-1"


def test_repeated_parameter_is_a_400_naming_it() -> None:
    response = handle(event({"a": "2"}, {"a": ["1", "2"]}), lambda request: Reply("{}"), LOG)
    assert response["statusCode"] == 400
    assert orjson.loads(response["body"]) == {
        "error": {"code": "invalid_parameter", "message": "a: must be given once"}
    }


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidParameter("date", "is not a real calendar date"), 400, "invalid_parameter"),
        (NotFound("no such destination"), 404, "not_found"),
        (ServiceUnavailable("busy", retry_after=2), 503, "service_unavailable"),
    ],
)
def test_domain_errors_map_to_status_and_error_shape(error: Exception, status: int, code: str) -> None:
    def endpoint(request: ApiRequest) -> Reply:
        raise error

    response = handle(event(), endpoint, LOG)
    assert response["statusCode"] == status
    assert orjson.loads(response["body"])["error"]["code"] == code
    assert response["headers"]["X-Cache"] == "BYPASS"
    if status == 503:
        assert response["headers"]["Retry-After"] == "2"


def test_unexpected_error_is_a_500_with_no_internals_leaked(caplog: pytest.LogCaptureFixture) -> None:
    def endpoint(request: ApiRequest) -> Reply:
        raise KeyError("secret-internal-detail")

    response = handle(event(), endpoint, LOG)
    assert response["statusCode"] == 500
    assert "secret-internal-detail" not in response["body"]
    assert "unhandled error" in caplog.text
