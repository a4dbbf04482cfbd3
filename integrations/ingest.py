"""Ingest of provider events from an SQS queue (fed by an EventBridge rule): validate, write, invalidate.

For each SQS record the pipeline

1. reads the EventBridge event in the body: ``detail = {"provider": ..., "event": <partner event>}``;
2. re-validates the partner event against its schema (events can reach the bus by other routes);
3. turns it into conditional upserts (the domain's mapping); the upserts of the whole batch are
   written together (``UpsertStore.upsert_all``), and the newest ``sequence`` per offer or rate
   wins, so duplicates and out-of-order deliveries change nothing;
4. after the batch, ``INCR``s the cache generation of every scope it changed, once per scope. A
   message SQS delivers again (``ApproximateReceiveCount`` > 1) invalidates every scope it touches,
   changed or not: the attempt before may have written it and died (a Lambda timeout) before its
   ``INCR``, and without one the cached searches would show the old data for a whole TTL. For the
   same reason a message whose scope could not be invalidated (the cache was away) is reported
   for redelivery although its writes landed: the generations catch up when the cache is back.

A record that is invalid in any way is quarantined with the reason and acknowledged: it will
never become valid by retrying. A record whose write fails (throttling, an outage) is reported in
``batchItemFailures``, so SQS delivers it again and, after the queue's redrive count, moves it to
the DLQ. A quarantine record that cannot be written is reported the same way. Nothing is dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import orjson

from core.observability import MetricsSink
from core.store import StoreUnavailable
from integrations.contracts import EventContracts

Item = dict[str, dict[str, Any]]

QUARANTINE_DAYS = 30
MAX_QUARANTINED_BODY = 64_000
PROVIDER = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")


class InvalidEvent(ValueError):
    """An event that passed its schema but makes no sense (arrival before departure …)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


NO_DEFAULTS: Item = {}  # shared by every Upsert without defaults: read, never written


class Upsert(NamedTuple):
    """One conditional write: set ``attributes`` on ``key`` if ``sequence`` is newer than the stored one
    (than each stored attribute's own, when ``per_attribute``: see ``core.store.VersionedWrite``).

    A NamedTuple rather than a frozen dataclass: ingest makes one per offer, and a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) cost ~10 µs per record of four offers.
    """

    scope: str  # the cache scope this write changes (a route, a city)
    key: Item
    attributes: Item
    sequence: int
    defaults: Item = NO_DEFAULTS  # set only where the item has no value yet
    per_attribute: bool = False  # each attribute is a map versioned by its own ``sequence``


class Accepted(NamedTuple):
    """A valid message of the batch and the writes it asks for."""

    message_id: str
    redelivered: bool
    upserts: list[Upsert]


ToUpserts = Callable[[Mapping[str, Any], str, str], list[Upsert]]  # (event, provider, received_at)


class UpsertStore(Protocol):
    def upsert_all(self, writes: Sequence[Upsert]) -> list[bool]: ...


class QuarantineStore(Protocol):
    def put_all(self, items: list[Item]) -> list[Item]: ...


@dataclass(frozen=True, slots=True)
class DomainIngest:
    """What one domain's ingest accepts and how it maps events to writes."""

    domain: str
    event_types: frozenset[str]
    to_upserts: ToUpserts


def _receive_count(record: Mapping[str, Any]) -> int:
    """How many times SQS has delivered this message (1 when the record does not say)."""
    try:
        return int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


def quarantine_item(domain: str, message_id: str, body: str, reason: str, now: datetime) -> Item:
    """A quarantine record: operators query one day (``pk``) ordered by arrival (``sk``)."""
    received = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "pk": {"S": now.strftime("%Y-%m-%d")},
        "sk": {"S": f"{received}#{domain}#{message_id}"},
        "domain": {"S": domain},
        "message_id": {"S": message_id},
        "reason": {"S": reason},
        "body": {"S": body[:MAX_QUARANTINED_BODY] or "(empty)"},
        "received_at": {"S": received},
        "expires_at": {"N": str(int((now + timedelta(days=QUARANTINE_DAYS)).timestamp()))},
    }


class IngestPipeline:
    def __init__(
        self,
        spec: DomainIngest,
        contracts: EventContracts,
        store: UpsertStore,
        quarantine: QuarantineStore,
        invalidate: Callable[[str], int | None],
        metrics: MetricsSink,
        logger: logging.Logger | Any,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._spec = spec
        self._contracts = contracts
        self._store = store
        self._quarantine = quarantine
        self._invalidate = invalidate
        self._metrics = metrics
        self._logger = logger
        self._clock = clock

    def run(self, sqs_event: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
        """Process one SQS batch; the result is Lambda's partial batch response."""
        failed: list[str] = []
        quarantined: list[tuple[str, Item]] = []
        accepted: list[Accepted] = []
        received_at = self._clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        for record in sqs_event.get("Records") or ():
            message_id = str(record.get("messageId", ""))
            body = record.get("body") if isinstance(record.get("body"), str) else ""
            try:
                event, provider = self._read(body or "")
                upserts = self._spec.to_upserts(event, provider, received_at)
            except InvalidEvent as invalid:
                self._logger.warning("event quarantined", extra={"message_id": message_id, "reason": invalid.reason})
                quarantined.append(
                    (
                        message_id,
                        quarantine_item(self._spec.domain, message_id, body or "", invalid.reason, self._clock()),
                    )
                )
            except Exception:
                self._not_written(message_id, failed)
            else:
                accepted.append(Accepted(message_id, _receive_count(record) > 1, upserts))
        changed: dict[str, list[str]] = {}  # scope → the messages that changed it
        for message_id, scopes in self._write(accepted, failed):
            for scope in scopes:
                changed.setdefault(scope, []).append(message_id)
        failed += self._write_quarantine(quarantined)
        for scope, message_ids in sorted(changed.items()):
            if self._invalidate(scope) is None:
                # The writes landed; the cache did not hear of them. Deliver the messages again: the
                # redelivery writes nothing new but invalidates every scope it touches (see 4. above).
                # If the cache stays away, the cached results still live at most their TTL.
                self._metrics.count("InvalidationFailed")
                failed += [message_id for message_id in message_ids if message_id not in failed]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    def _write(self, accepted: list[Accepted], failed: list[str]) -> Iterator[tuple[str, set[str]]]:
        """Write the batch's upserts together; per message, the scopes it changed.

        When the batch's write fails because of one message's data, each message is written again on its
        own, so one message that cannot be written does not hold back the others. Those writes invalidate
        every scope they touch, changed or not: part of the batch's write may have landed before it failed
        (the same reasoning as for a redelivered message). When the store itself is unavailable, the
        whole batch is handed back instead.
        """
        if not accepted:
            return
        try:
            landed = self._store.upsert_all([upsert for message in accepted for upsert in message.upserts])
        except StoreUnavailable:
            # Throttled or unreachable: message by message would only multiply the retries. SQS delivers
            # the batch again later; as redeliveries, its messages invalidate all they touch.
            self._logger.warning("the store is unavailable; the batch will be delivered again", exc_info=True)
            self._metrics.count("IngestFailed", len(accepted))
            failed.extend(message.message_id for message in accepted)
            return
        except Exception:
            self._logger.warning("batch write failed; writing its events one by one", exc_info=True)
        else:
            offset = 0
            for message in accepted:
                count = len(message.upserts)
                yield message.message_id, self._changed(message, landed[offset : offset + count], message.redelivered)
                offset += count
            return
        for message in accepted:
            try:
                landed = self._store.upsert_all(message.upserts)
            except Exception:
                self._not_written(message.message_id, failed)
            else:
                yield message.message_id, self._changed(message, landed, True)

    def _changed(self, message: Accepted, landed: list[bool], every_touched: bool) -> set[str]:
        """The scopes a message changed (every scope it touches when ``every_touched``), counting its writes."""
        written = sum(landed)
        self._metrics.count("RecordWritten", written)
        self._metrics.count("RecordUnchanged", len(landed) - written)
        self._metrics.count("EventIngested")
        upserts = message.upserts
        if every_touched:
            return {upsert.scope for upsert in upserts}
        return {upsert.scope for upsert, wrote in zip(upserts, landed, strict=True) if wrote}

    def _not_written(self, message_id: str, failed: list[str]) -> None:
        self._logger.exception("event not written; it will be delivered again", extra={"message_id": message_id})
        self._metrics.count("IngestFailed")
        failed.append(message_id)

    def _read(self, body: str) -> tuple[Mapping[str, Any], str]:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidEvent("body: is not JSON") from None
        detail = message.get("detail") if isinstance(message, dict) else None
        if not isinstance(detail, dict):
            raise InvalidEvent("detail: is missing (not an EventBridge event)")
        provider = detail.get("provider")
        if not isinstance(provider, str) or not PROVIDER.fullmatch(provider):
            raise InvalidEvent("detail.provider: must be a provider name like 'skylink'")
        event = detail.get("event")
        problem = self._contracts.problem(event)
        if problem is not None:
            raise InvalidEvent(f"event.{problem}")
        if event["type"] not in self._spec.event_types:
            raise InvalidEvent(f"event.type: {event['type']} is not handled by {self._spec.domain} ingest")
        return event, provider

    def _write_quarantine(self, quarantined: Iterable[tuple[str, Item]]) -> list[str]:
        by_sort_key = {item["sk"]["S"]: message_id for message_id, item in quarantined}
        items = [item for _, item in quarantined]
        if not items:
            return []
        self._metrics.count("EventQuarantined", len(items))
        unwritten = self._quarantine.put_all(items)
        return [by_sort_key[item["sk"]["S"]] for item in unwritten]
