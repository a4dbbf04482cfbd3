"""Scheduled refresh: a provider's own format becomes partner events on the bus, or a loud failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from core.observability import FunctionTelemetry
from integrations.contracts import event_contracts
from integrations.provider_refresh import RefreshFailed, refresh
from integrations.providers.skylink import SkylinkAdapter

FARES = {
    "fares": [
        {
            "id": 101,
            "from": "JFK",
            "to": "LHR",
            "flight": "BA178",
            "airline": "BA",
            "dep": "2026-12-01T18:30:00Z",
            "arr": "2026-12-02T01:35:00Z",
            "minutes": 425,
            "class": "Y",
            "fare": 399,
            "currency": "USD",
            "seats": 3,
            "changed_at": "2026-11-28T08:00:00Z",
        },
        {
            "id": 105,
            "from": "JFK",
            "to": "LHR",
            "flight": "BA178",
            "airline": "BA",
            "dep": "2026-12-01T18:30:00Z",
            "arr": "2026-12-02T01:35:00Z",
            "minutes": 425,
            "class": "J",
            "fare": 2100.5,
            "currency": "USD",
            "seats": 1,
            "changed_at": "2026-11-28T08:05:00Z",
        },
        {
            "id": 102,
            "from": "JFK",
            "to": "LHR",
            "flight": "VS4",
            "airline": "VS",
            "dep": "2026-12-02T08:00:00Z",
            "arr": "2026-12-02T20:00:00Z",
            "minutes": 420,
            "class": "Y",
            "fare": 455.1,
            "currency": "USD",
            "seats": 9,
            "changed_at": "2026-11-28T08:01:00Z",
        },
    ]
}


class RecordingBus:
    def __init__(self, refuse: int = 0) -> None:
        self.entries: list[dict[str, Any]] = []
        self.refuse = refuse

    def publish(self, entries: list[dict[str, Any]]) -> list[int]:
        self.entries += entries[self.refuse :]
        return list(range(min(self.refuse, len(entries))))


def adapter(document: dict[str, Any] = FARES) -> SkylinkAdapter:
    calls: list[tuple[str, str]] = []

    def fetch(url: str, token: str) -> dict[str, Any]:
        calls.append((url, token))
        assert (url, token) == ("https://api.skylink.test/v1/fares", "token-1")
        return document

    return SkylinkAdapter("https://api.skylink.test/v1/", "token-1", fetch)


def test_fares_become_one_valid_event_per_route_and_day() -> None:
    events = adapter().events()
    assert [(e["data"]["date"], e["sequence"], len(e["data"]["offers"])) for e in events] == [
        ("2026-12-01", 105, 2),
        ("2026-12-02", 102, 1),
    ]
    assert all(event_contracts().problem(e) is None for e in events)
    assert events[0]["data"]["offers"][1]["cabin"] == "business"
    assert events[0]["data"]["offers"][1]["price"] == {"amount": "2100.50", "currency": "USD"}
    assert adapter().events()[0]["id"] == events[0]["id"]  # the same pull makes the same event ids


def test_refresh_publishes_valid_events_and_counts_the_invalid_ones() -> None:
    broken = {"fares": [*FARES["fares"], {**FARES["fares"][0], "id": 200, "class": "Z", "dep": "2026-12-05T10:00:00Z"}]}
    bus = RecordingBus()
    telemetry = FunctionTelemetry("provider-refresh-test", "integrations")
    result = refresh(
        "skylink", adapter(broken), event_contracts(), bus, "partner-bus", telemetry, datetime(2026, 11, 28, tzinfo=UTC)
    )
    assert result == {"provider": "skylink", "published": 2, "rejected": 1}
    assert {e["Source"] for e in bus.entries} == {"travel-search.refresh"}
    assert orjson.loads(bus.entries[0]["Detail"])["provider"] == "skylink"


def test_events_the_bus_refuses_fail_the_invocation_so_it_is_retried() -> None:
    telemetry = FunctionTelemetry("provider-refresh-test", "integrations")
    with pytest.raises(RefreshFailed, match="1 of 2"):
        refresh("skylink", adapter(), event_contracts(), RecordingBus(refuse=1), "b", telemetry, datetime.now(UTC))
