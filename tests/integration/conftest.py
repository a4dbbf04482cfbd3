"""Integration fixtures: a private redis-server, the moto server, and the local stack built from template.yaml.

Scope is ``package`` rather than ``session``: the fixtures live exactly as long as the integration
tests run, so the environment they set (``AWS_ENDPOINT_URL``, ``CACHE_HOST``, ``FLIGHTS_TABLE`` …)
is restored before tests/template and tests/unit run in the same pytest session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from werkzeug.test import Client

from local.aws import MotoEndpoint
from local.redis_server import RedisServer
from local.stack import LocalStack

# ~5 routes x 60 days (~1,200 offers, a few seconds through moto); `make run` seeds 240 routes.
TEST_SEED_SCALE = 0.02
# The provider refresh runs this often while the integration tests run (the template: every 15 minutes).
# Its fake provider serves routes other than the flights example, so it never invalidates that search.
TEST_SCHEDULE_SECONDS = 5.0


@pytest.fixture(scope="package")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port (never a server the developer already runs)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="package")
def moto_endpoint() -> Iterator[MotoEndpoint]:
    """The in-process moto server, with AWS_ENDPOINT_URL and fake credentials set while it runs."""
    with MotoEndpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="package")
def local_stack(moto_endpoint: MotoEndpoint) -> Iterator[LocalStack]:
    """The stack ``make run`` serves, started in-process with a small seed and no HTTP server.

    It starts its own redis-server rather than sharing ``redis_server``: other tests flush that one.
    Its ingest path runs too: queue pollers, the change pipes and the provider refresh schedule.
    """
    with LocalStack(moto=moto_endpoint, seed_scale=TEST_SEED_SCALE, schedule_every=TEST_SCHEDULE_SECONDS) as stack:
        yield stack


@pytest.fixture(scope="package")
def client(local_stack: LocalStack) -> Client:
    """A test client on the very gateway object ``make run`` serves over HTTP."""
    return Client(local_stack.gateway)


@pytest.fixture(scope="package")
def aws(moto_endpoint: MotoEndpoint) -> Callable[[str], Any]:
    """boto3 clients on the moto server (``aws("sqs")``), one per service."""
    clients: dict[str, Any] = {}

    def client_for(service: str) -> Any:
        if service not in clients:
            clients[service] = boto3.client(service, endpoint_url=moto_endpoint.url, region_name=moto_endpoint.region)
        return clients[service]

    return client_for
