"""The provider HTTP client against a real local server: retries with backoff, bounded timeouts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import urllib3
from urllib3.util import Retry, Timeout
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from integrations.providers.http import ProviderError, get_json

pytestmark = pytest.mark.integration


class FlakyProvider:
    """Answers 503 ``failures`` times, then the fares; records the Authorization headers it saw."""

    def __init__(self) -> None:
        self.failures = 0
        self.stall_seconds = 0.0
        self.authorizations: list[str] = []

    def __call__(self, environ: dict, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        self.authorizations.append(request.headers.get("Authorization", ""))
        time.sleep(self.stall_seconds)
        if self.failures:
            self.failures -= 1
            return Response('{"error": "busy"}', status=503, headers={"Retry-After": "0"})(environ, start_response)
        return Response('{"fares": []}', content_type="application/json")(environ, start_response)


@pytest.fixture
def provider() -> Iterator[tuple[FlakyProvider, str]]:
    app = FlakyProvider()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def fast_pool(read_seconds: float = 1.0) -> urllib3.PoolManager:
    retries = Retry(total=3, backoff_factor=0.01, status_forcelist=(503,), allowed_methods=frozenset({"GET"}))
    return urllib3.PoolManager(timeout=Timeout(connect=1, read=read_seconds), retries=retries)


def test_transient_errors_are_retried_with_the_token(provider: tuple[FlakyProvider, str]) -> None:
    app, url = provider
    app.failures = 2
    assert get_json(f"{url}/fares", "secret-token", pool=fast_pool()) == {"fares": []}
    assert app.authorizations == ["Bearer secret-token"] * 3


def test_a_provider_that_stays_down_is_an_error_after_bounded_retries(provider: tuple[FlakyProvider, str]) -> None:
    app, url = provider
    app.failures = 100
    with pytest.raises(ProviderError):
        get_json(f"{url}/fares", "t", pool=fast_pool())
    assert len(app.authorizations) == 4  # the first try and three retries


def test_a_stalled_provider_times_out(provider: tuple[FlakyProvider, str]) -> None:
    app, url = provider
    app.stall_seconds = 1.0
    started = time.perf_counter()
    with pytest.raises(ProviderError):
        get_json(f"{url}/fares", "t", pool=urllib3.PoolManager(timeout=Timeout(connect=1, read=0.1), retries=Retry(0)))
    assert time.perf_counter() - started < 0.9
