"""Schemathesis against the local gateway, from the OpenAPI document in template.yaml.

Every operation gets generated requests, valid and invalid (positive and negative modes), with the
API key given as the ``api_key`` scheme's credential. Every response must be documented: no 5xx,
a status code the operation lists, a body that matches its schema, the documented content type
and headers; invalid input must be refused with a 4xx, and a keyed route refuses a request
without its key (``ignored_auth`` sends each one again without it).

``make test`` runs a small, seeded sample (``FUZZ_EXAMPLES`` per operation, default 12);
``make fuzz`` runs ``FUZZ_EXAMPLES=400`` (≥ 2,000 requests in all). ``FUZZ_SEED`` changes the seed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import ApiKeyAuthConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.gateway import Gateway
from local.intrinsics import Intrinsics
from local.stack import LocalStack
from local.template import template as project_template
from tests.fuzz.conftest import APP, CountingApp, openapi_document

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
SEED = int(os.environ.get("FUZZ_SEED", "20261128"))
FUZZ_MINIMUM_REQUESTS = 2000  # what make fuzz promises, in all
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]

# Built at collection (each operation is a test of its own); requests go through APP to the gateway.
schema = schemathesis.openapi.from_dict(openapi_document(Intrinsics(project_template()).resolve))
schema.app = APP


@pytest.fixture(scope="module", autouse=True)
def api_key(gateway: Gateway) -> Iterator[str]:
    """The partner tier's key (it may search and push), as the credential of the ``api_key`` scheme.

    Not a fixed header: so negative cases can still leave the key out, and ``ignored_auth`` can
    send a request again without it.
    """
    key = gateway.keys_by_tier()["partner"]
    schema.config.auth.openapi.schemes["api_key"] = ApiKeyAuthConfig(api_key=key)
    yield key
    del schema.config.auth.openapi.schemes["api_key"]


@schema.parametrize()
@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_generated_request_gets_a_documented_answer(case: schemathesis.Case, app: CountingApp) -> None:
    case.call_and_validate(checks=CHECKS)


def known_good_requests(stack: LocalStack) -> list[tuple[str, str, dict[str, Any]]]:
    """A request that succeeds on every operation (the seeded examples), so each success body is checked too.

    Generated requests rarely hit seeded data (a random date is mostly outside the booking window).
    """
    flights, hotels = stack.examples["flights"], stack.examples["hotels"]
    day = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    event = {
        "id": str(uuid.uuid4()),
        "type": "FlightOffersUpdated",
        "version": 1,
        "sequence": 1,
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {"origin": "QFA", "destination": "QFB", "date": day, "offers": [{
            "flight_id": "QF1", "carrier": "QF", "departure": f"{day}T08:00:00Z", "arrival": f"{day}T10:00:00Z",
            "duration_minutes": 120, "cabin": "economy", "price": {"amount": "99.00", "currency": "USD"},
            "seats_left": 3,
        }]},
    }  # fmt: skip
    return [
        ("/v1/flights/search", "GET", {"query": {**flights, "limit": "1"}}),
        ("/v1/hotels/search", "GET", {"query": {**hotels, "limit": "1"}}),
        ("/v1/destinations/search", "GET", {"query": {"q": "par"}}),
        ("/v1/destinations/{code}", "GET", {"path_parameters": {"code": "CDG"}}),
        ("/v1/destinations/{code}", "GET", {"path_parameters": {"code": "QQQ"}}),  # 404
        (
            "/v1/providers/{provider}/events",
            "POST",
            {
                "path_parameters": {"provider": "qa-fuzz"},
                "body": {
                    "events": [event, {**event, "sequence": -1}]  # one accepted, one rejected
                },
            },
        ),  # fmt: skip
        ("/v1/health", "GET", {}),
    ]


def test_the_documented_answers_of_requests_that_succeed(stack: LocalStack, api_key: str) -> None:
    statuses = []
    for path, method, parts in known_good_requests(stack):
        case = schema[path][method].Case(headers={"x-api-key": api_key}, **parts)
        response = case.call_and_validate(checks=CHECKS)
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 200, 404, 202, 200]


def test_the_fuzzing_reached_the_api_and_never_got_a_server_error(
    app: CountingApp, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(f"\nfuzz: {app.requests} requests; responses by status class: {dict(sorted(app.by_class.items()))}")
    assert app.requests >= 6 * EXAMPLES  # every operation was called
    assert app.server_errors == []
    if EXAMPLES >= 400:
        assert app.requests >= FUZZ_MINIMUM_REQUESTS
