"""The Redis adapter behind :mod:`core.cache`: one connection per container, opened lazily.

redis-py opens the connection (TLS, IAM ``AUTH``); the cache's few commands (its two scripts, ``INCR``)
are packed by hiredis and written to its socket directly. Timeouts are tens of milliseconds and
retries bounded, so a slow or dead cache costs a search little; :class:`core.cache.CircuitBreaker`
bounds the cost further. On AWS the connection uses TLS and ElastiCache IAM authentication: the
password is a SigV4-presigned token made locally from the function's role credentials, renewed
before it expires. No password is stored anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

import hiredis
import redis
from redis._parsers import BaseParser
from redis.backoff import NoBackoff
from redis.credentials import CredentialProvider
from redis.exceptions import InvalidResponse, NoScriptError
from redis.retry import Retry

from core.cache import READ_SCRIPT, WRITE_SCRIPT, CachePolicy, CacheUnavailable, SearchCache
from core.observability import MetricsSink
from core.settings import CacheSettings

SOCKET_TIMEOUT_SECONDS = 0.05
CONNECT_TIMEOUT_SECONDS = 0.08  # covers the TLS handshake and AUTH on a fresh connection
HEALTH_CHECK_SECONDS = 30  # PING a connection idle this long (e.g. after a Lambda freeze) before use
TOKEN_LIFETIME_SECONDS = 900  # ElastiCache accepts IAM tokens for 15 minutes
TOKEN_RENEW_SECONDS = 600

READ_SCRIPT_SHA = hashlib.sha1(READ_SCRIPT.encode()).hexdigest()  # what EVALSHA names it by (not a secret)
# hiredis's C packer; its stub types the argument as a 1-tuple.
_pack = cast(Callable[[tuple[str | int | bytes, ...]], bytes], hiredis.pack_command)
_PING = _pack(("PING",))
_MORE = object()  # what the reader returns while a reply is incomplete
_READ_SIZE = 65536
_T = TypeVar("_T")


def iam_auth_token(
    user: str,
    cache_name: str,
    region: str,
    credentials: Any,
    now: dt.datetime | None = None,
    serverless: bool = True,
) -> str:
    """An ElastiCache IAM authentication token: a SigV4-presigned ``connect`` request without its scheme.

    Signed with botocore's SigV4 query signer; ``now`` pins the signing time (tests use a fixed clock).
    """
    from botocore.auth import SIGV4_TIMESTAMP, SigV4QueryAuth  # noqa: PLC0415 - only IAM deployments need it
    from botocore.awsrequest import AWSRequest  # noqa: PLC0415

    query = {"Action": "connect", "User": user}
    if serverless:
        query["ResourceType"] = "ServerlessCache"
    request = AWSRequest(method="GET", url=f"http://{cache_name}/?{urlencode(query)}")
    auth = SigV4QueryAuth(credentials, "elasticache", region, expires=TOKEN_LIFETIME_SECONDS)
    # SigV4QueryAuth.add_auth with the clock as a parameter instead of botocore's global one.
    request.context["timestamp"] = (now or dt.datetime.now(dt.UTC)).strftime(SIGV4_TIMESTAMP)
    auth._modify_request_before_signing(request)
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return str(request.url).removeprefix("http://")


class IamTokenProvider(CredentialProvider):
    """redis-py credential provider: (user, fresh IAM token), renewed every ``TOKEN_RENEW_SECONDS``."""

    def __init__(self, user: str, cache_name: str, region: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._user, self._cache_name, self._region, self._clock = user, cache_name, region, clock
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def get_credentials(self) -> tuple[str, str]:
        with self._lock:
            if self._clock() >= self._expires_at:
                import botocore.session  # noqa: PLC0415

                credentials = botocore.session.get_session().get_credentials()
                self._token = iam_auth_token(self._user, self._cache_name, self._region, credentials)
                self._expires_at = self._clock() + TOKEN_RENEW_SECONDS
            return self._user, self._token


def connect(settings: CacheSettings) -> redis.Connection:
    """One connection with bounded timeouts; no I/O until its first command (then AUTH, if IAM).

    :class:`DirectConnection` sends the commands and checks an idle connection's health itself.
    """
    connection_class = redis.SSLConnection if settings.tls else redis.Connection
    return connection_class(
        host=settings.host,
        port=settings.port,
        credential_provider=(
            IamTokenProvider(settings.user, settings.name, settings.region) if settings.auth == "iam" else None
        ),
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), retries=0),  # RedisCacheStore retries once itself
        # RESP2: no HELLO round trip on a new connection, and no push messages (RESP3 only) that could
        # arrive between the replies DirectConnection reads.
        protocol=2,
        driver_info=None,  # no CLIENT SETINFO round trips on every new connection (cold start)
    )


class DirectConnection:
    """One connection whose commands go straight to its socket: pre-packed, read by a hiredis ``Reader``.

    redis-py's :class:`redis.Connection` opens and closes it (TCP, TLS, IAM ``AUTH``, its timeouts); the
    commands bypass redis-py's per-command path (packing, health bookkeeping, reply dispatch): an MGET
    round trip cost ~36 µs of CPU against ~47 µs through ``send_packed_command`` and
    ``read_response``, and ~60 µs through ``send_command``. A connection idle for ``HEALTH_CHECK_SECONDS``
    is PINGed before use, as redis-py's ``health_check_interval`` did.

    An exchange that fails in any way other than ``NOSCRIPT`` closes the connection: one that did not read
    every reply it asked for could hand a later command the reply of an earlier one.

    A command can also be sent without waiting for its reply (:meth:`send_behind`, the cache's write on a
    miss): its reply is read, first, by the next exchange, usually from data already received. It must be
    an integer or an error reply. ``READONLY`` (the server became a replica: a failover) fails that next
    exchange, so it is retried on a new connection, and hands the command back (:meth:`take_lost`) to be
    sent again there; other errors are dropped (a cache write is best effort); anything else closes the
    connection.
    """

    def __init__(self, connection: redis.Connection, health_check_seconds: float = HEALTH_CHECK_SECONDS) -> None:
        self._connection = connection
        self._health_check_seconds = health_check_seconds
        self._socket: socket.socket | None = None
        self._reader: hiredis.Reader | None = None
        self._buffer = bytearray(_READ_SIZE)
        self._ping_after = 0.0
        self._behind: list[bytes] = []  # commands sent by send_behind whose replies are not read yet
        self._lost: list[bytes] = []  # of those, the ones a READONLY server refused

    def exchange(self, packed: bytes, replies: int) -> list[Any]:
        """Write ``packed`` (one or more commands) at once and return its ``replies`` replies, in order.

        An error reply is raised as redis-py's exception for it (``ReadOnlyError``, ``NoScriptError`` …),
        after every reply has been read.
        """
        try:
            if self._socket is None:
                self._open()
            elif time.monotonic() > self._ping_after and self._send(_PING, 1) != [b"PONG"]:
                raise redis.ConnectionError("bad reply to the health check PING")
            return self._send(packed, replies)
        except NoScriptError:
            raise  # every reply was read: the connection is in step
        except BaseException:
            self.close()
            raise

    def send_behind(self, packed: bytes) -> None:
        """Write one command and return without its reply (on an open connection only: a new one would
        have to wait for its AUTH anyway)."""
        if self._socket is None or time.monotonic() > self._ping_after:
            self.exchange(packed, 1)
            return
        try:
            self._socket.sendall(packed)
        except BaseException:
            self.close()
            raise
        self._behind.append(packed)

    def take_lost(self) -> list[bytes]:
        """The commands sent behind that a read-only server refused (to send again on a new connection)."""
        lost, self._lost = self._lost, []
        return lost

    def close(self) -> None:
        self._socket = self._reader = None
        self._behind = []
        self._connection.disconnect()  # type: ignore[no-untyped-call]

    def _open(self) -> None:
        self._connection.connect()  # type: ignore[no-untyped-call]
        # redis-py has no public accessor for the socket it connected (and wrapped in TLS, if any).
        self._socket = self._connection._sock  # noqa: SLF001
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error, notEnoughData=_MORE
        )
        self._ping_after = time.monotonic() + self._health_check_seconds

    def _send(self, packed: bytes, replies: int) -> list[Any]:
        sock, reader, buffer = self._socket, self._reader, self._buffer
        assert sock is not None and reader is not None
        sock.sendall(packed)
        replies += len(self._behind)
        received: list[Any] = []
        while True:
            reply = reader.gets()
            if reply is _MORE:
                count = sock.recv_into(buffer)
                if not count:
                    raise redis.ConnectionError("connection closed by the server")
                reader.feed(buffer, 0, count)  # type: ignore[arg-type]  # the stub omits bytearray
                continue
            if type(reply) is hiredis.PushNotification:
                continue  # not a reply (only a RESP3 connection gets them)
            received.append(reply)
            if len(received) == replies:
                break
        if reader.has_data():
            raise InvalidResponse("more replies than commands")
        if self._behind:
            sent, self._behind = self._behind, []
            behind, received = received[: len(sent)], received[len(sent) :]
            for command, reply in zip(sent, behind, strict=True):
                if isinstance(reply, redis.ReadOnlyError):
                    self._lost.append(command)
                elif type(reply) is not int and not isinstance(reply, redis.RedisError):
                    raise InvalidResponse(f"unexpected reply to a command sent behind: {reply!r:.80}")
            if self._lost:
                raise redis.ReadOnlyError("the server is a replica now (a failover)")
        self._ping_after = time.monotonic() + self._health_check_seconds
        for reply in received:
            if isinstance(reply, redis.RedisError):
                raise reply
        return received


class RedisCacheStore:
    """:class:`core.cache.RedisPort` on one :class:`DirectConnection` per thread (a Lambda container has one).

    Every round trip goes through :meth:`_round_trip`: commands packed in C, written in one ``sendall``.
    A failed round trip, or a write sent behind that could not be sent (a connection that failed its health
    check), is tried once more on a fresh connection (a reset, a failover's ``READONLY``); after that it is
    ``CacheUnavailable``. A reply of the wrong shape is never taken for data: the connection
    is closed and the operation is ``CacheUnavailable``.
    """

    def __init__(
        self, connection_factory: Callable[[], redis.Connection], health_check_seconds: float = HEALTH_CHECK_SECONDS
    ) -> None:
        self._connection_factory = connection_factory
        self._health_check_seconds = health_check_seconds
        self._local = threading.local()
        self._write_sha = ""

    def _connection(self) -> DirectConnection:
        connection: DirectConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = DirectConnection(self._connection_factory(), self._health_check_seconds)
            self._local.connection = connection
        return connection

    def _round_trip(self, packed: bytes, replies: int = 1) -> list[Any]:
        return self._attempt(lambda connection: connection.exchange(packed, replies))

    def _attempt(self, send: Callable[[DirectConnection], _T]) -> _T:
        """``send`` on this thread's connection, once more on a fresh one if the connection failed."""
        connection = self._connection()
        for attempt in range(2):
            try:
                for command in connection.take_lost():  # writes a demoted primary refused: to the new one
                    connection.send_behind(command)
                return send(connection)
            except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, OSError) as error:
                if attempt:
                    raise CacheUnavailable(f"{type(error).__name__}: {error}") from error
            except NoScriptError:
                raise  # the caller sends the script's text
            except redis.RedisError as error:
                raise CacheUnavailable(f"{type(error).__name__}: {error}") from error
        raise AssertionError("unreachable")

    def _out_of_step(self, command: str, reply: Any) -> CacheUnavailable:
        self._connection().close()
        return CacheUnavailable(f"unexpected reply to {command}: {reply!r:.80}")

    def read(self, generation_key: str, entry_key: str) -> tuple[bytes, bytes | None]:
        [reply] = self._round_trip(_pack(("MGET", generation_key, entry_key)))
        if type(reply) is list and len(reply) == 2:
            generation, value = reply
            if (generation is None or type(generation) is bytes) and (value is None or type(value) is bytes):
                return generation or b"0", value
        raise self._out_of_step("MGET", reply)

    def read_or_lock(
        self, generation_key: str, entry_key: str, lock_key: str, token: str, ttl_ms: int
    ) -> tuple[bytes, bytes | None, bool]:
        """:data:`core.cache.READ_SCRIPT` by its SHA1; a server without it (a restart, a failover) gets its
        text once, which also loads it."""
        keys_and_args = (3, generation_key, entry_key, lock_key, token, ttl_ms)
        try:
            [reply] = self._round_trip(_pack(("EVALSHA", READ_SCRIPT_SHA, *keys_and_args)))
        except NoScriptError:
            [reply] = self._round_trip(_pack(("EVAL", READ_SCRIPT, *keys_and_args)))
        if type(reply) is list and len(reply) == 3:
            generation, value, locked = reply
            if type(generation) is bytes and (value is None or type(value) is bytes) and locked in (0, 1):
                return generation, value, locked == 1
        raise self._out_of_step("the read script", reply)

    def write(
        self, generation_key: str, entry_key: str, lock_key: str, generation: int, value: bytes, ttl_ms: int, lock: str
    ) -> int:
        keys_and_args = (3, generation_key, entry_key, lock_key, generation, value, ttl_ms, lock)
        if self._write_sha:
            try:
                return self._integer("EVALSHA", self._round_trip(_pack(("EVALSHA", self._write_sha, *keys_and_args))))
            except NoScriptError:
                pass  # a restarted or failed-over server: load the script again
        [sha] = self._round_trip(_pack(("SCRIPT", "LOAD", WRITE_SCRIPT)))
        if type(sha) is not bytes:
            raise self._out_of_step("SCRIPT LOAD", sha)
        self._write_sha = sha.decode("ascii")
        return self._integer("EVALSHA", self._round_trip(_pack(("EVALSHA", self._write_sha, *keys_and_args))))

    def write_behind(
        self, generation_key: str, entry_key: str, lock_key: str, generation: int, value: bytes, ttl_ms: int, lock: str
    ) -> None:
        """:meth:`write` without waiting for its reply, on a connection in use (else it waits, as :meth:`write`).

        The reply is read by the next command; a search answers one blocking round trip sooner. What the
        write returned does not matter to the caller, and if it failed the entry is rebuilt by the next
        miss, as after a failed :meth:`write`. It is sent as ``EVAL`` with the script's text (~300 bytes),
        so a server that lost its scripts (a restart, a failover) cannot refuse it with ``NOSCRIPT``
        after the caller has moved on.
        """
        packed = _pack(("EVAL", WRITE_SCRIPT, 3, generation_key, entry_key, lock_key, generation, value, ttl_ms, lock))
        self._attempt(lambda connection: connection.send_behind(packed))

    def incr(self, generation_key: str) -> int:
        return self._integer("INCR", self._round_trip(_pack(("INCR", generation_key))))

    def _integer(self, command: str, replies: list[Any]) -> int:
        if type(replies[0]) is not int:
            raise self._out_of_step(command, replies[0])
        return replies[0]


def cache_policy(ttl_seconds: int) -> CachePolicy:
    """The policy a function runs with for its ``CACHE_TTL_SECONDS``.

    Empty results live a quarter of the TTL. Every result, empty or not, goes stale when ingest
    INCRs its scope's generation; the TTL only bounds how long a result can outlive a lost
    invalidation, and empty answers (a route nobody sells yet) are the ones most likely to be filled
    by a provider soon. A quarter keeps 96.5 % of the oracle's hits on the benchmark's day at the
    default 4 h TTL, against 92 % with 30 s (docs/performance.md).
    """
    return CachePolicy(ttl_seconds=ttl_seconds, negative_ttl_seconds=max(1, ttl_seconds // 4))


def search_cache(domain: str, settings: CacheSettings, metrics: MetricsSink) -> SearchCache:
    """The cache of one search domain over this container's Redis connection (opened on first use)."""
    return SearchCache(domain, RedisCacheStore(lambda: connect(settings)), metrics, cache_policy(settings.ttl_seconds))
