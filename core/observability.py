"""Logging, metrics and tracing for every function: Powertools, configured in one place.

Logger and Metrics are cheap to create and are needed by every request. The Tracer (and the X-Ray
SDK behind it) is imported only when tracing is on, at the first subsegment, so it never taxes
local runs or the import of a handler.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE_DEFAULT = "TravelSearch"


class MetricsSink(Protocol):
    """Where core components count events (``CacheHit``, ``CacheError`` …)."""

    def count(self, name: str) -> None: ...

    def milliseconds(self, name: str, value: float) -> None: ...


class PowertoolsMetrics:
    """MetricsSink over Powertools EMF metrics, flushed by ``Metrics.log_metrics`` per invocation."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def count(self, name: str) -> None:
        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    def milliseconds(self, name: str, value: float) -> None:
        self._metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)


def function_logger(service: str) -> Logger:
    """A JSON logger for one function; level from ``POWERTOOLS_LOG_LEVEL``."""
    return Logger(service=service)


def function_metrics(service: str, domain: str) -> Metrics:
    """EMF metrics in ``POWERTOOLS_METRICS_NAMESPACE`` with the dimension ``Domain``."""
    metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE_DEFAULT), service=service)
    metrics.set_default_dimensions(Domain=domain)
    return metrics


def _tracing_enabled() -> bool:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("true", "1"):
        return False
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


@lru_cache(maxsize=1)
def _tracer() -> Any:
    if not _tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 - lazy: X-Ray SDK costs cold start

    return Tracer()


def subsegment(name: str) -> AbstractContextManager[Any]:
    """An X-Ray subsegment around a dependency call (Redis, DynamoDB); a no-op when tracing is off."""
    tracer = _tracer()
    if tracer is None:
        return nullcontext()
    return _traced(tracer, name)


@contextmanager
def _traced(tracer: Any, name: str) -> Iterator[Any]:
    with tracer.provider.in_subsegment(name) as segment:
        yield segment
