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

    def query_prefix(self, partition: str, sort_prefix: str) -> list[Item]:
        """Every item with ``pk = partition`` and ``sk`` beginning with ``sort_prefix``."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": partition}, ":prefix": {"S": sort_prefix}},
        }
        items: list[Item] = []
        with subsegment("dynamodb"):
            for _ in range(MAX_PAGES):
                page = self._query(request)
                items.extend(page.get("Items", ()))
                last_key = page.get("LastEvaluatedKey")
                if not last_key:
                    break
                request["ExclusiveStartKey"] = last_key
        return items

    def _query(self, request: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            response: dict[str, Any] = self.client.query(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in THROTTLING_CODES:
                raise ServiceUnavailable("the search store is busy, retry shortly", retry_after=1) from error
            raise
        return response
