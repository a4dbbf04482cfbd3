"""DynamoDB access: key-condition Queries only (never Scan), conditional writes, one client per container.

botocore (not boto3) is imported when the first query needs it, so a cache hit never pays for it.
Throttling that outlasts botocore's bounded retries becomes :class:`core.errors.ServiceUnavailable`
(a 503 with ``Retry-After``), never a hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from core.errors import ServiceUnavailable
from core.observability import subsegment

Item = dict[str, dict[str, Any]]  # low-level AttributeValue form

MAX_PAGES = 20  # a partition prefix larger than 20 MB of items is a data-model error, not a query to finish
BATCH_SIZE = 25  # BatchWriteItem limit
BATCH_ATTEMPTS = 5
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


@lru_cache(maxsize=1)
def dynamodb_client() -> Any:
    """The container's DynamoDB client (endpoint from ``AWS_ENDPOINT_URL`` when set, e.g. locally)."""
    import botocore.session  # noqa: PLC0415 - lazy: a cache hit never needs it
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        connect_timeout=1,
        read_timeout=2,
        # total_max_attempts counts the first call; botocore's max_attempts would mean 3 retries (4 calls)
        # and up to 1 + 2 + 4 s of backoff. Three calls back off at most 1 + 2 s, so a throttled search
        # is a prompt 503, and even 3 read timeouts + backoff stay under the search functions' 10 s timeout.
        retries={"mode": "standard", "total_max_attempts": 3},
        tcp_keepalive=True,
    )
    return botocore.session.get_session().create_client("dynamodb", config=config)


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
        """One call of a read ``operation`` of the client; throttling becomes ServiceUnavailable."""
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            response: dict[str, Any] = getattr(self.client, operation)(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in THROTTLING_CODES:
                raise ServiceUnavailable("the search store is busy, retry shortly", retry_after=1) from error
            raise
        return response


class Writes:
    """Conditional and batched writes of one table (ingest side)."""

    def __init__(self, table: DynamoTable, sleep: Callable[[float], None] = time.sleep) -> None:
        self._table = table
        self._sleep = sleep

    def upsert_if_newer(self, key: Item, attributes: Item, sequence: int, defaults: Item | None = None) -> bool:
        """Write ``attributes`` (and ``defaults`` where the item has none) if ``sequence`` is newer.

        One conditional UpdateItem: the stored ``sequence`` must be absent or lower, so duplicate
        and out-of-order deliveries change nothing. Returns False when the stored item is as new.
        """
        from botocore.exceptions import ClientError  # noqa: PLC0415

        names: dict[str, str] = {"#seq": "sequence"}
        values: dict[str, Any] = {":seq": {"N": str(sequence)}}
        assignments = ["#seq = :seq"]
        for index, (name, value) in enumerate(attributes.items()):
            names[f"#a{index}"], values[f":a{index}"] = name, value
            assignments.append(f"#a{index} = :a{index}")
        for index, (name, value) in enumerate((defaults or {}).items()):
            names[f"#d{index}"], values[f":d{index}"] = name, value
            assignments.append(f"#d{index} = if_not_exists(#d{index}, :d{index})")
        try:
            with subsegment("dynamodb"):
                self._table.client.update_item(
                    TableName=self._table.table_name,
                    Key=key,
                    UpdateExpression="SET " + ", ".join(assignments),
                    ConditionExpression="attribute_not_exists(#seq) OR #seq < :seq",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

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
