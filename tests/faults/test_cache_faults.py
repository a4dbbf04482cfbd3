"""The cache never breaks a search: Redis stopped, stalled, failed over, stormed, corrupted, raced.

Each test breaks a real redis-server (stop, SIGSTOP, REPLICAOF, CLIENT KILL, a flipped byte) and
looks at what a traveller sees through the gateway, or, where many containers must act at once, at
what many independent caches (one connection and one breaker each, like Lambda containers) do.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import hiredis
import pytest
import redis
from werkzeug.test import Client, TestResponse

from core.cache import (
    BYPASS,
    HIT,
    MISS,
    CircuitBreaker,
    SearchCache,
    entry_key,
    frame,
    generation_key,
    query_digest,
    unframe,
)
from core.page_token import PageTokens
from core.redis_client import CONNECT_TIMEOUT_SECONDS, SOCKET_TIMEOUT_SECONDS, RedisCacheStore, connect, search_cache
from core.settings import CacheSettings, cache_settings_from_env
from core.store import DynamoTable
from domains.flights.bootstrap import DynamoOfferSource
from domains.flights.offers import FlightOffer
from domains.flights.query import FlightQuery, parse_flight_query
from domains.flights.search import FlightSearch
from integrations.flights_ingest import lambda_handler as flights_ingest
from local.redis_server import RedisServer
from local.stack import LocalStack
from tests.fakes import CountingMetrics
from tests.faults.harness import (
    ScriptedDynamo,
    TcpProxy,
    emf_counts,
    eventbridge_body,
    failed_ids,
    flight_event,
    percentile,
    sqs_batch,
)

pytestmark = pytest.mark.integration

SEARCH = "/v1/flights/search"
# What one cache operation may cost when Redis does not answer: two attempts (the second on a fresh
# connection), each a connect and a read at most (core/redis_client.py). The breaker then skips the
# cache for the rest of the request.
CACHE_BUDGET_SECONDS = 2 * (CONNECT_TIMEOUT_SECONDS + SOCKET_TIMEOUT_SECONDS)
# What the search itself may add on top (the gateway, the handler, a DynamoDB query on moto) is
# measured in each test; this covers the scheduling noise of a 2-core machine on top of that.
SLACK_SECONDS = 0.05
P99_RISE_LIMIT_SECONDS = 0.3
NO_SECRET = PageTokens(b"canonical queries do not depend on the secret")


def example_queries(example: dict[str, str], count: int, **extra: str) -> list[dict[str, str]]:
    """``count`` distinct searches of the seeded example route and day (each its own cache entry)."""
    variants = [(sort, limit) for limit in range(1, 51) for sort in ("price", "duration", "departure")]
    return [{**example, "sort": sort, "limit": str(limit), **extra} for sort, limit in variants[:count]]


def timed(call: Callable[[], TestResponse]) -> tuple[TestResponse, float]:
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def cache_settings_of(server: RedisServer, ttl_seconds: int = 300) -> CacheSettings:
    return CacheSettings(server.host, server.port, False, "none", "", "", ttl_seconds, "us-east-1")


def flight_query(params: dict[str, str], today: date) -> FlightQuery:
    return parse_flight_query(params, today, NO_SECRET)


# --- 1. Redis stopped -----------------------------------------------------------------------------


def test_redis_stopped_searches_answer_from_dynamodb_with_a_small_p99_rise_and_count_cache_errors(
    stack: LocalStack,
    client: Client,
    keys: dict[str, dict[str, str]],
    private_redis: RedisServer,
    functions_on: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    queries = example_queries(stack.examples["flights"], 12)
    with functions_on(private_redis.port):
        # Given normal traffic: every query once from DynamoDB (MISS), then from Redis (HIT)
        normal, bodies = [], []
        for query in queries:
            for expected in (MISS, HIT):
                response, seconds = timed(lambda q=query: client.get(SEARCH, query_string=q, headers=keys["basic"]))
                assert (response.status_code, response.headers["X-Cache"]) == (200, expected)
                normal.append(seconds)
            bodies.append(response.get_data())
        capsys.readouterr()
        # When Redis stops
        private_redis.stop()
        down = []
        for query, body in zip(queries, bodies, strict=True):
            for _ in range(2):
                response, seconds = timed(lambda q=query: client.get(SEARCH, query_string=q, headers=keys["basic"]))
                # Then every search is still answered, from DynamoDB, with the same results
                assert response.status_code == 200, response.get_data(as_text=True)
                assert response.headers["X-Cache"] == "BYPASS"
                assert response.get_data() == body
                down.append(seconds)
        metrics = emf_counts(capsys.readouterr().out)
    # And the cache errors are counted (once per breaker window, not once per search)
    assert 1 <= metrics["CacheError"] <= 2
    assert metrics["CacheHit"] == 0
    # And p99 latency rises by at most 300 ms over normal
    rise = percentile(down, 0.99) - percentile(normal, 0.99)
    assert rise <= P99_RISE_LIMIT_SECONDS, f"p99 {percentile(normal, 0.99):.3f}s → {percentile(down, 0.99):.3f}s"


# --- 2. Redis stalled -----------------------------------------------------------------------------


def test_redis_stalled_no_search_waits_longer_than_the_cache_timeout_budget(
    stack: LocalStack,
    client: Client,
    keys: dict[str, dict[str, str]],
    private_redis: RedisServer,
    functions_on: Callable[..., Any],
) -> None:
    example = stack.examples["flights"]
    with functions_on(private_redis.port):
        # Given how long a search from DynamoDB takes here (cache misses, Redis healthy)
        baseline = []
        for query in example_queries(example, 10, cabin="economy"):
            response, seconds = timed(lambda q=query: client.get(SEARCH, query_string=q, headers=keys["basic"]))
            assert response.headers["X-Cache"] == MISS
            baseline.append(seconds)
        # When Redis stops answering (SIGSTOP: connections stay open, nothing comes back)
        private_redis.pause()
        try:
            stalled = []
            for query in example_queries(example, 10, cabin="business"):
                response, seconds = timed(lambda q=query: client.get(SEARCH, query_string=q, headers=keys["basic"]))
                assert (response.status_code, response.headers["X-Cache"]) == (200, "BYPASS")
                stalled.append(seconds)
        finally:
            private_redis.resume()
    # Then no search waits longer than a DynamoDB search plus the cache's timeout budget
    bound = max(baseline) + CACHE_BUDGET_SECONDS + SLACK_SECONDS
    assert max(stalled) <= bound, f"slowest search {max(stalled):.3f}s, bound {bound:.3f}s"


def test_redis_stalled_every_probing_search_and_a_stall_mid_rebuild_stay_within_the_budget(
    private_redis: RedisServer,
) -> None:
    # Given a cache whose breaker lets every call probe the stalled server (the worst case)
    metrics = CountingMetrics()
    settings = cache_settings_of(private_redis)
    cache = SearchCache(
        "flights", RedisCacheStore(lambda: connect(settings)), metrics, breaker=CircuitBreaker(reset_seconds=0)
    )
    private_redis.pause()
    try:
        durations = []
        for index in range(8):
            started = time.perf_counter()
            answer = cache.get_or_build("JFK-LHR", f"q{index}", lambda: ('{"results":[]}', True))
            durations.append(time.perf_counter() - started)
            assert answer.status == "BYPASS"
        # Each search pays one cache operation's budget at most
        assert max(durations) <= CACHE_BUDGET_SECONDS + SLACK_SECONDS, durations
        assert metrics.counts["CacheError"] == 8
    finally:
        private_redis.resume()

    # And when Redis stalls between the read and the write of a rebuild, the write costs no more
    # than the budget either, and the rebuilt result is still returned
    healthy = SearchCache("flights", RedisCacheStore(lambda: connect(settings)), metrics)

    def build_then_stall() -> tuple[str, bool]:
        private_redis.pause()
        return '{"results":[1]}', False

    started = time.perf_counter()
    try:
        answer = healthy.get_or_build("JFK-LHR", "mid-rebuild", build_then_stall)
    finally:
        private_redis.resume()
    assert (answer.status, answer.body) == (MISS, '{"results":[1]}')
    assert time.perf_counter() - started <= CACHE_BUDGET_SECONDS + SLACK_SECONDS


# --- 3. failover ----------------------------------------------------------------------------------


def test_failover_mid_traffic_reconnects_to_the_new_primary_with_no_5xx(
    stack: LocalStack,
    client: Client,
    keys: dict[str, dict[str, str]],
    functions_on: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    queries = example_queries(stack.examples["flights"], 12, cabin="premium")
    before, after = queries[::2], queries[1::2]
    statuses: list[tuple[str, str]] = []

    def search(queries: list[dict[str, str]], phase: str) -> None:
        for query in queries:
            response = client.get(SEARCH, query_string=query, headers=keys["basic"])
            # No search fails, whatever the cache is going through
            assert response.status_code == 200, response.get_data(as_text=True)
            statuses.append((phase, response.headers["X-Cache"]))

    with RedisServer() as old, RedisServer() as new:
        # Given the functions reach the primary through its endpoint (a proxy playing the DNS name)
        proxy = TcpProxy(old.port).start()
        old_raw = redis.Redis(port=old.port)
        try:
            with functions_on(proxy.port):
                search(before, "warm")
                search(before, "warm")
                capsys.readouterr()
                # When the primary is demoted to a replica of the new one (writes to it now fail with
                # READONLY; until it resyncs it keeps answering reads) and the endpoint flips to the new one
                old_raw.replicaof(new.host, new.port)
                proxy.retarget(new.port)
                search(after, "failover")  # misses: their writes meet READONLY first
                search(before, "failover")
                search([*before, *after], "settled")
                metrics = emf_counts(capsys.readouterr().out)
        finally:
            proxy.stop()
            # Detached, or the new primary's shutdown would wait for its replica (shutdown-timeout).
            old_raw.replicaof("NO", "ONE")
            old_raw.close()
        new_raw = redis.Redis(port=new.port)
        cached_on_new = len(list(new_raw.scan_iter("search:*")))
        new_raw.close()
    # Then the functions reconnected to the new primary: every result is cached there and served from it
    assert cached_on_new == len(before) + len(after)
    assert [status for phase, status in statuses if phase == "settled"] == [HIT] * (len(before) + len(after))
    # And nothing fell back to the database: the one retry on a fresh connection reached the new primary
    assert "BYPASS" not in {status for _, status in statuses}
    assert metrics["CacheError"] == 0


def test_connection_resets_mid_traffic_reconnect_without_errors(
    stack: LocalStack,
    client: Client,
    keys: dict[str, dict[str, str]],
    private_redis: RedisServer,
    functions_on: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    queries = example_queries(stack.examples["flights"], 6, cabin="first")
    raw = redis.Redis(port=private_redis.port)
    try:
        with functions_on(private_redis.port):
            for query in queries:
                client.get(SEARCH, query_string=query, headers=keys["basic"])
            capsys.readouterr()
            # When every client connection is reset (a node replacement, a proxy restart)
            killed = raw.client_kill_filter(_type="normal", skipme=True)
            answers = [client.get(SEARCH, query_string=query, headers=keys["basic"]) for query in queries]
            metrics = emf_counts(capsys.readouterr().out)
    finally:
        raw.close()
    assert killed >= 1
    # Then the next searches reconnect at once and are served from the cache, with no error counted
    assert [(a.status_code, a.headers["X-Cache"]) for a in answers] == [(200, HIT)] * len(queries)
    assert metrics["CacheError"] == 0


# --- 4. connection storm --------------------------------------------------------------------------


def test_two_hundred_cold_clients_at_once_all_get_answers_without_exhausting_connections(
    private_redis: RedisServer,
) -> None:
    clients = 200
    settings = cache_settings_of(private_redis)
    raw = redis.Redis(port=private_redis.port)
    maxclients = int(raw.config_get("maxclients")["maxclients"])
    hot_body = '{"results":["hot"]}'
    warm = RedisCacheStore(lambda: connect(settings))
    SearchCache("flights", warm, CountingMetrics()).get_or_build("JFK-LHR", "hot", lambda: (hot_body, False))
    warm.incr("gen:{flights:elsewhere}")  # the write went behind the answer: this round trip sees it landed
    baseline = int(raw.info("clients")["connected_clients"])
    builds: list[str] = []
    results: list[Any] = [None] * clients
    start, answered, release = threading.Barrier(clients), threading.Barrier(clients + 1), threading.Event()

    def container(index: int) -> None:
        # Each thread is a cold Lambda container (a scale-out): its own client, connection and breaker.
        # Most search the popular entry; every tenth one a query nobody has cached yet.
        cache = SearchCache("flights", RedisCacheStore(lambda: connect(settings)), CountingMetrics())
        query = "hot" if index % 10 else f"own-{index}"

        def build() -> tuple[str, bool]:
            builds.append(query)
            return f'{{"results":["{query}"]}}', False

        start.wait(timeout=30)
        results[index] = cache.get_or_build("JFK-LHR", query, build)
        answered.wait(timeout=30)
        release.wait(timeout=30)

    threads = [threading.Thread(target=container, args=(i,), daemon=True) for i in range(clients)]
    # The 200 containers share one interpreter here. Its cyclic GC holds the GIL for up to hundreds of
    # milliseconds in this large test process, while 199 threads wake every 5 ms to ask for it; on 2
    # cores that starves redis-server past the 50 ms socket timeout. A Lambda container runs one
    # request at a time on its own CPU, so the collector is held off for the storm's second or two.
    gc.disable()
    try:
        for thread in threads:
            thread.start()
        answered.wait(timeout=60)
        # While all 200 hold their connection open
        info = raw.info()
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=30)
        gc.enable()
    # Then every client got its answer through Redis: the popular one from the cache, the others rebuilt once
    own = [index for index in range(clients) if index % 10 == 0]
    assert [r.body for r in results] == [
        f'{{"results":["{"hot" if index % 10 else f"own-{index}"}"]}}' for index in range(clients)
    ]
    assert [r.status for r in results] == [MISS if index in own else HIT for index in range(clients)]
    assert sorted(builds) == sorted(f"own-{index}" for index in own)
    # And each client holds one connection, far from the server's limit, with none refused
    assert info["connected_clients"] <= baseline + clients
    assert info["connected_clients"] < maxclients
    assert info["rejected_connections"] == 0
    # And a finished container's connection is released, not leaked
    deadline = time.monotonic() + 10
    while int(raw.info("clients")["connected_clients"]) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(raw.info("clients")["connected_clients"]) == baseline
    raw.close()


# --- 5. corrupt entry -----------------------------------------------------------------------------


def _flip_last_byte(value: bytes) -> bytes:
    return value[:-1] + bytes([value[-1] ^ 0x20])


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "flipped payload byte": _flip_last_byte,
    "truncated": lambda value: value[: len(value) // 2],
    "empty": lambda value: b"",
    "unframed JSON of an older release": lambda value: value[13:],
    "unknown format byte": lambda value: b"q" + value[1:],
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_cache_entry_is_detected_treated_as_a_miss_and_overwritten(
    corruption: str,
    stack: LocalStack,
    client: Client,
    keys: dict[str, dict[str, str]],
    stack_redis: redis.Redis,
    today: date,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a cached search (a query of this test alone)
    limit = str(30 + sorted(CORRUPTIONS).index(corruption))
    params = {**stack.examples["flights"], "sort": "duration", "limit": limit}
    query = flight_query(params, today)
    key = entry_key("flights", query.route, query_digest(query.canonical()))
    first = client.get(SEARCH, query_string=params, headers=keys["basic"])
    assert (first.status_code, first.headers["X-Cache"]) == (200, MISS)
    stored = stack_redis.get(key)
    assert stored is not None and unframe(stored) is not None
    # When its stored value is damaged
    stack_redis.set(key, CORRUPTIONS[corruption](stored), keepttl=True)
    capsys.readouterr()
    again = client.get(SEARCH, query_string=params, headers=keys["basic"])
    # Then the search is answered from DynamoDB with the right results, and the damage is counted
    assert (again.status_code, again.headers["X-Cache"]) == (200, MISS)
    assert again.get_data() == first.get_data()
    assert emf_counts(capsys.readouterr().out)["CacheCorrupt"] == 1
    # And the entry is overwritten with an intact one, served from then on
    repaired = stack_redis.get(key)
    generation = int(stack_redis.get(generation_key("flights", query.route)) or 0)
    assert repaired is not None and unframe(repaired) == (generation, first.get_data(as_text=True))
    third = client.get(SEARCH, query_string=params, headers=keys["basic"])
    assert third.headers["X-Cache"] == HIT and third.get_data() == first.get_data()


def test_a_zlib_entry_that_does_not_inflate_is_corrupt_not_an_error(private_redis: RedisServer) -> None:
    metrics = CountingMetrics()
    settings = cache_settings_of(private_redis)
    cache = SearchCache("flights", RedisCacheStore(lambda: connect(settings)), metrics)
    big = '{"results":["' + "x" * 20_000 + '"]}'  # compressed when stored
    cache.get_or_build("JFK-LHR", "big", lambda: (big, False))
    cache.invalidate("elsewhere")  # the write went behind the answer: this round trip sees it landed
    raw = redis.Redis(port=private_redis.port)
    key = entry_key("flights", "JFK-LHR", query_digest("big"))
    stored = raw.get(key)
    assert stored is not None and stored[:1] == b"z"
    # The CRC covers the compressed bytes; replace them with bytes that do not inflate, CRC recomputed.
    rest = stored[5:13] + b"not deflate data"
    raw.set(key, b"z" + zlib.crc32(rest).to_bytes(4, "big") + rest)
    answer = cache.get_or_build("JFK-LHR", "big", lambda: (big, False))
    assert (answer.status, answer.body) == (MISS, big)
    assert metrics.counts["CacheCorrupt"] == 1
    raw.close()


# --- 15. stampede ---------------------------------------------------------------------------------


@pytest.fixture
def counted_dynamodb() -> Iterator[tuple[Any, list[str]]]:
    """A DynamoDB client built as the functions build theirs, with every call it makes recorded."""
    dynamo = ScriptedDynamo()
    yield dynamo.client, dynamo.sent


def test_fifty_concurrent_misses_on_one_key_make_at_most_one_dynamodb_query(
    stack: LocalStack, today: date, counted_dynamodb: tuple[Any, list[str]]
) -> None:
    client, calls = counted_dynamodb
    table = DynamoTable(stack.tables["FlightsTable"], client=client)
    settings = cache_settings_from_env()
    query = flight_query({**stack.examples["flights"], "sort": "departure", "limit": "49"}, today)
    gate = threading.Barrier(50)
    answers: list[Any] = []

    def container() -> None:
        # One cold container per caller: its own cache client, connection and breaker; one shared table.
        search = FlightSearch(DynamoOfferSource(table), search_cache("flights", settings, CountingMetrics()), NO_SECRET)
        gate.wait(timeout=30)
        answers.append(search.search(query))

    threads = [threading.Thread(target=container, daemon=True) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 50
    assert calls == ["Query"]
    assert len({answer.body for answer in answers}) == 1 and '"results":[{' in answers[0].body
    assert sorted(answer.status for answer in answers) == sorted([MISS] + [HIT] * 49)


# --- 16. stale-set race ---------------------------------------------------------------------------


class ReaderStalledAfterItsQuery:
    """An OfferSource that answers from DynamoDB, then keeps the reader waiting (a slow Lambda)."""

    def __init__(self, source: DynamoOfferSource) -> None:
        self._source = source
        self.read = threading.Event()
        self.go_on = threading.Event()

    def offers(self, origin: str, destination: str, date: str) -> list[FlightOffer]:
        offers = self._source.offers(origin, destination, date)
        self.read.set()
        self.go_on.wait(timeout=10)
        return offers


def test_a_slow_reader_never_stores_pre_invalidation_data_under_the_new_generation(
    stack: LocalStack,
    client: Client,
    keys: dict[str, dict[str, str]],
    stack_redis: redis.Redis,
    today: date,
    travel_day: date,
) -> None:
    route = ("QSA", "QSB")
    assert failed_ids(flights_ingest(sqs_batch([eventbridge_body(_offer(route, travel_day, "300.00", 1))]), None)) == []
    params = {"origin": route[0], "destination": route[1], "date": travel_day.isoformat()}
    query = flight_query(params, today)
    slow = ReaderStalledAfterItsQuery(DynamoOfferSource(DynamoTable(stack.tables["FlightsTable"])))
    reader = FlightSearch(slow, search_cache("flights", cache_settings_from_env(), CountingMetrics()), NO_SECRET)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(reader.search(query)), daemon=True)
    # Given a reader that has read the old price from DynamoDB and has not yet stored its result
    thread.start()
    assert slow.read.wait(timeout=10)
    # When a new price is ingested meanwhile (a conditional write, then the route's generation INCR)
    assert failed_ids(flights_ingest(sqs_batch([eventbridge_body(_offer(route, travel_day, "150.00", 2))]), None)) == []
    slow.go_on.set()
    thread.join(timeout=10)
    # Then the reader answers its own caller with what it read, but stores nothing under the new generation
    assert outcome and outcome[0].status == MISS and '"amount":"300.00"' in outcome[0].body
    stored = stack_redis.get(entry_key("flights", query.route, query_digest(query.canonical())))
    generation = int(stack_redis.get(generation_key("flights", query.route)) or 0)
    assert stored is None or unframe(stored)[0] != generation  # type: ignore[index]
    # And travellers get the new price, from DynamoDB and then from the cache
    fresh = client.get(SEARCH, query_string=params, headers=keys["basic"])
    cached = client.get(SEARCH, query_string=params, headers=keys["basic"])
    assert (fresh.headers["X-Cache"], cached.headers["X-Cache"]) == (MISS, HIT)
    assert fresh.get_json()["results"][0]["price"]["amount"] == "150.00"
    assert cached.get_data() == fresh.get_data()


def _offer(route: tuple[str, str], day: date, price: str, sequence: int) -> dict[str, Any]:
    return flight_event(route[0], route[1], day, [("QS101", "economy", price)], sequence)


# --- 17. replies out of step ----------------------------------------------------------------------


class ScriptedRedis:
    """A Redis-protocol server on 127.0.0.1 that answers each command with whatever ``answer`` returns:
    raw bytes, sent as they are (so a reply can be late, of the wrong kind, or another command's), or
    None to close the connection. It records every command it was sent, with its connection's number.
    """

    def __init__(self, answer: Callable[[int, list[bytes]], bytes | None]) -> None:
        self._answer = answer
        self.commands: list[tuple[int, list[bytes]]] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def names(self) -> list[tuple[int, str]]:
        return [(connection, command[0].decode().upper()) for connection, command in self.commands]

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                peer, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(peer, self.connections), daemon=True).start()
            self.connections += 1

    def _serve(self, peer: socket.socket, number: int) -> None:
        reader = hiredis.Reader()
        with peer:
            while data := peer.recv(65536):
                reader.feed(data)
                while (command := reader.gets()) is not False:
                    self.commands.append((number, command))
                    reply = self._answer(number, command)
                    if reply is None:
                        return
                    peer.sendall(reply)


NIL = b"$-1\r\n"
READ_MISS = b"*3\r\n" + b"$1\r\n0\r\n" + NIL + b":1\r\n"  # generation 0, no entry, this caller's lock


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def read_hit_of_generation_0(body: str) -> bytes:
    """A reply of the read script that is a hit for any entry of a scope in generation 0."""
    return b"*3\r\n" + bulk(b"0") + bulk(frame(body, 0)) + b":0\r\n"


def is_read(command: list[bytes]) -> bool:
    """The read script (EVALSHA sha 3 generation entry lock token ttl), not the write (ten arguments)."""
    return command[0].upper() in (b"EVALSHA", b"EVAL") and len(command) == 8


def cache_on(server: ScriptedRedis, metrics: CountingMetrics, **store: float) -> SearchCache:
    settings = CacheSettings("127.0.0.1", server.port, False, "none", "", "", 300, "us-east-1")
    return SearchCache("flights", RedisCacheStore(lambda: connect(settings), **store), metrics)


def answers_a_healthy_miss(command: list[bytes]) -> bytes:
    """What redis-server answers a rebuilding caller: a miss with the lock, then a stored write."""
    name = command[0].upper()
    if is_read(command):
        return READ_MISS
    if name in (b"EVALSHA", b"EVAL"):  # a write: EVAL when sent behind (the answer does not wait for it)
        return b":1\r\n"
    if name == b"SCRIPT":
        return bulk(b"0" * 40)
    if name == b"PING":
        return b"+PONG\r\n"
    raise AssertionError(f"unexpected command {command!r}")


def test_a_reply_to_a_read_that_comes_late_is_never_taken_for_a_later_answer() -> None:
    # Given a server whose first connection answers the first read only after the socket timeout, with a
    # reply that would be a hit for another query's body
    def answer(connection: int, command: list[bytes]) -> bytes | None:
        if connection == 0 and is_read(command):
            time.sleep(SOCKET_TIMEOUT_SECONDS * 3)
            return read_hit_of_generation_0('{"another":"query"}')
        return answers_a_healthy_miss(command)

    server, metrics = ScriptedRedis(answer), CountingMetrics()
    try:
        cache = cache_on(server, metrics)
        answer_1 = cache.get_or_build("JFK-LHR", "q", lambda: ('{"own":"result"}', False))
        answer_2 = cache.get_or_build("JFK-LHR", "q2", lambda: ('{"own":"second"}', False))
    finally:
        server.close()
    # Then the read was sent again on a fresh connection, and each search got its own result
    assert (answer_1.status, answer_1.body) == (MISS, '{"own":"result"}')
    assert (answer_2.status, answer_2.body) == (MISS, '{"own":"second"}')
    assert server.names()[:3] == [(0, "EVALSHA"), (1, "EVALSHA"), (1, "EVAL")]
    assert metrics.counts["CacheError"] == 0


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"+OK\r\n", id="a status"),
        pytest.param(b":1\r\n", id="an integer"),
        pytest.param(b"*2\r\n" + NIL + NIL, id="two values"),
        pytest.param(b"*3\r\n:0\r\n" + NIL + b":1\r\n", id="an integer generation"),
        pytest.param(b"*3\r\n" + bulk(b"0") + b":5\r\n:0\r\n", id="an integer where the entry belongs"),
        pytest.param(b"*3\r\n" + bulk(b"0") + NIL + b":2\r\n", id="a lock flag of 2"),
        pytest.param(b"*3\r\n" + bulk(b"0") + NIL + bulk(b"1"), id="a string lock flag"),
        pytest.param(READ_MISS + read_hit_of_generation_0('{"x":1}'), id="two replies to one read"),
    ],
)
def test_a_read_answered_with_a_reply_of_the_wrong_shape_is_a_cache_error_never_a_hit(reply: bytes) -> None:
    # Given a server that answers the read script with a reply that does not fit it
    def answer(connection: int, command: list[bytes]) -> bytes | None:
        return reply if is_read(command) else answers_a_healthy_miss(command)

    server, metrics = ScriptedRedis(answer), CountingMetrics()
    try:
        cache = cache_on(server, metrics)
        answer = cache.get_or_build("JFK-LHR", "q", lambda: ('{"own":"result"}', False))
    finally:
        server.close()
    # Then the search is answered from the source, the error counted, and that connection not used again
    assert (answer.status, answer.body) == (BYPASS, '{"own":"result"}')
    assert metrics.counts["CacheError"] == 1 and metrics.counts["CacheHit"] == 0
    assert server.names() == [(0, "EVALSHA")], server.names()


def test_a_write_answered_with_the_wrong_kind_of_reply_still_answers_the_searches() -> None:
    def answer(connection: int, command: list[bytes]) -> bytes | None:
        return b"+OK\r\n" if command[0] == b"EVAL" and not is_read(command) else answers_a_healthy_miss(command)

    server, metrics = ScriptedRedis(answer), CountingMetrics()
    try:
        cache = cache_on(server, metrics)
        # The write is sent behind the answer: the first search does not wait for its reply
        first = cache.get_or_build("JFK-LHR", "q", lambda: ('{"own":"result"}', False))
        # The next command reads it first, finds it out of step, and drops the connection
        second = cache.get_or_build("JFK-LHR", "r", lambda: ('{"second":"result"}', False))
    finally:
        server.close()
    assert (first.status, first.body) == (MISS, '{"own":"result"}')
    assert second.body == '{"second":"result"}'
    assert metrics.counts["CacheError"] == 1


def test_an_idle_connection_is_checked_with_ping_before_use_and_replaced_when_it_fails() -> None:
    # Given a server that stops answering PING on its first connection (a connection dropped while frozen)
    def answer(connection: int, command: list[bytes]) -> bytes | None:
        if command[0] == b"PING" and connection == 0:
            return None
        return answers_a_healthy_miss(command)

    server, metrics = ScriptedRedis(answer), CountingMetrics()
    try:
        # A store whose connections count as idle at once
        cache = cache_on(server, metrics, health_check_seconds=0)
        cache.get_or_build("JFK-LHR", "q", lambda: ('{"own":"result"}', False))
    finally:
        server.close()
    # Then every command after the first on a connection went after a PING; the failed one moved the
    # cache write to a fresh connection without a cache error
    assert server.names()[:3] == [(0, "EVALSHA"), (0, "PING"), (1, "EVAL")]
    assert metrics.counts["CacheError"] == 0


def test_a_search_answers_before_its_cache_write_is_acknowledged() -> None:
    # Given a server that acknowledges the cache write only when the test lets it
    acknowledge = threading.Event()

    def answer(connection: int, command: list[bytes]) -> bytes | None:
        if command[0] == b"EVAL" and not is_read(command):
            acknowledge.wait(timeout=5)
        return answers_a_healthy_miss(command)

    server, metrics = ScriptedRedis(answer), CountingMetrics()
    try:
        cache = cache_on(server, metrics)
        # When a search misses, the answer is back while the write's reply is still outstanding
        first = cache.get_or_build("JFK-LHR", "q", lambda: ('{"own":"result"}', False))
        assert (first.status, first.body) == (MISS, '{"own":"result"}')
        assert not acknowledge.is_set()
        # And the next search on the connection reads that reply first, then its own, in step
        acknowledge.set()
        second = cache.get_or_build("JFK-LHR", "r", lambda: ('{"second":"result"}', False))
    finally:
        server.close()
    assert (second.status, second.body) == (MISS, '{"second":"result"}')
    # (the second search's own write went behind its answer too: the server may not have read it yet)
    assert [name for connection, name in server.names()][:3] == ["EVALSHA", "EVAL", "EVALSHA"]
    assert {connection for connection, _ in server.names()} == {0}
    assert metrics.counts["CacheError"] == 0
