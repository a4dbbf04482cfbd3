"""DynamoDB access for search: key-condition Queries only (never Scan), on one client per container.

botocore (not boto3) is imported when the first query needs it, so a cache hit never pays for it.
Throttling that outlasts botocore's bounded retries becomes :class:`core.errors.ServiceUnavailable`
(a 503 with ``Retry-After``), never a hang.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from core.errors import ServiceUnavailable
from core.observability import subsegment

Item = dict[str, dict[str, Any]]  # low-level AttributeValue form

MAX_PAGES = 20  # a partition prefix larger than 20 MB of items is a data-model error, not a query to finish
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


@lru_cache(maxsize=1)
def dynamodb_client() -> Any:
    """The container's DynamoDB client (endpoint from ``AWS_ENDPOINT_URL`` when set, e.g. locally)."""
    import botocore.session  # noqa: PLC0415 - lazy: a cache hit never needs it
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        connect_timeout=1,
        read_timeout=2,
        retries={"mode": "standard", "max_attempts": 3},
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
