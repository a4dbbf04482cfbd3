"""What fault, fuzz and security tests need besides the local stack: cold starts, fault injectors, readers.

Nothing here replaces our own code. Faults are injected from outside, as they happen in AWS: a
Redis that is stopped, stalled or failed over (:class:`TcpProxy` plays the ElastiCache endpoint
whose DNS flips to the new primary), a DynamoDB endpoint that answers every call with a throttling
error (:class:`ThrottlingDynamo`), replies queued on the functions' DynamoDB client's transport
(:class:`ScriptedDynamo`), botocore's ``Stubber`` on a real botocore client, fakes handed to ports.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import selectors
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities import parameters
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

import core.observability
import core.store
import domains.destinations.bootstrap
import domains.flights.bootstrap
import domains.hotels.bootstrap
import integrations.bus
import integrations.flights_ingest
import integrations.hotels_ingest
import integrations.partner_events
import integrations.provider_refresh
from local.aws import MotoEndpoint
from local.environ import EnvironmentOverride
from local.redis_server import RedisServer
from local.stack import LocalStack

# The composition roots and clients a Lambda container builds once from its environment.
_CONTAINER_STATE: tuple[Any, ...] = (
    core.store.dynamodb_client,
    integrations.bus.events_client,
    core.observability._tracer,
    domains.flights.bootstrap.flight_search,
    domains.hotels.bootstrap.hotel_search,
    domains.destinations.bootstrap.destination_search,
    integrations.flights_ingest.pipeline,
    integrations.hotels_ingest.pipeline,
    integrations.partner_events.partner_events,
    integrations.provider_refresh._environment,
)


def cold_start() -> None:
    """Forget every container's clients and wiring: the next invocation builds them from the environment.

    This is what a new Lambda execution environment does. Tests call it when they change the
    environment the functions read (another Redis, another endpoint) and when a stack starts or stops,
    so that no handler keeps a connection to a server of an earlier test package.
    """
    for cached in _CONTAINER_STATE:
        cached.cache_clear()
    parameters.clear_caches()  # Powertools keeps its Secrets Manager client (and endpoint) process-wide


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Functions started inside see ``variables`` (cold start on entry and on exit)."""
    override = EnvironmentOverride()
    override.apply(variables)
    cold_start()
    try:
        yield
    finally:
        override.restore()
        cold_start()


@contextlib.contextmanager
def stack_for_tests(seed_scale: float = 0.02) -> Iterator[LocalStack]:
    """The stack ``make run`` serves, in-process, on a redis-server and moto server of its own.

    The functions are cold started before and after, so none keeps a client of these servers.
    The default seed is the integration tests': ~5 routes x 60 days, a few seconds through moto.
    """
    cold_start()
    try:
        with (
            RedisServer() as server,
            MotoEndpoint() as moto,
            LocalStack(moto=moto, redis=server, seed_scale=seed_scale) as local,
        ):
            # This process holds moto, boto3's models, pytest and hypothesis: far more long-lived objects
            # than a Lambda container. Frozen, the collector skips them, so its pauses stay as short as a
            # container's and do not count against budgets measured in tens of milliseconds.
            gc.freeze()
            try:
                yield local
            finally:
                gc.unfreeze()
    finally:
        cold_start()


class Unthrottled:
    """A gateway clock that jumps a minute at every reading, so every usage-plan bucket is full again.

    Tests that are not about throttling drive a gateway with this clock: their request counts must
    not depend on how fast the machine is. Throttling itself is tested on a gateway with the real clock.
    """

    def __init__(self) -> None:
        self._now = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self._now += 60.0
            return self._now


# --- measurements ----------------------------------------------------------------------------------


def percentile(samples: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` 0.99 = p99) of a non-empty sample."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def emf_counts(text: str) -> Counter[str]:
    """Sum of every count metric in the CloudWatch EMF lines of ``text`` (other lines are ignored)."""
    totals: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                if metric["Unit"] == "Count":
                    totals[metric["Name"]] += int(document[metric["Name"]])
    return totals


# --- partner events as the ingest functions receive them -------------------------------------------


def flight_event(
    origin: str,
    destination: str,
    day: date,
    offers: Iterable[tuple[str, str, str]],
    sequence: int,
) -> dict[str, Any]:
    """A schema-valid ``FlightOffersUpdated`` v1: one offer per ``(flight_id, cabin, price)``, 08:00-15:05 UTC."""
    departure = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=8)
    arrival = departure + timedelta(minutes=425)
    return {
        "id": str(uuid.uuid4()),
        "type": "FlightOffersUpdated",
        "version": 1,
        "sequence": sequence,
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {
            "origin": origin,
            "destination": destination,
            "date": day.isoformat(),
            "offers": [
                {
                    "flight_id": flight_id,
                    "carrier": flight_id[:2],
                    "departure": departure.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "arrival": arrival.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "duration_minutes": 425,
                    "cabin": cabin,
                    "price": {"amount": price, "currency": "USD"},
                    "seats_left": 4,
                }
                for flight_id, cabin, price in offers
            ],
        },
    }


def hotel_event(
    city: str, hotel_id: str, nights: Iterable[tuple[date, str]], sequence: int, stars: int = 4
) -> dict[str, Any]:
    """A schema-valid ``HotelRatesUpdated`` v1: one available rate per ``(night, amount)``."""
    return {
        "id": str(uuid.uuid4()),
        "type": "HotelRatesUpdated",
        "version": 1,
        "sequence": sequence,
        "occurred_at": "2026-01-01T00:00:00Z",
        "data": {
            "hotel_id": hotel_id,
            "city": city,
            "name": f"Hotel {hotel_id}",
            "stars": stars,
            "rating": 8.1,
            "rates": [
                {"date": night.isoformat(), "amount": amount, "currency": "EUR", "available": True, "max_guests": 2}
                for night, amount in nights
            ],
        },
    }


def eventbridge_body(event: Mapping[str, Any], provider: str = "skylink") -> str:
    """The SQS message body an EventBridge rule delivers for a partner event on the bus."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": event.get("type", "Unknown"),
            "source": "travel-search.partners",
            "account": "123456789012",
            "time": "2026-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {"provider": provider, "received_at": "2026-01-01T00:00:00Z", "event": event},
        }
    )


def sqs_batch(bodies: Iterable[str], ids: Iterable[str] | None = None, receive_count: int = 1) -> dict[str, Any]:
    """An SQS event of Lambda's shape; message ids are ``m0``, ``m1`` … unless given.

    ``receive_count`` is SQS's ``ApproximateReceiveCount``: 2 and more for a message delivered again.
    """
    bodies = list(bodies)
    message_ids = list(ids) if ids is not None else [f"m{index}" for index in range(len(bodies))]
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"handle-{message_id}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:test-ingest",
                "awsRegion": "us-east-1",
            }
            for message_id, body in zip(message_ids, bodies, strict=True)
        ]
    }


def failed_ids(result: Mapping[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in result["batchItemFailures"]]


# --- a TCP endpoint in front of Redis ------------------------------------------------------------


class TcpProxy:
    """A 127.0.0.1 TCP forwarder: the address clients know, in front of whichever Redis is primary.

    :meth:`retarget` is a failover's DNS flip: new connections reach the new primary, while open ones
    stay with the old server. Every loop waits at most 0.1 s, so :meth:`stop` returns within a second.
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self._target = target_port
        self._listener = socket.create_server((host, 0), backlog=512)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    def start(self) -> TcpProxy:
        self._spawn(self._accept_loop, "proxy-accept")
        return self

    def retarget(self, port: int) -> None:
        self._target = port

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.host, self._target), timeout=1.0)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
                self.accepted += 1
            self._spawn(self._pump, "proxy-pump", client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in peer:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            try:
                while not self._stopping.is_set():
                    for key, _ in selector.select(timeout=0.1):
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            return
                        peer[key.fileobj].sendall(data)  # type: ignore[index]
            except OSError:
                return
            finally:
                for sock in peer:
                    with contextlib.suppress(OSError):
                        sock.close()
                with self._lock:
                    self._sockets -= set(peer)

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in threads:
            thread.join(timeout=2.0)


# --- a DynamoDB endpoint that throttles everything -------------------------------------------------

THROTTLED_BODY = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }
)


class ThrottlingDynamo:
    """An HTTP endpoint on 127.0.0.1 answering every DynamoDB call as DynamoDB does when it throttles.

    It counts the calls, so a test sees how many attempts the functions' client made.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        with self._lock:
            self.calls[operation] += 1
        response = Response(
            THROTTLED_BODY,
            status=400,
            content_type="application/x-amz-json-1.0",
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )
        return response(environ, start_response)

    def __enter__(self) -> ThrottlingDynamo:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


class ScriptedDynamo:
    """The functions' DynamoDB client (:class:`core.dynamodb.DynamoDBClient`) over a transport whose replies
    can be queued in advance, as botocore's ``Stubber`` queues them on a botocore client.

    While replies are queued, each request must be the next queued operation (and, where given, carry
    exactly the expected parameters) and gets its queued reply as DynamoDB would send it over HTTP, so
    the client's own retries, error parsing and signing all run. With nothing queued, requests reach
    the stack's moto server.
    """

    def __init__(self) -> None:
        from core.dynamodb import DynamoDBClient, Urllib3Transport, endpoint_url, region_from_env

        region = region_from_env()
        self._forward = Urllib3Transport(endpoint_url(region))
        self.host = self._forward.host
        self._queue: list[tuple[str, dict[str, Any] | None, Any]] = []
        self.sent: list[str] = []  # every operation the client sent, in order (retries included)
        self.client = DynamoDBClient(region, self)

    def post(self, body: bytes, headers: dict[str, str]) -> Any:
        self.sent.append(headers["x-amz-target"].rpartition(".")[2])
        if not self._queue:
            return self._forward.post(body, headers)
        operation, expected, reply = self._queue.pop(0)
        sent = headers["x-amz-target"].rpartition(".")[2]
        assert sent == operation, f"expected a {operation} request, the client sent {sent}"
        if expected is not None:
            assert json.loads(body) == expected, f"unexpected {operation} parameters"
        return reply

    def add_response(self, operation: str, response: dict[str, Any], expected: dict[str, Any] | None = None) -> None:
        from core.dynamodb import HttpReply

        self._queue.append((_camel(operation), expected, HttpReply(200, json.dumps(response).encode(), None)))

    def add_client_error(self, operation: str, service_error_code: str, http_status_code: int = 400) -> None:
        from core.dynamodb import HttpReply

        body = {"__type": f"com.amazonaws.dynamodb.v20120810#{service_error_code}", "message": "scripted fault"}
        self._queue.append((_camel(operation), None, HttpReply(http_status_code, json.dumps(body).encode(), None)))

    def __enter__(self) -> ScriptedDynamo:
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.clear()  # what a test left queued never leaks into the next

    def assert_no_pending_responses(self) -> None:
        assert not self._queue, f"{len(self._queue)} queued replies were never asked for"


def _camel(operation: str) -> str:
    """``batch_write_item`` (botocore's method name) → ``BatchWriteItem`` (the API operation)."""
    return "".join(part.capitalize() for part in operation.split("_"))
