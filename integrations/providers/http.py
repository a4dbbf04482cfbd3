"""The HTTP client of provider adapters: bounded timeouts, retries with backoff on transient errors."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
import urllib3
from urllib3.util import Retry, Timeout

CONNECT_SECONDS = 2.0
READ_SECONDS = 5.0
RETRIES = Retry(
    total=3,
    backoff_factor=0.5,  # 0.5 s, 1 s, 2 s
    status_forcelist=(429, 500, 502, 503, 504),
    allowed_methods=frozenset({"GET"}),
    respect_retry_after_header=True,
)


class ProviderError(RuntimeError):
    """A provider answered with an error, or not at all, after the retries."""


@lru_cache(maxsize=1)
def http_pool() -> urllib3.PoolManager:
    """One connection pool per container."""
    return urllib3.PoolManager(timeout=Timeout(connect=CONNECT_SECONDS, read=READ_SECONDS), retries=RETRIES)


def get_json(
    url: str, token: str, fields: dict[str, str] | None = None, pool: urllib3.PoolManager | None = None
) -> Any:
    try:
        response = (pool or http_pool()).request(
            "GET", url, fields=fields, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
    except urllib3.exceptions.HTTPError as error:
        raise ProviderError(f"GET {url} failed: {type(error).__name__}") from error
    if response.status != 200:
        raise ProviderError(f"GET {url} answered {response.status}")
    try:
        return orjson.loads(response.data)
    except orjson.JSONDecodeError as error:
        raise ProviderError(f"GET {url} answered with a body that is not JSON") from error
