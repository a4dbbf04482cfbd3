"""Infrastructure tests: template.yaml keeps the promises the code, the local stack and operators rely on.

Each test reads the template as CloudFormation does (long-form intrinsics, via ``local.template``) and
checks a property a user or an operator would notice when it breaks: a route that answers 500, a key
that is not enforced, an alarm that can never fire, a role that can do more than it should.

Checks of the functions are parametrized over SEARCH_DOMAINS (domains/<name>/), INGEST_DOMAINS
(integrations/<name>_ingest.py) and EDGE_FUNCTIONS (the functions outside the VPC), which together must describe
every function and table of the template. Where the template must agree with the code (environment, DynamoDB
actions, metric names and dimensions, event types and sources, response schemas), the expectation is read from
the code itself: its syntax tree (nothing is invoked) or a response rendered by the code's own logic over
in-memory sources.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from cfnlint.api import lint_file
from jsonschema import Draft202012Validator, ValidationError

from core.http import ApiRequest
from core.page_token import PageTokens
from domains.destinations.airports import Airport
from domains.destinations.query import (
    LOOKUP_PARAMETERS,
    MAX_LENGTH,
    MAX_LIMIT,
    MIN_LENGTH,
    SEARCH_PARAMETERS,
    DestinationQuery,
)
from domains.destinations.search import DestinationSearch
from domains.flights.offers import FlightOffer, offers_to_items
from domains.flights.query import FlightQuery
from domains.flights.search import FlightSearch
from domains.hotels.query import PARAMETERS as HOTEL_PARAMETERS
from domains.hotels.query import SORTS as HOTEL_SORTS
from domains.hotels.query import HotelQuery
from domains.hotels.rates import NightlyRate, rate_to_item
from domains.hotels.search import HotelSearch
from integrations.contracts import SCHEMA_DIR, event_contracts
from integrations.ingest import quarantine_item
from integrations.partner_events import MAX_EVENTS, PROVIDER, PartnerEvents
from local.template import TEMPLATE_PATH
from tests.fakes import DictCache, InMemoryOffers

Resources = dict[str, dict[str, Any]]

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
PROJECT_ROOT = Path(TEMPLATE_PATH).parent


@dataclass(frozen=True)
class SearchDomain:
    """What the code of one search domain (domains/<name>/) needs from the template."""

    name: str  # package under domains/, "Domain" metric dimension, lower-case resource name part
    table_variable: str  # the environment variable holding its table name
    dynamodb_actions: frozenset[str]  # what its code calls through core.store, nothing more
    paged: bool  # signs page tokens, so it reads PAGE_TOKEN_SECRET
    routes: tuple[tuple[str, str, str], ...]  # (path, method, 200 response schema)

    @property
    def prefix(self) -> str:
        return self.name.capitalize()

    @property
    def table(self) -> str:
        return f"{self.prefix}Table"

    @property
    def function(self) -> str:
        return f"{self.prefix}SearchFunction"

    @property
    def role(self) -> str:
        return f"{self.prefix}SearchRole"

    @property
    def log_group(self) -> str:
        return f"{self.prefix}SearchLogGroup"


SEARCH_DOMAINS = (
    SearchDomain(
        "flights",
        "FLIGHTS_TABLE",
        frozenset({"dynamodb:Query"}),
        paged=True,
        routes=(("/v1/flights/search", "get", "FlightSearchResponse"),),
    ),
    SearchDomain(
        "hotels",
        "HOTELS_TABLE",
        frozenset({"dynamodb:Query"}),
        paged=True,
        routes=(("/v1/hotels/search", "get", "HotelSearchResponse"),),
    ),
    SearchDomain(
        "destinations",
        "DESTINATIONS_TABLE",
        frozenset({"dynamodb:Query", "dynamodb:GetItem"}),
        paged=False,
        routes=(
            ("/v1/destinations/search", "get", "DestinationSearchResponse"),
            ("/v1/destinations/{code}", "get", "Destination"),
        ),
    ),
)
by_domain = pytest.mark.parametrize("domain", SEARCH_DOMAINS, ids=lambda domain: domain.name)
SEARCH_ROUTES = [(domain, *route) for domain in SEARCH_DOMAINS for route in domain.routes]
by_route = pytest.mark.parametrize(
    ("domain", "path", "method", "schema_name"), SEARCH_ROUTES, ids=[f"{m.upper()} {p}" for _, p, m, _ in SEARCH_ROUTES]
)

# What core/settings.py and Powertools read in every search function.
SHARED_ENVIRONMENT = {
    "CACHE_HOST",
    "CACHE_PORT",
    "CACHE_TLS",
    "CACHE_AUTH",
    "CACHE_USER",
    "CACHE_NAME",
    "CACHE_TTL_SECONDS",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}

# core.store.DynamoTable's public reads → the DynamoDB action each one sends.
STORE_ACTIONS = {
    "query_prefix": "dynamodb:Query",
    "query_range": "dynamodb:Query",
    "get_item": "dynamodb:GetItem",
}
ERROR_STATUSES = ("400", "403", "429", "500", "503")

GATEWAY_RESPONSE_TYPES = {
    "DEFAULT_4XX",
    "DEFAULT_5XX",
    "MISSING_AUTHENTICATION_TOKEN",
    "INVALID_API_KEY",
    "THROTTLED",
    "QUOTA_EXCEEDED",
    "BAD_REQUEST_PARAMETERS",
}

PUBLIC_ROUTES = {("/v1/health", "get")}

IAM_TYPES_WITH_INLINE_STATEMENTS = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}


# ------------------------------------------------------------------------------------------ provider integration
@dataclass(frozen=True)
class IngestDomain:
    """What one ingest handler (integrations/<name>_ingest.py) needs from the template."""

    name: str  # the domain: "Domain" metric dimension, its table's prefix
    event_type: str  # the detail-type its rule routes to its queue (the handler's DomainIngest event type)

    @property
    def prefix(self) -> str:
        return self.name.capitalize()

    @property
    def source(self) -> str:
        return f"integrations/{self.name}_ingest.py"

    @property
    def table(self) -> str:
        return f"{self.prefix}Table"

    @property
    def function(self) -> str:
        return f"{self.prefix}IngestFunction"

    @property
    def role(self) -> str:
        return f"{self.prefix}IngestRole"

    @property
    def log_group(self) -> str:
        return f"{self.prefix}IngestLogGroup"

    @property
    def queue(self) -> str:
        return f"{self.prefix}IngestQueue"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}IngestDlq"

    @property
    def rule(self) -> str:
        return f"{self.prefix}IngestRule"

    @property
    def event_source_mapping(self) -> str:
        return f"{self.prefix}IngestEventSourceMapping"


INGEST_DOMAINS = (IngestDomain("flights", "FlightOffersUpdated"), IngestDomain("hotels", "HotelRatesUpdated"))
by_ingest = pytest.mark.parametrize("ingest", INGEST_DOMAINS, ids=lambda ingest: ingest.name)


@dataclass(frozen=True)
class EdgeFunction:
    """A function outside the VPC, because it calls EventBridge, Secrets Manager or a provider on the internet."""

    prefix: str  # PartnerEvents → PartnerEventsFunction, PartnerEventsRole, PartnerEventsLogGroup
    module: str  # integrations/<module>.py
    bus_source: str  # the Source of the events it puts on the partner bus

    @property
    def function(self) -> str:
        return f"{self.prefix}Function"

    @property
    def role(self) -> str:
        return f"{self.prefix}Role"

    @property
    def log_group(self) -> str:
        return f"{self.prefix}LogGroup"

    @property
    def source(self) -> str:
        return f"integrations/{self.module}.py"


EDGE_FUNCTIONS = (
    EdgeFunction("PartnerEvents", "partner_events", "travel-search.partners"),
    EdgeFunction("ProviderRefresh", "provider_refresh", "travel-search.refresh"),
)
by_edge = pytest.mark.parametrize("edge", EDGE_FUNCTIONS, ids=lambda edge: edge.module)
CHANGE_SOURCE = "travel-search.changes"


@dataclass(frozen=True)
class ChangePipe:
    """A pipe from a domain table's stream to the partner bus, and the item layout the code writes there."""

    pipe: str
    table: str
    detail_type: str
    changed: frozenset[str]  # the attributes that say what changed: they must reach the event
    sample_item: Callable[[], dict[str, dict[str, Any]]]  # an item as the domain's code writes it


CHANGE_PIPES = (
    ChangePipe(
        "FlightOffersChangedPipe",
        "FlightsTable",
        "FlightOffersChanged",
        frozenset({"offer#BA1#economy"}),  # the offer's map: price, seats, sequence …
        lambda: offers_to_items([flight_offer("BA1", "129.90")])[0],
    ),
    ChangePipe(
        "HotelRatesChangedPipe",
        "HotelsTable",
        "HotelRatesChanged",
        frozenset({"sequence", "amount"}),
        lambda: rate_to_item(nightly_rate("h1", "2030-06-01", "120")),
    ),
)
by_pipe = pytest.mark.parametrize("pipe", CHANGE_PIPES, ids=lambda pipe: pipe.pipe)
PARTNER_ROUTE = ("/v1/providers/{provider}/events", "post")
QUARANTINE_TABLE = "QuarantineTable"

# What Lambda's SQS poller calls with the function's role (the code itself never calls SQS).
SQS_POLLER_ACTIONS = frozenset(
    {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"}
)
VPC_ENI_ACTIONS = frozenset(
    {
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    }
)
# core.store.Writes's public methods → the DynamoDB action each one sends.
# upsert_all sends one conditional UpdateItem per write (per part, for writes versioned per attribute).
WRITE_ACTIONS = {"upsert_all": "dynamodb:UpdateItem", "put_all": "dynamodb:BatchWriteItem"}
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


def getatt(logical_id: str, attribute: str = "Arn") -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


Grants = dict[str, tuple[list[str], list[Any]]]  # Sid → (sorted actions, resources)


def function_basics(log_group: str, *, in_vpc: bool) -> Grants:
    grants: Grants = {
        "WriteOwnLogs": (["logs:CreateLogStream", "logs:PutLogEvents"], [getatt(log_group)]),
        "XRay": (["xray:PutTelemetryRecords", "xray:PutTraceSegments"], ["*"]),
    }
    if in_vpc:
        grants["VpcEni"] = (sorted(VPC_ENI_ACTIONS), ["*"])
        grants["ConnectToSearchCache"] = (
            ["elasticache:Connect"],
            [getatt("SearchCache", "ARN"), getatt("CacheIamUser")],
        )
    return grants


def expected_grants() -> dict[str, Grants]:
    """Role → every statement it must have, and nothing else (the roles of the provider-integration side)."""
    grants: dict[str, Grants] = {}
    for ingest in INGEST_DOMAINS:
        grants[ingest.role] = function_basics(ingest.log_group, in_vpc=True) | {
            f"Write{ingest.table}": (["dynamodb:UpdateItem"], [getatt(ingest.table)]),
            f"Write{QUARANTINE_TABLE}": (["dynamodb:BatchWriteItem"], [getatt(QUARANTINE_TABLE)]),
            f"Consume{ingest.queue}": (sorted(SQS_POLLER_ACTIONS), [getatt(ingest.queue)]),
        }
    grants["PartnerEventsRole"] = function_basics("PartnerEventsLogGroup", in_vpc=False) | {
        "PutPartnerEvents": (["events:PutEvents"], [getatt("PartnerBus")]),
    }
    grants["ProviderRefreshRole"] = function_basics("ProviderRefreshLogGroup", in_vpc=False) | {
        "ReadProviderCredentials": (["secretsmanager:GetSecretValue"], [ref("ProviderCredentialsSecret")]),
        "PutRefreshEvents": (["events:PutEvents"], [getatt("PartnerBus")]),
        "FailedInvocationsToDlq": (["sqs:SendMessage"], [getatt("RuleTargetDlq")]),
    }
    # Scheduler writes its dead-letter events with the schedule's role, so the DLQ grant is the one addition.
    grants["ProviderRefreshScheduleRole"] = {
        "InvokeProviderRefresh": (["lambda:InvokeFunction"], [getatt("ProviderRefreshFunction")]),
        "UndeliveredToDlq": (["sqs:SendMessage"], [getatt("RuleTargetDlq")]),
    }
    for pipe in CHANGE_PIPES:
        grants[f"{pipe.pipe}Role"] = {
            f"Read{pipe.table}Stream": (
                ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
                [getatt(pipe.table, "StreamArn")],
            ),
            "PutChangeEvents": (["events:PutEvents"], [getatt("PartnerBus")]),
            "UndeliveredToDlq": (["sqs:SendMessage"], [getatt("ChangePipeDlq")]),
            "WriteOwnLogs": (["logs:CreateLogStream", "logs:PutLogEvents"], [getatt(f"{pipe.pipe}LogGroup")]),
        }
    return grants


# Who may assume each of those roles.
ROLE_PRINCIPALS = {
    **{ingest.role: "lambda.amazonaws.com" for ingest in INGEST_DOMAINS},
    **{edge.role: "lambda.amazonaws.com" for edge in EDGE_FUNCTIONS},
    "ProviderRefreshScheduleRole": "scheduler.amazonaws.com",
    "FlightOffersChangedPipeRole": "pipes.amazonaws.com",
    "HotelRatesChangedPipeRole": "pipes.amazonaws.com",
}
# Roles of AWS services configured here, checked by their own tests (flow logs, API Gateway logging).
SERVICE_ROLES = {"VpcFlowLogRole", "ApiGatewayCloudWatchRole"}


# ------------------------------------------------------------------------------------------ helpers
def of_type(resources: Resources, resource_type: str) -> Resources:
    return {name: resource for name, resource in resources.items() if resource["Type"] == resource_type}


def referenced_ids(value: Any) -> set[str]:
    """Logical ids (or parameters) a value refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".", 1)[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {name.split(".", 1)[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
                if isinstance(inner, list):
                    found |= referenced_ids(inner[1])
            else:
                found |= referenced_ids(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= referenced_ids(inner)
    return found


def sub_text(value: Any) -> str:
    """The template string of an Fn::Sub (short form or list form)."""
    assert isinstance(value, dict) and "Fn::Sub" in value, f"expected an Fn::Sub, got {value!r}"
    inner = value["Fn::Sub"]
    return inner[0] if isinstance(inner, list) else inner


def operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(value: Any) -> Iterator[dict[str, Any]]:
    """Every statement of every policy document anywhere inside ``value``."""
    if isinstance(value, dict):
        statements = value.get("Statement")
        if isinstance(statements, list) and "Version" in value:
            yield from (statement for statement in statements if isinstance(statement, dict))
        for inner in value.values():
            yield from policy_statements(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from policy_statements(inner)


def inline_statements(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Permission statements of an IAM role or policy (not its trust policy)."""
    properties = resource["Properties"]
    for policy in properties.get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]
    if "PolicyDocument" in properties:
        yield from properties["PolicyDocument"]["Statement"]


def resolve_local_ref(openapi: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local $refs are supported by API Gateway imports: {ref}"
    node: Any = openapi
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"$ref {ref} does not resolve"
        node = node[part]
    return node


def dereference(openapi: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve_local_ref(openapi, node["$ref"])
    return node


def render_dashboard(body: str) -> Any:
    """The dashboard JSON as CloudFormation would substitute it: inside a string, ${Name} becomes Name (so
    widgets can be checked for the resources they name); a bare ${Parameter} (a number) becomes 1."""
    named = re.sub(r'"[^"]*"', lambda string: re.sub(r"\$\{([^}]+)\}", r"\1", string.group(0)), body)
    return json.loads(re.sub(r"\$\{[^}]+\}", "1", named))


def metric_rows(widget: dict[str, Any]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """(namespace, metric, dimension, value, ...) and options of every metric row of a widget, with the
    dashboard shorthand expanded ("." repeats the item above, "..." the whole row above)."""
    previous: list[str] = []
    for row in widget["properties"].get("metrics", []):
        options = row[-1] if row and isinstance(row[-1], dict) else {}
        values = row[:-1] if options else row
        if not values:  # an expression row
            yield [], options
            continue
        if values == ["..."]:
            values = list(previous)
        values = [previous[index] if value == "." else value for index, value in enumerate(values)]
        previous = values
        yield values, options


def metric_dimensions(values: list[str]) -> dict[str, str]:
    return dict(zip(values[2::2], values[3::2], strict=True))


def openapi_json_schema(openapi: dict[str, Any], node: Any) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema: $refs inlined, ``nullable`` as a "null" type."""
    node = dereference(openapi, node)
    if isinstance(node, list):
        return [openapi_json_schema(openapi, inner) for inner in node]
    if not isinstance(node, dict):
        return node
    schema = {key: openapi_json_schema(openapi, inner) for key, inner in node.items() if key != "nullable"}
    if node.get("nullable"):
        schema["type"] = [schema["type"], "null"]
    return schema


def validator_for(openapi: dict[str, Any], schema_name: str) -> Draft202012Validator:
    schema = openapi_json_schema(openapi, openapi["components"]["schemas"][schema_name])
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for inner in node.values():
            yield from walk(inner)
    elif isinstance(node, list):
        for inner in node:
            yield from walk(inner)


# ------------------------------------------------------------------------------------------ what the code renders
class ListedRates:
    """RateSource over a list of nightly rates."""

    def __init__(self, rates: list[NightlyRate]) -> None:
        self._rates = rates

    def rates(self, city: str, first_night: str, last_night: str) -> list[NightlyRate]:
        return [rate for rate in self._rates if rate.city == city and first_night <= rate.date <= last_night]


class ListedAirports:
    """DestinationSource over a list of airports (the search itself does the matching)."""

    def __init__(self, airports: list[Airport]) -> None:
        self._airports = airports

    def candidates(self, prefix: str) -> list[Airport]:
        return list(self._airports)

    def airport(self, code: str) -> Airport | None:
        return next((airport for airport in self._airports if airport.code == code), None)


def flight_offer(flight_id: str, price: str) -> FlightOffer:
    return FlightOffer(
        flight_id=flight_id,
        carrier="BA",
        origin="JFK",
        destination="LHR",
        departure="2030-06-01T08:30:00Z",
        arrival="2030-06-01T20:30:00Z",
        duration_minutes=420,
        cabin="economy",
        price=Decimal(price),
        currency="EUR",
        seats_left=4,
        provider="example-air",
    )


def nightly_rate(hotel_id: str, night: str, amount: str) -> NightlyRate:
    return NightlyRate(
        hotel_id=hotel_id,
        name=f"Hotel {hotel_id}",
        city="PAR",
        stars=4,
        rating=Decimal("8.7"),
        date=night,
        amount=Decimal(amount),
        currency="EUR",
        available=True,
        max_guests=2,
        provider="example-rooms",
    )


def airport(code: str, name: str, city: str, lat: float, lon: float) -> Airport:
    return Airport(code=code, name=name, city=city, country="FR", lat=lat, lon=lon, time_zone="Europe/Paris")


@cache
def rendered_responses() -> dict[str, Any]:
    """Schema name → a response body as the domains' search code renders it (through its cache port)."""
    tokens = PageTokens(b"template-test-secret")
    flights = FlightSearch(
        InMemoryOffers([flight_offer("BA1", "129.90"), flight_offer("BA2", "99")]), DictCache(), tokens
    )
    rates = [
        nightly_rate(hotel, night, amount)
        for hotel, amount in (("h1", "120"), ("h2", "99.5"))
        for night in ("2030-06-01", "2030-06-02")
    ]
    hotels = HotelSearch(ListedRates(rates), DictCache(), tokens)
    airports = ListedAirports(
        [
            airport("CDG", "Charles de Gaulle International Airport", "Paris", 49.0128, 2.55),
            airport("ORY", "Paris Orly Airport", "Paris", 48.7233, 2.3794),
            airport("PPT", "Papeete Faa'a International Airport", "", -17.5537, -149.6072),
        ]
    )
    destinations = DestinationSearch(airports, DictCache())
    return {
        "FlightSearchResponse": orjson.loads(flights.search(FlightQuery("JFK", "LHR", "2030-06-01", limit=1)).body),
        "HotelSearchResponse": orjson.loads(hotels.search(HotelQuery("PAR", "2030-06-01", "2030-06-03", limit=1)).body),
        "DestinationSearchResponse": orjson.loads(destinations.search(DestinationQuery(("pa",), limit=5)).body),
        "Destination": orjson.loads(destinations.lookup("CDG").body),
    }


# ------------------------------------------------------------------------------------------ reading the code
@cache
def domain_modules(domain: str) -> dict[str, ast.Module]:
    """File name → syntax tree of every module of domains/<domain>/."""
    package = PROJECT_ROOT / "domains" / domain
    return {path.name: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(package.glob("*.py"))}


def module_constant(tree: ast.Module, node: ast.expr) -> Any:
    """The value of a literal, a module-level constant, or a name imported from another module."""
    if isinstance(node, ast.Constant):
        return node.value
    assert isinstance(node, ast.Name), f"not a literal or a name: {ast.dump(node)}"
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == node.id for target in statement.targets
        ):
            return module_constant(tree, statement.value)
        if isinstance(statement, ast.ImportFrom) and any(alias.name == node.id for alias in statement.names):
            return getattr(importlib.import_module(str(statement.module)), node.id)
    raise AssertionError(f"{node.id} is not defined at module level")


@cache
def module_tree(relative: str) -> ast.Module:
    """Syntax tree of one module of the project (e.g. "integrations/ingest.py")."""
    return ast.parse((PROJECT_ROOT / relative).read_text(encoding="utf-8"))


def telemetry_dimensions(tree: ast.Module, where: str) -> dict[str, str]:
    """The dimensions of the EMF metrics a handler emits, from its one
    ``core.observability.FunctionTelemetry(service, domain, ...)``: Powertools adds ``service``, the telemetry
    adds ``Domain``. Read from the source, so no handler (and no Powertools state) is imported."""
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "FunctionTelemetry"
    ]
    assert len(calls) == 1, f"{where} should create its FunctionTelemetry once"
    arguments = dict(zip(("service", "domain"), calls[0].args, strict=False))
    arguments |= {keyword.arg: keyword.value for keyword in calls[0].keywords if keyword.arg in ("service", "domain")}
    return {
        "Domain": module_constant(tree, arguments["domain"]),
        "service": module_constant(tree, arguments["service"]),
    }


def emitted_metric_dimensions(domain: str) -> dict[str, str]:
    """The EMF dimensions of domains/<domain>/handler.py."""
    return telemetry_dimensions(domain_modules(domain)["handler.py"], f"domains/{domain}/handler.py")


def ingest_metric_dimensions(ingest: IngestDomain) -> dict[str, str]:
    """The EMF dimensions of integrations/<domain>_ingest.py."""
    return telemetry_dimensions(module_tree(ingest.source), ingest.source)


def counted_metrics(relative: str) -> set[str]:
    """The metric names a module counts through its MetricsSink (``....count("Name")``)."""
    return {
        node.args[0].value
        for node in ast.walk(module_tree(relative))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "count"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def named_constant(relative: str, name: str) -> Any:
    """A module-level constant of a module, from its source."""
    tree = module_tree(relative)
    return module_constant(tree, ast.Name(id=name, ctx=ast.Load()))


def ingest_event_types(ingest: IngestDomain) -> set[str]:
    """The event types an ingest handler accepts: the string literals of its one ``DomainIngest(..., {types}, ...)``."""
    tree = module_tree(ingest.source)
    (call,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "DomainIngest"
    ]
    return {node.value for node in ast.walk(call.args[1]) if isinstance(node, ast.Constant)}


def ingest_table_variable(ingest: IngestDomain) -> str:
    """The variable naming the domain table, from the handler's one ``ingest_pipeline(SPEC, "<VARIABLE>", ...)``."""
    tree = module_tree(ingest.source)
    (call,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "ingest_pipeline"
    ]
    return str(module_constant(tree, call.args[1]))


def required_settings(function_name: str) -> set[str]:
    """The variables a core/settings.py reader requires by name (``_required(environ, "NAME", ...)``)."""
    tree = module_tree("core/settings.py")
    (function,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function_name]
    return {
        call.args[1].value
        for call in ast.walk(function)
        if isinstance(call, ast.Call)
        and getattr(call.func, "id", None) == "_required"
        and isinstance(call.args[1], ast.Constant)
    }


def environment_names(relative: str) -> set[str]:
    """The environment variables a module reads: its string literals in UPPER_SNAKE_CASE (what it indexes
    ``os.environ`` with; the modules outside the VPC read their settings directly)."""
    return {
        node.value
        for node in ast.walk(module_tree(relative))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", node.value)
    }


def public_methods(relative: str, class_name: str) -> set[str]:
    tree = module_tree(relative)
    (found,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name]
    return {
        node.name
        for node in found.body
        if isinstance(node, ast.FunctionDef)
        and not node.name.startswith("_")
        and not any(isinstance(decorator, ast.Name) and decorator.id == "property" for decorator in node.decorator_list)
    }


def ingest_dynamodb_actions() -> dict[str, set[str]]:
    """{"store": actions on the domain table, "quarantine": actions on the quarantine table}, from
    integrations/ingest.py's calls of ``self._store.<write>`` and ``self._quarantine.<write>`` (core.store.Writes)."""
    found: dict[str, set[str]] = {"store": set(), "quarantine": set()}
    for node in ast.walk(module_tree("integrations/ingest.py")):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr.lstrip("_") in found
        ):
            assert node.func.attr in WRITE_ACTIONS, f"map core.store.Writes.{node.func.attr} to its DynamoDB action"
            found[node.func.value.attr.lstrip("_")].add(WRITE_ACTIONS[node.func.attr])
    return found


def store_methods() -> set[str]:
    """The public methods of core.store.DynamoTable (the only way domain code reaches DynamoDB)."""
    return public_methods("core/store.py", "DynamoTable")


def dynamodb_actions_called(domain: str) -> set[str]:
    """The DynamoDB actions the code of a domain sends, from its calls of core.store.DynamoTable's reads."""
    methods = store_methods()
    called = {
        node.func.attr
        for tree in domain_modules(domain).values()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in methods
    }
    return {STORE_ACTIONS[method] for method in called}


def settings_read(domain: str) -> tuple[str, bool]:
    """(table variable, reads PAGE_TOKEN_SECRET) from the domain's one call of core.settings.settings_from_env."""
    found = []
    for tree in domain_modules(domain).values():
        imported = any(
            isinstance(node, ast.ImportFrom)
            and node.module == "core.settings"
            and any(alias.name == "settings_from_env" and alias.asname is None for alias in node.names)
            for node in tree.body
        )
        for node in ast.walk(tree):
            if imported and isinstance(node, ast.Call) and getattr(node.func, "id", None) == "settings_from_env":
                keywords = {keyword.arg: module_constant(tree, keyword.value) for keyword in node.keywords}
                found.append((module_constant(tree, node.args[0]), keywords.get("page_tokens", True)))
    assert len(found) == 1, f"domains/{domain} should read its settings once through core.settings: {found}"
    return found[0]


# ------------------------------------------------------------------------------------------ lint
def test_cfn_lint_reports_nothing() -> None:
    """Given template.yaml, when cfn-lint runs with its default rules, then it reports no error or warning."""
    matches = lint_file(Path(TEMPLATE_PATH))

    assert [str(match) for match in matches] == []


# ------------------------------------------------------------------------------------------ functions
def test_every_function_is_arm64_python313_with_active_tracing(resources: Resources) -> None:
    """Given every Lambda function, then it runs python3.13 on arm64 (cheaper per ms) with X-Ray active."""
    functions = of_type(resources, "AWS::Lambda::Function")
    assert functions, "the template defines no function"

    for name, function in functions.items():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13", name
        assert properties["Architectures"] == ["arm64"], name
        assert properties["TracingConfig"] == {"Mode": "Active"}, name


def test_every_function_logs_json_to_its_own_log_group_with_retention(resources: Resources) -> None:
    """Given every function, then it logs JSON to a log group of this stack that has a retention and the
    name Lambda would use, so no log group is created outside the stack with logs kept forever."""
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        logging_config = function["Properties"]["LoggingConfig"]
        assert logging_config["LogFormat"] == "JSON", name

        log_group_id = logging_config["LogGroup"]["Ref"]
        log_group = resources[log_group_id]
        assert log_group["Type"] == "AWS::Logs::LogGroup", name
        assert "RetentionInDays" in log_group["Properties"], f"{log_group_id} keeps logs forever"
        function_name = sub_text(function["Properties"]["FunctionName"])
        assert sub_text(log_group["Properties"]["LogGroupName"]) == f"/aws/lambda/{function_name}", name


def test_every_log_group_has_a_retention(resources: Resources) -> None:
    """Given every log group in the stack (functions, API, VPC flow logs), then its logs expire."""
    log_groups = of_type(resources, "AWS::Logs::LogGroup")

    assert log_groups
    for name, log_group in log_groups.items():
        assert log_group["Properties"].get("RetentionInDays"), name


def test_every_function_has_its_own_role(resources: Resources) -> None:
    """Given the functions, then no two share an IAM role (each role holds exactly one function's rights)."""
    roles = [
        referenced_ids(function["Properties"]["Role"]).pop()
        for function in of_type(resources, "AWS::Lambda::Function").values()
    ]

    assert len(roles) == len(set(roles))
    for role in roles:
        assert resources[role]["Type"] == "AWS::IAM::Role"


def test_every_function_and_table_is_described_by_these_tests(resources: Resources) -> None:
    """Given the template's functions and tables, then each is a search domain's (SEARCH_DOMAINS), an ingest
    domain's (INGEST_DOMAINS), a function outside the VPC (EDGE_FUNCTIONS) or the quarantine table, so every check
    parametrized by those covers all of them; a new function must be described there."""
    functions = set(of_type(resources, "AWS::Lambda::Function"))
    tables = set(of_type(resources, "AWS::DynamoDB::Table"))

    assert functions == (
        {domain.function for domain in SEARCH_DOMAINS}
        | {ingest.function for ingest in INGEST_DOMAINS}
        | {edge.function for edge in EDGE_FUNCTIONS}
    )
    assert tables == {domain.table for domain in SEARCH_DOMAINS} | {QUARANTINE_TABLE}
    assert {ingest.table for ingest in INGEST_DOMAINS} <= tables


def test_every_handler_is_a_function_of_the_code(resources: Resources) -> None:
    """Given every function, then its Handler "package.module.function" names a module of the project that
    defines that function (a wrong name fails every invocation with Runtime.ImportModuleError)."""
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        module, handler = function["Properties"]["Handler"].rsplit(".", 1)
        relative = module.replace(".", "/") + ".py"
        assert (PROJECT_ROOT / relative).is_file(), f"{name}: no {relative}"
        defined = {node.name for node in module_tree(relative).body if isinstance(node, ast.FunctionDef)}
        assert handler in defined, f"{name}: {relative} defines no {handler}"


def test_every_function_is_built_from_its_own_code_key_with_the_core_layer(
    resources: Resources, template: dict[str, Any]
) -> None:
    """Given every function, then its zip is <Name>CodeKey in the artifact bucket (a parameter without default, so
    a deploy cannot silently reuse another function's zip) and it runs with the shared core layer."""
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        code_key = name.removesuffix("Function") + "CodeKey"
        properties = function["Properties"]
        assert properties["Code"] == {"S3Bucket": ref("ArtifactBucket"), "S3Key": ref(code_key)}, name
        assert "Default" not in template["Parameters"][code_key], name
        assert properties["Layers"] == [ref("CoreLayer")], name


@by_domain
def test_search_function_handler_is_the_domain_lambda_handler(resources: Resources, domain: SearchDomain) -> None:
    """Given a search function, then its Handler is domains/<domain>/handler.py's lambda_handler, which
    exists (a wrong name fails every invocation with Runtime.ImportModuleError)."""
    handler = resources[domain.function]["Properties"]["Handler"]
    tree = domain_modules(domain.name)["handler.py"]

    assert handler == f"domains.{domain.name}.handler.lambda_handler"
    assert "lambda_handler" in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


@by_domain
def test_search_environment_has_exactly_the_variables_the_code_reads(
    resources: Resources, domain: SearchDomain
) -> None:
    """Given a search function, then its environment has exactly the names its code, core/settings.py and
    Powertools read: a missing one fails at cold start, an extra one (POWERTOOLS_SERVICE_NAME) would
    override the service the code sets when the local stack merges all functions' variables, and the
    page-token key goes only to functions that sign page tokens."""
    variables = resources[domain.function]["Properties"]["Environment"]["Variables"]
    expected = SHARED_ENVIRONMENT | {domain.table_variable} | ({"PAGE_TOKEN_SECRET"} if domain.paged else set())

    assert set(variables) == expected
    # The code reads the same table variable, and PAGE_TOKEN_SECRET exactly when the template hands it over.
    assert settings_read(domain.name) == (domain.table_variable, domain.paged)


@by_domain
def test_search_environment_points_at_the_stack_resources(resources: Resources, domain: SearchDomain) -> None:
    """Given a search function's environment, then each variable is wired to the resource it names: its own
    table, the shared cache (as the IAM user, over TLS) and the page-token secret."""
    variables = resources[domain.function]["Properties"]["Environment"]["Variables"]

    assert variables[domain.table_variable] == {"Ref": domain.table}
    assert variables["CACHE_HOST"] == {"Fn::GetAtt": ["SearchCache", "Endpoint.Address"]}
    assert variables["CACHE_PORT"] == {"Fn::GetAtt": ["SearchCache", "Endpoint.Port"]}
    assert variables["CACHE_TLS"] == "true"
    assert variables["CACHE_AUTH"] == "iam"
    assert variables["CACHE_USER"] == {"Ref": "CacheIamUser"}
    assert variables["CACHE_NAME"] == {"Ref": "SearchCache"}
    assert variables["CACHE_TTL_SECONDS"] == {"Ref": "SearchCacheTtlSeconds"}
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "TravelSearch"
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    if domain.paged:
        assert sub_text(variables["PAGE_TOKEN_SECRET"]) == "{{resolve:secretsmanager:${PageTokenSecret}:SecretString}}"


def test_page_token_secret_is_generated_long_and_without_punctuation(resources: Resources) -> None:
    """Given the page-token signing key, then it is generated (never in the template) and at least 32 characters."""
    secret = resources["PageTokenSecret"]
    generated = secret["Properties"]["GenerateSecretString"]

    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert generated["PasswordLength"] >= 32
    assert generated["ExcludePunctuation"] is True
    assert "SecretString" not in secret["Properties"]


@by_domain
def test_search_function_runs_in_the_private_subnets_with_the_core_layer(
    resources: Resources, template: dict[str, Any], domain: SearchDomain
) -> None:
    """Given a search function, then it runs in both private subnets behind the functions' security group,
    with the shared core layer built for the same runtime and architecture, its own code key and memory
    parameter, and a timeout below API Gateway's 29 s integration limit."""
    properties = resources[domain.function]["Properties"]
    layer = resources["CoreLayer"]["Properties"]

    assert properties["VpcConfig"]["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    assert referenced_ids(properties["VpcConfig"]["SecurityGroupIds"]) == {"LambdaSecurityGroup"}
    assert properties["Layers"] == [{"Ref": "CoreLayer"}]
    assert layer["CompatibleRuntimes"] == ["python3.13"]
    assert layer["CompatibleArchitectures"] == ["arm64"]
    assert properties["Code"] == {
        "S3Bucket": {"Ref": "ArtifactBucket"},
        "S3Key": {"Ref": f"{domain.prefix}SearchCodeKey"},
    }
    assert properties["MemorySize"] == {"Ref": f"{domain.prefix}SearchMemorySize"}
    assert template["Parameters"][f"{domain.prefix}SearchMemorySize"]["Default"] >= 128
    assert properties["Timeout"] < 29


@by_domain
def test_reserved_concurrency_minus_one_means_unreserved(
    template: dict[str, Any], resources: Resources, domain: SearchDomain
) -> None:
    """Given a function's reserved-concurrency parameter at its default -1, then the property is left out
    (unreserved), because Lambda rejects -1 as a value."""
    parameter = f"{domain.prefix}SearchReservedConcurrency"
    reserved = resources[domain.function]["Properties"]["ReservedConcurrentExecutions"]
    condition, when_set, when_unset = reserved["Fn::If"]

    assert template["Parameters"][parameter]["Default"] == -1
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, "-1"]}]}
    assert when_set == {"Ref": parameter}
    assert when_unset == {"Ref": "AWS::NoValue"}


# ------------------------------------------------------------------------------------------ API: routes
def test_every_operation_has_an_apigateway_integration(openapi: dict[str, Any]) -> None:
    """Given every path and method of the OpenAPI body, then API Gateway knows what answers it."""
    found = list(operations(openapi))

    assert found
    for path, method, operation in found:
        integration = operation.get("x-amazon-apigateway-integration")
        assert integration and integration.get("type"), f"{method.upper()} {path} has no integration"


def test_every_proxy_integration_invokes_a_function_allowed_for_that_route(
    openapi: dict[str, Any], resources: Resources, rest_api_id: str
) -> None:
    """Given every aws_proxy integration, then its uri names a function of this template, and a Lambda
    permission lets this API invoke it on that method and path (without one, every call is a 500)."""
    permissions = of_type(resources, "AWS::Lambda::Permission")
    proxied = 0

    for path, method, operation in operations(openapi):
        integration = operation["x-amazon-apigateway-integration"]
        if integration["type"] != "aws_proxy":
            continue
        proxied += 1
        assert integration["httpMethod"] == "POST", "Lambda is always invoked with POST"
        match = re.search(r"/functions/\$\{(\w+)\.Arn\}/invocations$", sub_text(integration["uri"]))
        assert match, f"{method.upper()} {path}: uri does not name a function of this template"
        function_id = match.group(1)
        assert resources[function_id]["Type"] == "AWS::Lambda::Function"

        # The source ARN API Gateway presents when it invokes: ...:<api>/<stage>/<METHOD>/<path with values>.
        concrete_path = re.sub(r"\{[^}]+\}", "value", path)
        invocation = (
            "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
            f"${{{rest_api_id}}}/prod/{method.upper()}{concrete_path}"
        )
        allowing = [
            name
            for name, permission in permissions.items()
            if referenced_ids(permission["Properties"]["FunctionName"]) == {function_id}
            and permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
            and permission["Properties"]["Action"] == "lambda:InvokeFunction"
            and fnmatch.fnmatchcase(invocation, sub_text(permission["Properties"]["SourceArn"]))
        ]
        assert allowing, f"no Lambda permission lets {rest_api_id} invoke {function_id} for {method.upper()} {path}"
    assert proxied, "no route is served by a function"


def test_function_routes_are_the_search_routes_and_the_partner_route(openapi: dict[str, Any]) -> None:
    """Given the function-backed routes, then they are exactly the search domains' routes, each on its own domain's
    function (the destinations handler tells its two routes apart by resource), and the partner events route on
    the partner events function."""
    served = {}
    for path, method, operation in operations(openapi):
        integration = operation["x-amazon-apigateway-integration"]
        if integration["type"] == "aws_proxy":
            match = re.search(r"/functions/\$\{(\w+)\.Arn\}/invocations$", sub_text(integration["uri"]))
            assert match, f"{method.upper()} {path}"
            served[(path, method)] = match.group(1)

    assert served == {(path, method): domain.function for domain, path, method, _ in SEARCH_ROUTES} | {
        PARTNER_ROUTE: "PartnerEventsFunction"
    }


def test_permission_source_arns_are_scoped_to_this_api(resources: Resources, rest_api_id: str) -> None:
    """Given every Lambda permission for API Gateway, then it names this API and one method and path,
    so no other API in the account can invoke the function."""
    for name, permission in of_type(resources, "AWS::Lambda::Permission").items():
        if permission["Properties"]["Principal"] != "apigateway.amazonaws.com":
            continue
        source = sub_text(permission["Properties"]["SourceArn"])
        assert f":${{{rest_api_id}}}/" in source, name
        assert re.search(r"/(GET|POST|PUT|DELETE|PATCH)/v\d+/", source), f"{name} allows every method or path"


def test_every_operation_except_health_requires_an_api_key(openapi: dict[str, Any]) -> None:
    """Given every operation, then it requires the api_key scheme, except the health check which needs none."""
    for path, method, operation in operations(openapi):
        if (path, method) in PUBLIC_ROUTES:
            assert operation["security"] == [], f"{method.upper()} {path} must be callable without a key"
        else:
            assert operation.get("security") == [{"api_key": []}], f"{method.upper()} {path} is not behind a key"


def test_api_keys_are_read_from_the_x_api_key_header(openapi: dict[str, Any], resources: Resources) -> None:
    """Given the API, then keys come from the x-api-key header (what API Gateway usage plans count)."""
    rest_api = of_type(resources, "AWS::ApiGateway::RestApi")["TravelApi"]["Properties"]

    assert openapi["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }
    assert rest_api["ApiKeySourceType"] == "HEADER"
    assert rest_api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert openapi["openapi"].startswith("3.0")


def test_health_is_answered_by_the_gateway_with_status_ok(openapi: dict[str, Any]) -> None:
    """Given GET /v1/health, then API Gateway answers 200 {"status": "ok"} itself (mock), no function involved."""
    operation = openapi["paths"]["/v1/health"]["get"]
    integration = operation["x-amazon-apigateway-integration"]

    assert integration["type"] == "mock"
    assert json.loads(integration["requestTemplates"]["application/json"]) == {"statusCode": 200}
    ok = [response for response in integration["responses"].values() if str(response["statusCode"]) == "200"]
    assert len(ok) == 1
    assert json.loads(ok[0]["responseTemplates"]["application/json"]) == {"status": "ok"}
    schema = dereference(openapi, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert schema is openapi["components"]["schemas"]["Health"]


def test_flights_search_declares_its_query_parameters(openapi: dict[str, Any]) -> None:
    """Given GET /v1/flights/search, then origin, destination and date are required and the optional
    parameters are declared with their bounds, so clients and the local gateway see the same contract."""
    operation = openapi["paths"]["/v1/flights/search"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}

    assert all(parameter["in"] == "query" for parameter in parameters.values())
    assert {name for name, parameter in parameters.items() if parameter.get("required")} == {
        "origin",
        "destination",
        "date",
    }
    assert set(parameters) == {
        "origin",
        "destination",
        "date",
        "adults",
        "cabin",
        "sort",
        "limit",
        "max_price",
        "page_token",
    }
    adults = parameters["adults"]["schema"]
    assert (adults["type"], adults["minimum"], adults["maximum"]) == ("integer", 1, 9)
    assert parameters["cabin"]["schema"]["enum"] == ["economy", "premium", "business", "first"]
    assert parameters["sort"]["schema"]["enum"] == ["price", "duration", "departure"]
    limit = parameters["limit"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 50)
    assert parameters["max_price"]["schema"]["type"] == "string"
    assert parameters["page_token"]["schema"]["type"] == "string"


def test_hotels_search_declares_its_query_parameters(openapi: dict[str, Any]) -> None:
    """Given GET /v1/hotels/search, then city, check_in and check_out are required and the optional parameters
    are the ones domains/hotels/query.py accepts, with the same bounds."""
    operation = openapi["paths"]["/v1/hotels/search"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}

    assert all(parameter["in"] == "query" for parameter in parameters.values())
    assert {name for name, parameter in parameters.items() if parameter.get("required")} == {
        "city",
        "check_in",
        "check_out",
    }
    assert set(parameters) == HOTEL_PARAMETERS
    assert parameters["check_in"]["schema"] == parameters["check_out"]["schema"] == {"type": "string", "format": "date"}
    for name, low, high in (("guests", 1, 9), ("min_stars", 1, 5), ("limit", 1, 50)):
        schema = parameters[name]["schema"]
        assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", low, high), name
    assert parameters["sort"]["schema"]["enum"] == list(HOTEL_SORTS) == ["price", "rating"]
    assert parameters["max_price"]["schema"]["type"] == "string"
    assert parameters["page_token"]["schema"]["type"] == "string"


def test_destinations_search_declares_its_query_parameters(openapi: dict[str, Any]) -> None:
    """Given GET /v1/destinations/search, then q (2-50 characters) is required and limit (1-20) optional,
    as domains/destinations/query.py accepts them."""
    operation = openapi["paths"]["/v1/destinations/search"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}

    assert all(parameter["in"] == "query" for parameter in parameters.values())
    assert set(parameters) == SEARCH_PARAMETERS == {"q", "limit"}
    assert parameters["q"]["required"] is True
    assert not parameters["limit"].get("required")
    q = parameters["q"]["schema"]
    assert (q["type"], q["minLength"], q["maxLength"]) == ("string", MIN_LENGTH, MAX_LENGTH) == ("string", 2, 50)
    limit = parameters["limit"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, MAX_LIMIT) == ("integer", 1, 20)


def test_destination_lookup_takes_the_code_from_the_path_only(openapi: dict[str, Any]) -> None:
    """Given GET /v1/destinations/{code}, then its one parameter is the required path parameter code (a path
    parameter must be required), and no query parameter (the handler rejects any)."""
    operation = openapi["paths"]["/v1/destinations/{code}"]["get"]
    path_item_parameters = openapi["paths"]["/v1/destinations/{code}"].get("parameters", [])

    assert frozenset() == LOOKUP_PARAMETERS
    assert path_item_parameters == []
    (parameter,) = operation["parameters"]
    assert (parameter["name"], parameter["in"], parameter["required"]) == ("code", "path", True)
    assert parameter["schema"]["type"] == "string"
    assert re.fullmatch(parameter["schema"]["pattern"], "CDG") and re.fullmatch(parameter["schema"]["pattern"], "cdg")


@by_route
def test_request_validation_only_checks_required_parameters(
    openapi: dict[str, Any], domain: SearchDomain, path: str, method: str, schema_name: str
) -> None:
    """Given a search route, then its request validator checks parameters only: the function does the strict
    checks, so every validation error has the one error shape with a reason."""
    validators = openapi["x-amazon-apigateway-request-validators"]
    operation = openapi["paths"][path][method]

    validator = validators[operation["x-amazon-apigateway-request-validator"]]
    assert validator == {"validateRequestParameters": True, "validateRequestBody": False}


@by_route
def test_search_route_documents_its_responses(
    openapi: dict[str, Any], domain: SearchDomain, path: str, method: str, schema_name: str
) -> None:
    """Given a search route, then 200 returns its domain's schema with X-Cache and X-Request-Id headers, and
    every error status it can answer (404 for a lookup) returns the Error shape."""
    responses = openapi["paths"][path][method]["responses"]
    schemas = openapi["components"]["schemas"]
    lookup = "{" in path

    ok = dereference(openapi, responses["200"])
    assert dereference(openapi, ok["content"]["application/json"]["schema"]) is schemas[schema_name]
    assert set(ok["headers"]) == {"X-Cache", "X-Request-Id"}
    x_cache = dereference(openapi, ok["headers"]["X-Cache"])
    assert x_cache["schema"]["enum"] == ["HIT", "MISS", "BYPASS", "STALE"]
    expected = {"200", *ERROR_STATUSES} | ({"404"} if lookup else set())
    assert set(responses) == expected
    for status in expected - {"200"}:
        response = dereference(openapi, responses[status])
        assert dereference(openapi, response["content"]["application/json"]["schema"]) is schemas["Error"], status


def test_error_and_offer_schemas_match_what_the_code_renders(openapi: dict[str, Any]) -> None:
    """Given the component schemas, then Error is {"error": {"code", "message"}} and closed, a FlightOffer
    requires every field the search renders, and a price is a 2-decimal string with an ISO currency."""
    schemas = openapi["components"]["schemas"]

    error = schemas["Error"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    inner = error["properties"]["error"]
    assert set(inner["required"]) == {"code", "message"} and inner["additionalProperties"] is False

    offer = schemas["FlightOffer"]
    expected = {
        "flight_id",
        "carrier",
        "origin",
        "destination",
        "departure",
        "arrival",
        "duration_minutes",
        "cabin",
        "price",
        "seats_left",
        "provider",
    }
    assert set(offer["required"]) == expected == set(offer["properties"])
    assert offer["properties"]["departure"]["format"] == "date-time"
    assert offer["properties"]["duration_minutes"]["type"] == "integer"
    price = dereference(openapi, offer["properties"]["price"])
    assert re.fullmatch(price["properties"]["amount"]["pattern"], "129.90")
    assert not re.fullmatch(price["properties"]["amount"]["pattern"], "129.9")
    assert re.fullmatch(price["properties"]["currency"]["pattern"], "EUR")
    assert not re.fullmatch(price["properties"]["currency"]["pattern"], "eur")

    response = schemas["FlightSearchResponse"]
    assert dereference(openapi, response["properties"]["results"]["items"]) is offer
    assert response["properties"]["count"]["type"] == "integer"
    assert response["properties"]["next_page_token"] == {"type": "string", "nullable": True}


@by_route
def test_route_schema_is_exactly_what_the_code_renders(
    openapi: dict[str, Any], domain: SearchDomain, path: str, method: str, schema_name: str
) -> None:
    """Given a search route's 200 schema, when the domain's own search code renders a response (a full page
    with a next page where the route pages), then the response validates against the schema, and every object
    in the schema is closed with every property required, so the schema names exactly the rendered fields."""
    body = rendered_responses()[schema_name]
    validator = validator_for(openapi, schema_name)

    validator.validate(body)
    if "results" in body:
        assert body["results"], "the sample search should find something"
    if domain.paged:
        assert body["next_page_token"], "the sample search should have a next page"
    objects = [node for node in walk(validator.schema) if isinstance(node, dict) and "properties" in node]
    assert objects
    for node in objects:
        assert node.get("additionalProperties") is False, node
        assert set(node["required"]) == set(node["properties"]), node
    with pytest.raises(ValidationError):
        validator.validate({**body, "unexpected": 1})


def test_every_openapi_ref_resolves(openapi: dict[str, Any]) -> None:
    """Given every $ref in the OpenAPI body, then it points at a component that exists (the import fails otherwise)."""

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for inner in node.values():
                yield from refs(inner)
        elif isinstance(node, list):
            for inner in node:
                yield from refs(inner)

    found = list(refs(openapi))
    assert found
    for ref in found:
        resolve_local_ref(openapi, ref)


# ------------------------------------------------------------------------------------------ API: gateway errors
def test_gateway_errors_have_the_one_error_shape(resources: Resources) -> None:
    """Given every gateway response (bad key, throttled, quota, missing parameter, unknown route, 4xx, 5xx),
    when API Gateway fills in its message, then the body is {"error": {"code", "message"}}."""
    gateway_responses = of_type(resources, "AWS::ApiGateway::GatewayResponse")

    assert {response["Properties"]["ResponseType"] for response in gateway_responses.values()} == GATEWAY_RESPONSE_TYPES
    for name, response in gateway_responses.items():
        template = response["Properties"]["ResponseTemplates"]["application/json"]
        rendered = json.loads(template.replace("$context.error.messageString", '"Forbidden"'))
        assert set(rendered) == {"error"}, name
        assert set(rendered["error"]) == {"code", "message"}, name
        assert re.fullmatch(r"[a-z_]+", rendered["error"]["code"]), name


def test_gateway_errors_use_the_expected_status_codes(resources: Resources) -> None:
    """Given the gateway responses, then throttling and quota are 429, a bad key 403, a missing required
    parameter 400 and an unknown route 404."""
    status = {
        response["Properties"]["ResponseType"]: response["Properties"].get("StatusCode")
        for response in of_type(resources, "AWS::ApiGateway::GatewayResponse").values()
    }

    assert status["THROTTLED"] == "429"
    assert status["QUOTA_EXCEEDED"] == "429"
    assert status["INVALID_API_KEY"] == "403"
    assert status["BAD_REQUEST_PARAMETERS"] == "400"
    assert status["MISSING_AUTHENTICATION_TOKEN"] == "404"


def test_gateway_responses_in_the_body_match_the_resources(openapi: dict[str, Any], resources: Resources) -> None:
    """Given the gateway responses, then the body's x-amazon-apigateway-gateway-responses say exactly what the
    GatewayResponse resources say: a body update overwrites the API and re-applies the body's version."""
    in_body = openapi["x-amazon-apigateway-gateway-responses"]
    as_resources = {
        response["Properties"]["ResponseType"]: response["Properties"]
        for response in of_type(resources, "AWS::ApiGateway::GatewayResponse").values()
    }

    assert set(in_body) == set(as_resources)
    for response_type, properties in as_resources.items():
        body_version = in_body[response_type]
        body_status = body_version.get("statusCode")
        assert (str(body_status) if body_status is not None else None) == properties.get("StatusCode"), response_type
        assert body_version.get("responseParameters", {}) == properties.get("ResponseParameters", {}), response_type
        assert body_version["responseTemplates"] == properties["ResponseTemplates"], response_type


# ------------------------------------------------------------------------------------------ API: stage, plans, keys
def test_stage_traces_logs_and_throttles(resources: Resources) -> None:
    """Given the stage, then it is traced, writes JSON access logs with the fields operators search by to
    a log group with retention, and applies metrics, error logging and throttling to every method."""
    stage = resources["ApiStage"]["Properties"]

    assert stage["TracingEnabled"] is True
    access_log_group = referenced_ids(stage["AccessLogSetting"]["DestinationArn"]).pop()
    assert resources[access_log_group]["Type"] == "AWS::Logs::LogGroup"
    access_log = json.loads(stage["AccessLogSetting"]["Format"])
    assert set(access_log) >= {
        "requestId",
        "ip",
        "caller",
        "apiKeyId",
        "httpMethod",
        "resourcePath",
        "status",
        "responseLatency",
        "integrationLatency",
        "errors",
    }
    (settings,) = stage["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert settings["MetricsEnabled"] is True
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    # Logging needs the account's CloudWatch role first.
    assert "ApiGatewayAccount" in resources["ApiStage"]["DependsOn"]


def test_every_usage_plan_has_a_tier_throttle_and_quota_on_the_stage(resources: Resources) -> None:
    """Given the usage plans, then each applies to the stage with a throttle and a daily quota and carries
    the tier tag the local stack reads; the tiers are basic, pro and partner."""
    plans = of_type(resources, "AWS::ApiGateway::UsagePlan")
    tiers = set()

    for name, plan in plans.items():
        properties = plan["Properties"]
        tags = {tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])}
        assert "tier" in tags, f"{name} has no tier tag"
        tiers.add(tags["tier"])
        assert properties["Throttle"]["RateLimit"] > 0 and properties["Throttle"]["BurstLimit"] > 0, name
        assert properties["Quota"]["Limit"] > 0 and properties["Quota"]["Period"] in {"DAY", "WEEK", "MONTH"}, name
        assert properties["ApiStages"] == [{"ApiId": {"Ref": "TravelApi"}, "Stage": {"Ref": "ApiStage"}}], name
    assert tiers == {"basic", "pro", "partner"}


def test_usage_plan_limits_rise_with_the_tier(resources: Resources) -> None:
    """Given the tiers, then pro allows more than partner, and partner more than basic."""
    plans = {
        next(tag["Value"] for tag in plan["Properties"]["Tags"] if tag["Key"] == "tier"): plan["Properties"]
        for plan in of_type(resources, "AWS::ApiGateway::UsagePlan").values()
    }

    def limits(tier: str) -> tuple[int, int, int]:
        plan = plans[tier]
        return plan["Throttle"]["RateLimit"], plan["Throttle"]["BurstLimit"], plan["Quota"]["Limit"]

    assert limits("basic") == (10, 20, 10_000)
    assert limits("partner") == (50, 100, 500_000)
    assert limits("pro") == (100, 200, 1_000_000)


def test_every_api_key_is_enabled_and_in_a_usage_plan_on_the_stage(resources: Resources) -> None:
    """Given every API key, then it is enabled and attached to a usage plan of the stage (a key in no plan is
    rejected by API Gateway with 403), so the attachment is made only once the stage exists."""
    plan_keys = of_type(resources, "AWS::ApiGateway::UsagePlanKey").values()
    plans_of_key = {
        referenced_ids(key["Properties"]["KeyId"]).pop(): referenced_ids(key["Properties"]["UsagePlanId"]).pop()
        for key in plan_keys
    }

    keys = of_type(resources, "AWS::ApiGateway::ApiKey")
    assert set(keys) == {"BasicApiKey", "PartnerApiKey"}
    for name, key in keys.items():
        assert key["Properties"]["Enabled"] is True, name
        assert "StageKeys" not in key["Properties"], name
        assert name in plans_of_key, f"{name} is in no usage plan"
        plan = resources[plans_of_key[name]]["Properties"]
        assert [stage["Stage"] for stage in plan["ApiStages"]] == [ref("ApiStage")], name
    for key in plan_keys:
        assert key["Properties"]["KeyType"] == "API_KEY"


def test_only_partner_tier_keys_may_push_events(resources: Resources) -> None:
    """Given the partner events function, then the key ids it accepts (PARTNER_KEY_IDS) are the keys of the
    partner-tier usage plan, so a basic or pro key gets 403 even though the route only asks for "a key"."""
    variables = resources["PartnerEventsFunction"]["Properties"]["Environment"]["Variables"]
    partner_plans = {
        name
        for name, plan in of_type(resources, "AWS::ApiGateway::UsagePlan").items()
        if {"Key": "tier", "Value": "partner"} in plan["Properties"]["Tags"]
    }
    partner_keys = {
        referenced_ids(key["Properties"]["KeyId"]).pop()
        for key in of_type(resources, "AWS::ApiGateway::UsagePlanKey").values()
        if referenced_ids(key["Properties"]["UsagePlanId"]) <= partner_plans
    }

    assert referenced_ids(variables["PARTNER_KEY_IDS"]) == partner_keys == {"PartnerApiKey"}


# ------------------------------------------------------------------------------------------ IAM
def test_no_policy_statement_allows_every_action(template: dict[str, Any]) -> None:
    """Given every policy document in the template (roles, key and endpoint policies), then no statement
    allows "*" or "service:*", and none grants through NotAction."""
    statements = list(policy_statements(template["Resources"]))

    assert statements
    for statement in statements:
        assert "NotAction" not in statement, statement
        for action in as_list(statement.get("Action", [])):
            assert action != "*", statement
            assert not re.fullmatch(r"[A-Za-z0-9-]+:\*", action), statement


def test_every_wildcard_resource_statement_is_explained(resources: Resources) -> None:
    """Given every IAM statement on Resource "*", then it has a Sid and the resource's Metadata Reasons
    explains that Sid (AWS requires "*" only for a few actions: X-Ray, VPC ENIs)."""
    wildcard_statements = 0
    for name, resource in resources.items():
        if resource["Type"] not in IAM_TYPES_WITH_INLINE_STATEMENTS:
            continue
        reasons = resource.get("Metadata", {}).get("Reasons", {})
        for statement in inline_statements(resource):
            if "*" in as_list(statement["Resource"]):
                wildcard_statements += 1
                assert statement.get("Sid"), f"{name}: a Resource '*' statement has no Sid"
                assert reasons.get(statement["Sid"]), f"{name}: Metadata.Reasons does not explain {statement['Sid']}"
    assert wildcard_statements, "expected the X-Ray and VPC ENI statements"


@by_domain
def test_search_role_grants_exact_actions_on_exact_resources(resources: Resources, domain: SearchDomain) -> None:
    """Given a search function's role, then it may read its own table with exactly the DynamoDB actions its
    code calls (nothing on another domain's table), write its own log group, connect to the search cache as
    its IAM user, and send traces and ENI calls."""
    role = resources[domain.role]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    grants = {
        statement["Sid"]: (sorted(as_list(statement["Action"])), as_list(statement["Resource"]))
        for statement in inline_statements(role)
    }
    dynamodb = [
        statement
        for statement in inline_statements(role)
        if any(action.startswith("dynamodb:") for action in as_list(statement["Action"]))
    ]

    assert referenced_ids(resources[domain.function]["Properties"]["Role"]) == {domain.role}
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    assert "ManagedPolicyArns" not in role["Properties"]
    assert all(statement["Effect"] == "Allow" for statement in inline_statements(role))
    assert {action for statement in dynamodb for action in as_list(statement["Action"])} == domain.dynamodb_actions
    for statement in dynamodb:
        assert as_list(statement["Resource"]) == [{"Fn::GetAtt": [domain.table, "Arn"]}], statement["Sid"]
    assert grants["WriteOwnLogs"] == (
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [{"Fn::GetAtt": [domain.log_group, "Arn"]}],
    )
    assert grants["ConnectToSearchCache"] == (
        ["elasticache:Connect"],
        [{"Fn::GetAtt": ["SearchCache", "ARN"]}, {"Fn::GetAtt": ["CacheIamUser", "Arn"]}],
    )
    assert grants["XRay"] == (["xray:PutTelemetryRecords", "xray:PutTraceSegments"], ["*"])
    assert grants["VpcEni"][1] == ["*"]
    assert set(grants["VpcEni"][0]) == {
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    }
    assert set(grants) == {statement["Sid"] for statement in dynamodb} | {
        "WriteOwnLogs",
        "ConnectToSearchCache",
        "XRay",
        "VpcEni",
    }


@by_domain
def test_search_dynamodb_actions_are_the_ones_the_code_calls(domain: SearchDomain) -> None:
    """Given a domain's code, then the DynamoDB actions it sends through core.store (Query for query_prefix
    and query_range, GetItem for get_item) are exactly the ones its role is checked for above: a missing
    grant is an AccessDenied 500 on the first uncached search, an extra one is a right nobody uses."""
    assert set(STORE_ACTIONS) == store_methods(), "map every public read of core.store.DynamoTable to its action"
    assert dynamodb_actions_called(domain.name) == domain.dynamodb_actions


# ------------------------------------------------------------------------------------------ data
TABLES = [domain.table for domain in SEARCH_DOMAINS] + [QUARANTINE_TABLE]
by_table = pytest.mark.parametrize("table_id", TABLES)


@by_table
def test_table_is_keyed_on_pk_sk_with_ttl_pitr_and_encryption(resources: Resources, table_id: str) -> None:
    """Given a table (a domain's or the quarantine), then it is keyed pk (HASH) / sk (RANGE) as strings (what
    core.store queries and writes), expires items on expires_at, has point-in-time recovery, encryption at rest
    and deletion protection, and is kept when the stack goes."""
    table = resources[table_id]["Properties"]

    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}
    assert resources[table_id]["DeletionPolicy"] == resources[table_id]["UpdateReplacePolicy"] == "Retain"


@by_table
def test_provisioned_billing_scales_reads_and_writes(
    template: dict[str, Any], resources: Resources, table_id: str
) -> None:
    """Given billing mode PROVISIONED, then each table gets capacity and target-tracking auto scaling on
    reads and writes; on-demand (the default) gets neither."""
    table = resources[table_id]["Properties"]
    targets = {
        resource["Properties"]["ScalableDimension"]: name
        for name, resource in of_type(resources, "AWS::ApplicationAutoScaling::ScalableTarget").items()
        if sub_text(resource["Properties"]["ResourceId"]) == f"table/${{{table_id}}}"
    }
    policies = of_type(resources, "AWS::ApplicationAutoScaling::ScalingPolicy")

    assert template["Parameters"]["TableBillingMode"]["Default"] == "PAY_PER_REQUEST"
    assert table["BillingMode"] == {"Ref": "TableBillingMode"}
    condition, provisioned, on_demand = table["ProvisionedThroughput"]["Fn::If"]
    assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "TableBillingMode"}, "PROVISIONED"]}
    assert provisioned == {
        "ReadCapacityUnits": {"Ref": "TableReadCapacityMin"},
        "WriteCapacityUnits": {"Ref": "TableWriteCapacityMin"},
    }
    assert on_demand == {"Ref": "AWS::NoValue"}
    assert set(targets) == {"dynamodb:table:ReadCapacityUnits", "dynamodb:table:WriteCapacityUnits"}
    for dimension, target in targets.items():
        assert resources[target]["Condition"] == condition
        (policy,) = [p for p in policies.values() if p["Properties"]["ScalingTargetId"] == {"Ref": target}]
        assert policy["Condition"] == condition
        assert policy["Properties"]["PolicyType"] == "TargetTrackingScaling"
        metric = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
        expected = "Read" if "Read" in dimension else "Write"
        assert metric["PredefinedMetricType"] == f"DynamoDB{expected}CapacityUtilization"


def test_every_scaling_target_and_policy_belongs_to_a_table(resources: Resources) -> None:
    """Given the auto-scaling resources, then there is one read and one write target per table and one policy
    per target, so no table is left unscaled and no target points at a table that is gone."""
    targets = of_type(resources, "AWS::ApplicationAutoScaling::ScalableTarget")
    policies = of_type(resources, "AWS::ApplicationAutoScaling::ScalingPolicy")

    assert len(targets) == 2 * len(of_type(resources, "AWS::DynamoDB::Table"))
    assert sorted(referenced_ids(p["Properties"]["ScalingTargetId"]).pop() for p in policies.values()) == sorted(
        targets
    )


# ------------------------------------------------------------------------------------------ cache
def test_search_cache_is_serverless_valkey_with_iam_users_and_cost_caps(resources: Resources) -> None:
    """Given the cache, then it is Valkey 8 serverless in the private subnets, reachable only by its user
    group: an IAM-authenticated user (id = name, as IAM auth requires) and a switched-off default user;
    its usage limits are parameters so the bill has a ceiling."""
    cache = resources["SearchCache"]["Properties"]
    iam_user = resources["CacheIamUser"]["Properties"]
    default_user = resources["CacheDefaultUser"]["Properties"]
    group = resources["CacheUserGroup"]["Properties"]

    assert (cache["Engine"], cache["MajorEngineVersion"]) == ("valkey", "8")
    assert cache["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    assert referenced_ids(cache["SecurityGroupIds"]) == {"CacheSecurityGroup"}
    assert cache["UserGroupId"] == {"Ref": "CacheUserGroup"}
    assert cache["CacheUsageLimits"]["DataStorage"]["Maximum"] == {"Ref": "CacheMaxDataStorageGb"}
    assert cache["CacheUsageLimits"]["ECPUPerSecond"]["Maximum"] == {"Ref": "CacheMaxEcpuPerSecond"}

    assert iam_user["AuthenticationMode"] == {"Type": "iam"}
    assert iam_user["UserId"] == iam_user["UserName"] == {"Ref": "CacheUserName"}
    assert default_user["UserName"] == "default"
    assert default_user["AccessString"].split()[0] == "off"
    assert {"Ref": "CacheIamUser"} in group["UserIds"] and {"Ref": "CacheDefaultUser"} in group["UserIds"]


# ------------------------------------------------------------------------------------------ network
def test_no_nat_internet_gateway_or_interface_endpoint(resources: Resources) -> None:
    """Given the network, then nothing routes out of the VPC except the free DynamoDB gateway endpoint:
    no NAT gateway, internet gateway or (hourly-billed) interface endpoint."""
    types = {resource["Type"] for resource in resources.values()}
    endpoints = of_type(resources, "AWS::EC2::VPCEndpoint")

    assert not types & {"AWS::EC2::NatGateway", "AWS::EC2::InternetGateway", "AWS::EC2::EgressOnlyInternetGateway"}
    assert {endpoint["Properties"]["VpcEndpointType"] for endpoint in endpoints.values()} == {"Gateway"}
    assert not of_type(resources, "AWS::EC2::Route"), "the private route table needs no routes of its own"


def test_dynamodb_endpoint_only_reaches_the_project_tables(resources: Resources) -> None:
    """Given the DynamoDB gateway endpoint, then its policy names this stack's tables, all of them and only
    them, with at least the actions the functions send."""
    endpoint = resources["DynamoDbEndpoint"]["Properties"]
    tables = set(of_type(resources, "AWS::DynamoDB::Table"))

    assert sub_text(endpoint["ServiceName"]) == "com.amazonaws.${AWS::Region}.dynamodb"
    reachable = []
    for statement in endpoint["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "*" not in as_list(statement["Resource"])
        assert referenced_ids(statement["Resource"]) <= tables
        reachable += as_list(statement["Resource"])
    # A table left out is unreachable from the subnets: every search of that domain would be denied.
    for table in tables:
        assert {"Fn::GetAtt": [table, "Arn"]} in reachable, table
    allowed = {
        action for statement in endpoint["PolicyDocument"]["Statement"] for action in as_list(statement["Action"])
    }
    for domain in SEARCH_DOMAINS:
        assert domain.dynamodb_actions <= allowed, domain.name
    for actions in ingest_dynamodb_actions().values():
        assert actions <= allowed


def test_cache_accepts_only_the_functions_on_the_valkey_ports(resources: Resources) -> None:
    """Given the cache's security group, then it admits TCP 6379-6380 from the functions' group and nothing
    else, and the functions' group may reach the cache on those ports."""
    cache_group = resources["CacheSecurityGroup"]["Properties"]
    (ingress,) = cache_group["SecurityGroupIngress"]
    egress_rules = of_type(resources, "AWS::EC2::SecurityGroupEgress")

    assert (ingress["IpProtocol"], ingress["FromPort"], ingress["ToPort"]) == ("tcp", 6379, 6380)
    assert referenced_ids(ingress["SourceSecurityGroupId"]) == {"LambdaSecurityGroup"}
    assert "CidrIp" not in ingress
    to_cache = [
        rule["Properties"]
        for rule in egress_rules.values()
        if referenced_ids(rule["Properties"]["GroupId"]) == {"LambdaSecurityGroup"}
        and referenced_ids(rule["Properties"].get("DestinationSecurityGroupId")) == {"CacheSecurityGroup"}
    ]
    assert [(rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in to_cache] == [("tcp", 6379, 6380)]


def test_functions_egress_is_the_cache_and_https_only(resources: Resources) -> None:
    """Given the functions' security group, then its only inline egress is HTTPS (DynamoDB through the
    gateway endpoint), with the reason written in its metadata."""
    group = resources["LambdaSecurityGroup"]

    assert [
        (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in group["Properties"]["SecurityGroupEgress"]
    ] == [("tcp", 443, 443)]
    assert group["Metadata"]["Reasons"]["HttpsEgress"]


def test_vpc_flow_logs_are_on(resources: Resources) -> None:
    """Given the VPC, then all its traffic is flow-logged to a log group with retention."""
    (flow_log,) = of_type(resources, "AWS::EC2::FlowLog").values()
    properties = flow_log["Properties"]

    assert properties["ResourceId"] == {"Ref": "Vpc"}
    assert properties["TrafficType"] == "ALL"
    assert resources[properties["LogGroupName"]["Ref"]]["Properties"]["RetentionInDays"]


# ------------------------------------------------------------------------------------------ observability
def alarms_with_metrics(resources: Resources) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(alarm, namespace, metric, {dimension: value}) for every metric an alarm watches."""
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        if "MetricName" in properties:
            dimensions = {d["Name"]: d["Value"] for d in properties.get("Dimensions", [])}
            yield name, properties["Namespace"], properties["MetricName"], dimensions
        for query in properties.get("Metrics", []):
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                yield name, metric["Namespace"], metric["MetricName"], dimensions


def test_alarm_dimensions_match_the_real_resources(resources: Resources) -> None:
    """Given every alarm, then its dimensions are exactly those the service publishes for our resources:
    an alarm on a dimension value that never exists can never fire."""
    rest_api_name = resources["TravelApi"]["Properties"]["Name"]
    # (dimensions, metric names) of every handler that emits EMF metrics the alarms may watch.
    emitted = [
        (emitted_metric_dimensions(domain.name), {"CacheHit", "CacheMiss", "CacheError", "SearchLatency"})
        for domain in SEARCH_DOMAINS
    ] + [(ingest_metric_dimensions(ingest), counted_metrics("integrations/ingest.py")) for ingest in INGEST_DOMAINS]
    watched = list(alarms_with_metrics(resources))

    assert watched
    for name, namespace, metric, dimensions in watched:
        if namespace == "AWS/ApiGateway":
            assert dimensions == {"ApiName": rest_api_name, "Stage": {"Ref": "ApiStage"}}, name
        elif namespace == "AWS/Lambda":
            assert set(dimensions) == {"FunctionName"}, name
            assert resources[dimensions["FunctionName"]["Ref"]]["Type"] == "AWS::Lambda::Function", name
        elif namespace == "AWS/DynamoDB":
            assert set(dimensions) == {"TableName"}, name
            assert resources[dimensions["TableName"]["Ref"]]["Type"] == "AWS::DynamoDB::Table", name
        elif namespace == "AWS/SQS":
            assert set(dimensions) == {"QueueName"}, name
            (queue,) = referenced_ids(dimensions["QueueName"])
            assert dimensions["QueueName"] == getatt(queue, "QueueName"), name
            assert resources[queue]["Type"] == "AWS::SQS::Queue", name
        elif namespace == "AWS/ElastiCache":
            # Serverless caches publish under clusterId = the cache's name (Ref of the ServerlessCache).
            assert set(dimensions) == {"clusterId"}, name
            assert resources[dimensions["clusterId"]["Ref"]]["Type"] == "AWS::ElastiCache::ServerlessCache", name
        elif namespace == "TravelSearch":
            # EMF metrics: exactly the dimension set and values one of the handlers emits, and a metric it emits.
            metrics = [names for emitted_dimensions, names in emitted if emitted_dimensions == dimensions]
            assert metrics, f"{name}: {dimensions} is emitted by no handler ({emitted})"
            assert metric in metrics[0], f"{name}: {dimensions} never come with {metric}"
        else:
            pytest.fail(f"{name}: no dimension check for namespace {namespace}")


def test_handlers_emit_their_own_domain_under_the_function_service_name() -> None:
    """Given the handlers, then each emits its metrics with Domain = its domain and service = <domain>-search (or
    <domain>-ingest), so alarms and widgets on one domain or side never mix in another's."""
    for domain in SEARCH_DOMAINS:
        assert emitted_metric_dimensions(domain.name) == {"Domain": domain.name, "service": f"{domain.name}-search"}
    for ingest in INGEST_DOMAINS:
        assert ingest_metric_dimensions(ingest) == {"Domain": ingest.name, "service": f"{ingest.name}-ingest"}


def test_every_function_has_error_and_throttle_alarms(resources: Resources) -> None:
    """Given every function (search, ingest, partner events, refresh), then an alarm watches its Errors and
    another its Throttles."""
    for function in of_type(resources, "AWS::Lambda::Function"):
        watched = {
            metric
            for _, namespace, metric, dimensions in alarms_with_metrics(resources)
            if namespace == "AWS/Lambda" and dimensions == {"FunctionName": {"Ref": function}}
        }
        assert watched >= {"Errors", "Throttles"}, function


def test_api_alarms_exist(resources: Resources) -> None:
    """Given the alarms, then API 5xx rate and p99 latency are watched."""
    watched = {(namespace, metric) for _, namespace, metric, _ in alarms_with_metrics(resources)}

    assert {("AWS/ApiGateway", "5XXError"), ("AWS/ApiGateway", "Latency")} <= watched


@by_domain
def test_cache_hit_ratio_alarm_computes_a_percentage_and_tolerates_silence(
    resources: Resources, domain: SearchDomain
) -> None:
    """Given a domain, then one alarm computes its cache hit ratio 100*hit/(hit+miss) from the CacheHit and
    CacheMiss its handler emits, alarms under 50%, and treats no traffic as fine (no searches at night is
    not an incident)."""
    emitted = emitted_metric_dimensions(domain.name)
    alarms = [
        alarm["Properties"]
        for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if any(
            {d["Name"]: d["Value"] for d in query.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])}
            == emitted
            for query in alarm["Properties"].get("Metrics", [])
        )
    ]

    (alarm,) = alarms
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    (returned,) = [query for query in alarm["Metrics"] if query.get("ReturnData", True)]
    assert returned["Expression"].replace(" ", "") == "100*hit/(hit+miss)"
    for query_id, metric_name in (("hit", "CacheHit"), ("miss", "CacheMiss")):
        metric = queries[query_id]["MetricStat"]["Metric"]
        assert (metric["Namespace"], metric["MetricName"]) == ("TravelSearch", metric_name)
        assert {d["Name"]: d["Value"] for d in metric["Dimensions"]} == emitted
        assert queries[query_id]["MetricStat"]["Stat"] == "Sum"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 50)
    assert alarm["TreatMissingData"] == "notBreaching"


def alarm_watching(resources: Resources, namespace: str, metric: str, dimensions: dict[str, Any]) -> dict[str, Any]:
    """The Properties of the one alarm that watches this metric with exactly these dimensions."""
    found = [
        name
        for name, watched_namespace, watched_metric, watched in alarms_with_metrics(resources)
        if (watched_namespace, watched_metric, watched) == (namespace, metric, dimensions)
    ]
    assert len(found) == 1, f"expected one alarm on {namespace} {metric} {dimensions}, found {found}"
    properties: dict[str, Any] = resources[found[0]]["Properties"]
    return properties


def returned_expression(alarm: dict[str, Any]) -> str:
    """The expression a metric-math alarm compares with its threshold (its one ReturnData query)."""
    (returned,) = [query for query in alarm["Metrics"] if query.get("ReturnData", True)]
    expression = returned["Expression"]
    return sub_text(expression) if isinstance(expression, dict) else str(expression)


@by_table
def test_table_alarms_on_read_and_write_throttles_and_consumed_capacity(
    template: dict[str, Any], resources: Resources, table_id: str
) -> None:
    """Given a table, then alarms watch its read and write throttle events (TableName alone: every operation the
    code uses, in both billing modes) and its consumed read and write capacity per second against a parameter
    (on-demand has no provisioned capacity to compare with), all present whatever the billing mode."""
    table = {"TableName": {"Ref": table_id}}
    for kind in ("Read", "Write"):
        throttles = alarm_watching(resources, "AWS/DynamoDB", f"{kind}ThrottleEvents", table)
        assert (throttles["Statistic"], throttles["ComparisonOperator"], throttles["Threshold"]) == (
            "Sum",
            "GreaterThanOrEqualToThreshold",
            1,
        )

        capacity = alarm_watching(resources, "AWS/DynamoDB", f"Consumed{kind}CapacityUnits", table)
        (consumed,) = [query for query in capacity["Metrics"] if "MetricStat" in query]
        assert consumed["MetricStat"]["Stat"] == "Sum"
        assert returned_expression(capacity).replace(" ", "") == f"{consumed['Id']}/PERIOD({consumed['Id']})"
        parameter = f"Table{kind}CapacityAlarmUnits"
        assert capacity["Threshold"] == {"Ref": parameter}
        maximum = template["Parameters"][f"Table{kind}CapacityMax"]["Default"]
        assert template["Parameters"][parameter]["Default"] < maximum
    for name, resource in of_type(resources, "AWS::CloudWatch::Alarm").items():
        if table_id in referenced_ids(resource["Properties"]):
            assert "Condition" not in resource, f"{name}: the dashboard's alarm widget needs it in every billing mode"


def test_cache_alarms_compare_ecpu_and_storage_with_the_usage_limits(resources: Resources) -> None:
    """Given the serverless cache, then alarms compare its ECPU per second and its stored bytes with the usage
    limits the cache is created with (CacheUsageLimits), and another fires on throttled commands."""
    cache = {"clusterId": {"Ref": "SearchCache"}}
    limits = resources["SearchCache"]["Properties"]["CacheUsageLimits"]

    ecpu = alarm_watching(resources, "AWS/ElastiCache", "ElastiCacheProcessingUnits", cache)
    assert limits["ECPUPerSecond"]["Maximum"] == {"Ref": "CacheMaxEcpuPerSecond"}
    assert returned_expression(ecpu).replace(" ", "") == "100*(ecpu/PERIOD(ecpu))/${CacheMaxEcpuPerSecond}"

    storage = alarm_watching(resources, "AWS/ElastiCache", "BytesUsedForCache", cache)
    assert limits["DataStorage"] == {"Maximum": {"Ref": "CacheMaxDataStorageGb"}, "Unit": "GB"}
    assert returned_expression(storage).replace(" ", "") == "100*bytes/(${CacheMaxDataStorageGb}*1000000000)"
    for alarm in (ecpu, storage):
        assert alarm["Threshold"] == {"Ref": "CacheUsageAlarmPercent"}

    throttled = alarm_watching(resources, "AWS/ElastiCache", "ThrottledCmds", cache)
    assert (throttled["Statistic"], throttled["Threshold"]) == ("Sum", 1)


@by_domain
def test_search_function_alarms_on_p99_duration_and_concurrency(
    template: dict[str, Any], resources: Resources, domain: SearchDomain
) -> None:
    """Given a search function, then one alarm watches its p99 duration and another its concurrent executions,
    each against a parameter, and the duration threshold is below the function's timeout (or it could never
    fire before the errors alarm)."""
    function = {"FunctionName": {"Ref": domain.function}}

    duration = alarm_watching(resources, "AWS/Lambda", "Duration", function)
    assert (duration["ExtendedStatistic"], duration["Threshold"]) == ("p99", {"Ref": "SearchDurationP99ThresholdMs"})
    concurrency = alarm_watching(resources, "AWS/Lambda", "ConcurrentExecutions", function)
    assert (concurrency["Statistic"], concurrency["Threshold"]) == (
        "Maximum",
        {"Ref": "SearchConcurrencyAlarmThreshold"},
    )
    parameters = template["Parameters"]
    timeout_ms = resources[domain.function]["Properties"]["Timeout"] * 1000
    assert parameters["SearchDurationP99ThresholdMs"]["Default"] < timeout_ms
    assert parameters["SearchDurationP99ThresholdMs"]["MaxValue"] <= timeout_ms


def test_every_alarm_chooses_missing_data_and_notifies_on_both_transitions(resources: Resources) -> None:
    """Given every alarm, then it says what missing data means (the default, "missing", leaves an idle alarm in
    INSUFFICIENT_DATA) and notifies the topic when it fires and when it recovers."""
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        assert properties.get("TreatMissingData") in {"breaching", "notBreaching", "ignore"}, name
        assert properties["AlarmActions"] == properties["OKActions"] == [{"Ref": "AlarmTopic"}], name


def test_metric_math_alarms_use_only_their_own_metrics(resources: Resources) -> None:
    """Given every metric-math alarm, then it returns one series, and its expression uses only ids of its own
    queries and the functions CloudWatch knows (a stray id fails the alarm's creation)."""
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        queries = alarm["Properties"].get("Metrics")
        if not queries:
            continue
        ids = {query["Id"] for query in queries}
        expression = re.sub(r"\$\{[^}]+\}", "1", returned_expression(alarm["Properties"]))
        used = set(re.findall(r"\b[a-zA-Z]\w*\b", expression)) - {"PERIOD"}
        assert used <= ids, f"{name}: {used - ids}"


QUERY_FUNCTIONS = {"fields", "filter", "stats", "sort", "limit", "count", "sum", "pct", "by", "as", "desc", "asc"}


def access_log_fields(resources: Resources) -> set[str]:
    """Field names of the API access log lines (the stage's access log Format)."""
    access_format = json.loads(re.sub(r"\s+", "", resources["ApiStage"]["Properties"]["AccessLogSetting"]["Format"]))
    return set(access_format)


def test_saved_queries_read_log_groups_of_this_stack(resources: Resources) -> None:
    """Given every saved Logs Insights query, then each log group it names is a log group of this stack (a name
    typed in would point at nothing after a rename), and the three operators need exist: top routes, errors of
    every function, quarantined events."""
    queries = of_type(resources, "AWS::Logs::QueryDefinition")
    log_groups = of_type(resources, "AWS::Logs::LogGroup")
    function_log_groups = {
        referenced_ids(function["Properties"]["LoggingConfig"]["LogGroup"]).pop()
        for function in of_type(resources, "AWS::Lambda::Function").values()
    }

    assert queries
    read_by: dict[str, set[str]] = {}
    for name, query in queries.items():
        properties = query["Properties"]
        assert sub_text(properties["Name"]).startswith("${AWS::StackName}/"), name
        groups = set()
        for group in properties["LogGroupNames"]:
            assert set(group) == {"Ref"}, f"{name}: {group!r} is not a log group of this stack"
            assert group["Ref"] in log_groups, f"{name}: {group['Ref']} is not a log group"
            groups.add(group["Ref"])
        read_by[name] = groups

    assert read_by["TopRoutesQuery"] == {"ApiAccessLogGroup"}
    assert read_by["FunctionErrorsQuery"] >= function_log_groups | {"ApiAccessLogGroup"}
    assert read_by["QuarantinedEventsQuery"] == {ingest.log_group for ingest in INGEST_DOMAINS}
    assert read_by["SearchOutcomeByDomainQuery"] == {domain.log_group for domain in SEARCH_DOMAINS}


def test_saved_queries_use_fields_the_logs_really_have(resources: Resources) -> None:
    """Given the saved queries, then the access-log query groups by fields of the stage's access log format,
    the quarantine query filters on the message integrations/ingest.py logs, and the search query reads the
    EMF metrics the handlers emit."""
    queries = {
        name: query["Properties"]["QueryString"]
        for name, query in of_type(resources, "AWS::Logs::QueryDefinition").items()
    }

    routes = queries["TopRoutesQuery"]
    fields = set(re.findall(r"^fields (.+)$", routes, re.MULTILINE)[0].replace(" ", "").split(","))
    assert fields - {"@timestamp"} <= access_log_fields(resources)
    assert "resourcePath" in fields

    ingest_source = (PROJECT_ROOT / "integrations" / "ingest.py").read_text(encoding="utf-8")
    (logged,) = re.findall(r'message = "([^"]+)"', queries["QuarantinedEventsQuery"])
    assert f'warning("{logged}", extra={{"message_id": message_id, "reason":' in ingest_source
    assert "reason" in queries["QuarantinedEventsQuery"]

    emitted = {"CacheHit", "CacheMiss", "CacheError", "SearchLatency"}
    assert emitted <= set(re.findall(r"\b[A-Z]\w+\b", queries["SearchOutcomeByDomainQuery"]))
    for domain in SEARCH_DOMAINS:
        assert "Domain" in emitted_metric_dimensions(domain.name)

    errors = queries["FunctionErrorsQuery"]
    assert 'level = "ERROR"' in errors and "status" in errors and "status" in access_log_fields(resources)


def test_every_alarm_notifies_a_topic_cloudwatch_can_publish_to(resources: Resources) -> None:
    """Given every alarm, then it notifies the alarm topic, whose KMS key lets CloudWatch publish
    (the AWS-managed alias/aws/sns key does not, so alarms would fire silently)."""
    topic = resources["AlarmTopic"]["Properties"]
    key_ids = referenced_ids(topic["KmsMasterKeyId"])

    assert len(key_ids) == 1, f"the topic's key is not a key of this stack: {topic['KmsMasterKeyId']!r}"
    key_id = key_ids.pop()
    assert resources[key_id]["Type"] == "AWS::KMS::Key"
    key_statements = resources[key_id]["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(as_list(statement["Action"]))
        for statement in key_statements
    )
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        assert {"Ref": "AlarmTopic"} in alarm["Properties"]["AlarmActions"], name


def test_xray_samples_the_api_stage_at_a_small_fixed_rate(resources: Resources) -> None:
    """Given X-Ray, then a group filters the API's traces and a sampling rule keeps tracing cost bounded."""
    rule = resources["XRaySamplingRule"]["Properties"]["SamplingRule"]

    assert 0 < rule["FixedRate"] <= 0.1
    assert rule["ReservoirSize"] >= 1
    assert rule["ServiceType"] == "AWS::ApiGateway::Stage"
    assert "${TravelApi}" in sub_text(rule["ResourceARN"])
    assert of_type(resources, "AWS::XRay::Group")


def test_dashboard_is_valid_json_covering_the_api(resources: Resources) -> None:
    """Given the dashboard body, when CloudFormation substitutes it, then it is valid JSON whose widgets show
    API latency and errors, and every alarm of the stack is on its alarm widget."""
    dashboard = render_dashboard(sub_text(resources["Dashboard"]["Properties"]["DashboardBody"]))
    rows = [values for widget in dashboard["widgets"] for values, _ in metric_rows(widget)]
    on_alarm_widgets = {
        alarm
        for widget in dashboard["widgets"]
        if widget["type"] == "alarm"
        for alarm in widget["properties"]["alarms"]
    }

    assert {(values[0], values[1]) for values in rows if values} >= {
        ("AWS/ApiGateway", "Latency"),
        ("AWS/ApiGateway", "5XXError"),
    }
    assert on_alarm_widgets == {f"{alarm}.Arn" for alarm in of_type(resources, "AWS::CloudWatch::Alarm")}


@by_domain
def test_dashboard_shows_every_domain_function_table_and_cache(resources: Resources, domain: SearchDomain) -> None:
    """Given a domain, then the dashboard shows its function's duration, concurrency, errors and throttles,
    its table's consumed capacity, and its cache hit ratio from the CacheHit/CacheMiss its handler emits."""
    dashboard = render_dashboard(sub_text(resources["Dashboard"]["Properties"]["DashboardBody"]))
    rows = [values for widget in dashboard["widgets"] for values, _ in metric_rows(widget) if values]
    shown = {(values[0], values[1], json.dumps(metric_dimensions(values), sort_keys=True)) for values in rows}

    def on(namespace: str, metric: str, dimensions: dict[str, str]) -> bool:
        return (namespace, metric, json.dumps(dimensions, sort_keys=True)) in shown

    for metric in ("Duration", "ConcurrentExecutions", "Errors", "Throttles"):
        assert on("AWS/Lambda", metric, {"FunctionName": domain.function}), metric
    for metric in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits"):
        assert on("AWS/DynamoDB", metric, {"TableName": domain.table}), metric
    for metric in ("CacheHit", "CacheMiss", "CacheError"):
        assert on("TravelSearch", metric, emitted_metric_dimensions(domain.name)), metric


def test_dashboard_expressions_use_metrics_of_their_own_widget(resources: Resources) -> None:
    """Given every metric-math expression on the dashboard, then the ids it uses are metrics of the same widget,
    and ids are unique per widget (CloudWatch shows an error in place of the graph otherwise)."""
    dashboard = render_dashboard(sub_text(resources["Dashboard"]["Properties"]["DashboardBody"]))
    expressions = 0

    for widget in dashboard["widgets"]:
        rows = list(metric_rows(widget))
        ids = [options["id"] for _, options in rows if "id" in options]
        assert len(ids) == len(set(ids)), widget["properties"]["title"]
        for _, options in rows:
            if "expression" in options:
                expressions += 1
                used = set(re.findall(r"\b[a-z]\w*\b", options["expression"]))
                assert used <= set(ids), options["expression"]
    assert expressions >= len(SEARCH_DOMAINS)


def test_every_substitution_names_something_that_exists(template: dict[str, Any]) -> None:
    """Given every Ref, GetAtt and ${...} in the template, then it names a resource, a parameter or a
    pseudo parameter (a typo would fail the deployment, or worse, the dashboard)."""
    known = set(template["Resources"]) | set(template["Parameters"])

    names = referenced_ids(template["Resources"]) | referenced_ids(template["Outputs"])
    unknown = {name for name in names if name not in known and not name.startswith("AWS::")}
    assert unknown == set()


# ------------------------------------------------------------------------------------------ parameters and outputs
def test_deploy_needs_only_the_artifact_locations(template: dict[str, Any]) -> None:
    """Given the parameters, then every one has a default except the artifact bucket and keys (the layer and
    one code zip per function: search, ingest, partner events, refresh), so `aws cloudformation deploy` works with
    those alone."""
    without_default = {name for name, parameter in template["Parameters"].items() if "Default" not in parameter}

    assert without_default == (
        {"ArtifactBucket", "CoreLayerKey"}
        | {f"{domain.prefix}SearchCodeKey" for domain in SEARCH_DOMAINS}
        | {f"{ingest.prefix}IngestCodeKey" for ingest in INGEST_DOMAINS}
        | {f"{edge.prefix}CodeKey" for edge in EDGE_FUNCTIONS}
    )


def test_every_parameter_is_in_exactly_one_console_group(template: dict[str, Any]) -> None:
    """Given the console's parameter groups, then each parameter is listed once (a parameter left out is shown
    ungrouped at the bottom, a missing name breaks the console form)."""
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]

    assert sorted(grouped) == sorted(template["Parameters"])


def test_outputs_give_operators_what_they_need(template: dict[str, Any]) -> None:
    """Given the outputs, then the API URL (with the stage), the key ids, the dashboard, every table (search and
    quarantine) and the cache endpoint are published."""
    outputs = template["Outputs"]

    assert set(outputs) >= {
        "ApiUrl",
        "BasicApiKeyId",
        "PartnerApiKeyId",
        "DashboardUrl",
        "CacheEndpoint",
    }
    for table in of_type(template["Resources"], "AWS::DynamoDB::Table"):
        assert outputs[f"{table}Name"]["Value"] == {"Ref": table}
    assert sub_text(outputs["ApiUrl"]["Value"]) == (
        "https://${TravelApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"
    )


def test_outputs_give_operators_the_ingest_side(template: dict[str, Any], openapi: dict[str, Any]) -> None:
    """Given the outputs, then the partner bus (name and ARN), each ingest queue's URL and the partner events URL
    (the API URL plus the route the OpenAPI body declares) are published."""
    outputs = template["Outputs"]

    assert outputs["PartnerBusName"]["Value"] == ref("PartnerBus")
    assert outputs["PartnerBusArn"]["Value"] == getatt("PartnerBus")
    for ingest in INGEST_DOMAINS:
        assert outputs[f"{ingest.queue}Url"]["Value"] == ref(ingest.queue)
    path, method = PARTNER_ROUTE
    assert method in openapi["paths"][path]
    assert sub_text(outputs["PartnerEventsUrl"]["Value"]) == sub_text(outputs["ApiUrl"]["Value"]) + path


# ------------------------------------------------------------------------------------------ network: who runs where
def role_of(resources: Resources, function: str) -> str:
    (role,) = referenced_ids(resources[function]["Properties"]["Role"])
    return role


def granted_actions(resources: Resources, role: str) -> set[str]:
    return {action for statement in inline_statements(resources[role]) for action in as_list(statement["Action"])}


def mapped_queues(resources: Resources, function: str) -> set[str]:
    """The queues an event source mapping feeds to a function."""
    return {
        queue
        for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if referenced_ids(mapping["Properties"]["FunctionName"]) == {function}
        for queue in referenced_ids(mapping["Properties"]["EventSourceArn"])
        if resources[queue]["Type"] == "AWS::SQS::Queue"
    }


def test_functions_that_reach_the_cache_run_in_the_private_subnets(resources: Resources) -> None:
    """Given every function that is handed the cache endpoint (search and ingest), then it runs in both private
    subnets behind the functions' security group (the only way to the cache), and no other function does."""
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        properties = function["Properties"]
        reaches_cache = "CACHE_HOST" in properties["Environment"]["Variables"]
        if reaches_cache:
            assert properties["VpcConfig"]["SubnetIds"] == [ref("PrivateSubnetA"), ref("PrivateSubnetB")], name
            assert referenced_ids(properties["VpcConfig"]["SecurityGroupIds"]) == {"LambdaSecurityGroup"}, name
        else:
            assert "VpcConfig" not in properties, f"{name} is in the VPC but never reaches the cache"


def test_functions_in_the_vpc_call_only_dynamodb_and_the_cache(resources: Resources) -> None:
    """Given every function in the VPC, when the subnets' only ways out are the DynamoDB gateway endpoint and the
    cache (no NAT, no interface endpoints), then its role grants nothing else it would have to call: no EventBridge,
    no Secrets Manager, no SQS SendMessage (SQS polling is done by Lambda's poller, outside the VPC, and only on
    the queues mapped to the function), and its environment names no bus or provider endpoint."""
    in_vpc = [
        name
        for name, function in of_type(resources, "AWS::Lambda::Function").items()
        if "VpcConfig" in function["Properties"]
    ]
    assert set(in_vpc) == {domain.function for domain in SEARCH_DOMAINS} | {
        ingest.function for ingest in INGEST_DOMAINS
    }

    for function in in_vpc:
        role = role_of(resources, function)
        actions = granted_actions(resources, role)
        assert not {action for action in actions if action.startswith(("events:", "secretsmanager:", "sns:"))}, function
        assert "sqs:SendMessage" not in actions, function
        queues = mapped_queues(resources, function)
        allowed_outside_dynamodb = (
            {"elasticache:Connect", "logs:CreateLogStream", "logs:PutLogEvents"}
            | {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
            | VPC_ENI_ACTIONS
            | (SQS_POLLER_ACTIONS if queues else set())
        )
        assert {action for action in actions if not action.startswith("dynamodb:")} <= allowed_outside_dynamodb, (
            function
        )
        for statement in inline_statements(resources[role]):
            if set(as_list(statement["Action"])) & SQS_POLLER_ACTIONS:
                assert referenced_ids(statement["Resource"]) == queues, function
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert not {"EVENT_BUS_NAME", "PROVIDER_ENDPOINTS", "PROVIDER_CREDENTIALS_SECRET"} & set(variables), function


def test_functions_that_call_eventbridge_secrets_or_the_internet_run_outside_the_vpc(resources: Resources) -> None:
    """Given every function whose role may call EventBridge, Secrets Manager or send to SQS, or that is given a
    provider endpoint, then it is not in the VPC (from the private subnets those calls could never connect), and
    these are exactly the EDGE_FUNCTIONS."""
    outside = set()
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        actions = granted_actions(resources, role_of(resources, name))
        variables = function["Properties"]["Environment"]["Variables"]
        needs_outside = (
            any(action.startswith(("events:", "secretsmanager:")) for action in actions)
            or "sqs:SendMessage" in actions
            or "PROVIDER_ENDPOINTS" in variables
        )
        if needs_outside:
            assert "VpcConfig" not in function["Properties"], name
            outside.add(name)
    assert outside == {edge.function for edge in EDGE_FUNCTIONS}


# ------------------------------------------------------------------------------------------ IAM: integration roles
GRANTED_ROLES = sorted(expected_grants())


@pytest.mark.parametrize("role", GRANTED_ROLES)
def test_integration_role_grants_exact_actions_on_exact_resources(resources: Resources, role: str) -> None:
    """Given a role of the provider-integration side (ingest, partner events, refresh, schedule, change pipes),
    then its statements are exactly the expected ones: each Sid allows exactly these actions on exactly these
    resources (its own table, queue, log group, the bus, the secret, the DLQ), and there is no other statement."""
    properties = resources[role]["Properties"]
    grants = {
        statement["Sid"]: (sorted(as_list(statement["Action"])), as_list(statement["Resource"]))
        for statement in inline_statements(resources[role])
    }

    assert "ManagedPolicyArns" not in properties
    assert all(statement["Effect"] == "Allow" for statement in inline_statements(resources[role]))
    assert all("Condition" not in statement for statement in inline_statements(resources[role]))
    assert grants == expected_grants()[role]


@pytest.mark.parametrize("role", GRANTED_ROLES)
def test_integration_role_trusts_only_its_service(resources: Resources, role: str) -> None:
    """Given a role of the provider-integration side, then only its service may assume it (Lambda for functions;
    Scheduler and Pipes only on behalf of this account, as their confused-deputy guidance asks)."""
    (trust,) = resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    service = ROLE_PRINCIPALS[role]

    assert (trust["Effect"], trust["Principal"], trust["Action"]) == ("Allow", {"Service": service}, "sts:AssumeRole")
    if service == "lambda.amazonaws.com":
        assert "Condition" not in trust
    else:
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}


def test_every_role_is_checked_by_a_test(resources: Resources) -> None:
    """Given the IAM roles, then each is a search role, a provider-integration role with expected grants, or one
    of the service roles with their own tests, so no role's rights go unchecked."""
    roles = set(of_type(resources, "AWS::IAM::Role"))

    assert roles == {domain.role for domain in SEARCH_DOMAINS} | set(GRANTED_ROLES) | SERVICE_ROLES
    assert set(ROLE_PRINCIPALS) == set(GRANTED_ROLES)


@by_ingest
def test_ingest_dynamodb_actions_are_the_ones_the_code_calls(resources: Resources, ingest: IngestDomain) -> None:
    """Given an ingest role, then the DynamoDB actions it grants on its domain table and on the quarantine table
    are exactly those integrations/ingest.py sends through core.store.Writes (UpdateItem for upsert_all,
    BatchWriteItem for put_all), and the composition wires the store to the domain table and the quarantine store
    to the quarantine table."""
    wiring = module_tree("integrations/wiring.py")
    (pipeline,) = [
        node
        for node in ast.walk(wiring)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "IngestPipeline"
    ]
    (pipeline_class,) = [
        node
        for node in module_tree("integrations/ingest.py").body
        if isinstance(node, ast.ClassDef) and node.name == "IngestPipeline"
    ]
    (init,) = [node for node in pipeline_class.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"]
    store_index = [argument.arg for argument in init.args.args].index("store") - 1  # without self
    quarantine_index = [argument.arg for argument in init.args.args].index("quarantine") - 1
    code = ingest_dynamodb_actions()
    on_resource: dict[str, set[str]] = {}
    for statement in inline_statements(resources[ingest.role]):
        actions = {action for action in as_list(statement["Action"]) if action.startswith("dynamodb:")}
        for resource in referenced_ids(statement["Resource"]) if actions else ():
            on_resource.setdefault(resource, set()).update(actions)

    assert set(WRITE_ACTIONS) == public_methods("core/store.py", "Writes"), "map every core.store.Writes method"
    assert "settings.table_name" in ast.unparse(pipeline.args[store_index])
    assert "settings.quarantine_table" in ast.unparse(pipeline.args[quarantine_index])
    assert on_resource == {ingest.table: code["store"], QUARANTINE_TABLE: code["quarantine"]}


# ------------------------------------------------------------------------------------------ ingest path
def dead_letter_queues(resources: Resources) -> set[str]:
    """Queues that receive what something else failed to deliver: SQS redrive targets, rule / schedule / pipe
    dead-letter configs and Lambda failure destinations."""
    found: set[str] = set()
    for resource in resources.values():
        for node in walk(resource.get("Properties", {})):
            if not isinstance(node, dict):
                continue
            if "RedrivePolicy" in node:
                found |= referenced_ids(node["RedrivePolicy"]["deadLetterTargetArn"])
            if "DeadLetterConfig" in node:
                found |= referenced_ids(node["DeadLetterConfig"])
            if "OnFailure" in node:
                found |= referenced_ids(node["OnFailure"])
    return {name for name in found if resources[name]["Type"] == "AWS::SQS::Queue"}


def queue_policy_statements(resources: Resources, queue: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in of_type(resources, "AWS::SQS::QueuePolicy").values()
        if ref(queue) in policy["Properties"]["Queues"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def events_may_send(resources: Resources, queue: str, rule: str) -> bool:
    """Whether a queue policy lets EventBridge send to ``queue`` on behalf of ``rule`` (and only a named rule)."""
    return any(
        statement["Effect"] == "Allow"
        and statement["Principal"] == {"Service": "events.amazonaws.com"}
        and as_list(statement["Action"]) == ["sqs:SendMessage"]
        and statement["Resource"] == getatt(queue)
        and getatt(rule) in as_list(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
        for statement in queue_policy_statements(resources, queue)
    )


@by_ingest
def test_ingest_environment_has_exactly_the_variables_the_code_reads(
    resources: Resources, ingest: IngestDomain
) -> None:
    """Given an ingest function, then its environment has exactly what its handler and core/settings.py
    ingest_settings_from_env read (its table variable, QUARANTINE_TABLE, the cache, Powertools), wired to its own
    table, the quarantine table and the shared cache; no page-token key (ingest signs nothing)."""
    variables = resources[ingest.function]["Properties"]["Environment"]["Variables"]
    table_variable = ingest_table_variable(ingest)

    assert set(variables) == SHARED_ENVIRONMENT | {table_variable} | required_settings("ingest_settings_from_env")
    assert variables[table_variable] == ref(ingest.table)
    assert variables["QUARANTINE_TABLE"] == ref(QUARANTINE_TABLE)
    search_variables = resources["FlightsSearchFunction"]["Properties"]["Environment"]["Variables"]
    for name in SHARED_ENVIRONMENT:
        assert variables[name] == search_variables[name], name


@by_ingest
def test_ingest_rule_routes_the_handlers_event_type_from_partners_and_refresh(
    resources: Resources, ingest: IngestDomain
) -> None:
    """Given an ingest rule, then on the partner bus it matches exactly the event type its handler accepts, from
    exactly the sources the partner-events and refresh code put on the bus, and targets its domain's queue; the
    event type has a schema."""
    rule = resources[ingest.rule]["Properties"]
    (target,) = rule["Targets"]

    assert ingest_event_types(ingest) == {ingest.event_type}
    assert (SCHEMA_DIR / f"{ingest.event_type}.v1.json").is_file()
    assert rule["EventBusName"] == ref("PartnerBus")
    assert rule["State"] == "ENABLED"
    sources = sorted(named_constant(edge.source, "SOURCE") for edge in EDGE_FUNCTIONS)
    assert sources == sorted(edge.bus_source for edge in EDGE_FUNCTIONS)
    assert rule["EventPattern"] == {"source": sources, "detail-type": [ingest.event_type]}
    assert target["Arn"] == getatt(ingest.queue)


def test_change_events_never_feed_ingest(resources: Resources) -> None:
    """Given the rules on the partner bus, then none matches the change events the pipes put there (source
    travel-search.changes): ingest writing a change that is ingested again would loop."""
    for name, rule in of_type(resources, "AWS::Events::Rule").items():
        assert CHANGE_SOURCE not in rule["Properties"]["EventPattern"]["source"], name
    for pipe in CHANGE_PIPES:
        assert resources[pipe.pipe]["Properties"]["TargetParameters"]["EventBridgeEventBusParameters"]["Source"] == (
            CHANGE_SOURCE
        )


@by_ingest
def test_ingest_queue_hides_a_batch_for_six_function_timeouts_and_redrives_after_five(
    resources: Resources, ingest: IngestDomain
) -> None:
    """Given an ingest queue, then its visibility timeout is 6 x its function's timeout (Lambda's advice: a batch
    still being processed or retried is not delivered twice), and a message failing 5 receives moves to the
    domain's own DLQ, which keeps it longer than the queue would."""
    queue = resources[ingest.queue]["Properties"]
    function = resources[ingest.function]["Properties"]

    assert queue["VisibilityTimeout"] == 6 * function["Timeout"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": getatt(ingest.dlq), "maxReceiveCount": 5}
    dlq_retention = resources[ingest.dlq]["Properties"]["MessageRetentionPeriod"]
    assert dlq_retention > queue.get("MessageRetentionPeriod", 4 * 24 * 3600)


def test_every_queue_is_encrypted_and_redrives_or_is_a_dead_letter_queue(resources: Resources) -> None:
    """Given every SQS queue, then it is encrypted at rest (SQS-managed keys, which EventBridge can send to), and
    either it is a dead-letter queue (kept 14 days, no redrive of its own) or it redrives to one after 5 receives."""
    queues = of_type(resources, "AWS::SQS::Queue")
    dlqs = dead_letter_queues(resources)

    assert queues
    assert dlqs == {"RuleTargetDlq", "ChangePipeDlq"} | {ingest.dlq for ingest in INGEST_DOMAINS}
    for name, queue in queues.items():
        properties = queue["Properties"]
        assert properties["SqsManagedSseEnabled"] is True, name
        if name in dlqs:
            assert "RedrivePolicy" not in properties, name
            assert properties["MessageRetentionPeriod"] == DLQ_RETENTION_SECONDS, name
        else:
            assert properties["RedrivePolicy"]["maxReceiveCount"] == 5, name
            assert referenced_ids(properties["RedrivePolicy"]["deadLetterTargetArn"]) <= dlqs, name


def test_every_rule_target_has_a_dlq_and_a_retry_policy_eventbridge_may_use(resources: Resources) -> None:
    """Given every target of every rule, then it retries for a day (185 attempts, the most EventBridge allows) and
    then goes to a DLQ, and the queue policies let EventBridge send to the target and to the DLQ for this rule
    (without them every delivery fails, and so does the DLQ)."""
    rules = of_type(resources, "AWS::Events::Rule")

    assert set(rules) == {ingest.rule for ingest in INGEST_DOMAINS}
    for name, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}, name
            (dlq,) = referenced_ids(target["DeadLetterConfig"]["Arn"])
            assert target["DeadLetterConfig"]["Arn"] == getatt(dlq), name
            assert resources[dlq]["Type"] == "AWS::SQS::Queue", name
            assert events_may_send(resources, dlq, name), f"EventBridge may not send {name}'s failures to {dlq}"
            (queue,) = referenced_ids(target["Arn"])
            assert events_may_send(resources, queue, name), f"EventBridge may not deliver {name} to {queue}"


def test_queue_policies_admit_eventbridge_only_for_named_rules(resources: Resources) -> None:
    """Given every queue policy statement, then it admits only EventBridge sending on behalf of rules of this
    stack (aws:SourceArn), so no other rule, bus or account can fill an ingest queue or a DLQ."""
    rules = set(of_type(resources, "AWS::Events::Rule"))
    statements = [
        statement
        for policy in of_type(resources, "AWS::SQS::QueuePolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]

    assert statements
    for statement in statements:
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}, statement["Sid"]
        assert as_list(statement["Action"]) == ["sqs:SendMessage"], statement["Sid"]
        sources = as_list(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
        assert sources and all(source == getatt(referenced_ids(source).pop()) for source in sources)
        assert referenced_ids(sources) <= rules, statement["Sid"]


@by_ingest
def test_ingest_event_source_mapping_reports_batch_item_failures(
    resources: Resources, template: dict[str, Any], ingest: IngestDomain
) -> None:
    """Given an ingest queue's event source mapping, then it feeds batches of up to 10 (waiting at most a second)
    to its function, which answers with batchItemFailures (integrations/ingest.py), so only failed records come
    back; its concurrency is capped by a parameter so a backlog cannot flood the table and the cache."""
    (mapping,) = [
        resource["Properties"]
        for resource in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if referenced_ids(resource["Properties"]["EventSourceArn"]) == {ingest.queue}
    ]
    returned_keys = {
        key.value
        for node in ast.walk(module_tree("integrations/ingest.py"))
        if isinstance(node, ast.Dict)
        for key in node.keys
        if isinstance(key, ast.Constant)
    }

    assert mapping["EventSourceArn"] == getatt(ingest.queue)
    assert mapping["FunctionName"] == ref(ingest.function)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "batchItemFailures" in returned_keys
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (10, 1)
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": ref("IngestMaximumConcurrency")}
    assert template["Parameters"]["IngestMaximumConcurrency"]["Default"] == 5


def test_every_event_source_mapping_reports_batch_item_failures(resources: Resources) -> None:
    """Given every event source mapping, then it reports batch item failures: without it one bad record makes the
    whole batch fail and be delivered again, again and again."""
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping")

    assert {referenced_ids(m["Properties"]["FunctionName"]).pop() for m in mappings.values()} == {
        ingest.function for ingest in INGEST_DOMAINS
    }
    for name, mapping in mappings.items():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name


def test_every_function_keeps_its_failures_or_says_why_there_is_nothing_to_keep(resources: Resources) -> None:
    """Given every function, then either an async failure destination keeps what failed (a queue its role may
    send to), or its Metadata explains why none is needed (API Gateway callers get the error; SQS sources have
    the queue's DLQ). Every function a schedule invokes has a destination: nobody else would see the failure."""
    configs = of_type(resources, "AWS::Lambda::EventInvokeConfig")
    scheduled = {
        referenced_ids(schedule["Properties"]["Target"]["Arn"]).pop()
        for schedule in of_type(resources, "AWS::Scheduler::Schedule").values()
    }

    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        own = [config["Properties"] for config in configs.values() if config["Properties"]["FunctionName"] == ref(name)]
        if own:
            (config,) = own
            destination = config["DestinationConfig"]["OnFailure"]["Destination"]
            (queue,) = referenced_ids(destination)
            assert resources[queue]["Type"] == "AWS::SQS::Queue", name
            assert destination == getatt(queue), name
            assert config["Qualifier"] == "$LATEST", name
            assert any(
                as_list(statement["Action"]) == ["sqs:SendMessage"] and statement["Resource"] == getatt(queue)
                for statement in inline_statements(resources[role_of(resources, name)])
            ), f"{name}'s role may not send to its failure destination {queue}"
        else:
            assert name not in scheduled, f"{name} is scheduled but keeps no failed invocation"
            assert function.get("Metadata", {}).get("Reasons", {}).get("NoFailureDestination"), name
    assert scheduled == {"ProviderRefreshFunction"}


def test_quarantine_table_holds_what_the_ingest_code_writes(resources: Resources) -> None:
    """Given a quarantine record as integrations/ingest.py writes it, then it fits the quarantine table: string
    pk/sk, pk the day (operators Query one day), and the TTL attribute a number of epoch seconds in the future."""
    now = datetime(2030, 6, 1, 12, 30, tzinfo=UTC)
    item = quarantine_item("flights", "message-1", '{"detail": {}}', "detail.provider: is required", now)
    table = resources[QUARANTINE_TABLE]["Properties"]

    key_types = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}
    for key in (schema["AttributeName"] for schema in table["KeySchema"]):
        assert set(item[key]) == {key_types[key]}, key
    assert item["pk"]["S"] == "2030-06-01"
    ttl_attribute = table["TimeToLiveSpecification"]["AttributeName"]
    assert int(item[ttl_attribute]["N"]) > now.timestamp()


def test_partner_bus_archive_keeps_partner_and_refresh_events_for_replay(
    resources: Resources, template: dict[str, Any]
) -> None:
    """Given the archive, then it archives the partner bus's partner and refresh events (what ingest consumes, so
    a replay re-drives ingest, harmlessly: writes are newest-sequence-wins) for the retention parameter's days."""
    archive = resources["PartnerBusArchive"]["Properties"]

    assert resources["PartnerBus"]["Type"] == "AWS::Events::EventBus"
    assert archive["SourceArn"] == getatt("PartnerBus")
    assert archive["RetentionDays"] == ref("PartnerBusArchiveRetentionDays")
    assert template["Parameters"]["PartnerBusArchiveRetentionDays"]["Default"] == 30
    assert archive["EventPattern"] == {"source": sorted(edge.bus_source for edge in EDGE_FUNCTIONS)}


# ------------------------------------------------------------------------------------------ partner events and refresh
@by_edge
def test_edge_environment_has_exactly_the_variables_the_code_reads(resources: Resources, edge: EdgeFunction) -> None:
    """Given a function outside the VPC, then its environment has exactly the variables its module reads plus
    Powertools', wired to this stack: the bus by name, the partner key's id, the endpoints parameter and the
    credentials secret (by ARN); no cache and no table (it never reaches either)."""
    variables = resources[edge.function]["Properties"]["Environment"]["Variables"]
    wiring = {
        "EVENT_BUS_NAME": ref("PartnerBus"),
        "PARTNER_KEY_IDS": ref("PartnerApiKey"),
        "PROVIDER_ENDPOINTS": ref("ProviderEndpoints"),
        "PROVIDER_CREDENTIALS_SECRET": ref("ProviderCredentialsSecret"),
        "POWERTOOLS_METRICS_NAMESPACE": "TravelSearch",
        "POWERTOOLS_LOG_LEVEL": ref("LogLevel"),
    }

    assert set(variables) == environment_names(edge.source) | {"POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
    for name, value in variables.items():
        assert value == wiring[name], name


@by_edge
def test_edge_function_puts_its_events_on_the_partner_bus_only(resources: Resources, edge: EdgeFunction) -> None:
    """Given a function outside the VPC, then the source its code puts events with is the one the ingest rules
    match, and its role may put events on the partner bus and no other."""
    puts = [
        statement
        for statement in inline_statements(resources[edge.role])
        if any(action.startswith("events:") for action in as_list(statement["Action"]))
    ]

    assert named_constant(edge.source, "SOURCE") == edge.bus_source
    assert [(as_list(s["Action"]), as_list(s["Resource"])) for s in puts] == [
        (["events:PutEvents"], [getatt("PartnerBus")])
    ]


def test_provider_refresh_runs_on_schedule_for_a_provider_it_can_refresh(
    resources: Resources, template: dict[str, Any]
) -> None:
    """Given the refresh schedule, then it runs at the rate parameter (every 15 minutes by default) without a
    flexible window, invokes the refresh function with a provider that has an endpoint (ProviderEndpoints) and an
    adapter in the code, retries, and keeps what it could not invoke in the DLQ."""
    schedules = of_type(resources, "AWS::Scheduler::Schedule")
    schedule = schedules["ProviderRefreshSchedule"]["Properties"]
    target = schedule["Target"]
    endpoints = json.loads(template["Parameters"]["ProviderEndpoints"]["Default"])
    adapters_node = next(
        statement.value
        for statement in module_tree("integrations/provider_refresh.py").body
        if isinstance(statement, ast.AnnAssign | ast.Assign) and "ADAPTERS" in ast.unparse(statement).split("=")[0]
    )
    adapters = {key.value for key in adapters_node.keys if isinstance(key, ast.Constant)}

    assert set(schedules) == {"ProviderRefreshSchedule"}
    assert schedule["ScheduleExpression"] == ref("ProviderRefreshRate")
    assert template["Parameters"]["ProviderRefreshRate"]["Default"] == "rate(15 minutes)"
    assert re.fullmatch(template["Parameters"]["ProviderRefreshRate"]["AllowedPattern"], "rate(15 minutes)")
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["State"] == "ENABLED"
    assert target["Arn"] == getatt("ProviderRefreshFunction")
    assert target["RoleArn"] == getatt("ProviderRefreshScheduleRole")
    provider = json.loads(target["Input"])["provider"]
    assert provider in endpoints and provider in adapters
    assert all(url.startswith("https://") for url in endpoints.values())
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    assert target["DeadLetterConfig"] == {"Arn": getatt("RuleTargetDlq")}


def test_provider_credentials_are_a_secret_without_tokens_in_the_template(resources: Resources) -> None:
    """Given the provider credentials secret, then the template holds only an empty JSON object (operators put the
    tokens), and the refresh function gets its ARN, never a resolved value in its environment."""
    secret = resources["ProviderCredentialsSecret"]
    variables = resources["ProviderRefreshFunction"]["Properties"]["Environment"]["Variables"]

    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert json.loads(secret["Properties"]["SecretString"]) == {}
    assert variables["PROVIDER_CREDENTIALS_SECRET"] == ref("ProviderCredentialsSecret")
    assert "resolve:secretsmanager" not in json.dumps(variables)


# ------------------------------------------------------------------------------------------ API: the partner route
class AcceptingBus:
    """Publisher that puts every entry."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def publish(self, entries: list[dict[str, Any]]) -> list[int]:
        self.entries += entries
        return []


def valid_examples() -> list[Any]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(SCHEMA_DIR.glob("examples/*/valid/*.json"))]


def test_partner_route_takes_the_provider_from_the_path_and_a_batch_body(openapi: dict[str, Any]) -> None:
    """Given POST /v1/providers/{provider}/events, then the provider is a required path parameter with the pattern
    the code enforces, and the body is a required JSON PartnerEventBatch of 1 to MAX_EVENTS events."""
    path, method = PARTNER_ROUTE
    operation = openapi["paths"][path][method]
    (parameter,) = operation["parameters"]
    batch = openapi["components"]["schemas"]["PartnerEventBatch"]
    events = batch["properties"]["events"]

    assert (parameter["name"], parameter["in"], parameter["required"]) == ("provider", "path", True)
    assert parameter["schema"]["pattern"] == f"^{PROVIDER.pattern}$"
    assert re.fullmatch(parameter["schema"]["pattern"], "skylink")
    assert not re.fullmatch(parameter["schema"]["pattern"], "Sky/Link")
    assert operation["requestBody"]["required"] is True
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert dereference(openapi, body_schema) is batch
    assert (events["minItems"], events["maxItems"]) == (
        1,
        MAX_EVENTS,
    )
    assert openapi["x-amazon-apigateway-request-validators"][operation["x-amazon-apigateway-request-validator"]] == {
        "validateRequestParameters": True,
        "validateRequestBody": False,
    }


def test_partner_event_schema_is_the_envelope_of_the_event_schemas(openapi: dict[str, Any]) -> None:
    """Given PartnerEvent, then it is schemas/events/envelope.v1.json (same required fields and property schemas,
    closed), and every valid example event of every schema validates against it."""
    envelope = json.loads((SCHEMA_DIR / "envelope.v1.json").read_text(encoding="utf-8"))
    schema = openapi["components"]["schemas"]["PartnerEvent"]
    validator = validator_for(openapi, "PartnerEvent")
    batch = validator_for(openapi, "PartnerEventBatch")

    assert set(schema["required"]) == set(envelope["required"])
    assert schema["additionalProperties"] is False
    for name, envelope_property in envelope["properties"].items():
        assert {k: v for k, v in schema["properties"][name].items() if k != "description"} == {
            k: v for k, v in envelope_property.items() if k != "description"
        }, name
    examples = valid_examples()
    assert examples
    for example in examples:
        validator.validate(example)
    batch.validate({"events": examples})
    with pytest.raises(ValidationError):
        batch.validate({"events": []})


def test_partner_route_documents_its_responses(openapi: dict[str, Any]) -> None:
    """Given the partner route, then 202 returns PartnerEventsAccepted with X-Cache and X-Request-Id, and every
    error it can answer (400 bad batch, 403 not a partner key, 413 too large, 429, 500, 503 bus down) is Error."""
    path, method = PARTNER_ROUTE
    responses = openapi["paths"][path][method]["responses"]
    schemas = openapi["components"]["schemas"]

    assert set(responses) == {"202", "413", *ERROR_STATUSES}
    accepted = dereference(openapi, responses["202"])
    assert dereference(openapi, accepted["content"]["application/json"]["schema"]) is schemas["PartnerEventsAccepted"]
    assert set(accepted["headers"]) == {"X-Cache", "X-Request-Id"}
    for status in set(responses) - {"202"}:
        response = dereference(openapi, responses[status])
        assert dereference(openapi, response["content"]["application/json"]["schema"]) is schemas["Error"], status


def test_partner_route_schema_is_exactly_what_the_code_renders(openapi: dict[str, Any]) -> None:
    """Given a batch of a valid event, an event without an id and one with an id but nothing else, when the partner
    events code accepts it with a partner key, then it answers 202 with a body that validates against
    PartnerEventsAccepted (a rejection's id is null when the event has none), whose objects are closed with every
    property required."""
    bus = AcceptingBus()
    partner_events = PartnerEvents("partners", frozenset({"partner-key"}), event_contracts(), bus)
    (valid, *_) = valid_examples()
    request = ApiRequest(
        query={},
        path={"provider": "skylink"},
        headers={},
        body=json.dumps({"events": [valid, {"type": "FlightOffersUpdated"}, {"id": "e-2"}]}),
        request_id="request-1",
        api_key_id="partner-key",
    )
    validator = validator_for(openapi, "PartnerEventsAccepted")

    reply = partner_events.accept(request)
    body = json.loads(reply.body)

    assert reply.status == 202
    validator.validate(body)
    assert body["accepted"] == len(bus.entries) == 1
    assert [(rejection["index"], rejection["id"]) for rejection in body["rejected"]] == [(1, None), (2, "e-2")]
    objects = [node for node in walk(validator.schema) if isinstance(node, dict) and "properties" in node]
    for node in objects:
        assert node.get("additionalProperties") is False, node
        assert set(node["required"]) == set(node["properties"]), node
    with pytest.raises(ValidationError):
        validator.validate({**body, "unexpected": 1})


# ------------------------------------------------------------------------------------------ change events
@by_pipe
def test_change_pipe_puts_inserts_and_updates_of_its_table_on_the_bus(resources: Resources, pipe: ChangePipe) -> None:
    """Given a change pipe, then it reads its table's stream (new and old images) from the latest record, only
    inserts and updates (not TTL deletions), puts them on the partner bus as <Thing>Changed from
    travel-search.changes, and a record it cannot deliver after its retries is isolated (bisect) and kept in the
    DLQ instead of blocking the shard."""
    properties = resources[pipe.pipe]["Properties"]
    stream = properties["SourceParameters"]["DynamoDBStreamParameters"]
    (pattern,) = properties["SourceParameters"]["FilterCriteria"]["Filters"]
    bus = properties["TargetParameters"]["EventBridgeEventBusParameters"]

    assert resources[pipe.table]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert properties["Source"] == getatt(pipe.table, "StreamArn")
    assert properties["RoleArn"] == getatt(f"{pipe.pipe}Role")
    assert stream["StartingPosition"] == "LATEST"
    assert 1 <= stream["BatchSize"] <= 10  # one PutEvents call takes at most 10 entries
    assert stream["DeadLetterConfig"] == {"Arn": getatt("ChangePipeDlq")}
    assert stream["MaximumRetryAttempts"] >= 1
    assert stream["OnPartialBatchItemFailure"] == "AUTOMATIC_BISECT"
    assert json.loads(pattern["Pattern"]) == {"eventName": ["INSERT", "MODIFY"]}
    assert properties["Target"] == getatt("PartnerBus")
    assert bus == {"Source": CHANGE_SOURCE, "DetailType": pipe.detail_type}
    assert re.fullmatch(r"[A-Z][a-z]+[A-Z][a-z]+Changed", pipe.detail_type)


@by_pipe
def test_change_pipe_forwards_attributes_the_code_writes(resources: Resources, pipe: ChangePipe) -> None:
    """Given a change pipe's input template, when the pipe fills it in, then it is a JSON object, and every stream
    path it reads is in the item as the domain's code writes it: the keys (route or city, sort key) and what says
    what changed (the new sequence and the price). A renamed attribute would forward empty values."""
    template_text = resources[pipe.pipe]["Properties"]["TargetParameters"]["InputTemplate"]
    item = pipe.sample_item()
    images = {"Keys": {"pk": item["pk"], "sk": item["sk"]}, "NewImage": item}
    paths = re.findall(r"<\$\.dynamodb\.(Keys|NewImage)((?:\.\w+)*)>", template_text)

    assert isinstance(json.loads(re.sub(r"<[^>]+>", "{}", template_text)), dict)
    assert len(paths) == len(re.findall(r"<\$\.dynamodb\.", template_text)), "every stream path is checked"
    forwarded: set[str] = set()
    for image, path in paths:
        steps, node = path.split(".")[1:], images[image]
        for step in steps:
            assert isinstance(node, dict) and step in node, (image, path)
            node = node[step]
        forwarded |= {steps[0]} if steps else set(node)  # a whole image forwards every attribute
    assert forwarded >= {"pk", "sk", *pipe.changed}


def test_every_pipe_logs_to_a_log_group_with_retention(resources: Resources) -> None:
    """Given every pipe, then it logs its errors to a log group of this stack that has a retention."""
    pipes = of_type(resources, "AWS::Pipes::Pipe")

    assert set(pipes) == {pipe.pipe for pipe in CHANGE_PIPES}
    for name, pipe in pipes.items():
        logging_config = pipe["Properties"]["LogConfiguration"]
        assert logging_config["Level"] in {"ERROR", "INFO", "TRACE"}, name
        (log_group,) = referenced_ids(logging_config["CloudwatchLogsLogDestination"]["LogGroupArn"])
        assert resources[log_group]["Type"] == "AWS::Logs::LogGroup", name
        assert resources[log_group]["Properties"]["RetentionInDays"], name


# ------------------------------------------------------------------------------------------ ingest observability
def test_every_dead_letter_queue_has_an_alarm_that_fires_on_one_message(resources: Resources) -> None:
    """Given every DLQ, then an alarm fires as soon as one message waits in it (nothing is lost silently), and
    stays quiet while the queue reports nothing."""
    for dlq in dead_letter_queues(resources):
        alarms = [
            alarm["Properties"]
            for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values()
            if alarm["Properties"].get("Namespace") == "AWS/SQS"
            and alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
            and alarm["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": getatt(dlq, "QueueName")}]
        ]
        (alarm,) = alarms
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Maximum",
            0,
            "GreaterThanThreshold",
        ), dlq
        assert alarm["EvaluationPeriods"] == 1, dlq
        assert alarm["TreatMissingData"] == "notBreaching", dlq


@by_ingest
def test_ingest_alarms_watch_lag_quarantine_and_failed_writes(
    resources: Resources, template: dict[str, Any], ingest: IngestDomain
) -> None:
    """Given an ingest domain, then alarms fire when its queue's oldest message is older than the parameter (300 s by
    default), when any event is quarantined, and when writes keep failing, on the EMF metrics the ingest code
    counts under the handler's own dimensions."""
    properties = [alarm["Properties"] for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    dimensions = [{"Name": name, "Value": value} for name, value in ingest_metric_dimensions(ingest).items()]

    (age,) = [
        p
        for p in properties
        if p.get("MetricName") == "ApproximateAgeOfOldestMessage"
        and p["Dimensions"] == [{"Name": "QueueName", "Value": getatt(ingest.queue, "QueueName")}]
    ]
    assert (age["Threshold"], age["ComparisonOperator"]) == (ref("IngestMaxMessageAgeSeconds"), "GreaterThanThreshold")
    assert template["Parameters"]["IngestMaxMessageAgeSeconds"]["Default"] == 300
    for metric, threshold in (("EventQuarantined", 0), ("IngestFailed", None)):
        assert metric in counted_metrics("integrations/ingest.py")
        (alarm,) = [
            p
            for p in properties
            if p.get("Namespace") == "TravelSearch"
            and p["MetricName"] == metric
            and sorted(p["Dimensions"], key=lambda d: d["Name"]) == dimensions
        ]
        assert alarm["Statistic"] == "Sum", metric
        assert alarm["TreatMissingData"] == "notBreaching", metric
        if threshold is not None:
            assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (threshold, "GreaterThanThreshold")


@by_ingest
def test_dashboard_shows_the_ingest_row(resources: Resources, ingest: IngestDomain) -> None:
    """Given an ingest domain, then the dashboard shows its queue's depth and age, its DLQ's depth, its function's
    errors and throttles, and the events it ingested and quarantined."""
    dashboard = render_dashboard(sub_text(resources["Dashboard"]["Properties"]["DashboardBody"]))
    rows = [values for widget in dashboard["widgets"] for values, _ in metric_rows(widget) if values]
    shown = {(values[0], values[1], json.dumps(metric_dimensions(values), sort_keys=True)) for values in rows}

    def on(namespace: str, metric: str, dimensions: dict[str, str]) -> bool:
        return (namespace, metric, json.dumps(dimensions, sort_keys=True)) in shown

    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        assert on("AWS/SQS", metric, {"QueueName": f"{ingest.queue}.QueueName"}), metric
    assert on("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": f"{ingest.dlq}.QueueName"})
    for metric in ("Errors", "Throttles"):
        assert on("AWS/Lambda", metric, {"FunctionName": ingest.function}), metric
    for metric in ("EventIngested", "EventQuarantined", "IngestFailed"):
        assert metric in counted_metrics("integrations/ingest.py"), metric
        assert on("TravelSearch", metric, ingest_metric_dimensions(ingest)), metric


def test_dashboard_shows_every_dead_letter_queue(resources: Resources) -> None:
    """Given every DLQ, then the dashboard shows how many messages wait in it."""
    dashboard = render_dashboard(sub_text(resources["Dashboard"]["Properties"]["DashboardBody"]))
    shown = {
        metric_dimensions(values)["QueueName"]
        for widget in dashboard["widgets"]
        for values, _ in metric_rows(widget)
        if values[:2] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible"]
    }

    assert {f"{dlq}.QueueName" for dlq in dead_letter_queues(resources)} <= shown
