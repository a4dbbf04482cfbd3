"""Composition root of the flights search function: adapters wired to ports, once per container."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from core.observability import MetricsSink
from core.page_token import PageTokens
from core.redis_client import search_cache
from core.settings import settings_from_env
from core.store import DynamoTable
from domains.flights.offers import FlightOffer, offers_from_item
from domains.flights.search import FlightSearch

DOMAIN = "flights"

# The botocore client the table uses; None is the container's own (core.store.dynamodb_client).
_dynamodb_client: Any = None


class DynamoOfferSource:
    """Offers of one route and day: one Query on the route's partition, sort keys of that day (an item
    per provider, holding its offers)."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def offers(self, origin: str, destination: str, date: str) -> list[FlightOffer]:
        return [
            offer
            for item in self._table.query_prefix(f"{origin}-{destination}", f"{date}#")
            for offer in offers_from_item(item)
        ]


@lru_cache(maxsize=1)
def flight_search(metrics: MetricsSink) -> FlightSearch:
    settings = settings_from_env("FLIGHTS_TABLE")
    cache = search_cache(DOMAIN, settings.cache, metrics)
    source = DynamoOfferSource(DynamoTable(settings.table_name, _dynamodb_client))
    return FlightSearch(source, cache, PageTokens(settings.page_token_secret))


def use_dynamodb_client(client: Any) -> None:
    """Wire the function to ``client`` (a botocore DynamoDB client) from its next request on.

    The seam for benchmarks and fault tests, which hand in a client behind botocore's ``Stubber``
    rather than patching our code; ``None`` goes back to the container's own client. Production
    never calls it.
    """
    global _dynamodb_client
    _dynamodb_client = client
    flight_search.cache_clear()
