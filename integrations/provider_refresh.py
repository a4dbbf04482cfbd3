"""ProviderRefresh: on a schedule, pull a provider's API and put its updates on the partner bus.

Pulled updates take the same path as pushed ones: the bus, the domain queue, schema-validated
idempotent ingest. An event the adapter produces that fails its schema is logged and counted, not
published; entries the bus refuses after retries fail the invocation, so Lambda's async retries
run it again (re-publishing is harmless: ingest is idempotent) and, at the end, the failure
destination keeps the request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from core.observability import FunctionTelemetry
from core.settings import SettingsError
from integrations.bus import EventBus, entry
from integrations.contracts import EventContracts, event_contracts
from integrations.providers.skylink import SkylinkAdapter

SOURCE = "travel-search.refresh"


class Adapter(Protocol):
    def events(self) -> list[dict[str, Any]]: ...


ADAPTERS: dict[str, Callable[[str, str], Adapter]] = {"skylink": SkylinkAdapter}


class Publisher(Protocol):
    def publish(self, entries: list[dict[str, Any]]) -> list[int]: ...


class RefreshFailed(RuntimeError):
    pass


def refresh(
    provider: str,
    adapter: Adapter,
    contracts: EventContracts,
    publisher: Publisher,
    bus_name: str,
    telemetry: FunctionTelemetry,
    now: datetime,
) -> dict[str, Any]:
    received_at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    entries, rejected = [], 0
    for event in adapter.events():
        problem = contracts.problem(event)
        if problem is not None:
            rejected += 1
            telemetry.logger.error("provider event fails its schema", extra={"provider": provider, "reason": problem})
            continue
        entries.append(
            entry(bus_name, SOURCE, event["type"], {"provider": provider, "received_at": received_at, "event": event})
        )
    failed = publisher.publish(entries)
    telemetry.sink.count("RefreshPublished", len(entries) - len(failed))
    telemetry.sink.count("RefreshRejected", rejected)
    if failed:
        raise RefreshFailed(f"{len(failed)} of {len(entries)} {provider} events were not put on the bus")
    return {"provider": provider, "published": len(entries), "rejected": rejected}


telemetry = FunctionTelemetry("provider-refresh", "integrations")


@lru_cache(maxsize=1)
def _environment() -> tuple[str, dict[str, str], str]:
    values = {}
    for name in ("EVENT_BUS_NAME", "PROVIDER_ENDPOINTS", "PROVIDER_CREDENTIALS_SECRET"):
        values[name] = os.environ.get(name, "").strip()
        if not values[name]:
            raise SettingsError(f"environment variable {name} is not set")
    try:
        endpoints = json.loads(values["PROVIDER_ENDPOINTS"])
    except ValueError:
        raise SettingsError("environment variable PROVIDER_ENDPOINTS must be a JSON object") from None
    return values["EVENT_BUS_NAME"], endpoints, values["PROVIDER_CREDENTIALS_SECRET"]


def _token(secret_id: str, provider: str) -> str:
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415 - boto3 only when a refresh runs

    tokens: Mapping[str, str] = parameters.get_secret(secret_id, transform="json", max_age=300)
    if provider not in tokens:
        raise SettingsError(f"the provider credentials secret has no token for {provider!r}")
    return tokens[provider]


@telemetry.entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    provider = str(event.get("provider", ""))
    bus_name, endpoints, secret_id = _environment()
    if provider not in ADAPTERS or provider not in endpoints:
        raise SettingsError(f"no adapter or endpoint for provider {provider!r}")
    adapter = ADAPTERS[provider](endpoints[provider], _token(secret_id, provider))
    return refresh(provider, adapter, event_contracts(), EventBus(), bus_name, telemetry, datetime.now(UTC))
