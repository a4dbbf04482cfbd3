"""The flights search function as Lambda runs it, on this machine: the real handler module, a private
redis-server, and its own DynamoDB client (core.dynamodb) answered by canned replies on its transport,
wired in through the composition root's seam (``domains.flights.bootstrap.use_dynamodb_client``).
Beside it, a botocore client behind ``Stubber`` answers the same Query: the reference."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from botocore.stub import Stubber

from bench import fixtures
from core.cache import entry_key, generation_key, query_digest
from local.redis_server import RedisServer


@dataclass
class FlightsFunction:
    redis_server: RedisServer
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    replies: fixtures.CannedReplies  # what the handler's DynamoDB client receives
    client: Any  # a botocore DynamoDB client, the reference
    stubber: Stubber  # on ``client``
    bare: redis.Redis  # a plain redis-py client on the same server
    event: dict[str, Any]
    context: fixtures.LambdaContext
    query_response: dict[str, Any]  # what DynamoDB answers for the event's route and day
    query_request: dict[str, Any]  # the Query the handler sends (core.store.DynamoTable.query_prefix)
    generation_key: str
    entry_key: str

    def invoke(self) -> dict[str, Any]:
        return self.handler(self.event, self.context)

    def invoke_capturing(self) -> tuple[dict[str, Any], str]:
        """One invocation and what it wrote to stdout (its log and EMF lines)."""
        saved, sys.stdout = sys.stdout, io.StringIO()
        try:
            response = self.handler(self.event, self.context)
            return response, sys.stdout.getvalue()
        finally:
            sys.stdout = saved

    def invalidate(self) -> None:
        """What ingest does when the route changes: the next search is a miss."""
        self.bare.incr(self.generation_key)


@contextlib.contextmanager
def flights_function(ttl_seconds: int = 300) -> Iterator[FlightsFunction]:
    """The function, warm, with its example query's entry cached (one miss, then one hit, checked)."""
    with RedisServer() as server, fixtures.environment(fixtures.function_environment(server, ttl_seconds)):
        from domains.flights import bootstrap, handler
        from domains.flights.query import parse_flight_query

        client = fixtures.botocore_dynamodb_client()
        stubber = Stubber(client)
        stubber.activate()
        replies = fixtures.CannedReplies()
        bootstrap.use_dynamodb_client(fixtures.functions_dynamodb_client(replies))
        try:
            days = fixtures.offers_by_day("JFK", "LHR")
            day = next((d for d in sorted(days) if d >= fixtures.search_day()), max(days))
            params = {"origin": "JFK", "destination": "LHR", "date": day}
            service = bootstrap.flight_search(handler.telemetry.sink)
            query = parse_flight_query(params, fixtures.today(), service.tokens)
            function = FlightsFunction(
                redis_server=server,
                handler=handler.lambda_handler,
                replies=replies,
                client=client,
                stubber=stubber,
                bare=redis.Redis(host=server.host, port=server.port),
                event=fixtures.proxy_event(params),
                context=fixtures.LambdaContext(),
                query_response=fixtures.query_response(days[day]),
                query_request={
                    "TableName": fixtures.FLIGHTS_TABLE,
                    "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                    "ExpressionAttributeValues": {":pk": {"S": query.route}, ":prefix": {"S": f"{day}#"}},
                },
                generation_key=generation_key(bootstrap.DOMAIN, query.route),
                entry_key=entry_key(bootstrap.DOMAIN, query.route, query_digest(query.canonical())),
            )
            replies.add_response("Query", function.query_response)
            with fixtures.stdout_to_devnull():
                first, second = function.invoke(), function.invoke()
            replies.assert_no_pending_responses()
            statuses = (first["statusCode"], first["headers"]["X-Cache"], second["headers"]["X-Cache"])
            if statuses != (200, "MISS", "HIT") or function.bare.get(function.entry_key) is None:
                raise RuntimeError(f"the flights function did not cache its example query: {statuses}")
            yield function
        finally:
            bootstrap.use_dynamodb_client(None)
            stubber.deactivate()
