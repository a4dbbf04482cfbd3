"""An in-process AWS emulator (moto server) that every boto3 client in the process talks to.

boto3 honours ``AWS_ENDPOINT_URL``, so the functions' own data-access code reaches moto
unchanged: no ``endpoint_url=`` argument, no patching. Fake credentials make sure nothing can
reach a real account; the previous environment is restored on :meth:`MotoEndpoint.stop`.
"""

from __future__ import annotations

import logging
import os
from types import TracebackType

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from local.environ import EnvironmentOverride

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account

# Variables that would send boto3 somewhere else, or to a real account, if left in place.
_SHADOWING_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


class _QuietRequestHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # One line per AWS call (tens of thousands while seeding) would drown the gateway's log.
        return


class _QuietMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer without per-request access logs, and failing fast if it cannot bind.

    The base class's thread would die silently on a bind error and leave start() waiting forever.
    """

    _startup_error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                self._ip_address, self._port, app, threaded=True, request_handler=_QuietRequestHandler
            )
        except BaseException as error:
            self._startup_error = error
            self._server_ready_event.set()
            return
        self._server_ready_event.set()
        self._server.serve_forever()

    def start(self) -> None:
        super().start()
        if self._startup_error is not None:
            raise RuntimeError(f"moto server could not start: {self._startup_error}") from self._startup_error


class MotoEndpoint:
    """A ``ThreadedMotoServer`` on a free 127.0.0.1 port, wired into ``os.environ``.

    moto keeps its state in process-wide backends: two endpoints in one process see the same
    tables. One per process is the intended use.
    """

    host = "127.0.0.1"

    def __init__(self, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self._server: ThreadedMotoServer | None = None
        self._port = 0
        self._environ = EnvironmentOverride()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("MotoEndpoint is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoEndpoint:
        if self._server is not None:
            raise RuntimeError("MotoEndpoint is already started")
        # Port 0: the OS picks a free port at bind time, so there is no probe-then-bind race.
        server = _QuietMotoServer(ip_address=self.host, port=0, verbose=False)
        server.start()
        self._server = server
        self._port = server.get_host_and_port()[1]
        self._apply_environ()
        logger.info("moto server listening on %s", self.url)
        return self

    def _apply_environ(self) -> None:
        wanted: dict[str, str | None] = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        wanted.update(dict.fromkeys(_SHADOWING_VARIABLES))
        # A service-specific endpoint (AWS_ENDPOINT_URL_DYNAMODB …) wins over AWS_ENDPOINT_URL.
        wanted.update(dict.fromkeys(name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_")))
        self._environ.apply(wanted)

    def stop(self) -> None:
        """Stop the server thread, close its socket and restore the environment. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            # ThreadedMotoServer.stop() shuts the loop down but leaves the listening socket open.
            wsgi_server = getattr(server, "_server", None)
            if wsgi_server is not None:
                wsgi_server.server_close()
        self._environ.restore()
        self._port = 0

    def __enter__(self) -> MotoEndpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def forget_shard_iterator(iterator: str, *, region: str = DEFAULT_REGION, account_id: str = LOCAL_ACCOUNT_ID) -> None:
    """Drop a used DynamoDB Streams shard iterator from the in-process moto server.

    moto keeps every iterator it hands out (each GetRecords answer carries a new one), so a pipe
    polling once a second would grow the process by megabytes an hour. A no-op if moto changes.
    """
    try:
        from moto.dynamodbstreams.models import dynamodbstreams_backends  # noqa: PLC0415

        dynamodbstreams_backends[account_id][region].shard_iterators.pop(iterator, None)
    except Exception:  # an emulator detail, never worth failing a pipe for
        logger.debug("could not drop shard iterator", exc_info=True)
