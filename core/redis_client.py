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
from redis.retry import Retry

from core.cache import READ_SCRIPT, WRITE_SCRIPT, CachePolicy, CacheUnavailable, SearchCache
from core.observability import MetricsSink
from core.settings import CacheSettings

SOCKET_TIMEOUT_SECONDS = 0.05
CONNECT_TIMEOUT_SECONDS = 0.08  # covers the TLS handshake and AUTH on a fresh connection
HEALTH_CHECK_SECONDS = 30  # PING a connection idle this long (e.g. after a Lambda freeze) before use
MAX_CONNECTIONS = 32  # per container; the local gateway is threaded, a Lambda uses one
POOL_WAIT_SECONDS = 0.1  # how long a thread waits for a free pooled connection
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


def connect(settings: CacheSettings) -> redis.Redis:
    """A redis-py client with bounded timeouts, retries and connections; no I/O until the first command.

    The pool blocks (briefly) instead of opening more than ``MAX_CONNECTIONS``, so a burst of
    threads cannot exhaust the server's connections; a Lambda container uses one connection.
    """
    connection_class = redis.SSLConnection if settings.tls else redis.Connection
    pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        connection_class=connection_class,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        host=settings.host,
        port=settings.port,
        credential_provider=(
            IamTokenProvider(settings.user, settings.name, settings.region) if settings.auth == "iam" else None
        ),
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), retries=1),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=HEALTH_CHECK_SECONDS,
    )
    return redis.Redis(connection_pool=pool)


class RedisCacheStore:
    """:class:`core.cache.RedisPort` over redis-py; every Redis failure becomes ``CacheUnavailable``."""

    def __init__(self, client_factory: Callable[[], redis.Redis]) -> None:
        self._client_factory = client_factory
        self._client: redis.Redis | None = None
        self._read: Any = None
        self._write: Any = None

    def _scripts(self) -> tuple[Any, Any, redis.Redis]:
        if self._client is None:
            client = self._client_factory()
            self._read = client.register_script(READ_SCRIPT)
            self._write = client.register_script(WRITE_SCRIPT)
            self._client = client
        return self._read, self._write, self._client

    def read(self, generation_key: str, prefix: str, digest: str, lock_token: str, lock_ms: int) -> list[Any]:
        read, _, _ = self._scripts()
        try:
            return list(read(keys=[generation_key], args=[prefix, digest, lock_token, lock_ms]))
        except (redis.RedisError, OSError) as error:
            raise CacheUnavailable(str(error)) from error

    def write(
        self, generation_key: str, prefix: str, digest: str, generation: bytes, value: bytes, ttl_ms: int, token: str
    ) -> int:
        _, write, _ = self._scripts()
        try:
            return int(write(keys=[generation_key], args=[prefix, digest, generation, value, ttl_ms, token]))
        except (redis.RedisError, OSError) as error:
            raise CacheUnavailable(str(error)) from error

    def incr(self, generation_key: str) -> int:
        _, _, client = self._scripts()
        try:
            return int(client.incr(generation_key))
        except (redis.RedisError, OSError) as error:
            raise CacheUnavailable(str(error)) from error


def search_cache(domain: str, settings: CacheSettings, metrics: MetricsSink) -> SearchCache:
    """The cache of one search domain over this container's Redis connection (opened on first use)."""
    policy = CachePolicy(ttl_seconds=settings.ttl_seconds, negative_ttl_seconds=min(30, settings.ttl_seconds))
    return SearchCache(domain, RedisCacheStore(lambda: connect(settings)), metrics, policy)
