"""Infrastructure tests: template.yaml keeps the promises the code, the local stack and operators rely on.

Each test reads the template as CloudFormation does (long-form intrinsics, via ``local.template``) and
checks a property a user or an operator would notice when it breaks: a route that answers 500, a key
that is not enforced, an alarm that can never fire, a role that can do more than it should.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from local.template import TEMPLATE_PATH

Resources = dict[str, dict[str, Any]]

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}

# What domains/flights and core/settings.py read; nothing more, nothing less.
FLIGHTS_SEARCH_ENVIRONMENT = {
    "FLIGHTS_TABLE",
    "CACHE_HOST",
    "CACHE_PORT",
    "CACHE_TLS",
    "CACHE_AUTH",
    "CACHE_USER",
    "CACHE_NAME",
    "CACHE_TTL_SECONDS",
    "PAGE_TOKEN_SECRET",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}

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
    """The dashboard JSON with every ${...} substitution replaced by a plausible value."""
    return json.loads(re.sub(r"\$\{[^}]+\}", "1", body))


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


def test_flights_search_environment_has_exactly_the_variables_the_code_reads(resources: Resources) -> None:
    """Given the flights search function, then its environment has exactly the names core/settings.py and
    Powertools read: a missing one fails at cold start, an extra one (POWERTOOLS_SERVICE_NAME) would
    override the service the code sets when the local stack merges all functions' variables."""
    variables = resources["FlightsSearchFunction"]["Properties"]["Environment"]["Variables"]

    assert set(variables) == FLIGHTS_SEARCH_ENVIRONMENT


def test_flights_search_environment_points_at_the_stack_resources(resources: Resources) -> None:
    """Given the flights search environment, then each variable is wired to the resource it names."""
    variables = resources["FlightsSearchFunction"]["Properties"]["Environment"]["Variables"]

    assert variables["FLIGHTS_TABLE"] == {"Ref": "FlightsTable"}
    assert variables["CACHE_HOST"] == {"Fn::GetAtt": ["SearchCache", "Endpoint.Address"]}
    assert variables["CACHE_PORT"] == {"Fn::GetAtt": ["SearchCache", "Endpoint.Port"]}
    assert variables["CACHE_TLS"] == "true"
    assert variables["CACHE_AUTH"] == "iam"
    assert variables["CACHE_USER"] == {"Ref": "CacheIamUser"}
    assert variables["CACHE_NAME"] == {"Ref": "SearchCache"}
    assert variables["CACHE_TTL_SECONDS"] == {"Ref": "SearchCacheTtlSeconds"}
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "TravelSearch"
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert sub_text(variables["PAGE_TOKEN_SECRET"]) == "{{resolve:secretsmanager:${PageTokenSecret}:SecretString}}"


def test_page_token_secret_is_generated_long_and_without_punctuation(resources: Resources) -> None:
    """Given the page-token signing key, then it is generated (never in the template) and at least 32 characters."""
    secret = resources["PageTokenSecret"]
    generated = secret["Properties"]["GenerateSecretString"]

    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert generated["PasswordLength"] >= 32
    assert generated["ExcludePunctuation"] is True
    assert "SecretString" not in secret["Properties"]


def test_flights_search_runs_in_the_private_subnets_with_the_core_layer(resources: Resources) -> None:
    """Given the flights search function, then it runs in both private subnets behind the functions'
    security group, with the shared core layer built for the same runtime and architecture."""
    properties = resources["FlightsSearchFunction"]["Properties"]
    layer = resources["CoreLayer"]["Properties"]

    assert properties["Handler"] == "domains.flights.handler.lambda_handler"
    assert properties["VpcConfig"]["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    assert referenced_ids(properties["VpcConfig"]["SecurityGroupIds"]) == {"LambdaSecurityGroup"}
    assert properties["Layers"] == [{"Ref": "CoreLayer"}]
    assert layer["CompatibleRuntimes"] == ["python3.13"]
    assert layer["CompatibleArchitectures"] == ["arm64"]


def test_reserved_concurrency_minus_one_means_unreserved(template: dict[str, Any], resources: Resources) -> None:
    """Given the reserved-concurrency parameter at its default -1, then the property is left out (unreserved),
    because Lambda rejects -1 as a value."""
    reserved = resources["FlightsSearchFunction"]["Properties"]["ReservedConcurrentExecutions"]
    condition, when_set, when_unset = reserved["Fn::If"]

    assert template["Parameters"]["FlightsSearchReservedConcurrency"]["Default"] == -1
    assert template["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "FlightsSearchReservedConcurrency"}, "-1"]}]
    }
    assert when_set == {"Ref": "FlightsSearchReservedConcurrency"}
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


def test_request_validation_only_checks_required_parameters(openapi: dict[str, Any]) -> None:
    """Given the request validator, then it checks parameters only: the function does the strict checks,
    so every validation error has the one error shape with a reason."""
    validators = openapi["x-amazon-apigateway-request-validators"]
    operation = openapi["paths"]["/v1/flights/search"]["get"]

    validator = validators[operation["x-amazon-apigateway-request-validator"]]
    assert validator == {"validateRequestParameters": True, "validateRequestBody": False}


def test_flights_search_documents_its_responses(openapi: dict[str, Any]) -> None:
    """Given GET /v1/flights/search, then 200 returns FlightSearchResponse with an X-Cache header and
    every documented error status returns the Error shape."""
    responses = openapi["paths"]["/v1/flights/search"]["get"]["responses"]
    schemas = openapi["components"]["schemas"]

    ok = dereference(openapi, responses["200"])
    assert dereference(openapi, ok["content"]["application/json"]["schema"]) is schemas["FlightSearchResponse"]
    x_cache = dereference(openapi, ok["headers"]["X-Cache"])
    assert x_cache["schema"]["enum"] == ["HIT", "MISS", "BYPASS", "STALE"]
    for status in ("400", "403", "429", "503"):
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


def test_every_api_key_is_enabled_and_in_a_usage_plan(resources: Resources) -> None:
    """Given every API key, then it is enabled, created after the stage, and attached to a usage plan
    (a key in no plan is rejected by API Gateway with 403)."""
    plan_keys = of_type(resources, "AWS::ApiGateway::UsagePlanKey").values()
    attached = {referenced_ids(key["Properties"]["KeyId"]).pop() for key in plan_keys}

    keys = of_type(resources, "AWS::ApiGateway::ApiKey")
    assert set(keys) == {"BasicApiKey", "PartnerApiKey"}
    for name, key in keys.items():
        assert key["Properties"]["Enabled"] is True, name
        assert "ApiStage" in as_list(key.get("DependsOn", [])), name
        assert name in attached, f"{name} is in no usage plan"
    for key in plan_keys:
        assert key["Properties"]["KeyType"] == "API_KEY"


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


def test_flights_search_role_grants_exact_actions_on_exact_resources(resources: Resources) -> None:
    """Given the flights search role, then it may Query the flights table (nothing else in DynamoDB), write
    its own log group, connect to the search cache as its IAM user, and send traces and ENI calls."""
    role = resources["FlightsSearchRole"]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    grants = {
        statement["Sid"]: (sorted(as_list(statement["Action"])), as_list(statement["Resource"]))
        for statement in inline_statements(role)
    }

    assert trust == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    assert "ManagedPolicyArns" not in role["Properties"]
    assert grants["QueryFlightsTable"] == (["dynamodb:Query"], [{"Fn::GetAtt": ["FlightsTable", "Arn"]}])
    assert grants["WriteOwnLogs"] == (
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [{"Fn::GetAtt": ["FlightsSearchLogGroup", "Arn"]}],
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
    assert set(grants) == {"QueryFlightsTable", "WriteOwnLogs", "ConnectToSearchCache", "XRay", "VpcEni"}


# ------------------------------------------------------------------------------------------ data
def test_flights_table_is_keyed_on_pk_sk_with_ttl_pitr_and_encryption(resources: Resources) -> None:
    """Given the flights table, then it is keyed pk (HASH) / sk (RANGE) as strings, expires items on
    expires_at, and has point-in-time recovery and encryption at rest."""
    table = resources["FlightsTable"]["Properties"]

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
    assert resources["FlightsTable"]["DeletionPolicy"] == "Retain"


def test_provisioned_billing_scales_reads_and_writes(template: dict[str, Any], resources: Resources) -> None:
    """Given billing mode PROVISIONED, then the table gets capacity and target-tracking auto scaling on
    reads and writes; on-demand (the default) gets neither."""
    table = resources["FlightsTable"]["Properties"]
    targets = {
        resource["Properties"]["ScalableDimension"]: name
        for name, resource in of_type(resources, "AWS::ApplicationAutoScaling::ScalableTarget").items()
    }
    policies = of_type(resources, "AWS::ApplicationAutoScaling::ScalingPolicy")

    assert template["Parameters"]["TableBillingMode"]["Default"] == "PAY_PER_REQUEST"
    assert table["BillingMode"] == {"Ref": "TableBillingMode"}
    condition = table["ProvisionedThroughput"]["Fn::If"][0]
    assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "TableBillingMode"}, "PROVISIONED"]}
    assert set(targets) == {"dynamodb:table:ReadCapacityUnits", "dynamodb:table:WriteCapacityUnits"}
    for dimension, target in targets.items():
        assert resources[target]["Condition"] == condition
        assert sub_text(resources[target]["Properties"]["ResourceId"]) == "table/${FlightsTable}"
        (policy,) = [p for p in policies.values() if p["Properties"]["ScalingTargetId"] == {"Ref": target}]
        assert policy["Condition"] == condition
        assert policy["Properties"]["PolicyType"] == "TargetTrackingScaling"
        metric = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
        expected = "Read" if "Read" in dimension else "Write"
        assert metric["PredefinedMetricType"] == f"DynamoDB{expected}CapacityUtilization"


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
    """Given the DynamoDB gateway endpoint, then its policy names this stack's tables only."""
    endpoint = resources["DynamoDbEndpoint"]["Properties"]
    tables = set(of_type(resources, "AWS::DynamoDB::Table"))

    assert sub_text(endpoint["ServiceName"]) == "com.amazonaws.${AWS::Region}.dynamodb"
    for statement in endpoint["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "*" not in as_list(statement["Resource"])
        assert referenced_ids(statement["Resource"]) <= tables


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
    watched = list(alarms_with_metrics(resources))

    assert watched
    for name, namespace, metric, dimensions in watched:
        if namespace == "AWS/ApiGateway":
            assert dimensions == {"ApiName": rest_api_name, "Stage": {"Ref": "ApiStage"}}, name
        elif namespace == "AWS/Lambda":
            assert set(dimensions) == {"FunctionName"}, name
            assert resources[dimensions["FunctionName"]["Ref"]]["Type"] == "AWS::Lambda::Function", name
        elif namespace == "AWS/DynamoDB":
            assert resources[dimensions["TableName"]["Ref"]]["Type"] == "AWS::DynamoDB::Table", name
        elif namespace == "TravelSearch":
            # Powertools EMF: the "service" dimension plus the "Domain" the code adds.
            assert set(dimensions) == {"Domain", "service"}, name
            assert metric in {"CacheHit", "CacheMiss", "CacheError", "SearchLatency"}, name
        else:
            pytest.fail(f"{name}: no dimension check for namespace {namespace}")


def test_required_alarms_exist(resources: Resources) -> None:
    """Given the alarms, then API 5xx and p99 latency, flights errors and throttles, and the flights cache
    hit ratio are watched."""
    watched = {(namespace, metric) for _, namespace, metric, _ in alarms_with_metrics(resources)}

    assert {
        ("AWS/ApiGateway", "5XXError"),
        ("AWS/ApiGateway", "Latency"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("TravelSearch", "CacheHit"),
        ("TravelSearch", "CacheMiss"),
    } <= watched


def test_cache_hit_ratio_alarm_computes_a_percentage_and_tolerates_silence(resources: Resources) -> None:
    """Given the cache hit ratio alarm, then it alarms under 50% of hit/(hit+miss) and treats no traffic
    as fine (no searches at night is not an incident)."""
    alarm = resources["FlightsCacheHitRatioAlarm"]["Properties"]
    queries = {query["Id"]: query for query in alarm["Metrics"]}

    (returned,) = [query for query in alarm["Metrics"] if query.get("ReturnData", True)]
    assert returned["Expression"].replace(" ", "") == "100*hit/(hit+miss)"
    assert queries["hit"]["MetricStat"]["Metric"]["MetricName"] == "CacheHit"
    assert queries["miss"]["MetricStat"]["Metric"]["MetricName"] == "CacheMiss"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 50)
    assert alarm["TreatMissingData"] == "notBreaching"


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


def test_dashboard_is_valid_json_covering_api_cache_lambda_and_dynamodb(resources: Resources) -> None:
    """Given the dashboard body, when CloudFormation substitutes it, then it is valid JSON whose widgets
    show API latency and errors, cache hit ratio, Lambda duration and concurrency, and table capacity,
    and every ${...} it uses names a resource, a parameter or a pseudo parameter."""
    body = sub_text(resources["Dashboard"]["Properties"]["DashboardBody"])
    dashboard = render_dashboard(body)
    metrics = json.dumps([widget["properties"].get("metrics", []) for widget in dashboard["widgets"]])

    for needle in (
        "Latency",
        "5XXError",
        "CacheHit",
        "100*hit/(hit+miss)",
        "Duration",
        "ConcurrentExecutions",
        "ConsumedReadCapacityUnits",
        "ConsumedWriteCapacityUnits",
    ):
        assert needle in metrics, needle


def test_every_substitution_names_something_that_exists(template: dict[str, Any]) -> None:
    """Given every Ref, GetAtt and ${...} in the template, then it names a resource, a parameter or a
    pseudo parameter (a typo would fail the deployment, or worse, the dashboard)."""
    known = set(template["Resources"]) | set(template["Parameters"])

    names = referenced_ids(template["Resources"]) | referenced_ids(template["Outputs"])
    unknown = {name for name in names if name not in known and not name.startswith("AWS::")}
    assert unknown == set()


# ------------------------------------------------------------------------------------------ parameters and outputs
def test_deploy_needs_only_the_artifact_locations(template: dict[str, Any]) -> None:
    """Given the parameters, then every one has a default except the artifact bucket and keys, so
    `aws cloudformation deploy` works with those alone."""
    without_default = {name for name, parameter in template["Parameters"].items() if "Default" not in parameter}

    assert without_default == {"ArtifactBucket", "CoreLayerKey", "FlightsSearchCodeKey"}


def test_outputs_give_operators_what_they_need(template: dict[str, Any]) -> None:
    """Given the outputs, then the API URL (with the stage), the key ids, the dashboard, the table and the
    cache endpoint are published."""
    outputs = template["Outputs"]

    assert set(outputs) >= {
        "ApiUrl",
        "BasicApiKeyId",
        "PartnerApiKeyId",
        "DashboardUrl",
        "FlightsTableName",
        "CacheEndpoint",
    }
    assert sub_text(outputs["ApiUrl"]["Value"]) == (
        "https://${TravelApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"
    )
