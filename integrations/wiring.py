"""Composition of an ingest function: the pipeline of one domain wired to DynamoDB and the cache."""

from __future__ import annotations

import logging
from typing import Any

from core.observability import MetricsSink
from core.redis_client import search_cache
from core.settings import ingest_settings_from_env
from core.store import DynamoTable, Writes
from integrations.contracts import event_contracts
from integrations.ingest import DomainIngest, IngestPipeline


def ingest_pipeline(
    spec: DomainIngest, table_variable: str, metrics: MetricsSink, logger: logging.Logger | Any
) -> IngestPipeline:
    settings = ingest_settings_from_env(table_variable)
    cache = search_cache(spec.domain, settings.cache, metrics)
    return IngestPipeline(
        spec,
        event_contracts(),
        Writes(DynamoTable(settings.table_name)),
        Writes(DynamoTable(settings.quarantine_table)),
        cache.invalidate,
        metrics,
        logger,
    )
