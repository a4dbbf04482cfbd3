"""Cache-aside for search results over a Redis-protocol cache (ElastiCache Valkey/Redis, or redis-server).

Keys (the braces are a cluster hash tag, so one scope lives in one slot)::

    gen:{flights:JFK-LHR}                        generation counter of a scope
    search:{flights:JFK-LHR}:g7:<sha256>         a rendered response of generation 7
    lock:search:{flights:JFK-LHR}:g7:<sha256>    the one rebuilder of that entry

* Invalidation is one ``INCR`` of the scope's generation: older entries become unreachable and
  expire by TTL. No KEYS, no SCAN, no fan-out deletes.
* A read is one round trip: a Lua script reads the generation and the entry together, and on a
  miss elects one rebuilder (stampede protection) and offers the previous generation's entry as
  stale to everybody else.
* A write is fenced: it lands only if the generation is still the one the reader saw, so a
  result computed before an invalidation is never stored under the new generation.
* The stored value is the rendered body behind a 5-byte frame (format, CRC32): a hit is returned
  without JSON parsing, and a corrupt entry is detected, treated as a miss and overwritten.
* The cache never breaks a search: every Redis error is counted (``CacheError``), trips a circuit
  breaker, and the result is built from the database instead.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.observability import MetricsSink, subsegment

HIT, MISS, BYPASS, STALE = "HIT", "MISS", "BYPASS", "STALE"

# KEYS[1] = generation key. ARGV: entry prefix, query digest, lock token, lock ttl (ms).
# Returns {generation, value or false, state}: state 0 = hit, 1 = miss and this caller rebuilds,
# 2 = miss while another caller rebuilds (value is then the previous generation's entry, if any).
# The entry and lock keys share the generation key's hash tag, so they live in its slot.
READ_SCRIPT = """
local gen = redis.call('GET', KEYS[1]) or '0'
local entry = ARGV[1] .. ':g' .. gen .. ':' .. ARGV[2]
local value = redis.call('GET', entry)
if value then return {gen, value, 0} end
if redis.call('SET', 'lock:' .. entry, ARGV[3], 'NX', 'PX', ARGV[4]) then return {gen, false, 1} end
local previous = tonumber(gen) - 1
if previous < 0 then return {gen, false, 2} end
return {gen, redis.call('GET', ARGV[1] .. ':g' .. previous .. ':' .. ARGV[2]), 2}
"""

# KEYS[1] = generation key. ARGV: entry prefix, query digest, generation read, value, ttl (ms), lock token.
# Stores only if the generation has not moved since the read (the stale-set fence); always
# releases this caller's lock (an empty value only releases it). Returns 1 when stored.
WRITE_SCRIPT = """
local entry = ARGV[1] .. ':g' .. ARGV[3] .. ':' .. ARGV[2]
if ARGV[6] ~= '' and redis.call('GET', 'lock:' .. entry) == ARGV[6] then redis.call('DEL', 'lock:' .. entry) end
if ARGV[4] == '' then return 0 end
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[3] then return 0 end
redis.call('SET', entry, ARGV[4], 'PX', ARGV[5])
return 1
"""

_RAW, _ZLIB = b"r", b"z"
_COMPRESS_ABOVE = 8192


class CacheUnavailable(Exception):
    """Raised by a RedisPort when the cache cannot answer (timeout, connection, server error)."""


class RedisPort(Protocol):
    """The three operations the cache needs; :mod:`core.redis_client` implements them over redis-py."""

    def read(self, generation_key: str, prefix: str, digest: str, lock_token: str, lock_ms: int) -> list[Any]: ...

    def write(
        self, generation_key: str, prefix: str, digest: str, generation: bytes, value: bytes, ttl_ms: int, token: str
    ) -> int: ...

    def incr(self, generation_key: str) -> int: ...


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long entries live and how long callers wait for another caller's rebuild."""

    ttl_seconds: int = 300
    negative_ttl_seconds: int = 30  # empty results: cached, but briefly
    jitter: float = 0.1  # ± share of the TTL, so entries written together do not expire together
    lock_ms: int = 3000  # a rebuilder that dies frees its key after this
    wait_seconds: float = 1.0  # how long a caller waits for another caller's rebuild
    poll_seconds: float = 0.01


@dataclass(frozen=True, slots=True)
class Cached:
    body: str
    status: str  # HIT | MISS | BYPASS | STALE


Build = Callable[[], tuple[str, bool]]  # → (rendered JSON body, result is empty)


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; lets one probe through every ``reset_seconds``.

    With the default threshold of 1, a dead cache costs one timeout per window, not one per request.
    """

    def __init__(
        self, threshold: int = 1, reset_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = threshold
        self._reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            if self._failures < self._threshold:
                return True
            now = self._clock()
            if now < self._open_until:
                return False
            self._open_until = now + self._reset_seconds  # half-open: this caller is the probe
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self._threshold:
                self._open_until = self._clock() + self._reset_seconds

    @property
    def is_open(self) -> bool:
        return self._failures >= self._threshold and self._clock() < self._open_until


def frame(body: str) -> bytes:
    """The stored form of a body: format byte, CRC32 of the payload, payload."""
    payload = body.encode()
    kind = _RAW
    if len(payload) > _COMPRESS_ABOVE:
        payload, kind = zlib.compress(payload, 1), _ZLIB
    return kind + zlib.crc32(payload).to_bytes(4, "big") + payload


def unframe(value: bytes) -> str | None:
    """The body of a stored value, or None when the value is corrupt."""
    if len(value) < 5:
        return None
    kind, checksum, payload = value[:1], value[1:5], value[5:]
    if zlib.crc32(payload).to_bytes(4, "big") != checksum:
        return None
    if kind == _RAW:
        try:
            return payload.decode()
        except UnicodeDecodeError:
            return None
    if kind == _ZLIB:
        return zlib.decompress(payload).decode()
    return None


def query_digest(canonical_query: str) -> str:
    return hashlib.sha256(canonical_query.encode()).hexdigest()


def generation_key(domain: str, scope: str) -> str:
    return f"gen:{{{domain}:{scope}}}"


def entry_prefix(domain: str, scope: str) -> str:
    return f"search:{{{domain}:{scope}}}"


class SearchCache:
    """Cache-aside of rendered search results for one domain (``flights``, ``hotels`` …)."""

    def __init__(
        self,
        domain: str,
        redis: RedisPort,
        metrics: MetricsSink,
        policy: CachePolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.domain = domain
        self._redis = redis
        self._metrics = metrics
        self._policy = policy or CachePolicy()
        self._breaker = breaker or CircuitBreaker()
        self._sleep = sleep
        self._clock = clock

    def get_or_build(self, scope: str, canonical_query: str, build: Build) -> Cached:
        """The cached body for this query, or ``build()``'s, stored for the next caller."""
        gen_key, prefix = generation_key(self.domain, scope), entry_prefix(self.domain, scope)
        digest = query_digest(canonical_query)
        token = secrets.token_hex(8)
        deadline = self._clock() + self._policy.wait_seconds
        while True:
            reply = self._call(self._redis.read, gen_key, prefix, digest, token, self._policy.lock_ms)
            if reply is None:
                return Cached(build()[0], BYPASS)
            generation, value, state = reply
            if state == 0:
                body = unframe(value)
                if body is not None:
                    self._metrics.count("CacheHit")
                    return Cached(body, HIT)
                self._metrics.count("CacheCorrupt")  # rebuild below overwrites it
                return self._rebuild(gen_key, prefix, digest, generation, "", build)
            if state == 1:
                return self._rebuild(gen_key, prefix, digest, generation, token, build)
            stale = unframe(value) if value is not None else None
            if stale is not None:
                self._metrics.count("CacheStale")
                return Cached(stale, STALE)
            if self._clock() >= deadline:
                # The rebuilder is slow or gone and nothing older exists: answer from the database.
                self._metrics.count("CacheMiss")
                return Cached(build()[0], MISS)
            self._sleep(self._policy.poll_seconds)

    def invalidate(self, scope: str) -> int | None:
        """Make every cached result of a scope unreachable (one INCR); None if the cache is down."""
        result = self._call(self._redis.incr, generation_key(self.domain, scope))
        return int(result) if result is not None else None

    def _rebuild(self, gen_key: str, prefix: str, digest: str, generation: bytes, token: str, build: Build) -> Cached:
        self._metrics.count("CacheMiss")
        try:
            body, empty = build()
        except BaseException:
            if token:  # let the next caller rebuild at once rather than after the lock expires
                self._call(self._redis.write, gen_key, prefix, digest, generation, b"", 0, token)
            raise
        ttl = self._policy.negative_ttl_seconds if empty else self._policy.ttl_seconds
        jitter = 1.0 + random.uniform(-self._policy.jitter, self._policy.jitter)  # noqa: S311 - not security
        self._call(self._redis.write, gen_key, prefix, digest, generation, frame(body), int(ttl * jitter * 1000), token)
        return Cached(body, MISS)

    def _call(self, operation: Callable[..., Any], *args: Any) -> Any:
        if not self._breaker.allow():
            return None
        try:
            with subsegment("redis"):
                result = operation(*args)
        except CacheUnavailable:
            self._breaker.failed()
            self._metrics.count("CacheError")
            return None
        self._breaker.succeeded()
        return result
