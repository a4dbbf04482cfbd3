"""EventBridge Pipes from DynamoDB streams to an event bus, emulated (moto stores pipes but never runs them).

For each ``AWS::Pipes::Pipe`` whose source is a template table's stream and whose target is a
template event bus, a :class:`StreamPipe` reads the table's stream with ``dynamodbstreams``, keeps
the records its ``FilterCriteria`` match, renders the target's ``InputTemplate`` (``<$.json.path>``
placeholders) and puts one event per record on the bus with the target's ``Source`` and
``DetailType`` (``EventBridgeEventBusParameters``).

Locally the pipe starts at the stream's end once the seed is written (``ready``): the seed is the
initial load, not a change anyone subscribed to. Entries the bus still refuses after a few tries
are logged (the pipe's retry policy and dead-letter queue are not emulated). Other sources,
targets or enrichments are reported as not emulated when the stack starts.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from local.background import Worker
from local.event_patterns import matches, parse_pattern
from local.intrinsics import Intrinsics
from local.resources import resources_of_type

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
SHARD_REFRESH_SECONDS = 10.0
# A read may land between moto's two records of one UpdateItem: a trailing keys-only INSERT waits
# this long for its second half before it is published as it is.
HOLD_SECONDS = 2.0
READY_CHECK_SECONDS = 0.5
PUT_ATTEMPTS = 3
MAX_PUT_ENTRIES = 10  # PutEvents limit
_PLACEHOLDER = re.compile(r"<(\$(?:\.[A-Za-z0-9_-]+|\[\d+\])*|aws\.pipes\.[a-z.-]+)>")
_PATH_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")
_MISSING = object()


@dataclass(frozen=True)
class PipeDefinition:
    """One stream → bus pipe of the template, resolved for the local stack."""

    logical_id: str
    name: str
    arn: str
    table: str  # logical id of the source table
    bus: str  # name of the target bus
    source: str
    detail_type: str
    input_template: str | None = None
    filters: tuple[dict[str, Any], ...] = ()
    batch_size: int = 10


def pipes_from_template(intrinsics: Intrinsics) -> list[PipeDefinition]:
    """Every running pipe from a table stream to an event bus; the others are logged as not emulated."""
    pipes = []
    for logical_id in resources_of_type(intrinsics, "AWS::Pipes::Pipe"):
        raw = intrinsics.resources[logical_id].get("Properties") or {}
        table, bus = intrinsics.logical_id_of(raw.get("Source")), intrinsics.logical_id_of(raw.get("Target"))
        if (
            table is None
            or bus is None
            or intrinsics.resource_type(table) != "AWS::DynamoDB::Table"
            or intrinsics.resource_type(bus) != "AWS::Events::EventBus"
            or raw.get("Enrichment")
        ):
            logger.warning(
                "%s: only table stream → event bus pipes without enrichment are emulated locally", logical_id
            )
            continue
        properties = intrinsics.resolve(raw)
        if str(properties.get("DesiredState", "RUNNING")).upper() != "RUNNING":
            continue
        source_parameters = properties.get("SourceParameters") or {}
        target_parameters = properties.get("TargetParameters") or {}
        bus_parameters = target_parameters.get("EventBridgeEventBusParameters") or {}
        stream_parameters = source_parameters.get("DynamoDBStreamParameters") or {}
        filters = tuple(
            parse_pattern(item["Pattern"])
            for item in (source_parameters.get("FilterCriteria") or {}).get("Filters") or []
        )
        pipes.append(
            PipeDefinition(
                logical_id=logical_id,
                name=intrinsics.name(logical_id),
                arn=intrinsics.arn(logical_id),
                table=table,
                bus=intrinsics.name(bus),
                source=str(bus_parameters.get("Source", f"Pipe {intrinsics.name(logical_id)}")),
                detail_type=str(bus_parameters.get("DetailType", "Event from aws:dynamodb.stream")),
                input_template=target_parameters.get("InputTemplate"),
                filters=filters,
                batch_size=int(stream_parameters.get("BatchSize", 10)),
            )
        )
    return pipes


def _lookup(document: Any, path: str) -> Any:
    node = document
    for name, index in _PATH_STEP.findall(path[1:]):
        if name and isinstance(node, dict) and name in node:
            node = node[name]
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return _MISSING
    return node


def _inside_string(text: str, position: int) -> bool:
    """Whether ``position`` of a JSON template is inside a string literal."""
    inside, escaped = False, False
    for char in text[:position]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
    return inside


def render_input_template(template: str, record: Mapping[str, Any], pipe: PipeDefinition) -> str:
    """Pipes' input transformation: ``<$.path>`` inside quotes is inserted as text, outside as JSON."""
    reserved = {
        "aws.pipes.pipe-name": pipe.name,
        "aws.pipes.pipe-arn": pipe.arn,
        "aws.pipes.event": record,
        "aws.pipes.event.json": record,
        "aws.pipes.event.ingestion-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    def replace(match: re.Match[str]) -> str:
        expression = match.group(1)
        value = reserved.get(expression, _MISSING) if expression.startswith("aws.") else _lookup(record, expression)
        if _inside_string(template, match.start()):
            if value is _MISSING or value is None:
                return ""
            text = value if isinstance(value, str) else json.dumps(value)
            return json.dumps(text)[1:-1]
        return "null" if value is _MISSING else json.dumps(value)

    return _PLACEHOLDER.sub(replace, template)


def _keys_only_insert(record: Mapping[str, Any]) -> bool:
    change = record.get("dynamodb") or {}
    return record.get("eventName") == "INSERT" and change.get("NewImage") == change.get("Keys")


def _without_moto_doubles(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Drop moto's extra record for an UpdateItem that creates an item.

    moto creates the item with its keys first, then applies the update, and streams both as INSERT;
    DynamoDB streams one INSERT with the whole item. A keys-only INSERT followed by an INSERT of the
    same keys is that artefact.
    """
    kept = []
    for index, record in enumerate(records):
        later = records[index + 1] if index + 1 < len(records) else None
        if (
            later is not None
            and _keys_only_insert(record)
            and later.get("eventName") == "INSERT"
            and (later.get("dynamodb") or {}).get("Keys") == (record.get("dynamodb") or {}).get("Keys")
        ):
            continue
        kept.append(record)
    return kept


class StreamPipe(Worker):
    """Reads one table's stream and puts the matching records on the bus as events."""

    def __init__(
        self,
        pipe: PipeDefinition,
        table_name: str,
        *,
        dynamodb: Any,
        streams: Any,
        events: Any,
        ready: Callable[[], bool] = lambda: True,
        forget_iterator: Callable[[str], None] = lambda iterator: None,
    ) -> None:
        super().__init__(f"pipe-{pipe.logical_id}")
        self.pipe = pipe
        self.table_name = table_name
        self._dynamodb = dynamodb
        self._streams = streams
        self._events = events
        self._ready = ready
        self._forget_iterator = forget_iterator
        self._iterators: dict[str, str] = {}
        self._closed: set[str] = set()
        self._held: dict[str, tuple[Mapping[str, Any], float]] = {}
        self.published = 0
        self.filtered_out = 0
        self.undelivered = 0

    def run(self) -> None:
        while not self._ready():
            if self.wait(READY_CHECK_SECONDS):
                return
        try:
            stream_arn = self._dynamodb.describe_table(TableName=self.table_name)["Table"].get("LatestStreamArn")
        except Exception:
            if not self.stopping:
                logger.exception("%s: cannot describe %s", self.pipe.logical_id, self.table_name)
            return
        if not stream_arn:
            logger.warning("%s: %s has no stream; the pipe is not emulated", self.pipe.logical_id, self.table_name)
            return
        self._refresh_shards(stream_arn, "LATEST")
        logger.info(
            "pipe %s: %s stream → %s as %s", self.pipe.logical_id, self.table_name, self.pipe.bus, self.pipe.detail_type
        )
        shards_checked = time.monotonic()
        while not self.stopping:
            try:
                received = self.poll_once(stream_arn)
                if time.monotonic() - shards_checked > SHARD_REFRESH_SECONDS:
                    self._refresh_shards(stream_arn, "TRIM_HORIZON")  # shards opened since start: read them whole
                    shards_checked = time.monotonic()
            except Exception:
                if self.stopping:
                    return
                logger.exception("pipe %s failed; trying again", self.pipe.logical_id)
                received = 0
            if not received:
                self.wait(POLL_SECONDS)

    def _refresh_shards(self, stream_arn: str, position: str) -> None:
        shards = self._streams.describe_stream(StreamArn=stream_arn)["StreamDescription"].get("Shards") or []
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._iterators or shard_id in self._closed:
                continue
            self._iterators[shard_id] = self._streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType=position
            )["ShardIterator"]

    def poll_once(self, stream_arn: str) -> int:
        """Read every open shard once; the number of stream records read."""
        received = 0
        for shard_id, iterator in list(self._iterators.items()):
            response = self._streams.get_records(ShardIterator=iterator, Limit=self.pipe.batch_size * 10)
            records = response.get("Records") or []
            received += len(records)
            next_iterator = response.get("NextShardIterator")
            self._forget_iterator(iterator)
            if next_iterator:
                self._iterators[shard_id] = next_iterator
            else:  # the shard is closed and read to its end
                del self._iterators[shard_id]
                self._closed.add(shard_id)
            self.deliver([{**record, "eventSourceARN": stream_arn} for record in self._complete(shard_id, records)])
        return received

    def _complete(self, shard_id: str, records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The shard's records without moto's doubles, holding back a trailing keys-only INSERT a moment."""
        held = self._held.pop(shard_id, None)
        kept = _without_moto_doubles([held[0], *records] if held else records)
        if kept and _keys_only_insert(kept[-1]):
            since = held[1] if held is not None and kept[-1] is held[0] else time.monotonic()
            if time.monotonic() - since < HOLD_SECONDS:
                self._held[shard_id] = (kept.pop(), since)
        return kept

    def deliver(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Filter, transform and put ``records`` on the bus."""
        kept = [r for r in records if not self.pipe.filters or any(matches(f, r) for f in self.pipe.filters)]
        self.filtered_out += len(records) - len(kept)
        entries = []
        for record in kept:
            detail = (
                render_input_template(self.pipe.input_template, record, self.pipe)
                if self.pipe.input_template
                else json.dumps(record, default=str)
            )
            entries.append(
                {"EventBusName": self.pipe.bus, "Source": self.pipe.source, "DetailType": self.pipe.detail_type,
                 "Detail": detail}
            )  # fmt: skip
        for start in range(0, len(entries), MAX_PUT_ENTRIES):
            self._put(entries[start : start + MAX_PUT_ENTRIES])

    def _put(self, entries: list[dict[str, Any]]) -> None:
        pending = entries
        for attempt in range(PUT_ATTEMPTS):
            if attempt and self.wait(0.2 * attempt):
                break
            response = self._events.put_events(Entries=pending)
            results = response.get("Entries") or []
            failed = [entry for entry, result in zip(pending, results, strict=False) if result.get("ErrorCode")]
            self.published += len(pending) - len(failed)
            pending = failed
            if not pending:
                return
        self.undelivered += len(pending)
        logger.error("pipe %s: %d change events not put on %s", self.pipe.logical_id, len(pending), self.pipe.bus)
