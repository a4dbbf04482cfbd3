"""The local stack's composition root: Redis, the AWS emulator, tables, seed data, environment, gateway.

:class:`LocalStack` is what ``make run`` serves over HTTP (:class:`LocalServer`) and what the
integration tests drive in-process, so both exercise the same objects.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from local.aws import DEFAULT_REGION, LOCAL_ACCOUNT_ID, MotoEndpoint
from local.gateway import Gateway
from local.intrinsics import DEFAULT_STACK_NAME, Intrinsics
from local.redis_server import RedisEndpoint, RedisServer, redis_endpoint_from_url
from local.resources import create_tables, function_environments, merge_environments
from local.seed import SeedReport, seed_tables
from local.template import template as project_template

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_FILE = REPO_ROOT / ".local" / "stack.json"


class LocalStack:
    """Everything ``template.yaml`` needs to answer requests, on this machine.

    ``redis``/``moto`` may be passed in (already started; the stack then leaves them running on
    stop), otherwise the stack starts and stops its own. ``redis_url`` uses an existing Redis.
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
        self.tables: dict[str, str] = {}
        self.environment: dict[str, str] = {}
        self.seed: SeedReport | None = None
        self._gateway: Gateway | None = None
        self._saved_environ: dict[str, str | None] = {}

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
        intrinsics = Intrinsics(
            template,
            region=self.region,
            account_id=LOCAL_ACCOUNT_ID,
            stack_name=self.stack_name,
            cache_host=self.redis.host,
            cache_port=self.redis.port,
        )
        dynamodb = boto3.client("dynamodb", endpoint_url=self.moto.url, region_name=self.region)
        self.tables = create_tables(dynamodb, intrinsics)
        # All functions share this process, so their variables must agree (merge_environments checks).
        self.environment = merge_environments(function_environments(intrinsics))
        self._apply_environ(self.environment)
        self._gateway = Gateway(intrinsics)
        self.seed = seed_tables(dynamodb, self.tables, scale=self.seed_scale, background=self.seed_in_background)
        logger.info(
            "local stack ready: %d routes, tables %s, redis %s, moto %s",
            len(self._gateway.routes), ", ".join(self.tables.values()), self.redis.url, self.moto.url,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop seeding, restore the environment, stop what this stack started. Safe to call twice."""
        if self.seed is not None:
            self.seed.cancel()
        self._restore_environ()
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
        return {
            "url": url,
            "api_keys": self.api_keys,
            "examples": self.examples,
            "redis_url": self.redis.url if self.redis else None,
            "aws_endpoint_url": self.moto.url if self.moto else None,
            "pid": os.getpid(),
        }

    # --- environment ----------------------------------------------------------------------------

    def _apply_environ(self, variables: Mapping[str, str]) -> None:
        for name, value in variables.items():
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_environ(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The gateway writes its own access log line (with tier, cache and request id).
        return


class LocalServer:
    """A threaded werkzeug HTTP server for a WSGI app, run on a background thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 3000) -> None:
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True, request_handler=_QuietRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write ``stack.json`` atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
