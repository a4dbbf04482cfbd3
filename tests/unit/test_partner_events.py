"""Partner push: key tier, size and shape limits, per-event validation, bus failures reported."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from typing import Any

import botocore.session
import orjson
import pytest
from botocore.stub import Stubber

from core.errors import Forbidden, InvalidParameter, InvalidRequest, PayloadTooLarge, ServiceUnavailable
from core.http import ApiRequest
from integrations.bus import EventBus
from integrations.contracts import SCHEMA_DIR, event_contracts
from integrations.partner_events import BUS_BUSY, PartnerEvents

EVENT = json.loads((SCHEMA_DIR / "examples/FlightOffersUpdated.v1/valid/two-cabins.json").read_text())
INVALID = json.loads((SCHEMA_DIR / "examples/FlightOffersUpdated.v1/invalid/cabin-unknown.json").read_text())["event"]


class RecordingBus:
    def __init__(self, refuse: set[int] | None = None) -> None:
        self.entries: list[dict[str, Any]] = []
        self.refuse = refuse or set()

    def publish(self, entries: list[dict[str, Any]]) -> list[int]:
        self.entries += [e for i, e in enumerate(entries) if i not in self.refuse]
        return sorted(i for i in self.refuse if i < len(entries))


def service(bus: RecordingBus) -> PartnerEvents:
    return PartnerEvents(
        "partner-bus", frozenset({"partner-key-id"}), event_contracts(), bus, lambda: datetime(2026, 11, 28, tzinfo=UTC)
    )


def request(body: Any, key_id: str = "partner-key-id", provider: str = "skylink", raw: str | None = None) -> ApiRequest:
    text = raw if raw is not None else json.dumps(body)
    return ApiRequest(query={}, path={"provider": provider}, headers={}, body=text, request_id="r", api_key_id=key_id)


def test_valid_events_are_put_on_the_bus_with_the_provider() -> None:
    bus = RecordingBus()
    reply = service(bus).accept(request({"events": [EVENT]}))
    assert (reply.status, orjson.loads(reply.body)) == (202, {"accepted": 1, "rejected": []})
    [entry] = bus.entries
    assert (entry["EventBusName"], entry["Source"], entry["DetailType"]) == (
        "partner-bus",
        "travel-search.partners",
        "FlightOffersUpdated",
    )
    assert orjson.loads(entry["Detail"]) == {
        "provider": "skylink",
        "received_at": "2026-11-28T00:00:00Z",
        "event": EVENT,
    }


def test_invalid_events_are_rejected_with_a_reason_and_never_put() -> None:
    bus = RecordingBus()
    reply = service(bus).accept(request({"events": [INVALID, EVENT, "junk"]}))
    body = orjson.loads(reply.body)
    assert body["accepted"] == 1
    assert [(r["index"], r["id"], r["reason"].split(":")[0]) for r in body["rejected"]] == [
        (0, INVALID["id"], "data.offers[0].cabin"),
        (2, None, "event"),
    ]
    assert [orjson.loads(e["Detail"])["event"] for e in bus.entries] == [EVENT]


def test_events_the_bus_refuses_are_reported_not_acknowledged() -> None:
    second = copy.deepcopy(EVENT)
    second["id"] = "2b7d3f0e-1c1a-4c55-9d9e-8f1f7d2a0c11"
    reply = service(RecordingBus(refuse={1})).accept(request({"events": [EVENT, second]}))
    assert orjson.loads(reply.body) == {
        "accepted": 1,
        "rejected": [{"index": 1, "id": second["id"], "reason": BUS_BUSY}],
    }
    with pytest.raises(ServiceUnavailable):
        service(RecordingBus(refuse={0})).accept(request({"events": [EVENT]}))


@pytest.mark.parametrize("key_id", ["", "basic-key-id"])
def test_only_partner_keys_may_push(key_id: str) -> None:
    with pytest.raises(Forbidden):
        service(RecordingBus()).accept(request({"events": [EVENT]}, key_id=key_id))


@pytest.mark.parametrize(
    ("body", "raw", "error"),
    [
        (None, "", InvalidRequest),
        (None, "{not json", InvalidRequest),
        ({"events": []}, None, InvalidRequest),
        ({"events": [EVENT] * 101}, None, InvalidRequest),
        ({"events": "x"}, None, InvalidRequest),
        ([EVENT], None, InvalidRequest),
        (None, json.dumps({"events": [EVENT], "pad": "x" * 300_000}), PayloadTooLarge),
    ],
)
def test_malformed_or_oversized_bodies_are_refused_and_nothing_is_put(body: Any, raw: str | None, error: type) -> None:
    bus = RecordingBus()
    with pytest.raises(error):
        service(bus).accept(request(body, raw=raw))
    assert bus.entries == []


def test_provider_name_is_validated() -> None:
    with pytest.raises(InvalidParameter, match="provider"):
        service(RecordingBus()).accept(request({"events": [EVENT]}, provider="Sky Link"))


def test_base64_bodies_are_decoded() -> None:
    encoded = base64.b64encode(json.dumps({"events": [EVENT]}).encode()).decode()
    req = ApiRequest({}, {"provider": "skylink"}, {}, encoded, "r", "partner-key-id", body_is_base64=True)
    assert orjson.loads(service(RecordingBus()).accept(req).body)["accepted"] == 1


def stubbed_bus() -> tuple[EventBus, Stubber]:
    client = botocore.session.get_session().create_client(
        "events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return EventBus(client, sleep=lambda seconds: None), Stubber(client)


def entries(count: int) -> list[dict[str, Any]]:
    return [
        {"EventBusName": "b", "Source": "s", "DetailType": "T", "Detail": json.dumps({"n": n})} for n in range(count)
    ]


def test_bus_retries_only_the_failed_entries_until_they_are_put() -> None:
    bus, stubber = stubbed_bus()
    batch = entries(3)
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 1, "Entries": [{"EventId": "a"}, {"ErrorCode": "ThrottlingException"}, {"EventId": "c"}]},
        {"Entries": batch},
    )
    stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "b"}]}, {"Entries": [batch[1]]})
    with stubber:
        assert bus.publish(batch) == []
    stubber.assert_no_pending_responses()


def test_bus_reports_entries_still_failing_after_its_attempts() -> None:
    bus, stubber = stubbed_bus()
    batch = entries(2)
    failing = {"FailedEntryCount": 1, "Entries": [{"EventId": "a"}, {"ErrorCode": "InternalFailure"}]}
    stubber.add_response("put_events", failing, {"Entries": batch})
    for _ in range(2):
        stubber.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]},
            {"Entries": [batch[1]]},
        )
    with stubber:
        assert bus.publish(batch) == [1]


def test_bus_splits_requests_at_ten_entries() -> None:
    bus, stubber = stubbed_bus()
    batch = entries(23)
    for start, end in ((0, 10), (10, 20), (20, 23)):
        stubber.add_response(
            "put_events",
            {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(start, end)]},
            {"Entries": batch[start:end]},
        )
    with stubber:
        assert bus.publish(batch) == []
    stubber.assert_no_pending_responses()


def test_bus_reports_every_entry_when_put_events_keeps_raising() -> None:
    bus, stubber = stubbed_bus()
    for _ in range(3):
        stubber.add_client_error("put_events", "InternalException", http_status_code=500)
    with stubber:
        assert bus.publish(entries(3)) == [0, 1, 2]


def test_bus_reports_entries_it_had_no_time_left_to_try() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 5.0  # every look at the clock costs five seconds
        return now[0]

    client = botocore.session.get_session().create_client(
        "events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    bus = EventBus(client, sleep=lambda seconds: None, clock=clock, budget_seconds=7.0)
    stubber = Stubber(client)
    batch = entries(12)
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(10)]},
        {"Entries": batch[:10]},
    )
    with stubber:
        assert bus.publish(batch) == [10, 11]
