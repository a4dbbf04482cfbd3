"""Cache-aside for search results over a Redis-protocol cache (ElastiCache Valkey/Redis, or redis-server).

Keys (the braces are a cluster hash tag, so one scope lives in one slot)::

    gen:{flights:JFK-LHR}                          generation counter of a scope
    search:{flights:JFK-LHR}:<sha256>              the rendered response of one query
    lock:search:{flights:JFK-LHR}:<sha256>         its rebuilder: "<generation>:<token>"

* A read is one round trip: a Lua script (:data:`READ_SCRIPT`, every key declared, one slot) reads the
  scope's generation and the entry. The entry's value carries the generation it was computed in; it is
  a hit only when that equals the current generation.
* On a miss the same script takes the entry's lock for the current generation, unless another caller
  holds it for that generation (stampede protection: one rebuilder per entry and generation). The
  others serve the entry of an older generation as ``STALE`` if there is one, or wait briefly, reading
  again. A lock of an older generation does not hold back a rebuild of the current one. So a miss costs
  one round trip before the rebuild, as a hit does.
* An entry this container last read as a hit is read with a plain ``MGET`` first: most likely a hit
  again, which then costs Redis no script run (~0.7 µs of server time instead of ~8). When it is not
  one after all, the script reads again and locks, as above: a miss of such an entry costs two round
  trips.
* Invalidation is one ``INCR`` of the scope's generation: every entry of the scope stops being a
  hit at once, and is overwritten by the next rebuild or expires by TTL. No KEYS, no SCAN, no
  fan-out deletes; one entry per query, whatever the number of invalidations.
* A write is fenced: a Lua script (:data:`WRITE_SCRIPT`) stores only if the generation is still the
  one the reader saw, so a result computed before an invalidation is never stored as current. The
  generation inside the value makes that hold even for a write that slipped past. It also releases
  the writer's lock.
* The stored value is the rendered body behind a 13-byte frame (format, CRC32, generation): a hit
  is returned without JSON parsing, and a corrupt entry is detected, treated as a miss and
  overwritten.
* The cache never breaks a search: every Redis error is counted (``CacheError``), trips a circuit
  breaker, and the result is built from the database instead.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.observability import MetricsSink, subsegment

HIT, MISS, BYPASS, STALE = "HIT", "MISS", "BYPASS", "STALE"

# KEYS: generation, entry, lock. ARGV: lock token, lock ttl (ms).
# Returns {generation, entry, locked}. The entry is a hit when the generation in its frame (bytes 6-13,
# big-endian) is the current one; then no lock is taken. Otherwise this caller takes the lock for the
# current generation ("<generation>:<token>", replacing one of an older generation) and gets locked = 1,
# unless another caller holds it for the current generation (locked = 0). An absent generation is '0'.
READ_SCRIPT = """
local generation = redis.call('GET', KEYS[1]) or '0'
local entry = redis.call('GET', KEYS[2])
if entry and #entry >= 13 then
  local stored = 0
  for i = 6, 13 do stored = stored * 256 + string.byte(entry, i) end
  if stored == tonumber(generation) then return {generation, entry, 0} end
end
local prefix = generation .. ':'
local holder = redis.call('GET', KEYS[3])
if holder and string.sub(holder, 1, #prefix) == prefix then return {generation, entry, 0} end
redis.call('SET', KEYS[3], prefix .. ARGV[1], 'PX', ARGV[2])
return {generation, entry, 1}
"""

# KEYS: generation, entry, lock. ARGV: generation read, value, ttl (ms), the lock's value.
# Releases this caller's lock (an empty value only releases it); stores the value only if the
# generation has not moved since the read (the stale-set fence). Returns 1 when stored.
WRITE_SCRIPT = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
if ARGV[2] == '' then return 0 end
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""

# How many entries a container remembers as last read as hits (a set of keys, ~100 bytes each); when
# full it is emptied, and each entry's next read runs the script once more.
WARM_ENTRIES = 4096
_RAW, _ZLIB = b"r", b"z"
_HEADER = 13  # kind (1) + CRC32 (4) + generation (8)
_COMPRESS_ABOVE = 8192
# Lock tokens only need to be unique per caller: a random container prefix and a counter.
_TOKEN_PREFIX = os.urandom(6).hex()
_TOKEN_COUNTER = itertools.count()


class CacheUnavailable(Exception):
    """Raised by a RedisPort when the cache cannot answer (timeout, connection, server error)."""


class RedisPort(Protocol):
    """The operations the cache needs; :mod:`core.redis_client` implements them over Redis."""

    def read(self, generation_key: str, entry_key: str) -> tuple[bytes, bytes | None]:
        """``MGET``: (generation, ``b"0"`` when it has none; entry)."""
        ...

    def read_or_lock(
        self, generation_key: str, entry_key: str, lock_key: str, token: str, ttl_ms: int
    ) -> tuple[bytes, bytes | None, bool]:
        """:data:`READ_SCRIPT`: (generation, entry, True when this caller took the lock)."""
        ...

    def write(
        self, generation_key: str, entry_key: str, lock_key: str, generation: int, value: bytes, ttl_ms: int, lock: str
    ) -> int:
        """The fenced write (:data:`WRITE_SCRIPT`); 1 when the value was stored."""
        ...

    def write_behind(
        self, generation_key: str, entry_key: str, lock_key: str, generation: int, value: bytes, ttl_ms: int, lock: str
    ) -> None:
        """:meth:`write`, without waiting for the reply where the connection allows it."""
        ...

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
        if self._failures < self._threshold:
            return True  # closed: the common case reads one int and takes no lock
        with self._lock:
            if self._failures < self._threshold:
                return True
            now = self._clock()
            if now < self._open_until:
                return False
            self._open_until = now + self._reset_seconds  # half-open: this caller is the probe
            return True

    def succeeded(self) -> None:
        if not self._failures:
            return  # closed and clean, the common case: every Redis call ends here, without the lock
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


def frame(body: str, generation: int) -> bytes:
    """The stored form of a body: format byte, CRC32 of the rest, generation, payload."""
    payload = body.encode()
    kind = _RAW
    if len(payload) > _COMPRESS_ABOVE:
        payload, kind = zlib.compress(payload, 1), _ZLIB
    rest = generation.to_bytes(8, "big") + payload
    return kind + zlib.crc32(rest).to_bytes(4, "big") + rest


def unframe(value: bytes) -> tuple[int, str] | None:
    """(generation, body) of a stored value, or None when the value is corrupt."""
    if len(value) < _HEADER:
        return None
    view = memoryview(value)
    if zlib.crc32(view[5:]) != int.from_bytes(view[1:5], "big"):
        return None
    generation = int.from_bytes(view[5:13], "big")
    try:
        if value[0] == _RAW[0]:
            return generation, str(view[13:], "utf-8")
        if value[0] == _ZLIB[0]:
            return generation, zlib.decompress(view[13:]).decode()
    except (UnicodeDecodeError, zlib.error):
        return None
    return None


def query_digest(canonical_query: str) -> str:
    return hashlib.sha256(canonical_query.encode()).hexdigest()


def generation_key(domain: str, scope: str) -> str:
    return f"gen:{{{domain}:{scope}}}"


def entry_key(domain: str, scope: str, digest: str) -> str:
    return f"search:{{{domain}:{scope}}}:{digest}"


def lock_key(entry: str) -> str:
    return f"lock:{entry}"


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
        warm_entries: int = WARM_ENTRIES,
    ) -> None:
        self.domain = domain
        self._redis = redis
        self._metrics = metrics
        self._policy = policy or CachePolicy()
        self._breaker = breaker or CircuitBreaker()
        self._sleep = sleep
        self._clock = clock
        self._warm: set[str] = set()  # entry keys last read here as hits
        self._warm_entries = warm_entries

    def get_or_build(self, scope: str, canonical_query: str, build: Build) -> Cached:
        """The cached body for this query, or ``build()``'s, stored for the next caller."""
        gen_key = f"gen:{{{self.domain}:{scope}}}"
        key = f"search:{{{self.domain}:{scope}}}:{hashlib.sha256(canonical_query.encode()).hexdigest()}"
        if key in self._warm:
            reply = self._call(self._redis.read, gen_key, key)
            if reply is None:
                return Cached(build()[0], BYPASS)
            fresh = unframe(reply[1]) if reply[1] is not None else None
            if fresh is not None and fresh[0] == int(reply[0]):
                self._metrics.count("CacheHit")
                return Cached(fresh[1], HIT)
            self._warm.discard(key)  # not a hit after all: the script reads again and locks
        lock = f"lock:{key}"
        token = f"{_TOKEN_PREFIX}{next(_TOKEN_COUNTER)}"  # this caller's, while it polls too
        deadline = 0.0
        while True:
            reply = self._call(self._redis.read_or_lock, gen_key, key, lock, token, self._policy.lock_ms)
            if reply is None:
                return Cached(build()[0], BYPASS)
            generation, locked = int(reply[0]), reply[2]
            held = f"{generation}:{token}" if locked else ""  # the lock's value, to release it
            stale = None
            if reply[1] is not None:
                stored = unframe(reply[1])
                if stored is None:
                    # Rebuilt and overwritten below, under the lock if this caller got it (the script took
                    # a corrupt frame that names the current generation for a hit, and locked nothing).
                    self._metrics.count("CacheCorrupt")
                    return self._rebuild(gen_key, key, lock, generation, held, build)
                if stored[0] == generation:  # READ_SCRIPT locks nothing on a hit
                    self._metrics.count("CacheHit")
                    if len(self._warm) >= self._warm_entries:
                        self._warm.clear()
                    self._warm.add(key)
                    return Cached(stored[1], HIT)
                stale = stored[1]
            if locked:
                return self._rebuild(gen_key, key, lock, generation, held, build)
            if stale is not None:
                self._metrics.count("CacheStale")
                return Cached(stale, STALE)
            now = self._clock()
            if not deadline:
                deadline = now + self._policy.wait_seconds
            elif now >= deadline:
                # The rebuilder is slow or gone and nothing older exists: answer from the database.
                self._metrics.count("CacheMiss")
                return Cached(build()[0], MISS)
            self._sleep(self._policy.poll_seconds)

    def invalidate(self, scope: str) -> int | None:
        """Make every cached result of a scope stale (one INCR); None if the cache is down."""
        result = self._call(self._redis.incr, generation_key(self.domain, scope))
        return int(result) if result is not None else None

    def _rebuild(self, gen_key: str, key: str, lock: str, generation: int, held: str, build: Build) -> Cached:
        """Build, answer, and store the result behind the answer (releasing ``held``, the lock's value if
        this caller holds it, else "")."""
        self._metrics.count("CacheMiss")
        try:
            body, empty = build()
        except BaseException:
            # Let the next caller rebuild at once rather than after the lock expires.
            if held:
                self._call(self._redis.write_behind, gen_key, key, lock, generation, b"", 0, held)
            raise
        ttl = self._policy.negative_ttl_seconds if empty else self._policy.ttl_seconds
        jitter = 1.0 + random.uniform(-self._policy.jitter, self._policy.jitter)  # noqa: S311 - not security
        value = frame(body, generation)
        # The answer does not wait for the write's reply: a failed write only means the next caller misses too.
        self._call(self._redis.write_behind, gen_key, key, lock, generation, value, int(ttl * jitter * 1000), held)
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
