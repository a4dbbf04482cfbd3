"""A local API Gateway (REST API, Lambda proxy integration) built from template.yaml.

Routes, API-key requirements, request validators, usage-plan throttles and quotas, mock
integrations and gateway responses all come from the template: the OpenAPI 3 document in each
``AWS::ApiGateway::RestApi``'s ``Body`` and the ``AWS::ApiGateway::*`` resources around it. Each
request becomes the exact REST proxy (payload 1.0) event and is handed to the function named by
the integration's ``uri``, with a Lambda-like context object. The same :class:`Gateway` object is
served by ``make run`` and driven in-process by the integration tests (``werkzeug.test.Client``).
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from local.intrinsics import Intrinsics

logger = logging.getLogger(__name__)

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
ANY_METHOD = "x-amazon-apigateway-any-method"
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway payload limit
MAX_LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024  # synchronous Lambda response limit
PROXY_RESULT_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
_ARN_REFERENCE = re.compile(r"^([A-Za-z0-9]+)(?:\.Arn)?$")
_CONTEXT_VARIABLE = re.compile(r"\$(?:\{context\.([A-Za-z.]+)\}|context\.([A-Za-z.]+))")
_QUOTA_PERIOD_SECONDS = {"DAY": 86_400, "WEEK": 7 * 86_400, "MONTH": 30 * 86_400}

Handler = Callable[[dict[str, Any], Any], Any]


class TemplateError(ValueError):
    """The template's API cannot be served locally as written."""


# --- API keys, usage plans and throttling -------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    rate_limit: float  # steady requests per second
    burst_limit: int  # bucket size


@dataclass(frozen=True)
class Quota:
    limit: int
    period: str  # DAY | WEEK | MONTH


@dataclass(frozen=True)
class ApiKey:
    """One ``AWS::ApiGateway::ApiKey`` with a fresh random value, and the usage plan it belongs to."""

    logical_id: str
    value: str
    key_id: str
    enabled: bool = True
    tier: str | None = None
    usage_plan: str | None = None
    throttle: Throttle | None = None
    quota: Quota | None = None


def _new_key_value() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(40))


def _ref_target(value: Any) -> str | None:
    return value["Ref"] if isinstance(value, dict) and isinstance(value.get("Ref"), str) else None


def api_keys_from_template(intrinsics: Intrinsics) -> dict[str, ApiKey]:
    """Key value → :class:`ApiKey`, one random value per ``AWS::ApiGateway::ApiKey`` resource.

    The tier is the ``tier`` tag of the key's usage plan; throttle and quota are that plan's.
    """
    resources = intrinsics.resources
    plan_of_key: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::ApiGateway::UsagePlanKey" and intrinsics.included(logical_id):
            properties = resource.get("Properties", {})
            key, plan = _ref_target(properties.get("KeyId")), _ref_target(properties.get("UsagePlanId"))
            if key and plan:
                plan_of_key[key] = plan
    keys: dict[str, ApiKey] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::ApiGateway::ApiKey" or not intrinsics.included(logical_id):
            continue
        properties = intrinsics.resolve(resource.get("Properties", {}))
        plan_id = plan_of_key.get(logical_id)
        tier, throttle, quota = None, None, None
        if plan_id is not None:
            plan = intrinsics.resolve(resources[plan_id].get("Properties", {}))
            tags = {tag.get("Key"): tag.get("Value") for tag in plan.get("Tags", []) or []}
            tier = str(tags.get("tier") or plan.get("UsagePlanName") or plan_id)
            if plan.get("Throttle"):
                limits = plan["Throttle"]
                throttle = Throttle(float(limits.get("RateLimit", 10_000)), int(limits.get("BurstLimit", 5_000)))
            if plan.get("Quota"):
                quota = Quota(int(plan["Quota"]["Limit"]), str(plan["Quota"].get("Period", "DAY")).upper())
        value = _new_key_value()
        keys[value] = ApiKey(
            logical_id=logical_id,
            value=value,
            key_id=intrinsics.physical_id(logical_id),
            enabled=str(properties.get("Enabled", True)).lower() != "false",
            tier=tier,
            usage_plan=plan_id,
            throttle=throttle,
            quota=quota,
        )
    return keys


class TokenBucket:
    """API Gateway's throttle: ``burst`` requests at once, refilled at ``rate`` per second."""

    def __init__(self, throttle: Throttle, clock: Callable[[], float]) -> None:
        self.rate = throttle.rate_limit
        self.capacity = float(max(throttle.burst_limit, 0))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


# --- routes and integrations --------------------------------------------------------------------


@dataclass(frozen=True)
class MockResponse:
    status: int
    body: str
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Route:
    api_logical_id: str
    api_id: str
    stage: str
    resource: str  # the OpenAPI path template, e.g. /v1/destinations/{code}
    method: str  # GET, POST, … or ANY
    pattern: re.Pattern[str]
    api_key_required: bool
    function: str | None = None  # logical id, for aws_proxy integrations
    mock: MockResponse | None = None  # for mock integrations; neither function nor mock: not emulated
    required_parameters: tuple[tuple[str, str], ...] = ()  # (in, name)
    binary_media_types: tuple[str, ...] = ()
    method_throttle: Throttle | None = None  # the stage's MethodSettings throttling for this method

    @property
    def specificity(self) -> tuple[int, int]:
        """API Gateway prefers literal segments over ``{param}``, and ``{param}`` over ``{proxy+}``."""
        segments = [s for s in self.resource.split("/") if s]
        literal = sum(1 for s in segments if not s.startswith("{"))
        greedy = sum(1 for s in segments if s.endswith("+}"))
        return (literal, -greedy)


def _path_pattern(resource: str) -> re.Pattern[str]:
    parts = []
    for segment in resource.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$")


def _resolve_ref(document: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("$ref"), str) and value["$ref"].startswith("#/"):
        node: Any = document
        for part in value["$ref"][2:].split("/"):
            node = node[part]
        return node
    return value


def _api_key_required(document: Mapping[str, Any], operation: Mapping[str, Any]) -> bool:
    security = operation.get("security", document.get("security", []))
    if not security:
        return False
    schemes = (document.get("components") or {}).get("securitySchemes") or {}
    alternatives = []
    for requirement in security:
        uses_key = any(
            (schemes.get(name) or {}).get("type") == "apiKey" or (name not in schemes and name == "api_key")
            for name in requirement
        )
        alternatives.append(uses_key)
    # `security: [{}, {api_key: []}]` makes the key optional: required only if every alternative needs it.
    return all(alternatives)


def _function_of(intrinsics: Intrinsics, api: str, route: str, uri: Any) -> str:
    """The function logical id behind an aws_proxy ``uri`` (``Fn::Sub`` with ``${Function.Arn}``)."""
    text = None
    if isinstance(uri, dict) and "Fn::Sub" in uri:
        argument = uri["Fn::Sub"]
        text = argument[0] if isinstance(argument, list) else argument
    if not isinstance(text, str):
        raise TemplateError(f"{api} {route}: integration uri must be an Fn::Sub string naming ${{<Function>.Arn}}")
    for reference in intrinsics.sub_references(text):
        match = _ARN_REFERENCE.match(reference)
        if not match or match.group(1) not in intrinsics.resources:
            continue
        logical_id = match.group(1)
        resource = intrinsics.resources[logical_id]
        if resource["Type"] in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            target = _ref_target(resource["Properties"].get("FunctionName"))
            target = target or (resource["Properties"].get("FunctionName") or {}).get("Fn::GetAtt", [None])[0]
            if target:
                return str(target)
        if resource["Type"] == "AWS::Lambda::Function":
            return logical_id
    raise TemplateError(f"{api} {route}: integration uri {text!r} names no AWS::Lambda::Function")


def _mock_response(integration: Mapping[str, Any]) -> MockResponse:
    request_template = (integration.get("requestTemplates") or {}).get("application/json", '{"statusCode": 200}')
    try:
        status = str(json.loads(request_template).get("statusCode", 200))
    except (ValueError, AttributeError):
        status = "200"
    responses: dict[str, dict[str, Any]] = integration.get("responses") or {}
    chosen: dict[str, Any] | None = None
    for selection, response in responses.items():
        if selection != "default" and re.fullmatch(str(selection), status):
            chosen = response
            break
    chosen = chosen or responses.get("default") or next(iter(responses.values()), {})
    templates = chosen.get("responseTemplates") or {}
    content_type, body = next(iter(templates.items()), ("application/json", ""))
    headers = tuple(
        (name.removeprefix("method.response.header."), str(value).strip("'"))
        for name, value in (chosen.get("responseParameters") or {}).items()
        if name.startswith("method.response.header.") and str(value).startswith("'")
    )
    return MockResponse(int(chosen.get("statusCode", status)), str(body), str(content_type), headers)


def _stage_of(intrinsics: Intrinsics, api_logical_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The API's stage name and its MethodSettings (from its Stage, else its Deployment)."""
    for resource_type in ("AWS::ApiGateway::Stage", "AWS::ApiGateway::Deployment"):
        for logical_id, resource in intrinsics.resources.items():
            properties = resource.get("Properties", {})
            if resource["Type"] != resource_type or _ref_target(properties.get("RestApiId")) != api_logical_id:
                continue
            if intrinsics.included(logical_id) and properties.get("StageName") is not None:
                settings = properties.get("MethodSettings") or (properties.get("StageDescription") or {}).get(
                    "MethodSettings"
                )
                return str(intrinsics.resolve(properties["StageName"])), intrinsics.resolve(settings or [])
    return "local", []


def _method_throttle(method_settings: list[dict[str, Any]], resource: str, method: str) -> Throttle | None:
    """The most specific MethodSettings throttle for one method (``/*`` + ``*`` is the stage default)."""
    best: tuple[int, Throttle] | None = None
    for setting in method_settings:
        if "ThrottlingRateLimit" not in setting and "ThrottlingBurstLimit" not in setting:
            continue
        path = str(setting.get("ResourcePath", "/*")).replace("~1", "/")
        verb = str(setting.get("HttpMethod", "*")).upper()
        if path not in ("/*", resource) or verb not in ("*", method):
            continue
        rank = (path != "/*") * 2 + (verb != "*")
        throttle = Throttle(
            float(setting.get("ThrottlingRateLimit", 10_000)), int(setting.get("ThrottlingBurstLimit", 5_000))
        )
        if best is None or rank > best[0]:
            best = (rank, throttle)
    return best[1] if best else None


def routes_from_template(intrinsics: Intrinsics) -> list[Route]:
    """Every operation of every RestApi with an OpenAPI ``Body``, most specific path first."""
    routes: list[Route] = []
    for api_logical_id, resource in intrinsics.resources.items():
        if resource["Type"] != "AWS::ApiGateway::RestApi" or not intrinsics.included(api_logical_id):
            continue
        document = (resource.get("Properties") or {}).get("Body")
        if not isinstance(document, dict) or "paths" not in document:
            continue
        stage, method_settings = _stage_of(intrinsics, api_logical_id)
        api_id = intrinsics.physical_id(api_logical_id)
        validators = document.get("x-amazon-apigateway-request-validators") or {}
        default_validator = document.get("x-amazon-apigateway-request-validator")
        binary_types = tuple(document.get("x-amazon-apigateway-binary-media-types") or ())
        for path, path_item in document["paths"].items():
            path_parameters = [_resolve_ref(document, p) for p in path_item.get("parameters", [])]
            for method_key, operation in path_item.items():
                if method_key not in HTTP_METHODS and method_key != ANY_METHOD:
                    continue
                method = "ANY" if method_key == ANY_METHOD else method_key.upper()
                name = f"{method} {path}"
                integration = operation.get("x-amazon-apigateway-integration") or {}
                kind = str(integration.get("type", "")).lower()
                function, mock = None, None
                if kind == "aws_proxy":
                    function = _function_of(intrinsics, api_logical_id, name, integration.get("uri"))
                elif kind == "mock":
                    mock = _mock_response(integration)
                else:
                    # Served as 501 rather than refusing to start: the rest of the API stays usable.
                    logger.warning("%s: integration type %r is not emulated locally; it answers 501", name, kind)
                validator = validators.get(operation.get("x-amazon-apigateway-request-validator", default_validator))
                required: tuple[tuple[str, str], ...] = ()
                if validator and validator.get("validateRequestParameters"):
                    parameters = [
                        *path_parameters,
                        *(_resolve_ref(document, p) for p in operation.get("parameters", [])),
                    ]
                    required = tuple(
                        (str(p["in"]), str(p["name"]))
                        for p in parameters
                        if p.get("required") and p.get("in") != "path"
                    )
                routes.append(
                    Route(
                        api_logical_id=api_logical_id,
                        api_id=api_id,
                        stage=stage,
                        resource=path,
                        method=method,
                        pattern=_path_pattern(path),
                        api_key_required=_api_key_required(document, operation),
                        function=function,
                        mock=mock,
                        required_parameters=required,
                        binary_media_types=binary_types,
                        method_throttle=_method_throttle(method_settings, path, method),
                    )
                )
    seen: set[tuple[str, str]] = set()
    for route in routes:
        if (route.resource, route.method) in seen:
            raise TemplateError(f"{route.method} {route.resource} is defined by more than one RestApi")
        seen.add((route.resource, route.method))
    return sorted(routes, key=lambda r: r.specificity, reverse=True)


# --- gateway responses (the template's error bodies) -------------------------------------------


@dataclass(frozen=True)
class GatewayResponse:
    status: int | None
    template: str | None
    headers: tuple[tuple[str, str], ...]


def _gateway_response(definition: Mapping[str, Any], template_key: str, status_key: str, header_key: str) -> Any:
    templates = definition.get(template_key) or {}
    headers = tuple(
        (name.removeprefix("gatewayresponse.header."), str(value).strip("'"))
        for name, value in (definition.get(header_key) or {}).items()
        if name.startswith("gatewayresponse.header.") and str(value).startswith("'")
    )
    status = definition.get(status_key)
    return GatewayResponse(int(status) if status else None, templates.get("application/json"), headers)


def gateway_responses_from_template(intrinsics: Intrinsics) -> dict[str, GatewayResponse]:
    """Response type (``INVALID_API_KEY``, ``THROTTLED``, ``DEFAULT_4XX`` …) → its customisation."""
    responses: dict[str, GatewayResponse] = {}
    for logical_id, resource in intrinsics.resources.items():
        if not intrinsics.included(logical_id):
            continue
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::ApiGateway::RestApi" and isinstance(properties.get("Body"), dict):
            for kind, definition in (properties["Body"].get("x-amazon-apigateway-gateway-responses") or {}).items():
                responses[kind] = _gateway_response(definition, "responseTemplates", "statusCode", "responseParameters")
        elif resource["Type"] == "AWS::ApiGateway::GatewayResponse":
            resolved = intrinsics.resolve({k: v for k, v in properties.items() if k != "RestApiId"})
            responses[str(resolved["ResponseType"])] = _gateway_response(
                resolved, "ResponseTemplates", "StatusCode", "ResponseParameters"
            )
    return responses


# --- Lambda -------------------------------------------------------------------------------------


@dataclass
class LambdaContext:
    """The attributes a Python Lambda handler's ``context`` has."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: str  # a string in the real runtime too (read from an environment variable)
    aws_request_id: str
    deadline: float  # time.monotonic() at which Lambda would stop the invocation
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class LambdaFunction:
    """One ``AWS::Lambda::Function``: its handler is imported on first use, then reused.

    Invocations are serialised, like one warm execution environment: handler code may keep
    per-container state (clients, caches) without locks, exactly as it does in Lambda.
    """

    def __init__(self, intrinsics: Intrinsics, logical_id: str) -> None:
        properties = intrinsics.resources[logical_id].get("Properties", {})
        handler = properties.get("Handler")
        if not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"{logical_id}: Handler must be 'module.function', got {handler!r}")
        self.logical_id = logical_id
        self.handler_name = handler
        self.name = intrinsics.physical_id(logical_id)
        self.arn = intrinsics.arn(logical_id)
        self.memory_mb = int(intrinsics.resolve(properties.get("MemorySize", 128)))
        self.timeout_seconds = float(intrinsics.resolve(properties.get("Timeout", 3)))
        self._handler: Handler | None = None
        self._lock = threading.Lock()

    def _load(self) -> Handler:
        if self._handler is None:
            module_name, attribute = self.handler_name.rsplit(".", 1)
            handler = getattr(importlib.import_module(module_name), attribute)
            if not callable(handler):
                raise TemplateError(f"{self.logical_id}: {self.handler_name} is not callable")
            self._handler = handler
        return self._handler

    def context(self, request_id: str) -> LambdaContext:
        today = datetime.now(UTC).strftime("%Y/%m/%d")
        return LambdaContext(
            function_name=self.name,
            invoked_function_arn=self.arn,
            memory_limit_in_mb=str(self.memory_mb),
            aws_request_id=request_id,
            deadline=time.monotonic() + self.timeout_seconds,
            log_group_name=f"/aws/lambda/{self.name}",
            log_stream_name=f"{today}/[$LATEST]{uuid.uuid4().hex}",
        )

    def invoke(self, event: dict[str, Any]) -> Any:
        """Call the handler as Lambda would: a JSON copy of the event in, a JSON-able result out."""
        # Lambda hands over a fresh decoded event and must serialise the result: doing the same
        # here surfaces non-JSON results (Decimal, bytes …) locally instead of in AWS.
        payload = json.loads(json.dumps(event))
        with self._lock:
            handler = self._load()
            context = self.context(str(uuid.uuid4()))
            started = time.monotonic()
            result = handler(payload, context)
            elapsed = time.monotonic() - started
        if elapsed > self.timeout_seconds:
            logger.warning(
                "%s took %.2fs, over its %.0fs Timeout: Lambda would have stopped it (API Gateway: 502)",
                self.logical_id, elapsed, self.timeout_seconds,
            )  # fmt: skip
        return json.loads(json.dumps(result))


# --- the gateway --------------------------------------------------------------------------------


@dataclass
class GatewayRequest:
    """One request on its way through the gateway."""

    request: Request
    request_id: str
    started: float
    epoch_ms: int
    route: Route | None = None
    key: ApiKey | None = None
    extended_request_id: str = field(default_factory=lambda: secrets.token_urlsafe(12)[:16])


class Gateway:
    """WSGI app: the template's REST API with keys, throttling, validation and Lambda proxying."""

    def __init__(self, intrinsics: Intrinsics, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.intrinsics = intrinsics
        self.routes = routes_from_template(intrinsics)
        if not self.routes:
            raise TemplateError("no AWS::ApiGateway::RestApi with an OpenAPI Body and paths in the template")
        self.api_keys = api_keys_from_template(intrinsics)
        self.gateway_responses = gateway_responses_from_template(intrinsics)
        self.functions = {
            route.function: LambdaFunction(intrinsics, route.function) for route in self.routes if route.function
        }
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._quota_used: dict[tuple[str, int], int] = {}
        self._limits_lock = threading.Lock()

    # public helpers -----------------------------------------------------------------------------

    def keys_by_tier(self) -> dict[str, str]:
        """Tier → one usable key value (the first key of each tier, in template order)."""
        tiers: dict[str, str] = {}
        for key in self.api_keys.values():
            if key.tier and key.enabled:
                tiers.setdefault(key.tier, key.value)
        return tiers

    def find_route(self, path: str, method: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """The route for a request, its path parameters, and the methods the path allows."""
        matched: list[tuple[Route, dict[str, str]]] = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found:
                matched.append((route, found.groupdict()))
        if not matched:
            return None, {}, []
        # The most specific matching resource wins, as in API Gateway; methods are then looked up on it.
        best = matched[0][0].resource
        on_resource = [(route, params) for route, params in matched if route.resource == best]
        for route, params in on_resource:
            if route.method in (method, "ANY"):
                return route, params, []
        return None, {}, sorted(route.method for route, _ in on_resource)

    # WSGI ---------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        call = GatewayRequest(request, str(uuid.uuid4()), time.monotonic(), int(time.time() * 1000))
        try:
            response = self.handle(call)
        except Exception:  # the gateway itself must never answer with a traceback
            logger.exception("local gateway failed on %s %s", request.method, request.path)
            response = self._error(call, 500, "internal_error", "Internal server error (local gateway)")
        response.headers["x-amzn-RequestId"] = call.request_id
        response.headers.setdefault("x-amz-apigw-id", call.extended_request_id)
        self._log(call, response)
        return response(environ, start_response)

    def handle(self, call: GatewayRequest) -> Response:
        request = call.request
        length = request.content_length or 0
        if length > MAX_REQUEST_BYTES:
            return self._gateway_error(call, "REQUEST_TOO_LARGE", 413, "payload_too_large", "Request Too Long")
        path = request.path if request.path == "/" else request.path.rstrip("/")
        route, path_parameters, allowed = self.find_route(path, request.method)
        if route is None:
            # API Gateway answers both an unknown path and a wrong method with MISSING_AUTHENTICATION_TOKEN
            # (403 unless the template customises it); without a customisation, say what happened.
            if "MISSING_AUTHENTICATION_TOKEN" not in self.gateway_responses and allowed:
                message = f"{request.method} is not allowed on {path}"
                response = self._error(call, 405, "method_not_allowed", message)
                response.headers["Allow"] = ", ".join(allowed)
                return response
            return self._gateway_error(
                call, "MISSING_AUTHENTICATION_TOKEN", 404, "not_found", "Missing Authentication Token"
            )
        call.route = route
        refusal = self._check_key(call) if route.api_key_required else None
        refusal = refusal or self._check_method_throttle(call, route)
        if refusal is not None:
            return refusal
        missing = [
            name
            for location, name in route.required_parameters
            if (location == "query" and name not in request.args)
            or (location == "header" and name not in request.headers)
        ]
        if missing:
            message = f"Missing required request parameters: [{', '.join(missing)}]"
            return self._gateway_error(call, "BAD_REQUEST_PARAMETERS", 400, "bad_request", message)
        if route.mock is not None:
            return self._mock(call, route.mock)
        if route.function is None:
            message = f"{route.method} {route.resource}: this integration type is not emulated by the local gateway"
            return self._error(call, 501, "not_implemented", message)
        return self._proxy(call, route, path_parameters)

    # keys, throttles, quotas --------------------------------------------------------------------

    def _check_key(self, call: GatewayRequest) -> Response | None:
        value = call.request.headers.get("x-api-key")
        key = self.api_keys.get(value) if value else None
        if key is None or not key.enabled or key.usage_plan is None:
            # API Gateway answers a missing and an unknown key alike, so neither can be probed.
            return self._gateway_error(call, "INVALID_API_KEY", 403, "forbidden", "Forbidden")
        call.key = key
        with self._limits_lock:
            if key.throttle is not None:
                bucket = self._buckets.get(key.key_id)
                if bucket is None:
                    bucket = self._buckets[key.key_id] = TokenBucket(key.throttle, self._clock)
                if not bucket.take():
                    return self._gateway_error(call, "THROTTLED", 429, "too_many_requests", "Too Many Requests")
            if key.quota is not None:
                window = int(time.time() // _QUOTA_PERIOD_SECONDS.get(key.quota.period, 86_400))
                used = self._quota_used.get((key.key_id, window), 0)
                if used >= key.quota.limit:
                    message = f"Limit Exceeded: {key.quota.limit} requests per {key.quota.period.lower()}"
                    return self._gateway_error(call, "QUOTA_EXCEEDED", 429, "too_many_requests", message)
                self._quota_used[(key.key_id, window)] = used + 1
        return None

    def _check_method_throttle(self, call: GatewayRequest, route: Route) -> Response | None:
        """The stage's method throttling (MethodSettings): one bucket per method, shared by all callers."""
        if route.method_throttle is None:
            return None
        with self._limits_lock:
            name = f"{route.api_id}/{route.stage}/{route.method}{route.resource}"
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = TokenBucket(route.method_throttle, self._clock)
            if bucket.take():
                return None
        return self._gateway_error(call, "THROTTLED", 429, "too_many_requests", "Too Many Requests")

    # integrations -------------------------------------------------------------------------------

    def _context_variables(self, call: GatewayRequest) -> dict[str, str]:
        route = call.route
        request = call.request
        return {
            "requestId": call.request_id,
            "extendedRequestId": call.extended_request_id,
            "requestTime": datetime.fromtimestamp(call.epoch_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": str(call.epoch_ms),
            "httpMethod": request.method,
            "resourcePath": route.resource if route else request.path,
            "path": f"/{route.stage}{request.path}" if route else request.path,
            "stage": route.stage if route else "local",
            "apiId": route.api_id if route else "",
            "accountId": self.intrinsics.account_id,
            "identity.sourceIp": request.remote_addr or "127.0.0.1",
            "identity.userAgent": request.user_agent.string or "",
            "identity.apiKey": call.key.value if call.key else "",
            "identity.apiKeyId": call.key.key_id if call.key else "",
        }

    def _render(self, template: str, call: GatewayRequest, extra: Mapping[str, str] | None = None) -> str:
        variables = {**self._context_variables(call), **(extra or {})}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            return variables.get(name, match.group(0))

        return _CONTEXT_VARIABLE.sub(replace, template)

    def _mock(self, call: GatewayRequest, mock: MockResponse) -> Response:
        response = Response(self._render(mock.body, call), status=mock.status, content_type=mock.content_type)
        for name, value in mock.headers:
            response.headers[name] = value
        return response

    def _proxy(self, call: GatewayRequest, route: Route, path_parameters: Mapping[str, str]) -> Response:
        function = self.functions[route.function or ""]
        event = self.proxy_event(call, route, path_parameters)
        try:
            result = function.invoke(event)
        except Exception:
            logger.exception(
                "%s (%s) raised on %s %s", function.logical_id, function.handler_name, route.method, route.resource
            )
            # API Gateway answers a failed invocation with 502 and its DEFAULT_5XX gateway response.
            return self._gateway_error(call, "DEFAULT_5XX", 502, "internal_error", "Internal server error")
        try:
            return self._proxy_response(result)
        except TemplateError as error:
            logger.error("%s returned a malformed proxy response: %s", function.logical_id, error)
            return self._gateway_error(call, "DEFAULT_5XX", 502, "internal_error", "Internal server error")

    def proxy_event(self, call: GatewayRequest, route: Route, path_parameters: Mapping[str, str]) -> dict[str, Any]:
        """The REST API Lambda proxy event (payload format 1.0) for one request."""
        request = call.request
        headers = Headers(request.headers)
        headers.setdefault("X-Forwarded-For", request.remote_addr or "127.0.0.1")
        headers.setdefault("X-Forwarded-Port", str(request.environ.get("SERVER_PORT", "80")))
        headers.setdefault("X-Forwarded-Proto", request.scheme)
        headers.setdefault("X-Amzn-Trace-Id", f"Root=1-{call.epoch_ms // 1000:08x}-{secrets.token_hex(12)}")
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers.items():
            multi_headers.setdefault(name, []).append(value)
        multi_query = {name: request.args.getlist(name) for name in request.args}
        raw_body = request.get_data(cache=True)
        body: str | None = None
        is_base64 = False
        if raw_body:
            content_type = (request.mimetype or "").lower()
            binary = any(_media_type_matches(content_type, kind) for kind in route.binary_media_types)
            try:
                body = raw_body.decode("utf-8") if not binary else None
            except UnicodeDecodeError:
                body = None
            if body is None:
                body, is_base64 = base64.b64encode(raw_body).decode("ascii"), True
        context = self._context_variables(call)
        key = call.key
        return {
            "resource": route.resource,
            "path": request.path,
            "httpMethod": request.method,
            "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": dict(path_parameters) or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": route.api_id[:6],
                "resourcePath": route.resource,
                "httpMethod": request.method,
                "extendedRequestId": call.extended_request_id,
                "requestTime": context["requestTime"],
                "path": context["path"],
                "accountId": self.intrinsics.account_id,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "stage": route.stage,
                "domainPrefix": request.host.split(".")[0].split(":")[0],
                "requestTimeEpoch": call.epoch_ms,
                "requestId": call.request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "sourceIp": context["identity.sourceIp"],
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": context["identity.userAgent"],
                    "user": None,
                    "apiKey": key.value if key else None,
                    "apiKeyId": key.key_id if key else None,
                },
                "domainName": request.host,
                "apiId": route.api_id,
            },
            "body": body,
            "isBase64Encoded": is_base64,
        }

    @staticmethod
    def _proxy_response(result: Any) -> Response:
        if not isinstance(result, dict) or "statusCode" not in result:
            raise TemplateError("the result must be an object with a statusCode")
        extra = set(result) - PROXY_RESULT_KEYS
        if extra:
            logger.warning("proxy result has keys API Gateway ignores: %s", sorted(extra))
        try:
            status = int(result["statusCode"])
        except (TypeError, ValueError):
            raise TemplateError(f"statusCode {result['statusCode']!r} is not an integer") from None
        body = result.get("body")
        if body is not None and not isinstance(body, str):
            raise TemplateError(f"body must be a string, got {type(body).__name__}")
        payload = (body or "").encode("utf-8")
        if result.get("isBase64Encoded"):
            try:
                payload = base64.b64decode(body or "", validate=True)
            except ValueError:
                raise TemplateError("isBase64Encoded is true but the body is not base64") from None
        if len(payload) > MAX_LAMBDA_RESPONSE_BYTES:
            raise TemplateError(f"body is {len(payload)} bytes, over Lambda's 6 MB response limit")
        response = Response(payload, status=status)
        del response.headers["Content-Type"]
        for name, value in (result.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (result.get("multiValueHeaders") or {}).items():
            if name in (result.get("headers") or {}):
                del response.headers[name]
            for value in values or []:
                response.headers.add(name, str(value))
        response.headers.setdefault("Content-Type", "application/json")
        return response

    # errors and logging -------------------------------------------------------------------------

    def _error(self, call: GatewayRequest, status: int, code: str, message: str) -> Response:
        body = json.dumps({"error": {"code": code, "message": message}})
        return Response(body, status=status, content_type="application/json")

    def _gateway_error(self, call: GatewayRequest, kind: str, status: int, code: str, message: str) -> Response:
        """An error API Gateway itself answers: the template's gateway response when it has one."""
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        custom = self.gateway_responses.get(kind) or self.gateway_responses.get(family)
        if custom is None or custom.template is None:
            response = self._error(call, status, code, message)
        else:
            extra = {
                "error.message": message,
                "error.messageString": json.dumps(message),
                "error.responseType": kind,
                "error.validationErrorString": json.dumps(message),
            }
            body = self._render(custom.template, call, extra)
            response = Response(body, status=custom.status or status, content_type="application/json")
        for name, value in custom.headers if custom else ():
            response.headers[name] = value
        return response

    def _log(self, call: GatewayRequest, response: Response) -> None:
        request = call.request
        elapsed_ms = (time.monotonic() - call.started) * 1000
        tier = call.key.tier if call.key else "-"
        # Parameter names, never values: a client may put a key or a token where it does not belong
        # (API Gateway's access log, as the template formats it, has no query string at all).
        names = "&".join(dict.fromkeys(request.args))
        logger.info(
            '%s "%s %s" %d %.1fms tier=%s cache=%s id=%s',
            request.remote_addr or "-", request.method, f"{request.path}?{names}" if names else request.path,
            response.status_code, elapsed_ms, tier, response.headers.get("X-Cache", "-"), call.request_id,
        )  # fmt: skip


def _media_type_matches(content_type: str, pattern: str) -> bool:
    pattern = pattern.replace("~1", "/").lower()
    if pattern == "*/*":
        return True
    if pattern.endswith("/*"):
        return content_type.startswith(pattern[:-1])
    return content_type == pattern
