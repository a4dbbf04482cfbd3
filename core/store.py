"""DynamoDB access: key-condition Queries only (never Scan), conditional writes, one client per container.

The client is :mod:`core.dynamodb` (the JSON protocol, signed by :mod:`core.sigv4`), created when the
first query needs it, so a cache hit never pays for it; any client with botocore's call shapes works
(unit tests hand in a botocore client behind ``Stubber``). Throttling or an unreachable DynamoDB that
outlasts the client's bounded retries becomes :class:`core.errors.ServiceUnavailable` (a 503 with
``Retry-After``), never a hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import orjson

from core.dynamodb import DynamoUnavailable
from core.errors import ServiceUnavailable
from core.observability import subsegment

Item = dict[str, dict[str, Any]]  # low-level AttributeValue form

MAX_PAGES = 20  # a partition prefix larger than 20 MB of items is a data-model error, not a query to finish
BATCH_SIZE = 25  # BatchWriteItem limit
BATCH_ATTEMPTS = 5
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


@lru_cache(maxsize=1)
def dynamodb_client() -> Any:
    """The container's DynamoDB client (:mod:`core.dynamodb`; endpoint from ``AWS_ENDPOINT_URL`` when set)."""
    from core import dynamodb  # noqa: PLC0415 - lazy: a cache hit never needs it (nor urllib3)

    return dynamodb.dynamodb_client()


class StoreUnavailable(RuntimeError):
    """DynamoDB kept throttling or could not be reached through the client's retries: not a problem of
    the data being written, so writing it item by item right away would not help."""


class QueryTooLarge(RuntimeError):
    """A key-condition Query spans more than ``MAX_PAGES`` pages (a data-model error, not bad input)."""


class DynamoTable:
    """Key-condition reads of one table."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = dynamodb_client()
        return self._client

    def get_item(self, partition: str, sort: str) -> Item | None:
        """The item with key ``(pk, sk) = (partition, sort)``, or None: one eventually consistent GetItem."""
        request = {"TableName": self.table_name, "Key": {"pk": {"S": partition}, "sk": {"S": sort}}}
        with subsegment("dynamodb"):
            item: Item | None = self._send("get_item", request).get("Item")
        return item

    def query_prefix(self, partition: str, sort_prefix: str) -> list[Item]:
        """Every item with ``pk = partition`` and ``sk`` beginning with ``sort_prefix``."""
        return self._query_all(
            "pk = :pk AND begins_with(sk, :prefix)", {":pk": {"S": partition}, ":prefix": {"S": sort_prefix}}
        )

    def query_range(self, partition: str, low: str, high: str) -> list[Item]:
        """Every item with ``pk = partition`` and ``low <= sk <= high`` (a key-range Query, not a Scan)."""
        return self._query_all(
            "pk = :pk AND sk BETWEEN :low AND :high",
            {":pk": {"S": partition}, ":low": {"S": low}, ":high": {"S": high}},
        )

    def _query_all(self, condition: str, values: dict[str, Any]) -> list[Item]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        items: list[Item] = []
        with subsegment("dynamodb"):
            for _ in range(MAX_PAGES):
                page = self._send("query", request)
                items.extend(page.get("Items", ()))
                last_key = page.get("LastEvaluatedKey")
                if not last_key:
                    return items
                request["ExclusiveStartKey"] = last_key
        # Never answer with a silently truncated result: a key range this large is a data-model error.
        raise QueryTooLarge(f"{self.table_name}: {condition} {values} spans more than {MAX_PAGES} pages")

    def _send(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """One call of a read ``operation`` of the client; throttling or no answer becomes ServiceUnavailable."""
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**request)
        except DynamoUnavailable as error:
            raise ServiceUnavailable("the search store is unreachable, retry shortly", retry_after=1) from error
        except Exception as error:
            if error_code(error) in THROTTLING_CODES:
                raise ServiceUnavailable("the search store is busy, retry shortly", retry_after=1) from error
            raise
        return response


class VersionedWrite(Protocol):
    """What :meth:`Writes.upsert_all` writes: attributes of one item, versioned by ``sequence``.

    Versioned as a whole (``per_attribute`` false): the item's ``sequence`` attribute says which write
    it holds. Versioned per attribute (``per_attribute`` true): each of ``attributes`` is a map holding
    its own ``sequence`` (set to the write's by whoever builds the write), so one item can hold
    several things that change on their own, such as a provider's offers of one day.
    """

    @property
    def key(self) -> Item: ...
    @property
    def attributes(self) -> Item: ...
    @property
    def sequence(self) -> int: ...
    @property
    def defaults(self) -> Item: ...
    @property
    def per_attribute(self) -> bool: ...


def _identity(key: Item) -> bytes:
    # Keys are built by one function per table, so the same item's key always has the same order;
    # were it not, two writes of one item would both be sent, which the condition still makes safe.
    return orjson.dumps(key)


@dataclass(frozen=True, slots=True)
class UpdateShape:
    """What every conditional write with the same shape shares, built once per shape."""

    update: str  # UpdateExpression
    condition: str  # ConditionExpression
    names: dict[str, str]  # ExpressionAttributeNames of the sequence and the defaults
    attribute_names: tuple[str, ...]  # the name placeholders of the attributes, in order
    attribute_values: tuple[str, ...]  # and their value placeholders
    default_values: tuple[str, ...]  # the value placeholders of the defaults


CONDITION = "attribute_not_exists(#seq) OR #seq < :seq"
# DynamoDB caps each expression at 4 KB: a write versioned per attribute sends at most this many
# attributes per UpdateItem (the condition spends ~55 bytes on each).
MAX_VERSIONED_ATTRIBUTES = 40


@lru_cache(maxsize=256)
def _update_shape(count: int, defaults: tuple[str, ...], per_attribute: bool) -> UpdateShape:
    names = {"#seq": "sequence"}
    assignments = [f"#a{index} = :a{index}" for index in range(count)]
    if per_attribute:
        condition = " AND ".join(
            f"(attribute_not_exists(#a{index}) OR #a{index}.#seq < :seq)" for index in range(count)
        )
    else:
        assignments.insert(0, "#seq = :seq")
        condition = CONDITION
    for index, name in enumerate(defaults):
        names[f"#d{index}"] = name
        assignments.append(f"#d{index} = if_not_exists(#d{index}, :d{index})")
    return UpdateShape(
        "SET " + ", ".join(assignments),
        condition,
        names,
        tuple(f"#a{index}" for index in range(count)),
        tuple(f":a{index}" for index in range(count)),
        tuple(f":d{index}" for index in range(len(defaults))),
    )


def error_code(error: BaseException) -> str | None:
    """The DynamoDB error code of a ClientError (botocore's or core.dynamodb's), else None."""
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) if code else None


class Writes:
    """Conditional and batched writes of one table (ingest side)."""

    def __init__(self, table: DynamoTable, sleep: Callable[[float], None] = time.sleep) -> None:
        self._table = table
        self._sleep = sleep

    def upsert_all(self, writes: Sequence[VersionedWrite]) -> list[bool]:
        """Write each of ``writes`` that is newer than what its item holds; which ones landed, in order.

        One conditional UpdateItem per write. Versioned as a whole, it sets the write's ``attributes``
        (and its ``defaults`` where the item has none) only if the stored ``sequence`` is absent or
        lower. Versioned per attribute, it sets them all if each one is absent or older; when some
        are not, each attribute is sent again on its own condition, so every attribute ends up with
        its newest version. Duplicate and out-of-order deliveries change nothing either way. Of
        several writes of the same attributes to one item only the newest is sent: the others could
        not win. The first error other than the condition raises; the writes sent before it have
        landed (each is its own conditional write, so sending them again is harmless). Throttling or
        an unreachable DynamoDB raises :class:`StoreUnavailable`.
        """
        newest: dict[tuple[bytes, tuple[str, ...]], int] = {}
        for index, write in enumerate(writes):
            identity = (_identity(write.key), tuple(write.attributes))
            kept = newest.get(identity)
            if kept is None or writes[kept].sequence < write.sequence:
                newest[identity] = index
        landed = [False] * len(writes)
        with subsegment("dynamodb"):
            for index in sorted(newest.values()):
                write = writes[index]
                if write.per_attribute:
                    landed[index] = self._per_attribute(write)
                else:
                    landed[index] = self._update_item(write, write.attributes)
        return landed

    def _per_attribute(self, write: VersionedWrite) -> bool:
        """A write versioned per attribute (in parts of at most ``MAX_VERSIONED_ATTRIBUTES``); whether any landed."""
        attributes = write.attributes
        names = list(attributes)
        if not names:
            return False  # nothing to version (an empty condition would be refused)
        parts = (
            [attributes]
            if len(names) <= MAX_VERSIONED_ATTRIBUTES
            else [
                {name: attributes[name] for name in names[start : start + MAX_VERSIONED_ATTRIBUTES]}
                for start in range(0, len(names), MAX_VERSIONED_ATTRIBUTES)
            ]
        )
        landed = False
        for part in parts:
            if self._update_item(write, part):
                landed = True
            elif len(part) > 1:
                # Some attribute of the part is as new already: each on its own, so the others still land.
                for name, value in part.items():
                    landed = self._update_item(write, {name: value}) or landed
        return landed

    def _update_item(self, write: VersionedWrite, attributes: Item) -> bool:
        """One conditional UpdateItem of ``attributes`` of ``write``; False when the condition held it back."""
        try:
            self._table.client.update_item(**self._request(write, attributes))
        except Exception as error:
            code = error_code(error)
            if code == "ConditionalCheckFailedException":
                return False
            if code in THROTTLING_CODES or isinstance(error, DynamoUnavailable):
                raise StoreUnavailable(f"{self._table.table_name}: {error}") from error
            raise
        return True

    def _request(self, write: VersionedWrite, attributes: Item) -> dict[str, Any]:
        defaults = write.defaults
        shape = _update_shape(len(attributes), tuple(defaults), write.per_attribute)
        names = shape.names.copy()
        names.update(zip(shape.attribute_names, attributes, strict=True))
        values: dict[str, Any] = dict(zip(shape.attribute_values, attributes.values(), strict=True))
        if defaults:
            values.update(zip(shape.default_values, defaults.values(), strict=True))
        values[":seq"] = {"N": str(write.sequence)}
        return {
            "TableName": self._table.table_name,
            "Key": write.key,
            "UpdateExpression": shape.update,
            "ConditionExpression": shape.condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def put_all(self, items: list[Item], attempts: int = BATCH_ATTEMPTS) -> list[Item]:
        """BatchWriteItem in chunks of 25, retrying ``UnprocessedItems`` with backoff.

        Returns the items still unwritten after ``attempts`` tries (empty when all landed), so the
        caller can report them as failures instead of losing them.
        """
        left: list[Item] = []
        for start in range(0, len(items), BATCH_SIZE):
            pending = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_SIZE]]
            for attempt in range(attempts):
                if attempt:
                    self._sleep(min(1.0, 0.05 * 2**attempt))
                with subsegment("dynamodb"):
                    response = self._table.client.batch_write_item(RequestItems={self._table.table_name: pending})
                pending = response.get("UnprocessedItems", {}).get(self._table.table_name, [])
                if not pending:
                    break
            left.extend(request["PutRequest"]["Item"] for request in pending)
        return left
