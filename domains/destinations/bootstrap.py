"""Composition root of the destinations function: adapters wired to ports, once per container."""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

from core.observability import MetricsSink
from core.redis_client import search_cache
from core.settings import settings_from_env
from core.store import DynamoTable, Item
from domains.destinations.airports import (
    CODE_SORT_KEY,
    Airport,
    airport_from_item,
    code_partition,
    prefix_partition,
)
from domains.destinations.search import DestinationSearch

DOMAIN = "destinations"


class KeyedTable(Protocol):
    """The key-only reads the destinations need (core.store.DynamoTable); there is no Scan to call."""

    def query_prefix(self, partition: str, sort_prefix: str) -> list[Item]: ...

    def get_item(self, partition: str, sort: str) -> Item | None: ...


class DynamoDestinations:
    """Term items of one prefix (one Query) and code items (one GetItem)."""

    def __init__(self, table: KeyedTable) -> None:
        self._table = table

    def candidates(self, prefix: str) -> list[Airport]:
        return [airport_from_item(item) for item in self._table.query_prefix(prefix_partition(prefix), prefix)]

    def airport(self, code: str) -> Airport | None:
        item = self._table.get_item(code_partition(code), CODE_SORT_KEY)
        return None if item is None else airport_from_item(item)


@lru_cache(maxsize=1)
def destination_search(metrics: MetricsSink) -> DestinationSearch:
    # Results are not paged, so this function is not handed the page-token secret.
    settings = settings_from_env("DESTINATIONS_TABLE", page_tokens=False)
    cache = search_cache(DOMAIN, settings.cache, metrics)
    return DestinationSearch(DynamoDestinations(DynamoTable(settings.table_name)), cache)
