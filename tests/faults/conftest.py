"""Fault-test fixtures: the local stack (as ``make run`` builds it), a gateway on it, and Redis servers to break.

Fault tests inject the fault for real: they stop, stall or fail over a redis-server, throttle
DynamoDB, and deliver events twice and out of order. A test that breaks Redis gets a private
redis-server of its own (``private_redis``) and points the functions at it (``functions_on``), so
the stack's own Redis serves every other test. Package scope, as in tests/integration: the
environment the stack sets is restored before the next package runs, and the functions are cold
started on both sides so that no handler keeps a client of another package's servers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
import redis
from werkzeug.test import Client

from local.gateway import Gateway
from local.redis_server import RedisServer
from local.stack import LocalStack
from tests.faults.harness import Unthrottled, environment, stack_for_tests


@pytest.fixture(scope="package")
def stack() -> Iterator[LocalStack]:
    with stack_for_tests() as local:
        yield local


@pytest.fixture(scope="package")
def gateway(stack: LocalStack) -> Gateway:
    """The template's gateway with a clock that refills every usage-plan bucket between requests."""
    return Gateway(stack.gateway.intrinsics, clock=Unthrottled())


@pytest.fixture(scope="package")
def client(gateway: Gateway) -> Client:
    return Client(gateway)


@pytest.fixture(scope="package")
def keys(gateway: Gateway) -> dict[str, dict[str, str]]:
    """Tier → the ``x-api-key`` header of a key of that tier on ``gateway``."""
    return {tier: {"x-api-key": value} for tier, value in gateway.keys_by_tier().items()}


@pytest.fixture(scope="package")
def stack_redis(stack: LocalStack) -> Iterator[redis.Redis]:
    """A plain client of the stack's Redis, for looking at keys the functions wrote."""
    assert stack.redis is not None
    client = redis.Redis(host=stack.redis.host, port=stack.redis.port)
    yield client
    client.close()


@pytest.fixture(scope="package")
def aws(stack: LocalStack) -> Callable[[str], Any]:
    """boto3 clients on the stack's moto server, one per service."""
    assert stack.moto is not None
    url, region = stack.moto.url, stack.moto.region
    clients: dict[str, Any] = {}

    def client_for(service: str) -> Any:
        if service not in clients:
            clients[service] = boto3.client(service, endpoint_url=url, region_name=region)
        return clients[service]

    return client_for


@pytest.fixture(scope="package")
def today() -> date:
    return datetime.now(UTC).date()


@pytest.fixture(scope="package")
def travel_day(today: date) -> date:
    """A day inside every search's booking window, for data the tests ingest themselves."""
    return today + timedelta(days=30)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone: it may be stopped, paused or made a replica."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def functions_on(stack: LocalStack) -> Callable[..., contextlib.AbstractContextManager[None]]:
    """``with functions_on(port, **env):`` every function started inside uses the Redis on ``port``."""

    def use(port: int, **variables: str) -> contextlib.AbstractContextManager[None]:
        return environment(CACHE_HOST="127.0.0.1", CACHE_PORT=str(port), **variables)

    return use
