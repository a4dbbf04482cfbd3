"""Schedules, emulated: invoke a template function with its target input at the schedule's rate.

Covers ``AWS::Scheduler::Schedule`` and ``AWS::Events::Rule`` with a ``ScheduleExpression``, both
with Lambda targets. ``rate(N unit)`` runs every N units, the first run one period after start (as
a new schedule does); ``cron(...)`` and ``at(...)`` are not evaluated locally and run only when
``every`` (``python -m local --schedule-every SECONDS``) overrides the period of every schedule.

Invocations are asynchronous in AWS; here a schedule's thread makes them one after another, so a
run longer than the period delays the next rather than overlapping it. A failed run is logged
(Lambda's async retries and failure destination are not emulated).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.background import Worker
from local.gateway import LambdaFunction
from local.intrinsics import Intrinsics
from local.resources import resources_of_type

logger = logging.getLogger(__name__)

_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}


def rate_seconds(expression: str) -> float | None:
    """Seconds between runs of a ``rate(...)`` expression; None for ``cron(...)``/``at(...)``."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        return None
    return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")])


@dataclass(frozen=True)
class Schedule:
    """One scheduled invocation of a template function."""

    logical_id: str
    expression: str
    function: str  # logical id
    input: Any = field(default=None)  # the event; None: EventBridge's "Scheduled Event"
    arn: str = ""


def _enabled(properties: dict[str, Any]) -> bool:
    return str(properties.get("State", "ENABLED")).upper() == "ENABLED"


def _input(logical_id: str, text: Any) -> Any:
    if text is None:
        return None
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"{logical_id}: target Input is not JSON: {text!r}") from None


def schedules_from_template(intrinsics: Intrinsics) -> list[Schedule]:
    """Every enabled schedule of the template that targets one of its functions."""
    schedules = []
    functions = set(resources_of_type(intrinsics, "AWS::Lambda::Function"))
    for logical_id in resources_of_type(intrinsics, "AWS::Scheduler::Schedule"):
        raw = intrinsics.resources[logical_id].get("Properties") or {}
        properties = intrinsics.resolve(raw)
        function = intrinsics.logical_id_of((raw.get("Target") or {}).get("Arn"))
        if not _enabled(properties):
            continue
        if function not in functions:
            logger.warning("%s: its target is not a function of the template; not emulated locally", logical_id)
            continue
        target = properties.get("Target") or {}
        schedules.append(
            Schedule(
                logical_id,
                str(properties["ScheduleExpression"]),
                function,
                # Scheduler sends "{}" to a Lambda target without an Input.
                _input(logical_id, target.get("Input")) if "Input" in target else {},
                intrinsics.arn(logical_id),
            )
        )
    for logical_id in resources_of_type(intrinsics, "AWS::Events::Rule"):
        raw = intrinsics.resources[logical_id].get("Properties") or {}
        if "ScheduleExpression" not in raw:
            continue
        properties = intrinsics.resolve(raw)
        if not _enabled(properties):
            continue
        for raw_target, target in zip(raw.get("Targets") or [], properties.get("Targets") or [], strict=False):
            function = intrinsics.logical_id_of(raw_target.get("Arn"))
            if function not in functions:
                logger.warning("%s target %s is not a function of the template", logical_id, target.get("Id"))
                continue
            if "InputPath" in target or "InputTransformer" in target:
                logger.warning(
                    "%s target %s: InputPath/InputTransformer are not emulated", logical_id, target.get("Id")
                )
            schedules.append(
                Schedule(
                    f"{logical_id}/{target.get('Id')}",
                    str(properties["ScheduleExpression"]),
                    function,
                    _input(logical_id, target.get("Input")),
                    intrinsics.arn(logical_id),
                )
            )
    return schedules


def scheduled_event(schedule: Schedule, region: str, account_id: str) -> dict[str, Any]:
    """EventBridge's event for a scheduled rule target without an ``Input``."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [schedule.arn],
        "detail": {},
    }


class ScheduleRunner(Worker):
    """Runs one schedule until stopped; ``every`` (seconds) overrides the template's rate."""

    def __init__(
        self,
        schedule: Schedule,
        function: LambdaFunction,
        *,
        every: float | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        super().__init__(f"schedule-{schedule.logical_id}")
        self.schedule = schedule
        self.function = function
        self.period = every if every is not None else rate_seconds(schedule.expression)
        self.region = region
        self.account_id = account_id
        self.runs = 0
        self.failures = 0
        self.last_result: Any = None

    def run(self) -> None:
        if self.period is None or self.period <= 0:
            logger.warning(
                "%s: %s is not run locally (only rate(...) is); use --schedule-every SECONDS",
                self.schedule.logical_id, self.schedule.expression,
            )  # fmt: skip
            return
        logger.info("schedule %s invokes %s every %gs", self.schedule.logical_id, self.schedule.function, self.period)
        due = time.monotonic() + self.period
        while not self.wait(due - time.monotonic()):
            self.run_once()
            due += self.period
            if due <= time.monotonic():  # a run longer than the period: skip the missed runs, never catch up
                due = time.monotonic() + self.period

    def run_once(self) -> Any:
        event = self.schedule.input
        if event is None:
            event = scheduled_event(self.schedule, self.region, self.account_id)
        try:
            self.last_result = self.function.invoke(event)
        except Exception:
            self.failures += 1
            logger.exception("scheduled %s (%s) failed", self.schedule.function, self.schedule.logical_id)
            return None
        finally:
            self.runs += 1  # counted once the invocation is over, failed or not
        logger.info("scheduled %s: %s", self.schedule.function, json.dumps(self.last_result)[:300])
        return self.last_result
