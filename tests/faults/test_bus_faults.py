"""EventBridge refusing part of a PutEvents: failed entries are retried or reported, never dropped.

botocore's ``Stubber`` sits on the very EventBridge client the functions use (one per container,
``integrations.bus.events_client``) and answers as EventBridge does when it throttles some entries:
HTTP 200 with ``FailedEntryCount`` and an ``ErrorCode`` on each entry it did not put.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from werkzeug.test import Client

from integrations.bus import ATTEMPTS, events_client
from integrations.partner_events import BUS_BUSY
from integrations.provider_refresh import RefreshFailed
from integrations.providers.skylink import SkylinkAdapter
from local.gateway import LambdaFunction
from local.stack import LocalStack
from tests.faults.harness import flight_event

pytestmark = pytest.mark.integration

PATH = "/v1/providers/qa-partner/events"
THROTTLED_ENTRY = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}


@pytest.fixture
def bus() -> Iterator[tuple[Stubber, list[list[dict[str, Any]]]]]:
    """The functions' EventBridge client, stubbed; and every PutEvents request it was asked to send."""
    client = events_client()
    sent: list[list[dict[str, Any]]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(list(params["Entries"]))

    client.meta.events.register("provide-client-params.events.PutEvents", record)
    with Stubber(client) as stub:
        yield stub, sent
        stub.assert_no_pending_responses()
    client.meta.events.unregister("provide-client-params.events.PutEvents", record)


def push_of(day: date, count: int) -> dict[str, Any]:
    return {
        "events": [
            flight_event("QBA", "QBB", day, [(f"QB{100 + n}", "economy", f"{100 + n}.00")], n) for n in range(count)
        ]
    }


def put(entry_ids: list[str | None]) -> dict[str, Any]:
    """A PutEvents answer: an EventId for each entry put, a throttling error for each None."""
    entries = [{"EventId": event_id} if event_id else THROTTLED_ENTRY for event_id in entry_ids]
    return {"FailedEntryCount": sum(1 for event_id in entry_ids if not event_id), "Entries": entries}


def event_ids(entries: list[dict[str, Any]]) -> list[str]:
    return [json.loads(entry["Detail"])["event"]["id"] for entry in entries]


def test_entries_the_bus_refuses_once_are_retried_alone_and_the_push_is_fully_accepted(
    client: Client, keys: dict[str, dict[str, str]], bus: tuple[Stubber, list[Any]], travel_day: date
) -> None:
    stub, sent = bus
    body = push_of(travel_day, 3)
    stub.add_response("put_events", put(["a", None, "c"]), {"Entries": [ANY, ANY, ANY]})
    stub.add_response("put_events", put(["b"]), {"Entries": [ANY]})
    response = client.post(PATH, json=body, headers=keys["partner"])
    assert (response.status_code, response.get_json()) == (202, {"accepted": 3, "rejected": []})
    # The retry carried exactly the refused entry
    ids = [event["id"] for event in body["events"]]
    assert [event_ids(request) for request in sent] == [ids, [ids[1]]]


def test_entries_the_bus_keeps_refusing_are_reported_to_the_partner_not_acknowledged(
    client: Client, keys: dict[str, dict[str, str]], bus: tuple[Stubber, list[Any]], travel_day: date
) -> None:
    stub, sent = bus
    body = push_of(travel_day, 3)
    stub.add_response("put_events", put(["a", None, None]), {"Entries": [ANY, ANY, ANY]})
    stub.add_response("put_events", put(["b", None]), {"Entries": [ANY, ANY]})
    for _ in range(ATTEMPTS - 2):
        stub.add_response("put_events", put([None]), {"Entries": [ANY]})
    response = client.post(PATH, json=body, headers=keys["partner"])
    # Then the partner is told which events to send again, with their ids; the others were put
    assert response.status_code == 202
    assert response.get_json() == {
        "accepted": 2,
        "rejected": [{"index": 2, "id": body["events"][2]["id"], "reason": BUS_BUSY}],
    }
    assert len(sent) == ATTEMPTS


def test_a_bus_refusing_every_entry_is_a_503_json_with_retry_after(
    client: Client, keys: dict[str, dict[str, str]], bus: tuple[Stubber, list[Any]], travel_day: date
) -> None:
    stub, _ = bus
    for _ in range(ATTEMPTS):
        stub.add_response("put_events", put([None, None]), {"Entries": [ANY, ANY]})
    response = client.post(PATH, json=push_of(travel_day, 2), headers=keys["partner"])
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["code"] == "service_unavailable"


def test_a_refresh_whose_events_the_bus_keeps_refusing_fails_so_lambda_runs_it_again(
    stack: LocalStack, bus: tuple[Stubber, list[Any]]
) -> None:
    # Given the scheduled refresh of the (local, fake) skylink provider, and a bus refusing its last event
    stub, sent = bus
    endpoint = json.loads(stack.environment["PROVIDER_ENDPOINTS"])["skylink"]
    assert stack.provider is not None
    count = len(SkylinkAdapter(endpoint, stack.provider.token).events())
    assert 1 <= count <= 10  # one PutEvents request
    stub.add_response("put_events", put([f"e{n}" for n in range(count - 1)] + [None]))
    for _ in range(ATTEMPTS - 1):
        stub.add_response("put_events", put([None]))
    refresh = LambdaFunction(stack.gateway.intrinsics, "ProviderRefreshFunction")
    # When it runs, Then the invocation fails (Lambda's async retries and failure destination keep it)
    with pytest.raises(RefreshFailed, match=f"1 of {count} skylink events were not put"):
        refresh.invoke({"provider": "skylink"})
    assert [len(request) for request in sent] == [count] + [1] * (ATTEMPTS - 1)
