"""Composition root of the hotels search function: adapters wired to ports, once per container."""

from __future__ import annotations

from functools import lru_cache

from core.observability import MetricsSink
from core.page_token import PageTokens
from core.redis_client import search_cache
from core.settings import settings_from_env
from core.store import DynamoTable
from domains.hotels.rates import NIGHT_END, NightlyRate, rate_from_item
from domains.hotels.search import HotelSearch

DOMAIN = "hotels"


class DynamoRateSource:
    """Rates of one city for a run of nights: one key-range Query on the city's partition (never a Scan)."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def rates(self, city: str, first_night: str, last_night: str) -> list[NightlyRate]:
        items = self._table.query_range(city, first_night, f"{last_night}{NIGHT_END}")
        return [rate_from_item(item) for item in items]


@lru_cache(maxsize=1)
def hotel_search(metrics: MetricsSink) -> HotelSearch:
    settings = settings_from_env("HOTELS_TABLE")
    cache = search_cache(DOMAIN, settings.cache, metrics)
    source = DynamoRateSource(DynamoTable(settings.table_name))
    return HotelSearch(source, cache, PageTokens(settings.page_token_secret))
