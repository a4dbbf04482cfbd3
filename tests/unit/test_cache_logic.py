"""Cache layer logic that needs no Redis: framing, the circuit breaker, failing open."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.cache import BYPASS, CacheUnavailable, CircuitBreaker, SearchCache, frame, unframe
from tests.fakes import CountingMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class DeadRedis:
    """A RedisPort whose every call fails like a stopped server, and which counts the attempts."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self, *args: Any) -> Any:
        self.calls += 1
        raise CacheUnavailable("connection refused")

    read = read_or_lock = write = write_behind = incr = _fail


@pytest.mark.parametrize("body", ['{"results":[]}', '{"name":"Zürich ✈"}', '{"x":"' + "a" * 20_000 + '"}'])
def test_frame_round_trip(body: str) -> None:
    assert unframe(frame(body, 7)) == (7, body)


def test_large_bodies_are_stored_compressed() -> None:
    body = '{"x":"' + "a" * 20_000 + '"}'
    assert len(frame(body, 0)) < len(body) / 10


@pytest.mark.parametrize(
    "corrupt",
    [b"", b"r12", b"r" + bytes(12) + b"{}", b"q" + frame("{}", 1)[1:], frame("{}", 1)[:-1], b"z" + frame("{}", 1)[1:]],
)
def test_corrupt_values_are_detected(corrupt: bytes) -> None:
    assert unframe(corrupt) is None


def test_flipped_payload_byte_is_detected() -> None:
    stored = bytearray(frame('{"price":"412.30"}', 3))
    stored[-3] ^= 0x01
    assert unframe(bytes(stored)) is None


def test_breaker_opens_on_failure_and_lets_one_probe_per_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, reset_seconds=5, clock=clock)
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow() and breaker.is_open
    clock.now += 5
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everybody else waits for the probe's window
    breaker.succeeded()
    assert breaker.allow() and not breaker.is_open


def test_dead_cache_serves_from_the_source_and_costs_one_attempt_per_window() -> None:
    clock, redis, metrics = Clock(), DeadRedis(), CountingMetrics()
    cache = SearchCache("flights", redis, metrics, breaker=CircuitBreaker(reset_seconds=5, clock=clock), clock=clock)
    answers = [cache.get_or_build("JFK-LHR", f"q{i}", lambda: ('{"results":[]}', True)) for i in range(100)]
    assert {(a.body, a.status) for a in answers} == {('{"results":[]}', BYPASS)}
    assert redis.calls == 1
    assert metrics.counts["CacheError"] == 1
    clock.now += 5.1
    cache.get_or_build("JFK-LHR", "q", lambda: ("{}", False))
    assert redis.calls == 2
    assert cache.invalidate("JFK-LHR") is None


def test_build_errors_propagate_and_are_not_cached() -> None:
    class Boom(Exception):
        pass

    cache = SearchCache("flights", DeadRedis(), CountingMetrics())

    def build() -> tuple[str, bool]:
        raise Boom

    with pytest.raises(Boom):
        cache.get_or_build("JFK-LHR", "q", build)


def test_breaker_uses_monotonic_time_by_default() -> None:
    breaker = CircuitBreaker(reset_seconds=0.01)
    breaker.failed()
    assert not breaker.allow()
    time.sleep(0.02)
    assert breaker.allow()
