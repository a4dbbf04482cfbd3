"""Logging, metrics and tracing for every function: Powertools, configured in one place.

Logger and Metrics are cheap to create and are needed by every request. The Tracer (and the X-Ray
SDK behind it) is imported only when tracing is on, at the first subsegment, so it never taxes
local runs or the import of a handler.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE_DEFAULT = "TravelSearch"
Handler = Callable[[Any, Any], Any]


class MetricsSink(Protocol):
    """Where core components count events (``CacheHit``, ``CacheError`` …)."""

    def count(self, name: str, value: int = 1) -> None: ...

    def milliseconds(self, name: str, value: float) -> None: ...


class PowertoolsMetrics:
    """MetricsSink over Powertools EMF metrics, flushed by ``Metrics.log_metrics`` per invocation."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def count(self, name: str, value: int = 1) -> None:
        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def milliseconds(self, name: str, value: float) -> None:
        self._metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)


class FunctionTelemetry:
    """Logger and metrics of one function, and the decorator that wraps its Lambda handler."""

    def __init__(self, service: str, domain: str, correlation_id_path: str | None = None) -> None:
        self.domain = domain
        self.logger = Logger(service=service)  # JSON; level from POWERTOOLS_LOG_LEVEL
        self.metrics = Metrics(
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE_DEFAULT), service=service
        )
        self.sink = PowertoolsMetrics(self.metrics)
        self._correlation_id_path = correlation_id_path

    def entry(self, handler: Handler) -> Handler:
        """Wrap a handler: Lambda context and correlation id in every log line, EMF metrics flushed per call."""

        @functools.wraps(handler)
        def with_domain(event: Any, context: Any) -> Any:
            # Per call, not as a default dimension: Powertools shares dimensions between Metrics
            # instances, and the local stack runs every function in one process.
            self.metrics.add_dimension(name="Domain", value=self.domain)
            return handler(event, context)

        traced = self.logger.inject_lambda_context(correlation_id_path=self._correlation_id_path)(with_domain)
        return self.metrics.log_metrics(traced)


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
