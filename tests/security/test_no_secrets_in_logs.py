"""A traveller's and a partner's whole journey through the local stack, with every log line kept:
no API key, no page-token key and no provider token may appear in any of them.

Everything that can write is captured for the journey: ``sys.stdout``/``sys.stderr`` (EMF metrics),
file descriptors 1 and 2, every logging handler already configured (Powertools' JSON handlers are
bound to a stream when a function is first imported), and a handler on the root logger at INFO,
as ``make run`` configures it (the gateway's access log), which also prints each record's extra
fields. Background work (the SQS pollers running ingest) writes into the same capture.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import boto3
import pytest
from werkzeug.test import Client

from local.gateway import Gateway, LambdaFunction
from local.stack import LocalStack
from tests.faults.harness import ThrottlingDynamo, Unthrottled, environment, flight_event

pytestmark = pytest.mark.integration

FLIGHTS, HOTELS = "/v1/flights/search", "/v1/hotels/search"
CANARY_KEY = "wrongKey0CanaryDoNotLog0x7f3a9c1e5b2d48aa"  # a key a client got wrong: not to be logged either
INGESTED_WITHIN_SECONDS = 15.0
WINDOW = 16  # no run of this many characters of a secret may appear either (a truncated key is a key)


class _EveryField(logging.Formatter):
    """The message, then every attribute of the record (so ``extra=`` fields are printed too)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {key: value for key, value in vars(record).items() if key not in ("msg", "args", "exc_info")}
        return f"{super().format(record)} {fields!r}"


@contextlib.contextmanager
def everything_written() -> Iterator[Callable[[], str]]:
    """Capture all output of this process while the block runs; yields a reader of what was written."""
    capture: TextIO = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115
    saved_streams = sys.stdout, sys.stderr
    saved_fds = {fd: os.dup(fd) for fd in (1, 2)}
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {  # each once: a handler on two loggers must be redirected and restored once
        id(handler): handler
        for logger in loggers
        if isinstance(logger, logging.Logger)
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
    }
    redirected: list[tuple[logging.StreamHandler[Any], Any]] = []
    root = logging.getLogger()
    saved_level = root.level
    catch_all = logging.StreamHandler(capture)
    catch_all.setFormatter(_EveryField("%(levelname)s %(name)s: %(message)s"))
    try:
        for stream in saved_streams:
            stream.flush()
        for fd in (1, 2):
            os.dup2(capture.fileno(), fd)
        sys.stdout = sys.stderr = capture
        for handler in handlers.values():
            redirected.append((handler, handler.stream))
            handler.setStream(capture)
        root.addHandler(catch_all)
        root.setLevel(logging.INFO)

        def read() -> str:
            capture.flush()
            capture.seek(0)
            text = capture.read()
            capture.seek(0, os.SEEK_END)
            return text

        yield read
    finally:
        root.removeHandler(catch_all)
        root.setLevel(saved_level)
        for handler, stream in redirected:
            handler.setStream(stream)
        sys.stdout, sys.stderr = saved_streams
        for fd, saved in saved_fds.items():
            os.dup2(saved, fd)
            os.close(saved)
        capture.close()


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f}s")
        time.sleep(0.1)


def secrets_of(stack: LocalStack, gateways: list[Gateway]) -> dict[str, str]:
    """Every secret value this stack holds: API keys, the page-token key, provider tokens."""
    assert stack.moto is not None
    found = {
        f"API key {key.logical_id}#{n}": value for n, g in enumerate(gateways) for value, key in g.api_keys.items()
    }
    found["a wrong API key"] = CANARY_KEY
    found["PAGE_TOKEN_SECRET"] = stack.environment["PAGE_TOKEN_SECRET"]
    secrets = boto3.client("secretsmanager", endpoint_url=stack.moto.url, region_name=stack.moto.region)
    tokens = json.loads(
        secrets.get_secret_value(SecretId=stack.environment["PROVIDER_CREDENTIALS_SECRET"])["SecretString"]
    )
    found |= {f"provider token of {name}": token for name, token in tokens.items() if isinstance(token, str) and token}
    assert all(len(value) >= WINDOW for value in found.values()), {k: len(v) for k, v in found.items()}
    return found


def test_a_full_journey_logs_no_api_key_page_token_key_or_provider_token(stack: LocalStack) -> None:
    gateway = Gateway(stack.gateway.intrinsics, clock=Unthrottled())
    client = Client(gateway)
    keys = {tier: {"x-api-key": value} for tier, value in gateway.keys_by_tier().items()}
    secrets = secrets_of(stack, [gateway, stack.gateway])
    day = datetime.now(UTC).date() + timedelta(days=40)
    push = {"events": [flight_event("QSE", "QSF", day, [("QS901", "economy", "199.00")], 1)]}
    bad_push = {"events": [{**push["events"][0], "sequence": -1}]}
    flights, hotels = stack.examples["flights"], stack.examples["hotels"]
    basic, partner = keys["basic"], keys["partner"]

    def get(path: str, headers: dict[str, str] | None = None, **params: str) -> Any:
        return client.get(path, query_string=params, headers=headers or {})

    def pushed(body: dict[str, Any], headers: dict[str, str]) -> Any:
        return client.post("/v1/providers/qa-partner/events", json=body, headers=headers)

    with everything_written() as written:
        # Travellers: searches (miss, hit), a next page, a forged page token, autocomplete and lookups
        assert get("/v1/health").status_code == 200
        first = get(FLIGHTS, basic, **flights, limit="2")
        assert get(FLIGHTS, basic, **flights, limit="2").headers["X-Cache"] == "HIT"
        token = first.get_json()["next_page_token"]
        assert get(FLIGHTS, basic, **flights, limit="2", page_token=token).status_code == 200
        assert get(FLIGHTS, basic, **flights, limit="2", page_token=token[:-2] + "AA").status_code == 400
        assert get(HOTELS, basic, **hotels, limit="1").status_code == 200
        assert get("/v1/destinations/search", basic, q="paris").status_code == 200
        assert get("/v1/destinations/CDG", basic).status_code == 200
        assert get("/v1/destinations/QQQ", basic).status_code == 404
        # Clients getting the key wrong: none, a wrong one, in the query string, a basic key on the partner route
        assert get(FLIGHTS, **flights).status_code == 403
        assert get(FLIGHTS, {"x-api-key": CANARY_KEY}, **flights).status_code == 403
        assert get(FLIGHTS, **flights, **{"x-api-key": basic["x-api-key"]}).status_code == 403
        assert pushed(push, basic).status_code == 403
        # A partner pushing a valid and an invalid event; the valid one is ingested in the background
        assert pushed(push, partner).status_code == 202
        assert pushed(bad_push, partner).get_json()["rejected"]
        pushed_route = {"origin": "QSE", "destination": "QSF", "date": day.isoformat()}
        wait_for(lambda: get(FLIGHTS, basic, **pushed_route).get_json()["results"], INGESTED_WITHIN_SECONDS, "push")
        # The scheduled refresh pulling the provider with its token from Secrets Manager
        refresh = LambdaFunction(stack.gateway.intrinsics, "ProviderRefreshFunction")
        assert refresh.invoke({"provider": "skylink"})["published"] >= 1
        # Failures that log: DynamoDB throttling (503), and a table that is not there (500, with a traceback)
        with ThrottlingDynamo() as dynamo, environment(AWS_ENDPOINT_URL_DYNAMODB=dynamo.url):
            assert get(FLIGHTS, basic, **flights, limit="3").status_code == 503
        with environment(FLIGHTS_TABLE="no-such-table"):
            assert get(FLIGHTS, basic, **flights, limit="4").status_code == 500
        logs = written()
    # The capture saw the journey: the gateway's access log, the handlers' JSON logs, the metrics, ingest
    assert "tier=basic" in logs and "tier=partner" in logs
    assert '"message":"request rejected"' in logs and '"message":"unhandled error"' in logs
    assert '"CacheMiss"' in logs and '"EventIngested"' in logs and "provider-refresh" in logs
    # And no secret is in it, whole or in part
    for name, secret in secrets.items():
        if secret in logs:
            at = logs.index(secret)
            pytest.fail(f"{name} appears in the logs: …{logs[max(0, at - 200) : at + len(secret) + 50]}…")
        windows = {secret[i : i + WINDOW] for i in range(len(secret) - WINDOW + 1)}
        leaked = [window for window in windows if window in logs]
        assert not leaked, f"part of {name} appears in the logs: {leaked[0]!r}"
