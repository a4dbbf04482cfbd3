"""The Redis adapter behind :mod:`core.cache`: one redis-py client per container, created lazily.

Timeouts are tens of milliseconds and retries bounded, so a slow or dead cache costs a search
little; :class:`core.cache.CircuitBreaker` bounds the cost further. On AWS the connection uses TLS
and ElastiCache IAM authentication: the password is a SigV4-presigned token made locally from the
function's role credentials, renewed before it expires. No password is stored anywhere.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import redis
from redis.backoff import NoBackoff
from redis.credentials import CredentialProvider
from redis.exceptions import NoScriptError
from redis.retry import Retry

from core.cache import WRITE_SCRIPT, CachePolicy, CacheUnavailable, SearchCache
from core.observability import MetricsSink
from core.settings import CacheSettings

SOCKET_TIMEOUT_SECONDS = 0.05
CONNECT_TIMEOUT_SECONDS = 0.08  # covers the TLS handshake and AUTH on a fresh connection
HEALTH_CHECK_SECONDS = 30  # PING a connection idle this long (e.g. after a Lambda freeze) before use
TOKEN_LIFETIME_SECONDS = 900  # ElastiCache accepts IAM tokens for 15 minutes
TOKEN_RENEW_SECONDS = 600


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
    """One connection with bounded timeouts; no I/O until its first command (then AUTH, if IAM)."""
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
        health_check_interval=HEALTH_CHECK_SECONDS,
        driver_info=None,  # no CLIENT SETINFO round trips on every new connection (cold start)
    )


class RedisCacheStore:
    """:class:`core.cache.RedisPort` on one connection per thread (a Lambda container has one thread).

    Commands go straight to the connection, without a pool: on the hit path that halves redis-py's
    own cost per command (measured in ``make bench``). A failed command is retried once on a fresh
    connection (a reset, a failover's ``READONLY``); after that it is ``CacheUnavailable``.
    """

    def __init__(self, connection_factory: Callable[[], redis.Connection]) -> None:
        self._connection_factory = connection_factory
        self._local = threading.local()
        self._write_sha = ""

    def _connection(self) -> redis.Connection:
        connection: redis.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connection_factory()
        return connection

    def _command(self, *args: Any) -> Any:
        connection = self._connection()
        for attempt in range(2):
            try:
                connection.send_command(*args)  # type: ignore[no-untyped-call]
                return connection.read_response()
            except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, OSError) as error:
                connection.disconnect()  # type: ignore[no-untyped-call]
                if attempt:
                    raise CacheUnavailable(f"{type(error).__name__}: {error}") from error
            except NoScriptError:
                raise  # the caller loads the script
            except redis.RedisError as error:
                raise CacheUnavailable(f"{type(error).__name__}: {error}") from error
        raise AssertionError("unreachable")

    def read(self, generation_key: str, entry_key: str) -> tuple[bytes | None, bytes | None]:
        generation, value = self._command("MGET", generation_key, entry_key)
        return generation, value

    def lock(self, lock_key: str, token: str, ttl_ms: int) -> bool:
        return self._command("SET", lock_key, token, "NX", "PX", ttl_ms) is not None

    def write(
        self, generation_key: str, entry_key: str, lock_key: str, generation: int, value: bytes, ttl_ms: int, token: str
    ) -> int:
        keys_and_args = (3, generation_key, entry_key, lock_key, generation, value, ttl_ms, token)
        if self._write_sha:
            try:
                return int(self._command("EVALSHA", self._write_sha, *keys_and_args))
            except NoScriptError:
                pass  # a restarted or failed-over server: load the script again
        self._write_sha = str(self._command("SCRIPT", "LOAD", WRITE_SCRIPT), "ascii")
        return int(self._command("EVALSHA", self._write_sha, *keys_and_args))

    def incr(self, generation_key: str) -> int:
        return int(self._command("INCR", generation_key))


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
