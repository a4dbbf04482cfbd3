"""Composition root of the flights search function: adapters wired to ports, once per container."""

from __future__ import annotations

from functools import lru_cache

from core.observability import MetricsSink
from core.page_token import PageTokens
from core.redis_client import search_cache
from core.settings import settings_from_env
from core.store import DynamoTable
from domains.flights.offers import FlightOffer, offer_from_item
from domains.flights.search import FlightSearch

DOMAIN = "flights"


class DynamoOfferSource:
    """Offers of one route and day: one Query on the route's partition, sort keys of that day."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def offers(self, origin: str, destination: str, date: str) -> list[FlightOffer]:
        return [offer_from_item(item) for item in self._table.query_prefix(f"{origin}-{destination}", f"{date}#")]


@lru_cache(maxsize=1)
def flight_search(metrics: MetricsSink) -> FlightSearch:
    settings = settings_from_env("FLIGHTS_TABLE")
    cache = search_cache(DOMAIN, settings.cache, metrics)
    source = DynamoOfferSource(DynamoTable(settings.table_name))
    return FlightSearch(source, cache, PageTokens(settings.page_token_secret))
