"""The shared cache layer against a real redis-server: generations, fence, stampede, TTLs, faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from core.cache import (
    HIT,
    MISS,
    STALE,
    CachePolicy,
    CircuitBreaker,
    SearchCache,
    entry_key,
    frame,
    generation_key,
    lock_key,
    query_digest,
    unframe,
)
from core.redis_client import RedisCacheStore, connect
from core.settings import CacheSettings
from local.redis_server import RedisServer
from tests.fakes import CountingMetrics

pytestmark = pytest.mark.integration


def cache_settings(server: RedisServer) -> CacheSettings:
    return CacheSettings(
        host=server.host,
        port=server.port,
        tls=False,
        auth="none",
        user="",
        name="",
        ttl_seconds=300,
        region="us-east-1",
    )


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def metrics() -> CountingMetrics:
    return CountingMetrics()


def new_cache(server: RedisServer, metrics: CountingMetrics, **policy: float) -> SearchCache:
    store = RedisCacheStore(lambda: connect(cache_settings(server)))
    return SearchCache("flights", store, metrics, CachePolicy(**policy))  # type: ignore[arg-type]


def settle(cache: SearchCache) -> None:
    """Let the writes a cache sent behind its answers land: any round trip on its connection reads their
    replies first (an INCR of a scope no test searches)."""
    cache.invalidate("settle")


class CountingBuild:
    def __init__(self, body: str = '{"results":[1]}', empty: bool = False, delay: float = 0.0) -> None:
        self.body, self.empty, self.delay = body, empty, delay
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, bool]:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.body, self.empty


def test_miss_then_hit_returns_the_identical_body(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache, build = new_cache(redis_server, metrics), CountingBuild()
    first = cache.get_or_build("JFK-LHR", "q", build)
    second = cache.get_or_build("JFK-LHR", "q", build)
    assert (first.status, second.status, build.calls) == (MISS, HIT, 1)
    assert first.body == second.body == '{"results":[1]}'
    assert (metrics.counts["CacheMiss"], metrics.counts["CacheHit"]) == (1, 1)


def test_keys_are_hash_tagged_and_hashed_never_raw_input(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics)
    cache.get_or_build("JFK-LHR", "'; DROP TABLE flights; --", CountingBuild())
    settle(cache)
    [key] = [k.decode() for k in raw.keys("search:*")]
    prefix, digest = key.rsplit(":", 1)
    assert prefix == "search:{flights:JFK-LHR}"
    assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    assert raw.keys("lock:*") == []  # the rebuilder released its lock


def test_invalidation_is_one_incr_of_the_scope_and_leaves_other_scopes(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics)
    cache.get_or_build("JFK-LHR", "q", CountingBuild())
    cache.get_or_build("JFK-CDG", "q", CountingBuild())
    assert cache.invalidate("JFK-LHR") == 1
    assert raw.get(generation_key("flights", "JFK-LHR")) == b"1"
    assert cache.get_or_build("JFK-LHR", "q", CountingBuild('{"new":1}')).status == MISS
    assert cache.get_or_build("JFK-CDG", "q", CountingBuild()).status == HIT
    assert cache.get_or_build("JFK-LHR", "q", CountingBuild()).body == '{"new":1}'


def test_result_built_before_an_invalidation_is_never_stored_under_the_new_generation(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics)

    def slow_build_racing_an_ingest() -> tuple[str, bool]:
        cache.invalidate("JFK-LHR")  # an ingest lands while this reader is still querying
        return '{"old":true}', False

    assert cache.get_or_build("JFK-LHR", "q", slow_build_racing_an_ingest).body == '{"old":true}'
    settle(cache)
    assert raw.keys("search:*") == []  # the fence refused the write
    after = cache.get_or_build("JFK-LHR", "q", CountingBuild('{"new":true}'))
    assert (after.status, after.body) == (MISS, '{"new":true}')
    settle(cache)
    [key] = raw.keys("search:*")
    assert unframe(raw.get(key)) == (1, '{"new":true}')


def concurrent_statuses(cache: SearchCache, build: CountingBuild, callers: int = 50) -> list[str]:
    """The X-Cache status of each of ``callers`` threads searching the same query at once."""
    barrier = threading.Barrier(callers)
    statuses: list[str] = []

    def search() -> None:
        barrier.wait()
        statuses.append(cache.get_or_build("JFK-LHR", "popular", build).status)

    threads = [threading.Thread(target=search) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return statuses


def test_fifty_concurrent_misses_cause_one_rebuild(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache, build = new_cache(redis_server, metrics), CountingBuild(delay=0.2)
    statuses = concurrent_statuses(cache, build)
    assert build.calls == 1
    assert len(statuses) == 50 and statuses.count(MISS) == 1 and statuses.count(HIT) == 49


def test_fifty_concurrent_searches_of_an_entry_read_as_a_hit_after_an_invalidation_cause_one_rebuild(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    # Given an entry this container has read as a hit (so its next reads are plain MGETs), then invalidated
    cache, build = new_cache(redis_server, metrics), CountingBuild(delay=0.2)
    assert [cache.get_or_build("JFK-LHR", "popular", build).status for _ in range(2)] == [MISS, HIT]
    raw.incr(generation_key("flights", "JFK-LHR"))
    # When fifty callers search it at once
    statuses = concurrent_statuses(cache, build)
    # Then one of them rebuilt it and the others served the older copy (or the new one, once stored)
    assert build.calls == 2
    assert len(statuses) == 50 and statuses.count(MISS) == 1 and set(statuses) <= {MISS, STALE, HIT}


def test_callers_take_the_previous_generation_while_one_rebuilds(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics)
    cache.get_or_build("JFK-LHR", "q", CountingBuild('{"v":1}'))
    cache.invalidate("JFK-LHR")
    seen: list[tuple[str, str]] = []

    def rebuild() -> tuple[str, bool]:
        other = cache.get_or_build("JFK-LHR", "q", CountingBuild('{"never":1}'))  # a second caller meanwhile
        seen.append((other.body, other.status))
        return '{"v":2}', False

    assert cache.get_or_build("JFK-LHR", "q", rebuild).body == '{"v":2}'
    assert seen == [('{"v":1}', STALE)]
    assert cache.get_or_build("JFK-LHR", "q", CountingBuild()).body == '{"v":2}'


def test_ttl_has_jitter_and_empty_results_live_shorter(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics, ttl_seconds=300, negative_ttl_seconds=30, jitter=0.1)
    for i in range(20):
        cache.get_or_build("JFK-LHR", f"full{i}", CountingBuild())
        cache.get_or_build("JFK-LHR", f"empty{i}", CountingBuild('{"results":[]}', empty=True))
    settle(cache)
    full = [raw.pttl(k) for k in raw.keys("search:*") if raw.get(k) and b"[1]" in raw.get(k)]
    empty = [raw.pttl(k) for k in raw.keys("search:*") if raw.get(k) and b"[]" in raw.get(k)]
    assert len(full) == len(empty) == 20
    assert all(270_000 - 1000 <= ttl <= 330_000 for ttl in full) and len(set(full)) > 1
    assert all(27_000 - 1000 <= ttl <= 33_000 for ttl in empty)


def test_corrupt_entry_is_a_miss_and_is_overwritten(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics)
    cache.get_or_build("JFK-LHR", "q", CountingBuild())
    settle(cache)
    [key] = raw.keys("search:*")
    raw.set(key, b"r\x00\x00\x00\x00garbage")
    again = cache.get_or_build("JFK-LHR", "q", CountingBuild('{"fresh":1}'))
    assert (again.status, again.body) == (MISS, '{"fresh":1}')
    assert cache.get_or_build("JFK-LHR", "q", CountingBuild()).status == HIT
    assert metrics.counts["CacheCorrupt"] == 1


def test_failed_rebuild_releases_its_lock_at_once(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics, wait_seconds=0.05)

    def failing() -> tuple[str, bool]:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        cache.get_or_build("JFK-LHR", "q", failing)
    settle(cache)
    assert raw.keys("lock:*") == []
    assert cache.get_or_build("JFK-LHR", "q", CountingBuild()).status == MISS


@pytest.mark.parametrize("reads_before", [1, 2], ids=["entry-missed", "entry-read-as-a-hit"])
def test_stopped_redis_fails_open_within_the_timeout_budget(metrics: CountingMetrics, reads_before: int) -> None:
    server = RedisServer().start()
    cache = new_cache(server, metrics)
    for _ in range(reads_before):
        cache.get_or_build("JFK-LHR", "q", CountingBuild())
    server.stop()
    started = time.perf_counter()
    answers = [cache.get_or_build("JFK-LHR", "q", CountingBuild()) for _ in range(50)]
    elapsed = time.perf_counter() - started
    assert {a.status for a in answers} == {"BYPASS"}
    assert elapsed < 0.3, f"50 searches against a dead cache took {elapsed:.3f}s"
    assert metrics.counts["CacheError"] == 1  # the breaker opened after the first failure


def test_stalled_redis_costs_at_most_the_timeout_budget(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = SearchCache(
        "flights",
        RedisCacheStore(lambda: connect(cache_settings(redis_server))),
        metrics,
        breaker=CircuitBreaker(reset_seconds=60),
    )
    cache.get_or_build("JFK-LHR", "q", CountingBuild())
    redis_server.pause()
    try:
        started = time.perf_counter()
        answers = [cache.get_or_build("JFK-LHR", "q", CountingBuild()) for _ in range(20)]
        elapsed = time.perf_counter() - started
    finally:
        redis_server.resume()
    assert {a.status for a in answers} == {"BYPASS"}
    assert elapsed < 0.3, f"20 searches against a stalled cache took {elapsed:.3f}s"


def test_a_search_is_one_round_trip_to_redis_before_its_answer_on_a_hit_and_on_a_miss(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics)
    cache.get_or_build("JFK-LHR", "warm", CountingBuild())  # the connection, and the script known to the server
    settle(cache)
    raw.config_resetstat()
    # When one search misses and the next one hits
    statuses = [cache.get_or_build("JFK-LHR", "q", CountingBuild()).status for _ in range(2)]
    settle(cache)
    # Then each read was one script call (the miss took its lock in it), plus the miss's write behind it
    # (commandstats also counts the GETs and SETs the scripts make)
    calls = command_calls(raw)
    assert statuses == [MISS, HIT]
    assert (calls.get("evalsha"), calls.get("eval"), calls.get("mget")) == (2, 1, None)


def command_calls(raw: redis.Redis) -> dict[str, int]:
    """How many times redis-server ran each command since its statistics were reset (the reset aside)."""
    calls = {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in raw.info("commandstats").items()}
    calls.pop("config|resetstat", None)
    return calls


def test_an_entry_read_as_a_hit_is_read_with_a_plain_mget_and_a_miss_of_it_still_locks(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    # Given an entry this cache has read as a hit
    cache = new_cache(redis_server, metrics)
    assert [cache.get_or_build("JFK-LHR", "q", CountingBuild()).status for _ in range(2)] == [MISS, HIT]
    raw.config_resetstat()
    # When it is searched again, that read is one MGET: no script runs
    assert cache.get_or_build("JFK-LHR", "q", CountingBuild()).status == HIT
    assert command_calls(raw) == {"mget": 1}
    # When ingest invalidates its route and it is searched again
    raw.incr(generation_key("flights", "JFK-LHR"))
    raw.config_resetstat()
    again = cache.get_or_build("JFK-LHR", "q", CountingBuild('{"new":1}'))
    settle(cache)
    calls = command_calls(raw)
    # Then the MGET found it stale, the read script read again and took the lock (a SET), and the write
    # behind the answer stored the rebuild (a SET) and released the lock
    assert (again.status, again.body) == (MISS, '{"new":1}')
    assert (calls["mget"], calls["evalsha"], calls["eval"], calls["set"], calls["del"]) == (1, 1, 1, 2, 1), calls
    assert raw.keys("lock:*") == []
    # And the entry is read by the script until it has been read as a hit again
    raw.config_resetstat()
    statuses = [cache.get_or_build("JFK-LHR", "q", CountingBuild()).status for _ in range(2)]
    calls = command_calls(raw)
    assert statuses == [HIT, HIT] and (calls["evalsha"], calls["mget"]) == (1, 1), calls


def test_a_corrupt_entry_read_with_a_plain_mget_is_rebuilt(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics)
    assert [cache.get_or_build("JFK-LHR", "q", CountingBuild()).status for _ in range(2)] == [MISS, HIT]
    [key] = raw.keys("search:*")
    raw.set(key, b"r\x00\x00\x00\x00garbage")
    again = cache.get_or_build("JFK-LHR", "q", CountingBuild('{"fresh":1}'))
    assert (again.status, again.body, metrics.counts["CacheCorrupt"]) == (MISS, '{"fresh":1}', 1)
    assert cache.get_or_build("JFK-LHR", "q", CountingBuild()).body == '{"fresh":1}'


def test_the_entries_remembered_as_hits_are_bounded(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    # Given a cache that remembers one entry, which has read two entries as hits, one after the other
    store = RedisCacheStore(lambda: connect(cache_settings(redis_server)))
    cache = SearchCache("flights", store, metrics, warm_entries=1)
    for query in ("a", "a", "b", "b"):
        cache.get_or_build("JFK-LHR", query, CountingBuild())
    settle(cache)
    raw.config_resetstat()
    # Then the first is read by the script again (forgotten), the last with a plain MGET
    assert cache.get_or_build("JFK-LHR", "a", CountingBuild()).status == HIT
    assert (command_calls(raw).get("evalsha"), command_calls(raw).get("mget")) == (1, None)
    raw.config_resetstat()
    assert cache.get_or_build("JFK-LHR", "a", CountingBuild()).status == HIT
    assert (command_calls(raw).get("evalsha"), command_calls(raw).get("mget")) == (None, 1)


def test_a_lock_of_an_older_generation_does_not_hold_back_the_rebuild_of_the_current_one(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    key = entry_key("flights", "JFK-LHR", query_digest("q"))
    # Given a rebuild of generation 0 still under way (its lock held) when ingest moves the scope to 1
    raw.set(lock_key(key), "0:a rebuilder of generation 0", px=3000)
    raw.incr(generation_key("flights", "JFK-LHR"))
    sleeps: list[float] = []
    store = RedisCacheStore(lambda: connect(cache_settings(redis_server)))
    cache, build = SearchCache("flights", store, metrics, sleep=sleeps.append), CountingBuild()
    # When a search of generation 1 misses
    answer = cache.get_or_build("JFK-LHR", "q", build)
    settle(cache)
    # Then it rebuilds at once, stores the result under generation 1 and releases its own lock
    assert (answer.status, build.calls, sleeps) == (MISS, 1, [])
    assert unframe(raw.get(key)) == (1, '{"results":[1]}')
    assert raw.keys("lock:*") == []


def test_a_caller_that_finds_the_current_generation_locked_waits_for_that_rebuild_and_serves_it(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    key = entry_key("flights", "JFK-LHR", query_digest("q"))
    # Given another caller rebuilding this entry in the current generation (0), with nothing older cached
    raw.set(lock_key(key), "0:another caller", px=3000)
    sleeps: list[float] = []

    def rebuild_lands(seconds: float) -> None:
        sleeps.append(seconds)
        raw.set(key, frame('{"landed":1}', 0))

    store = RedisCacheStore(lambda: connect(cache_settings(redis_server)))
    cache = SearchCache("flights", store, metrics, sleep=rebuild_lands)
    build = CountingBuild()
    # When this caller searches
    answer = cache.get_or_build("JFK-LHR", "q", build)
    # Then it waited one poll, read again, and served the other caller's result without rebuilding
    assert (answer.status, answer.body, build.calls, len(sleeps)) == (HIT, '{"landed":1}', 0, 1)
    assert raw.get(lock_key(key)) == b"0:another caller"


def test_flushed_scripts_are_loaded_again_and_the_result_stored(
    redis_server: RedisServer, raw: redis.Redis, metrics: CountingMetrics
) -> None:
    cache = new_cache(redis_server, metrics)
    cache.get_or_build("JFK-LHR", "first", CountingBuild())
    # A restarted or failed-over server has no scripts: the next read and write meet NOSCRIPT
    raw.script_flush()
    answer = cache.get_or_build("JFK-LHR", "second", CountingBuild('{"second":1}'))
    assert (answer.status, answer.body) == (MISS, '{"second":1}')
    assert cache.get_or_build("JFK-LHR", "second", CountingBuild()).status == HIT
    assert metrics.counts["CacheError"] == 0


def test_a_lock_refused_by_a_read_only_replica_is_a_cache_error_not_a_stale_or_hit_answer(
    metrics: CountingMetrics,
) -> None:
    with RedisServer() as primary, RedisServer() as replica:
        primary_raw, replica_raw = redis.Redis(port=primary.port), redis.Redis(port=replica.port)
        try:
            cache = new_cache(replica, metrics)
            primary_raw.config_set("repl-diskless-sync-delay", 0)  # sync at once, not after 5 s
            replica_raw.replicaof(primary.host, primary.port)
            deadline = time.monotonic() + 10
            while replica_raw.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline, "the replica did not sync"
                time.sleep(0.02)
            # The replica answers reads (a miss) and refuses the lock with READONLY, on every attempt
            answer = cache.get_or_build("JFK-LHR", "q", CountingBuild('{"from":"source"}'))
            assert (answer.status, answer.body) == ("BYPASS", '{"from":"source"}')
            assert metrics.counts["CacheError"] == 1
        finally:
            replica_raw.replicaof("NO", "ONE")
            primary_raw.close()
            replica_raw.close()
