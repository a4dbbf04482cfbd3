"""Lambda's SQS event source mappings, emulated: poll the queue, invoke the function, delete what succeeded.

For each ``AWS::Lambda::EventSourceMapping`` whose source is one of the template's queues, an
:class:`SqsPoller` long-polls the queue (1 s waits, so stopping is quick), hands the function the
exact event Lambda builds (``Records`` with ``messageId``, ``receiptHandle``, ``body``,
``attributes``, ``messageAttributes``, ``md5OfBody``, ``eventSource``, ``eventSourceARN``,
``awsRegion``) and then, as Lambda does:

* deletes every message of the batch when the function succeeds, except those it lists in
  ``batchItemFailures`` (with ``ReportBatchItemFailures``);
* deletes nothing when the function raises or returns a malformed batch response: the messages come
  back after the queue's visibility timeout, and after ``maxReceiveCount`` receives the queue's
  redrive policy moves them to the dead-letter queue (moto does that on receive).

``MaximumBatchingWindowInSeconds`` is not emulated: a batch is what one receive returns (up to
``BatchSize``), which only makes local ingest faster. One poller per mapping (concurrency 1).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from local.background import Worker
from local.event_patterns import matches, parse_pattern
from local.gateway import LambdaFunction
from local.intrinsics import Intrinsics
from local.resources import resources_of_type

logger = logging.getLogger(__name__)

WAIT_SECONDS = 1  # long-poll wait: also the longest stop() waits for a poller
ERROR_BACKOFF_SECONDS = 1.0
MAX_RECEIVE = 10  # SQS ReceiveMessage limit
_SYSTEM_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
)


@dataclass(frozen=True)
class SqsEventSource:
    """One ``AWS::Lambda::EventSourceMapping`` from an SQS queue, resolved for the local stack."""

    logical_id: str
    queue: str  # logical id
    queue_url: str
    queue_arn: str
    function: str  # logical id
    batch_size: int = 10
    report_batch_item_failures: bool = False
    filters: tuple[dict[str, Any], ...] = ()


def _function_logical_id(intrinsics: Intrinsics, raw: Any) -> str | None:
    target = intrinsics.logical_id_of(raw)
    if target is not None:
        return target
    # A literal name or ARN: match it against the functions' names.
    text = str(intrinsics.resolve(raw))
    for logical_id in resources_of_type(intrinsics, "AWS::Lambda::Function"):
        if text in (intrinsics.name(logical_id), intrinsics.arn(logical_id)):
            return logical_id
    return None


def sqs_event_sources(intrinsics: Intrinsics, queue_urls: Mapping[str, str]) -> list[SqsEventSource]:
    """Every enabled SQS event source mapping of the template whose queue the local stack created."""
    sources = []
    for logical_id in resources_of_type(intrinsics, "AWS::Lambda::EventSourceMapping"):
        raw = intrinsics.resources[logical_id].get("Properties") or {}
        queue = intrinsics.logical_id_of(raw.get("EventSourceArn"))
        if queue is None or queue not in queue_urls:
            logger.warning("%s: its source is not one of the template's queues; not emulated locally", logical_id)
            continue
        function = _function_logical_id(intrinsics, raw.get("FunctionName"))
        if function is None:
            logger.warning("%s: FunctionName names no function of the template; not emulated locally", logical_id)
            continue
        properties = intrinsics.resolve(raw)
        if str(properties.get("Enabled", True)).lower() == "false":
            logger.info("%s is disabled in the template", logical_id)
            continue
        filters = tuple(
            parse_pattern(item["Pattern"]) for item in (properties.get("FilterCriteria") or {}).get("Filters") or []
        )
        sources.append(
            SqsEventSource(
                logical_id=logical_id,
                queue=queue,
                queue_url=queue_urls[queue],
                queue_arn=intrinsics.arn(queue),
                function=function,
                batch_size=int(properties.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or []),
                filters=filters,
            )
        )
    return sources


def lambda_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """The record Lambda builds from one received SQS message."""
    attributes = message.get("Attributes") or {}
    message_attributes = {}
    for name, attribute in (message.get("MessageAttributes") or {}).items():
        converted: dict[str, Any] = {
            "stringValue": attribute.get("StringValue"),
            "stringListValues": list(attribute.get("StringListValues") or []),
            "binaryListValues": list(attribute.get("BinaryListValues") or []),
            "dataType": attribute.get("DataType", "String"),
        }
        binary = attribute.get("BinaryValue")
        if binary is not None:  # Lambda gives binary values base64-encoded, and only when there is one
            converted["binaryValue"] = base64.b64encode(binary).decode("ascii") if isinstance(binary, bytes) else binary
            del converted["stringValue"]
        message_attributes[name] = converted
    body = message.get("Body", "")
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {name: str(attributes[name]) for name in _SYSTEM_ATTRIBUTES if name in attributes},
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _filter_view(record: Mapping[str, Any]) -> dict[str, Any]:
    # Lambda filters on the record with the body parsed when it is JSON, left a string otherwise.
    view = dict(record)
    with contextlib.suppress(ValueError):
        view["body"] = json.loads(record["body"])
    return view


def failed_message_ids(result: Any, batch: Sequence[Mapping[str, Any]], report_failures: bool) -> set[str]:
    """Which messages of ``batch`` the function's result says failed (all of them if it is malformed)."""
    every = {str(record["messageId"]) for record in batch}
    if not report_failures or result is None:
        return set()
    if not isinstance(result, dict):
        return every
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return every
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in every:
            # Lambda treats an unknown or empty identifier as a failure of the whole batch.
            return every
        failed.add(identifier)
    return failed


class SqsPoller(Worker):
    """Lambda's poller for one SQS event source mapping."""

    def __init__(self, source: SqsEventSource, function: LambdaFunction, sqs: Any, region: str) -> None:
        super().__init__(f"sqs-poller-{source.logical_id}")
        self.source = source
        self.function = function
        self.region = region
        self._sqs = sqs
        self.batches = 0
        self.deleted = 0
        self.left_for_redelivery = 0
        self.filtered_out = 0
        self.errors = 0

    def run(self) -> None:
        logger.info(
            "polling %s for %s (batch %d%s)", self.source.queue, self.source.function, self.source.batch_size,
            ", partial batch responses" if self.source.report_batch_item_failures else "",
        )  # fmt: skip
        while not self.stopping:
            try:
                self.poll_once()
            except Exception:
                if self.stopping:  # the emulator may already be going away
                    return
                self.errors += 1
                logger.exception("polling %s failed; trying again in %.0fs", self.source.queue, ERROR_BACKOFF_SECONDS)
                self.wait(ERROR_BACKOFF_SECONDS)

    def poll_once(self, wait_seconds: int = WAIT_SECONDS) -> int:
        """One receive and, if it returned messages, one invocation; the number of messages received."""
        response = self._sqs.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=max(1, min(self.source.batch_size, MAX_RECEIVE)),
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return 0
        records = [lambda_record(message, self.source.queue_arn, self.region) for message in messages]
        if self.source.filters:
            kept = [r for r in records if any(matches(f, _filter_view(r)) for f in self.source.filters)]
            # Lambda deletes messages its filter drops: they are never delivered to the function.
            self._delete([r for r in records if r not in kept])
            self.filtered_out += len(records) - len(kept)
            records = kept
            if not records:
                return len(messages)
        self.batches += 1
        try:
            result = self.function.invoke({"Records": records})
        except Exception:
            self.left_for_redelivery += len(records)
            logger.exception(
                "%s raised on a batch of %d from %s; every message will be delivered again",
                self.source.function, len(records), self.source.queue,
            )  # fmt: skip
            return len(messages)
        failed = failed_message_ids(result, records, self.source.report_batch_item_failures)
        if failed:
            self.left_for_redelivery += len(failed)
            logger.warning(
                "%s reported %d of %d messages from %s as failed; they will be delivered again",
                self.source.function, len(failed), len(records), self.source.queue,
            )  # fmt: skip
        self._delete([record for record in records if record["messageId"] not in failed])
        return len(messages)

    def _delete(self, records: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(records), MAX_RECEIVE):
            chunk = records[start : start + MAX_RECEIVE]
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            response = self._sqs.delete_message_batch(QueueUrl=self.source.queue_url, Entries=entries)
            self.deleted += len(response.get("Successful") or [])
            for failure in response.get("Failed") or []:
                logger.warning("could not delete a message from %s: %s", self.source.queue, failure)
