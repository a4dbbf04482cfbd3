"""``POST /v1/providers/{provider}/events``: partners push price and availability events.

Only partner-tier keys may push (``PARTNER_KEY_IDS``); a basic or pro key gets 403. Every event is
validated against its schema before it is put on the bus; rejected events are never stored and
each rejection names the failing field. The answer is ``202 {"accepted": n, "rejected": [...]}``.
An event the bus refuses even after retries is reported as rejected, so the partner can resend
it; nothing is acknowledged that was not put.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

import orjson

from core.errors import Forbidden, InvalidParameter, InvalidRequest, PayloadTooLarge, ServiceUnavailable
from core.http import ApiRequest, Reply, handle
from core.observability import FunctionTelemetry
from core.settings import SettingsError
from integrations.bus import EventBus, entry
from integrations.contracts import EventContracts, event_contracts

SOURCE = "travel-search.partners"
MAX_BODY_BYTES = 256 * 1024
MAX_EVENTS = 100
PROVIDER = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
BUS_BUSY = "not accepted: the event bus is busy; send this event again"


class Publisher(Protocol):
    def publish(self, entries: list[dict[str, Any]]) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class PartnerEvents:
    bus_name: str
    partner_key_ids: frozenset[str]
    contracts: EventContracts
    publisher: Publisher
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def accept(self, request: ApiRequest) -> Reply:
        if request.api_key_id not in self.partner_key_ids:
            raise Forbidden("this API key may not push provider events; a partner key is required")
        provider = request.path.get("provider", "")
        if not PROVIDER.fullmatch(provider):
            raise InvalidParameter("provider", "must be a provider name of 2-40 lower-case letters, digits or '-'")
        events = self._events(request)
        received_at = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        rejected: list[dict[str, Any]] = []
        accepted: list[tuple[int, Mapping[str, Any]]] = []
        for index, event in enumerate(events):
            problem = self.contracts.problem(event)
            if problem is None:
                accepted.append((index, event))
            else:
                rejected.append({"index": index, "id": _id_of(event), "reason": problem})
        entries = [
            entry(
                self.bus_name, SOURCE, event["type"], {"provider": provider, "received_at": received_at, "event": event}
            )
            for _, event in accepted
        ]
        failed = set(self.publisher.publish(entries)) if entries else set()
        if failed and len(failed) == len(entries):
            raise ServiceUnavailable("the event bus is unavailable; send the events again", retry_after=5)
        for position in sorted(failed):
            index, event = accepted[position]
            rejected.append({"index": index, "id": _id_of(event), "reason": BUS_BUSY})
        rejected.sort(key=lambda rejection: rejection["index"])
        body = {"accepted": len(entries) - len(failed), "rejected": rejected}
        return Reply(orjson.dumps(body).decode(), status=202)

    @staticmethod
    def _events(request: ApiRequest) -> list[Any]:
        raw = request.body
        if raw is None or raw == "":
            raise InvalidRequest("body: is required (a JSON object with an 'events' list)")
        if request.body_is_base64:
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest("body: is not valid base64") from None
        else:
            data = raw.encode()
        if len(data) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body: is {len(data)} bytes; at most {MAX_BODY_BYTES} bytes are accepted")
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise InvalidRequest("body: is not valid JSON") from None
        events = document.get("events") if isinstance(document, dict) else None
        if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
            raise InvalidRequest(f"events: must be a list of 1 to {MAX_EVENTS} events")
        # Strict, like query parameters: a field the batch does not define is an error, not silently dropped.
        unknown = sorted(name for name in document if name != "events")
        if unknown:
            raise InvalidRequest(f"{unknown[0][:40]}: is not a field of an event batch (only 'events')")
        return events


def _id_of(event: Any) -> str | None:
    identifier = event.get("id") if isinstance(event, dict) else None
    return identifier[:100] if isinstance(identifier, str) else None


telemetry = FunctionTelemetry("partner-events", "integrations", "requestContext.requestId")


@lru_cache(maxsize=1)
def partner_events() -> PartnerEvents:
    bus_name = os.environ.get("EVENT_BUS_NAME", "").strip()
    if not bus_name:
        raise SettingsError("environment variable EVENT_BUS_NAME is not set (the partner event bus)")
    key_ids = frozenset(key.strip() for key in os.environ.get("PARTNER_KEY_IDS", "").split(",") if key.strip())
    return PartnerEvents(bus_name, key_ids, event_contracts(), EventBus())


def push(request: ApiRequest) -> Reply:
    return partner_events().accept(request)


@telemetry.entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, push, telemetry.logger)
