"""``miss_path_vs_client_query``: handler CPU on a cache miss ÷ CPU of a bare botocore Query of the same items.

Both sides get the same response (the seeded offers of the route and day), queued outside the timed
region: the handler's own DynamoDB client (core.dynamodb) as the JSON bytes DynamoDB sends, which it
signs for, parses and checks the CRC32 of; the botocore client through ``Stubber``, already parsed (so
the reference skips botocore's response parsing, which a real Query pays). The calls of a batch are
``calls`` different searches of the route and day (limits and sorts), all cached; the batch starts with
one INCR of the route's generation, as ingest does when the route changes (untimed), so every call is a
miss with a stale copy. (INCRing before every call instead put a blocking round trip of another client
right before each timed call, which this VM charges to the next call's CPU.) The handler side is
everything a miss costs the function: parse, the cache read that takes the lock, the Query through
``core.store``, offers from items, filter, rank, render, the fenced cache write, EMF. The other side is
``client.query(**the same request)``. CPU is ``time.process_time`` (ours, not redis-server's), summed
per batch; the figure is the median batch ratio.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from bench import fixtures
from bench.flights_function import FlightsFunction, flights_function
from bench.results import Figure

GOAL = 1.5
BATCHES = 25
CALLS_PER_BATCH = 80


def measure(batches: int = BATCHES, calls: int = CALLS_PER_BATCH) -> Figure:
    with flights_function() as function:
        client, stubber = function.client, function.stubber
        request, response, replies = function.query_request, function.query_response, function.replies
        function.invalidate()
        replies.add_response("Query", response)
        first, written = function.invoke_capturing()
        assert first["headers"]["X-Cache"] == "MISS", first["headers"]
        events = distinct_searches(function.event, calls)
        ratios: list[float] = []
        handler_cpu: list[float] = []
        query_cpu: list[float] = []
        statuses: set[str] = set()
        cpu = time.process_time
        with fixtures.stdout_to_devnull():
            for batch in range(-2, batches):  # two warm-up batches
                gc.collect()
                handler_total = query_total = 0.0
                function.invalidate()
                for event in events:
                    replies.add_response("Query", response)
                    started = cpu()
                    result = function.handler(event, function.context)
                    handler_total += cpu() - started
                    statuses.add(result["headers"]["X-Cache"])
                    stubber.add_response("query", response)
                    started = cpu()
                    client.query(**request)
                    query_total += cpu() - started
                stubber.assert_no_pending_responses()
                replies.assert_no_pending_responses()
                if batch >= 0:
                    handler_cpu.append(handler_total / calls)
                    query_cpu.append(query_total / calls)
                    ratios.append(handler_total / query_total)
        if statuses != {"MISS"}:
            raise RuntimeError(f"every timed call should have been a miss, got {statuses}")
        breakdown = _breakdown(function)
    return Figure(
        name="miss_path_vs_client_query",
        value=fixtures.median(ratios),
        goal=GOAL,
        unit="ratio",
        samples=ratios,
        details={
            "what": "per batch: handler CPU on forced misses / CPU of a botocore Query (Stubber) of the same items",
            "batches": batches,
            "calls_per_batch": calls,
            "items_per_query": len(response["Items"]),
            "handler_cpu_us": fixtures.median(handler_cpu) * 1e6,
            "query_cpu_us": fixtures.median(query_cpu) * 1e6,
            "response_body_bytes": len(first["body"]),
            "breakdown_cpu_us_per_miss": breakdown,
            "stdout_bytes_per_miss": len(written.encode()),
            "stdout_per_miss": written,
        },
    )


def distinct_searches(event: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` proxy events of different searches of the same route and day (sort x limit)."""
    base = event["queryStringParameters"]
    searches = [{**base, "sort": sort, "limit": str(limit)} for limit in range(1, 51) for sort in SORTS]
    if count > len(searches):
        raise ValueError(f"at most {len(searches)} distinct searches")
    return [fixtures.proxy_event(query) for query in searches[:count]]


SORTS = ("price", "duration", "departure")


def _breakdown(function: FlightsFunction, calls: int = CALLS_PER_BATCH) -> dict[str, float]:
    """Where a miss's CPU goes, measured after the figure (the timers wrap the function's own adapters,
    on this instance only, and are removed again): the DynamoDB Query with offers from items, the Redis
    round trips, the cache write sent behind the answer, and
    everything else."""
    from domains.flights import bootstrap, handler

    service = bootstrap.flight_search(handler.telemetry.sink)
    source, store = service._source, service._cache._redis  # type: ignore[attr-defined]
    spent = {"query_and_offers": 0.0, "redis_commands": 0.0, "redis_write_behind": 0.0}
    made = {"query_and_offers": 0, "redis_commands": 0, "redis_write_behind": 0}
    cpu = time.process_time

    def timed(name: str, call: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            started = cpu()
            try:
                return call(*args)
            finally:
                spent[name] += cpu() - started
                made[name] += 1

        return wrapper

    source.offers = timed("query_and_offers", source.offers)
    store._round_trip = timed("redis_commands", store._round_trip)  # every round trip goes through it
    store.write_behind = timed("redis_write_behind", store.write_behind)
    events = distinct_searches(function.event, calls)
    total = 0.0
    try:
        with fixtures.stdout_to_devnull():
            function.invalidate()
            for event in events:
                function.replies.add_response("Query", function.query_response)
                started = cpu()
                function.handler(event, function.context)
                total += cpu() - started
    finally:
        del source.offers, store._round_trip, store.write_behind
    result = {name: value / calls * 1e6 for name, value in spent.items()}
    result["everything_else"] = total / calls * 1e6 - sum(result.values())
    result["redis_round_trips"] = made["redis_commands"] / calls
    result["handler_with_redis_us"] = total / calls * 1e6
    result["handler_with_in_memory_cache_us"] = _without_redis(function, service, events)
    return result


class MissingEverything:
    """A RedisPort in this process that misses every read and grants every lock: what a miss costs
    without talking to Redis (the timers above miss what Redis costs outside the calls they wrap, such as
    the reply to the write sent behind, which arrives while the handler does other work)."""

    def read(self, *args: Any) -> tuple[bytes, bytes | None]:
        return b"1", None

    def read_or_lock(self, *args: Any) -> tuple[bytes, bytes | None, bool]:
        return b"1", None, True

    def write(self, *args: Any) -> int:
        return 1

    def write_behind(self, *args: Any) -> None:
        return None

    def incr(self, generation_key: str) -> int:
        return 2


def _without_redis(function: FlightsFunction, service: Any, events: list[dict[str, Any]]) -> float:
    """Handler CPU per miss with the cache's Redis port swapped for :class:`MissingEverything`."""
    cache = service._cache  # noqa: SLF001
    real, cache._redis = cache._redis, MissingEverything()  # noqa: SLF001
    cpu, total = time.process_time, 0.0
    try:
        with fixtures.stdout_to_devnull():
            for event in events:
                function.replies.add_response("Query", function.query_response)
                started = cpu()
                result = function.handler(event, function.context)
                total += cpu() - started
                if result["headers"]["X-Cache"] != "MISS":
                    raise RuntimeError(f"expected a miss, got {result['headers']}")
    finally:
        cache._redis = real  # noqa: SLF001
    return total / len(events) * 1e6
