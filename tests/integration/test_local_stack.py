"""The user's journey through the local stack: the gateway built from template.yaml, the real flights
handler, moto and a private redis-server, driven through the same gateway object ``make run`` serves.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client, EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from local.gateway import Gateway, GatewayRequest
from local.intrinsics import Intrinsics
from local.stack import REPO_ROOT, LocalStack
from local.template import template as project_template

pytestmark = pytest.mark.integration

SEARCH = "/v1/flights/search"
HEALTH = "/v1/health"
START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 30


def error_of(response: TestResponse) -> dict[str, str]:
    """The one error shape: {"error": {"code", "message"}}, served as JSON."""
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return dict(body["error"])


@pytest.fixture(scope="module")
def basic_key(local_stack: LocalStack) -> str:
    return local_stack.api_keys["basic"]


@pytest.fixture(scope="module")
def example(local_stack: LocalStack) -> dict[str, str]:
    return local_stack.examples["flights"]


# --- API keys ------------------------------------------------------------------------------------


def test_search_without_an_api_key_is_forbidden(client: Client, example: dict[str, str]) -> None:
    # Given a keyed route, When no x-api-key is sent
    response = client.get(SEARCH, query_string=example)
    # Then API Gateway refuses it before the function runs
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


def test_search_with_an_unknown_api_key_is_forbidden(client: Client, example: dict[str, str]) -> None:
    response = client.get(SEARCH, query_string=example, headers={"x-api-key": "not-a-key-of-this-stack"})
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


def test_every_tier_of_the_template_has_a_key(local_stack: LocalStack) -> None:
    assert {"basic", "partner"} <= set(local_stack.api_keys)
    assert len(set(local_stack.api_keys.values())) == len(local_stack.api_keys)


# --- search: cache-aside through the real handler -----------------------------------------------


def test_seeded_search_is_a_miss_then_a_hit_with_the_same_body(
    client: Client, basic_key: str, example: dict[str, str]
) -> None:
    # Given the seeded example query and a basic-tier key
    headers = {"x-api-key": basic_key}
    # When it is searched for the first time
    first = client.get(SEARCH, query_string=example, headers=headers)
    # Then the offers come from DynamoDB (a cache miss) and match the query
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.headers["X-Cache"] == "MISS"
    assert first.mimetype == "application/json"
    body = first.get_json()
    assert body["results"], "the seeded example query must have results"
    for offer in body["results"]:
        assert (offer["origin"], offer["destination"]) == (example["origin"], example["destination"])
        assert offer["departure"].startswith(example["date"])
    # And every response carries the gateway's request id
    assert first.headers["X-Request-Id"] == first.headers["x-amzn-RequestId"]
    # When the same query is repeated, Then Redis answers it with the very same bytes
    second = client.get(SEARCH, query_string=example, headers=headers)
    assert second.status_code == 200
    assert second.headers["X-Cache"] == "HIT"
    assert second.get_data() == first.get_data()


def test_a_bad_date_is_a_400_naming_the_parameter(client: Client, basic_key: str, example: dict[str, str]) -> None:
    response = client.get(SEARCH, query_string={**example, "date": "2024-02-30"}, headers={"x-api-key": basic_key})
    assert response.status_code == 400
    assert "date" in error_of(response)["message"]


def test_a_missing_required_parameter_is_refused_by_the_gateway(client: Client, basic_key: str) -> None:
    # The template's request validator checks required parameters before the function runs.
    response = client.get(
        SEARCH, query_string={"origin": "JFK", "destination": "LHR"}, headers={"x-api-key": basic_key}
    )
    assert response.status_code == 400
    assert "date" in error_of(response)["message"]


def test_a_parameter_given_twice_reaches_the_function_as_multi_value(
    client: Client, basic_key: str, example: dict[str, str]
) -> None:
    query = f"origin={example['origin']}&origin=EWR&destination={example['destination']}&date={example['date']}"
    response = client.get(f"{SEARCH}?{query}", headers={"x-api-key": basic_key})
    assert response.status_code == 400
    assert "origin" in error_of(response)["message"]


# --- routes without a function --------------------------------------------------------------------


def test_health_needs_no_key(client: Client) -> None:
    response = client.get(HEALTH)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_an_unknown_route_is_a_404_json_error(client: Client, basic_key: str) -> None:
    response = client.get("/v1/no-such-thing", headers={"x-api-key": basic_key})
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# --- the proxy event ------------------------------------------------------------------------------


def test_the_function_receives_a_rest_proxy_event(local_stack: LocalStack, basic_key: str) -> None:
    gateway: Gateway = local_stack.gateway
    route, path_parameters, _ = gateway.find_route(SEARCH, "GET")
    assert route is not None
    builder = EnvironBuilder(
        path=SEARCH, query_string="origin=JFK&origin=EWR&date=2030-01-01", headers=[("x-api-key", basic_key)]
    )
    call = GatewayRequest(Request(builder.get_environ()), "req-1", time.monotonic(), 1_700_000_000_000)
    call.route, call.key = route, gateway.api_keys[basic_key]

    event: dict[str, Any] = gateway.proxy_event(call, route, path_parameters)

    assert event["resource"] == event["path"] == SEARCH
    assert event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"origin": "EWR", "date": "2030-01-01"}
    assert event["multiValueQueryStringParameters"] == {"origin": ["JFK", "EWR"], "date": ["2030-01-01"]}
    assert event["pathParameters"] is None and event["stageVariables"] is None
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["requestId"] == "req-1" and context["requestTimeEpoch"] == 1_700_000_000_000
    assert context["resourcePath"] == SEARCH and context["path"] == f"/{route.stage}{SEARCH}"
    assert context["identity"]["apiKey"] == basic_key
    assert context["identity"]["apiKeyId"] == gateway.api_keys[basic_key].key_id
    assert json.loads(json.dumps(event)) == event


# --- a function that fails ------------------------------------------------------------------------

INVOCATIONS: list[tuple[dict[str, Any], Any]] = []


def failing_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stands in for the flights handler in a copy of the template: records its call, then fails."""
    INVOCATIONS.append((event, context))
    raise RuntimeError("boom")


def test_a_function_that_raises_is_a_502_json_error() -> None:
    # Given the real template with the flights function's Handler pointing at a failing one
    template = copy.deepcopy(project_template())
    function = template["Resources"]["FlightsSearchFunction"]["Properties"]
    function["Handler"] = f"{__name__}.failing_handler"
    gateway = Gateway(Intrinsics(template))
    client = Client(gateway)
    INVOCATIONS.clear()
    # When a keyed search reaches it
    query = {"origin": "JFK", "destination": "LHR", "date": "2030-01-01"}
    response = client.get(SEARCH, query_string=query, headers={"x-api-key": gateway.keys_by_tier()["basic"]})
    # Then API Gateway's 502 comes back in the one error shape
    assert response.status_code == 502
    assert error_of(response)["code"] == "internal_error"
    # And the function was called once, with a Lambda-like context
    ((event, context),) = INVOCATIONS
    assert event["queryStringParameters"] == query
    assert context.function_name and context.invoked_function_arn.endswith(context.function_name)
    intrinsics = Intrinsics(template)
    assert context.memory_limit_in_mb == str(intrinsics.resolve(function["MemorySize"]))  # a str, as in Lambda
    assert 0 < context.get_remaining_time_in_millis() <= int(intrinsics.resolve(function["Timeout"])) * 1000
    assert context.aws_request_id


# --- throttling (last: it drains the basic key's bucket) -------------------------------------------


def test_exceeding_a_tiers_burst_is_a_429_json_error(local_stack: LocalStack, client: Client, basic_key: str) -> None:
    # Given the basic tier's usage-plan throttle from the template
    throttle = local_stack.gateway.api_keys[basic_key].throttle
    assert throttle is not None
    refill_seconds = min(throttle.burst_limit / throttle.rate_limit, 5.0)
    time.sleep(refill_seconds)  # earlier tests used some of the key's tokens: start from a full bucket
    # When requests arrive faster than the plan's rate (cheap ones: the function rejects the date)
    headers = {"x-api-key": basic_key}
    query = {"origin": "JFK", "destination": "LHR", "date": "2024-02-30"}
    started = time.monotonic()
    answered = 0
    refused = None
    limit = throttle.burst_limit * 5 + 50  # bounded, whatever the machine's speed
    for _ in range(limit):
        response = client.get(SEARCH, query_string=query, headers=headers)
        if response.status_code == 429:
            refused = response
            break
        answered += 1
    elapsed = time.monotonic() - started
    # Then the burst is served and the next request over it is refused with the template's 429 body
    assert refused is not None, f"no 429 in {limit} requests"
    assert throttle.burst_limit <= answered <= throttle.burst_limit + math.ceil(throttle.rate_limit * elapsed) + 1
    assert error_of(refused)["code"] == "throttled"  # THROTTLED gateway response in template.yaml
    # Let the bucket refill so the key is usable again (bounded).
    time.sleep(refill_seconds)


# --- `python -m local` as a real process -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_children(pid: int) -> list[int]:
    """Pids of redis-server processes whose parent is ``pid`` (Linux /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == pid and name in ("redis-server", "valkey-server"):
            children.append(int(entry.name))
    return children


def is_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"  # a zombie has exited already


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the redis-server child")
def test_python_m_local_serves_http_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    # Given `python -m local` on a free port, writing its state where the user's file is safe
    state_file = tmp_path / "stack.json"
    port = free_port()
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_ENDPOINT_URL") and name not in ("REDIS_URL", "PORT", "LOCAL_STACK_FILE")
    }
    log_path = tmp_path / "local.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local",
                "--port",
                str(port),
                "--state-file",
                str(state_file),
                "--seed-scale",
                "0.02",
            ],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # When it reports ready
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not state_file.exists():
            assert process.poll() is None, f"python -m local exited early:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"not ready in {START_TIMEOUT_SECONDS}s:\n{log_path.read_text()}"
            time.sleep(0.2)
        state = json.loads(state_file.read_text())
        assert state["url"] == f"http://127.0.0.1:{port}"
        redis_pids = redis_children(process.pid)
        assert len(redis_pids) == 1

        # Then a real HTTP request goes through the gateway, the handler, moto and Redis
        query = "&".join(f"{name}={value}" for name, value in state["examples"]["flights"].items())
        request = urllib.request.Request(
            f"{state['url']}{SEARCH}?{query}", headers={"x-api-key": state["api_keys"]["basic"]}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert response.headers["X-Cache"] == "MISS"
            assert json.loads(response.read())["results"]
    finally:
        # When it gets Ctrl-C
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
            pytest.fail(f"python -m local ignored SIGINT:\n{log_path.read_text()}")

    # Then it exits cleanly, leaving no redis-server and no state file behind
    assert process.returncode == 0, log_path.read_text()
    deadline = time.monotonic() + 5
    while not all(is_gone(pid) for pid in redis_pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(is_gone(pid) for pid in redis_pids), "redis-server outlived python -m local"
    assert not state_file.exists()


def test_the_handlers_dynamodb_client_cannot_scan(local_stack: LocalStack) -> None:
    """Search and ingest read only by key: the functions' DynamoDB client has no Scan to send."""
    from core.store import dynamodb_client

    client = dynamodb_client()
    assert not hasattr(client, "scan")
    with pytest.raises(ValueError, match="Scan: not an operation of this client"):
        client.call("Scan", {"TableName": "travel-local-flights"})
