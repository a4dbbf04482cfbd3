"""The EventBridge adapter: PutEvents in request-sized chunks, failed entries retried, never dropped."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from core.observability import subsegment

MAX_ENTRIES_PER_CALL = 10  # PutEvents limit
MAX_BYTES_PER_CALL = 240_000  # PutEvents allows 256 KB; keep room for the envelope
ATTEMPTS = 3
BUDGET_SECONDS = 12.0  # a partner push must answer well inside API Gateway's 29 s integration timeout


@lru_cache(maxsize=1)
def events_client() -> Any:
    import botocore.session  # noqa: PLC0415 - created on first use, once per container
    from botocore.config import Config  # noqa: PLC0415

    # total_max_attempts counts the first call (botocore's max_attempts counts retries).
    config = Config(connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 2})
    return botocore.session.get_session().create_client("events", config=config)


def entry(bus_name: str, source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "EventBusName": bus_name,
        "Source": source,
        "DetailType": detail_type,
        "Detail": orjson.dumps(detail).decode(),
    }


def _size(item: dict[str, Any]) -> int:
    return len(item["Detail"]) + len(item["DetailType"]) + len(item["Source"]) + 100


class EventBus:
    def __init__(
        self,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        budget_seconds: float = BUDGET_SECONDS,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self._budget_seconds = budget_seconds

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = events_client()
        return self._client

    def publish(self, entries: list[dict[str, Any]]) -> list[int]:
        """Put every entry; returns the indexes of entries still failing after ``ATTEMPTS`` tries.

        Entries not yet tried when the time budget is spent are returned as failed too: reported to
        the caller, never silently dropped.
        """
        failed: list[int] = []
        deadline = self._clock() + self._budget_seconds
        for chunk in self._chunks(list(range(len(entries))), entries):
            pending = chunk
            for attempt in range(ATTEMPTS):
                if self._clock() >= deadline:
                    break
                if attempt:
                    self._sleep(0.1 * 2**attempt)
                try:
                    with subsegment("eventbridge"):
                        response = self.client.put_events(Entries=[entries[index] for index in pending])
                except (BotoCoreError, ClientError):
                    continue  # the whole call failed: every pending entry is tried again, or reported

                if not response.get("FailedEntryCount"):
                    pending = []
                    break
                # Results are in request order; an entry with an ErrorCode was not put.
                pending = [
                    index for index, result in zip(pending, response["Entries"], strict=True) if result.get("ErrorCode")
                ]
            failed.extend(pending)
        return failed

    @staticmethod
    def _chunks(indexes: list[int], entries: list[dict[str, Any]]) -> list[list[int]]:
        chunks: list[list[int]] = []
        current: list[int] = []
        size = 0
        for index in indexes:
            item_size = _size(entries[index])
            if current and (len(current) == MAX_ENTRIES_PER_CALL or size + item_size > MAX_BYTES_PER_CALL):
                chunks.append(current)
                current, size = [], 0
            current.append(index)
            size += item_size
        if current:
            chunks.append(current)
        return chunks
