"""DynamoDB under pressure: throttled reads become a prompt 503, unprocessed batch writes are never lost.

Throttling is injected twice over: with replies queued on the transport of a client built as the
functions build theirs (the exact error bodies DynamoDB sends), and with an endpoint on 127.0.0.1 that
throttles every call, so the real client's own retries run and can be counted and timed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from werkzeug.test import Client

from core.http import ApiRequest, Reply, handle
from core.page_token import PageTokens
from core.redis_client import search_cache
from core.settings import cache_settings_from_env
from core.store import BATCH_ATTEMPTS, DynamoTable, Writes, dynamodb_client
from domains.destinations.bootstrap import DynamoDestinations
from domains.destinations.search import DestinationSearch
from domains.flights.bootstrap import DynamoOfferSource
from domains.flights.query import parse_flight_query
from domains.flights.search import FlightSearch
from integrations.contracts import event_contracts
from integrations.flights_ingest import FLIGHTS
from integrations.ingest import IngestPipeline, quarantine_item
from local.stack import LocalStack
from tests.fakes import CountingMetrics
from tests.faults.harness import ScriptedDynamo, ThrottlingDynamo, environment, failed_ids, sqs_batch

pytestmark = pytest.mark.integration

SEARCH = "/v1/flights/search"
THROTTLED = "ProvisionedThroughputExceededException"
# The client's standard retry mode makes at most this many attempts (core/store.py), backing off
# up to 2^(attempt-1) s between them: a throttled search must be answered well within that.
CLIENT_ATTEMPTS = 3
THROTTLED_ANSWER_WITHIN_SECONDS = 4.0
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
logger = logging.getLogger("fault-tests")


@pytest.fixture
def scripted(stack: LocalStack) -> ScriptedDynamo:
    """A DynamoDB client built exactly as the functions' (retries, timeouts), on the stack's moto, with
    replies that can be queued in advance."""
    return ScriptedDynamo()


def proxy_event(resource: str, query: dict[str, str], path: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "resource": resource,
        "httpMethod": "GET",
        "queryStringParameters": query,
        "pathParameters": path,
        "requestContext": {"requestId": "fault-test"},
    }


def error_of(response: dict[str, Any]) -> dict[str, str]:
    body = json.loads(response["body"])
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return dict(body["error"])


# --- 6. throttled reads -------------------------------------------------------------------------


def test_throttled_flight_query_is_a_503_json_with_retry_after(
    stack: LocalStack, scripted: ScriptedDynamo, today: date
) -> None:
    # Given the flights search wired as its composition root wires it, on a stubbed DynamoDB client
    table = DynamoTable(stack.tables["FlightsTable"], client=scripted.client)
    tokens = PageTokens(b"secret")
    search = FlightSearch(
        DynamoOfferSource(table), search_cache("flights", cache_settings_from_env(), CountingMetrics()), tokens
    )

    def endpoint(request: ApiRequest) -> Reply:
        result = search.search(parse_flight_query(request.query, today, tokens))
        return Reply(result.body, result.status)

    query = {**stack.examples["flights"], "sort": "departure", "limit": "44"}  # a cache miss
    with scripted as stub:
        for _ in range(CLIENT_ATTEMPTS):
            stub.add_client_error("query", service_error_code=THROTTLED, http_status_code=400)
        # When DynamoDB throttles the query, and the client's retries
        response = handle(proxy_event(SEARCH, query), endpoint, logger)
        stub.assert_no_pending_responses()
    # Then the traveller gets a 503 in the one error shape, told when to retry
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "1"
    assert response["headers"]["Content-Type"] == "application/json"
    assert error_of(response)["code"] == "service_unavailable"


def test_throttled_destination_lookup_is_a_503_json_with_retry_after(
    stack: LocalStack, scripted: ScriptedDynamo
) -> None:
    table = DynamoTable(stack.tables["DestinationsTable"], client=scripted.client)
    search = DestinationSearch(
        DynamoDestinations(table), search_cache("destinations", cache_settings_from_env(), CountingMetrics())
    )

    def endpoint(request: ApiRequest) -> Reply:
        result = search.lookup(request.path["code"])
        return Reply(result.body, result.status)

    with scripted as stub:
        for _ in range(CLIENT_ATTEMPTS):
            stub.add_client_error("get_item", service_error_code="ThrottlingException", http_status_code=400)
        response = handle(proxy_event("/v1/destinations/{code}", {}, {"code": "ZQX"}), endpoint, logger)
        stub.assert_no_pending_responses()
    assert (response["statusCode"], response["headers"]["Retry-After"]) == (503, "1")
    assert error_of(response)["code"] == "service_unavailable"


def test_dynamodb_throttling_everything_answers_503_after_the_clients_bounded_retries(
    stack: LocalStack, client: Client, keys: dict[str, dict[str, str]]
) -> None:
    query = {**stack.examples["flights"], "sort": "departure", "limit": "45"}  # a cache miss
    # Given DynamoDB throttles every call (the functions, cold started, reach it through their endpoint)
    with ThrottlingDynamo() as dynamo, environment(AWS_ENDPOINT_URL_DYNAMODB=dynamo.url):
        started = time.monotonic()
        # When a traveller searches
        response = client.get(SEARCH, query_string=query, headers=keys["basic"])
        elapsed = time.monotonic() - started
    # Then the client retried a bounded number of times and the traveller got a 503 promptly, not a hang
    assert dynamo.calls["Query"] == CLIENT_ATTEMPTS
    assert elapsed < THROTTLED_ANSWER_WITHIN_SECONDS
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["error"]["code"] == "service_unavailable"
    # And once DynamoDB recovers, the same search works (the failed rebuild left no lock behind)
    recovered = client.get(SEARCH, query_string=query, headers=keys["basic"])
    assert (recovered.status_code, recovered.headers["X-Cache"]) == (200, "MISS")


# --- 7. BatchWriteItem UnprocessedItems -------------------------------------------------------


def quarantine_items(count: int) -> list[dict[str, Any]]:
    return [quarantine_item("flights", f"m{index}", "not json", "body: is not JSON", NOW) for index in range(count)]


def put_requests(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"PutRequest": {"Item": item}} for item in items]


def test_unprocessed_items_are_retried_alone_until_every_item_is_written(
    stack: LocalStack, scripted: ScriptedDynamo
) -> None:
    table = stack.tables["QuarantineTable"]
    items = quarantine_items(30)  # two BatchWriteItem requests: 25 + 5
    first, second = items[:25], items[25:]
    sleeps: list[float] = []
    writes = Writes(DynamoTable(table, client=scripted.client), sleep=sleeps.append)
    with scripted as stub:
        # DynamoDB processes part of the first request, then part of the rest, then the rest
        stub.add_response(
            "batch_write_item",
            {"UnprocessedItems": {table: put_requests(first[3:10])}},
            {"RequestItems": {table: put_requests(first)}},
        )
        stub.add_response(
            "batch_write_item",
            {"UnprocessedItems": {table: put_requests(first[5:7])}},
            {"RequestItems": {table: put_requests(first[3:10])}},
        )
        stub.add_response(
            "batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {table: put_requests(first[5:7])}}
        )
        stub.add_response("batch_write_item", {}, {"RequestItems": {table: put_requests(second)}})
        left = writes.put_all(items)
        stub.assert_no_pending_responses()
    # Each retry carried exactly the unprocessed items, after a growing pause; nothing is left
    assert left == []
    assert sleeps == [0.1, 0.2]


def test_items_still_unprocessed_after_the_attempts_are_returned_not_dropped(
    stack: LocalStack, scripted: ScriptedDynamo
) -> None:
    table = stack.tables["QuarantineTable"]
    items = quarantine_items(4)
    stuck = items[1:3]
    writes = Writes(DynamoTable(table, client=scripted.client), sleep=lambda _: None)
    with scripted as stub:
        stub.add_response("batch_write_item", {"UnprocessedItems": {table: put_requests(stuck)}})
        for _ in range(BATCH_ATTEMPTS - 1):
            stub.add_response(
                "batch_write_item",
                {"UnprocessedItems": {table: put_requests(stuck)}},
                {"RequestItems": {table: put_requests(stuck)}},
            )
        assert writes.put_all(items) == stuck
        stub.assert_no_pending_responses()


def test_a_quarantine_record_dynamodb_keeps_refusing_is_a_batch_item_failure_then_lands_on_redelivery(
    stack: LocalStack, scripted: ScriptedDynamo, aws: Callable[[str], Any]
) -> None:
    # Given two poison messages whose quarantine records DynamoDB leaves unprocessed on every attempt
    table = stack.tables["QuarantineTable"]
    prefix = f"poison-{time.time_ns()}"
    message_ids = [f"{prefix}-{index}" for index in range(2)]
    records = [
        quarantine_item("flights", message_id, "{not json", "body: is not JSON", NOW) for message_id in message_ids
    ]

    def pipeline(client: Any) -> IngestPipeline:
        return IngestPipeline(
            FLIGHTS,
            event_contracts(),
            Writes(DynamoTable(stack.tables["FlightsTable"], client=client)),
            Writes(DynamoTable(table, client=client), sleep=lambda _: None),
            lambda scope: 0,
            CountingMetrics(),
            logger,
            clock=lambda: NOW,
        )

    batch = sqs_batch(["{not json", "{not json"], ids=message_ids)
    with scripted as stub:
        for _ in range(BATCH_ATTEMPTS):
            stub.add_response(
                "batch_write_item",
                {"UnprocessedItems": {table: put_requests(records)}},
                {"RequestItems": {table: put_requests(records)}},
            )
        # When the ingest function runs the batch
        result = pipeline(scripted.client).run(batch)
        stub.assert_no_pending_responses()
    # Then both messages are reported as failed, so SQS delivers them again: neither is lost
    assert sorted(failed_ids(result)) == sorted(message_ids)
    # And on redelivery, with DynamoDB healthy, both land in the quarantine table with their reason
    assert failed_ids(pipeline(dynamodb_client.__wrapped__()).run(batch)) == []
    stored = aws("dynamodb").query(
        TableName=table,
        KeyConditionExpression="pk = :day",
        FilterExpression="begins_with(message_id, :prefix)",
        ExpressionAttributeValues={":day": {"S": NOW.strftime("%Y-%m-%d")}, ":prefix": {"S": prefix}},
    )["Items"]
    assert sorted(item["message_id"]["S"] for item in stored) == sorted(message_ids)
    assert {item["reason"]["S"] for item in stored} == {"body: is not JSON"}
