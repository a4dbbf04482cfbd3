"""The local stack's composition root: Redis, the AWS emulator, resources, seed data, environment, gateway, ingest.

:class:`LocalStack` is what ``make run`` serves over HTTP (:class:`LocalServer`) and what the
integration tests drive in-process, so both exercise the same objects. Besides the search path it
runs the ingest path of the template: the partner bus, its rules and queues in moto, a poller per
SQS event source mapping, a thread per schedule, the table-stream pipes, and a fake skylink
provider for the scheduled refresh to pull from.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

from local.aws import DEFAULT_REGION, LOCAL_ACCOUNT_ID, MotoEndpoint, forget_shard_iterator
from local.background import Worker, stop_all
from local.environ import EnvironmentOverride
from local.event_sources import SqsPoller, sqs_event_sources
from local.fake_provider import NAME as FAKE_PROVIDER_NAME
from local.fake_provider import FakeSkylink
from local.gateway import Gateway, LambdaFunction
from local.http_server import LocalServer
from local.intrinsics import DEFAULT_STACK_NAME, Intrinsics
from local.pipes import StreamPipe, pipes_from_template
from local.push_example import partner_push_example
from local.redis_server import RedisEndpoint, RedisServer, redis_endpoint_from_url
from local.resources import (
    create_archives,
    create_event_buses,
    create_queues,
    create_rules,
    create_secrets,
    create_tables,
    environment_references,
    function_environments,
    merge_environments,
    resources_of_type,
)
from local.schedules import ScheduleRunner, schedules_from_template
from local.seed import SeedReport, seed_tables
from local.template import template as project_template

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_FILE = REPO_ROOT / ".local" / "stack.json"
# The refresh function's contract (integrations/provider_refresh.py): endpoints JSON and the tokens' secret.
PROVIDER_ENDPOINTS = "PROVIDER_ENDPOINTS"
PROVIDER_CREDENTIALS_SECRET = "PROVIDER_CREDENTIALS_SECRET"

__all__ = ["DEFAULT_STATE_FILE", "REPO_ROOT", "LocalServer", "LocalStack", "write_state"]


def _variables(intrinsics: Intrinsics, function: str) -> dict[str, Any]:
    """A function's raw (unresolved) environment variables."""
    properties = intrinsics.resources[function].get("Properties") or {}
    return dict((properties.get("Environment") or {}).get("Variables") or {})


class LocalStack:
    """Everything ``template.yaml`` needs to answer requests and ingest events, on this machine.

    ``redis``/``moto`` may be passed in (already started; the stack then leaves them running on
    stop), otherwise the stack starts and stops its own. ``redis_url`` uses an existing Redis.
    ``schedule_every`` (seconds) overrides the rate of every schedule (default: the template's).
    """

    def __init__(
        self,
        *,
        template: Mapping[str, Any] | None = None,
        seed_scale: float = 1.0,
        seed_in_background: bool = False,
        redis: RedisEndpoint | None = None,
        redis_url: str | None = None,
        moto: MotoEndpoint | None = None,
        region: str = DEFAULT_REGION,
        stack_name: str = DEFAULT_STACK_NAME,
        schedule_every: float | None = None,
    ) -> None:
        self._template = template
        self.seed_scale = seed_scale
        self.seed_in_background = seed_in_background
        self.redis: RedisEndpoint | None = redis
        self._owns_redis = redis is None
        self._redis_url = redis_url
        self.moto: MotoEndpoint | None = moto
        self._owns_moto = moto is None
        self.region = region
        self.stack_name = stack_name
        self.schedule_every = schedule_every
        self.intrinsics: Intrinsics | None = None
        self.tables: dict[str, str] = {}
        self.queues: dict[str, str] = {}
        self.buses: dict[str, str] = {}
        self.rules: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.environment: dict[str, str] = {}
        self.seed: SeedReport | None = None
        self.functions: dict[str, LambdaFunction] = {}
        self.pollers: list[SqsPoller] = []
        self.schedules: list[ScheduleRunner] = []
        self.pipes: list[StreamPipe] = []
        self.provider: FakeSkylink | None = None
        self.partner_push: dict[str, Any] | None = None
        self._gateway: Gateway | None = None
        self._environ = EnvironmentOverride()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        template = self._template if self._template is not None else project_template()
        if self.redis is None:
            self.redis = redis_endpoint_from_url(self._redis_url) if self._redis_url else RedisServer().start()
        if self.moto is None:
            self.moto = MotoEndpoint(self.region).start()
        intrinsics = self.intrinsics = Intrinsics(
            template,
            region=self.region,
            account_id=LOCAL_ACCOUNT_ID,
            stack_name=self.stack_name,
            cache_host=self.redis.host,
            cache_port=self.redis.port,
        )
        overrides = self._start_fake_provider(intrinsics)
        dynamodb = self._client("dynamodb")
        self.tables = create_tables(dynamodb, intrinsics)
        self.queues = create_queues(self._client("sqs"), intrinsics)
        events = self._client("events")
        self.buses = create_event_buses(events, intrinsics)
        self.rules = create_rules(events, intrinsics)
        create_archives(events, intrinsics)
        # Before the environments: a secret's Ref is the ARN the emulator gives it.
        self.secrets = create_secrets(self._client("secretsmanager"), intrinsics)
        # All functions share this process, so their variables must agree (merge_environments checks).
        self.environment = merge_environments(function_environments(intrinsics, overrides))
        self._environ.apply(self.environment)
        self._gateway = Gateway(intrinsics)
        self.functions = dict(self._gateway.functions)
        self.seed = seed_tables(dynamodb, self.tables, scale=self.seed_scale, background=self.seed_in_background)
        self.partner_push = self._partner_push(dynamodb)
        self._start_workers(intrinsics)
        logger.info(
            "local stack ready: %d routes, tables %s, redis %s, moto %s; %d poller(s), %d schedule(s), %d pipe(s)",
            len(self._gateway.routes), ", ".join(self.tables.values()), self.redis.url, self.moto.url,
            len(self.pollers), len(self.schedules), len(self.pipes),
        )  # fmt: skip

    def _client(self, service: str) -> Any:
        assert self.moto is not None
        return boto3.client(service, endpoint_url=self.moto.url, region_name=self.region)

    def _start_fake_provider(self, intrinsics: Intrinsics) -> dict[str, str]:
        """Start the fake skylink when a function pulls providers; the variables that point it there."""
        raw_endpoints = None
        for function in resources_of_type(intrinsics, "AWS::Lambda::Function"):
            raw_endpoints = _variables(intrinsics, function).get(PROVIDER_ENDPOINTS, raw_endpoints)
        if raw_endpoints is None:
            return {}
        self.provider = FakeSkylink().start()
        endpoints = json.loads(str(intrinsics.resolve(raw_endpoints)))
        endpoints[FAKE_PROVIDER_NAME] = self.provider.url
        for secret in environment_references(intrinsics, PROVIDER_CREDENTIALS_SECRET):
            tokens = json.loads(intrinsics.secret_string(secret) or "{}")
            tokens[FAKE_PROVIDER_NAME] = self.provider.token
            intrinsics.set_secret_string(secret, json.dumps(tokens))
        return {PROVIDER_ENDPOINTS: json.dumps(endpoints)}

    def _partner_push(self, dynamodb: Any) -> dict[str, Any] | None:
        example = self.examples.get("flights")
        route = next(
            (r for r in self.gateway.routes if r.method == "POST" and "{provider}" in r.resource and r.function), None
        )
        if not example or route is None or "FlightsTable" not in self.tables:
            return None
        return partner_push_example(dynamodb, self.tables["FlightsTable"], example, route.resource, datetime.now(UTC))

    def _function(self, logical_id: str) -> LambdaFunction:
        """One execution environment per function, shared by the gateway, pollers and schedules."""
        if logical_id not in self.functions:
            assert self.intrinsics is not None
            self.functions[logical_id] = LambdaFunction(self.intrinsics, logical_id)
        return self.functions[logical_id]

    def _start_workers(self, intrinsics: Intrinsics) -> None:
        sqs = self._client("sqs")
        for source in sqs_event_sources(intrinsics, self.queues):
            self.pollers.append(SqsPoller(source, self._function(source.function), sqs, self.region))
        for schedule in schedules_from_template(intrinsics):
            runner = ScheduleRunner(
                schedule,
                self._function(schedule.function),
                every=self.schedule_every,
                region=self.region,
                account_id=LOCAL_ACCOUNT_ID,
            )
            self.schedules.append(runner)
        seed = self.seed
        for pipe in pipes_from_template(intrinsics):
            if pipe.table not in self.tables:
                continue
            self.pipes.append(
                StreamPipe(
                    pipe,
                    self.tables[pipe.table],
                    dynamodb=self._client("dynamodb"),
                    streams=self._client("dynamodbstreams"),
                    events=self._client("events"),
                    ready=lambda: seed is None or not seed.seeding,
                    forget_iterator=lambda iterator: forget_shard_iterator(iterator, region=self.region),
                )
            )
        for worker in self.workers:
            worker.start()

    @property
    def workers(self) -> list[Worker]:
        return [*self.pollers, *self.schedules, *self.pipes]

    def stop(self) -> None:
        """Stop the background threads and seeding, restore the environment, stop what this stack started.

        Safe to call twice.
        """
        stop_all(self.workers)
        self.pollers, self.schedules, self.pipes = [], [], []
        if self.seed is not None:
            self.seed.cancel()
        if self.provider is not None:
            self.provider.stop()
            self.provider = None
        self._environ.restore()
        if self.moto is not None and self._owns_moto:
            self.moto.stop()
            self.moto = None
        if self.redis is not None and self._owns_redis:
            self.redis.stop()
            self.redis = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what callers use -----------------------------------------------------------------------

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError("LocalStack is not started")
        return self._gateway

    @property
    def api_keys(self) -> dict[str, str]:
        """Tier → a key value (``basic``, ``pro``, ``partner`` as the template defines them)."""
        return self.gateway.keys_by_tier()

    @property
    def examples(self) -> dict[str, dict[str, str]]:
        """Domain → query parameters of a search that has seeded results."""
        return dict(self.seed.examples) if self.seed else {}

    def state(self, url: str) -> dict[str, Any]:
        """The content of ``.local/stack.json``."""
        examples: dict[str, Any] = dict(self.examples)
        if self.partner_push is not None:
            examples["partner_push"] = self.partner_push
        return {
            "url": url,
            "api_keys": self.api_keys,
            "examples": examples,
            "redis_url": self.redis.url if self.redis else None,
            "aws_endpoint_url": self.moto.url if self.moto else None,
            "queues": dict(self.queues),
            "event_buses": dict(self.buses),
            "fake_provider_url": self.provider.url if self.provider else None,
            "pid": os.getpid(),
        }


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write ``stack.json`` atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
