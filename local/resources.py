"""Create the template's resources in moto and give the functions their local environment.

Tables, queues, event buses, rules, archives and secrets are built from the template's own
properties, so the local stack and the tests cannot drift from the template. Function
environments are the template's ``Environment.Variables`` with every intrinsic resolved locally
(see :mod:`local.intrinsics`) and a few deliberate local overrides (plain-TCP Redis without IAM
auth, no X-Ray, the fake provider's URL).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from local.intrinsics import Intrinsics, UnresolvableError

logger = logging.getLogger(__name__)

# The private Redis speaks plain TCP with no AUTH; ElastiCache needs TLS and an IAM token.
LOCAL_OVERRIDES: Mapping[str, str] = {"CACHE_TLS": "false", "CACHE_AUTH": "none"}
# Added to every function: there is no X-Ray daemon locally.
LOCAL_ADDITIONS: Mapping[str, str] = {"POWERTOOLS_TRACE_DISABLED": "true"}

_INDEX_KEYS = ("IndexName", "KeySchema", "Projection")


class EnvironmentConflictError(ValueError):
    """Two functions set one variable to different values; one process cannot honour both."""


def _table_definition(properties: Mapping[str, Any], table_name: str) -> dict[str, Any]:
    """``CreateTable`` arguments for one table (billing is always on-demand locally)."""
    definition: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        # Capacity means nothing to moto; provisioned mode would only add throttling noise.
        "BillingMode": "PAY_PER_REQUEST",
    }
    for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = properties.get(index_kind)
        if indexes:
            definition[index_kind] = [{k: index[k] for k in _INDEX_KEYS if k in index} for index in indexes]
    stream = properties.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return definition


def table_definitions(intrinsics: Intrinsics) -> dict[str, dict[str, Any]]:
    """Logical id → ``CreateTable`` arguments, for every table that exists under the defaults."""
    definitions: dict[str, dict[str, Any]] = {}
    for logical_id, resource in intrinsics.resources.items():
        if resource["Type"] != "AWS::DynamoDB::Table" or not intrinsics.included(logical_id):
            continue
        properties = intrinsics.resolve(resource.get("Properties", {}))
        definitions[logical_id] = _table_definition(properties, intrinsics.physical_id(logical_id))
    return definitions


def time_to_live_attribute(intrinsics: Intrinsics, logical_id: str) -> str | None:
    ttl = intrinsics.resolve(intrinsics.resources[logical_id].get("Properties", {}).get("TimeToLiveSpecification"))
    if ttl and str(ttl.get("Enabled", "true")).lower() == "true" and ttl.get("AttributeName"):
        return str(ttl["AttributeName"])
    return None


def create_tables(dynamodb: Any, intrinsics: Intrinsics) -> dict[str, str]:
    """Create every template table in the emulator; logical id → table name.

    Idempotent: moto's state is process-wide, so a table that already exists is reused.
    """
    tables: dict[str, str] = {}
    for logical_id, definition in table_definitions(intrinsics).items():
        name = definition["TableName"]
        try:
            dynamodb.create_table(**definition)
        except dynamodb.exceptions.ResourceInUseException:
            logger.info("table %s already exists; reusing it", name)
        attribute = time_to_live_attribute(intrinsics, logical_id)
        if attribute:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
            )
        tables[logical_id] = name
        logger.info("table %s (%s) ready", name, logical_id)
    return tables


def _as_env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def function_environment(
    intrinsics: Intrinsics, logical_id: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """One function's environment variables, resolved for the local stack.

    ``overrides`` replace the value of variables the function has (they never add variables).
    """
    properties = intrinsics.resources[logical_id].get("Properties", {})
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    replaced = {**LOCAL_OVERRIDES, **(overrides or {})}
    environment: dict[str, str] = {}
    for name, raw in variables.items():
        if name in replaced:
            environment[name] = replaced[name]
            continue
        try:
            value = intrinsics.resolve(raw)
        except (UnresolvableError, KeyError, ValueError, TypeError) as error:
            raise UnresolvableError(f"{logical_id} environment variable {name}: {error}") from error
        if value is not None and not isinstance(value, dict):
            environment[name] = _as_env_value(value)
    environment.update(LOCAL_ADDITIONS)
    return environment


def function_environments(
    intrinsics: Intrinsics, overrides: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Function logical id → its local environment, for every function under the defaults."""
    return {
        logical_id: function_environment(intrinsics, logical_id, overrides)
        for logical_id in resources_of_type(intrinsics, "AWS::Lambda::Function")
    }


def environment_references(intrinsics: Intrinsics, variable: str) -> set[str]:
    """Logical ids that functions' ``variable`` refers to (``!Ref``/``!GetAtt``), e.g. a secret."""
    found = set()
    for logical_id in resources_of_type(intrinsics, "AWS::Lambda::Function"):
        properties = intrinsics.resources[logical_id].get("Properties") or {}
        raw = ((properties.get("Environment") or {}).get("Variables") or {}).get(variable)
        target = intrinsics.logical_id_of(raw)
        if target is not None:
            found.add(target)
    return found


def merge_environments(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """One environment for all functions, which share one process locally.

    Raises :class:`EnvironmentConflictError` when two functions disagree on a variable, because
    one of them would silently run with the other's setting.
    """
    merged: dict[str, str] = {}
    owners: dict[str, str] = {}
    for function, variables in environments.items():
        for name, value in variables.items():
            if name in merged and merged[name] != value:
                raise EnvironmentConflictError(
                    f"environment variable {name} is {merged[name]!r} in {owners[name]} but {value!r} in "
                    f"{function}; all functions share one process in the local stack, so give the variables "
                    "distinct names (or the same value) in template.yaml"
                )
            merged[name] = value
            owners.setdefault(name, function)
    return merged


# --- queues, event buses, rules, archives, secrets ------------------------------------------------


def resources_of_type(intrinsics: Intrinsics, resource_type: str) -> list[str]:
    """Logical ids of one type that exist under the default parameters, in template order."""
    return [
        logical_id
        for logical_id, resource in intrinsics.resources.items()
        if resource["Type"] == resource_type and intrinsics.included(logical_id)
    ]


# Queue properties that are SQS attributes of the same name (the others are CloudFormation's own).
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
)


def _queue_attributes(properties: Mapping[str, Any]) -> dict[str, str]:
    attributes = {name: _as_env_value(properties[name]) for name in _QUEUE_ATTRIBUTES if name in properties}
    for name in ("RedrivePolicy", "RedriveAllowPolicy"):
        if name in properties:
            value = properties[name]
            attributes[name] = value if isinstance(value, str) else json.dumps(value)
    return attributes


def create_queues(sqs: Any, intrinsics: Intrinsics) -> dict[str, str]:
    """Create every ``AWS::SQS::Queue`` (dead-letter queues first); logical id → queue URL (its Ref).

    Idempotent: creating a queue that exists with the same attributes returns it.
    """
    resolved = {
        logical_id: intrinsics.resolve(intrinsics.resources[logical_id].get("Properties") or {})
        for logical_id in resources_of_type(intrinsics, "AWS::SQS::Queue")
    }
    # A redrive policy names its DLQ by ARN, and SQS refuses one that does not exist yet.
    ordered = sorted(resolved, key=lambda logical_id: "RedrivePolicy" in resolved[logical_id])
    urls: dict[str, str] = {}
    for logical_id in ordered:
        name = intrinsics.name(logical_id)
        sqs.create_queue(QueueName=name, Attributes=_queue_attributes(resolved[logical_id]))
        urls[logical_id] = intrinsics.queue_url(logical_id)
        logger.info("queue %s (%s) ready", name, logical_id)
    return urls


def create_event_buses(events: Any, intrinsics: Intrinsics) -> dict[str, str]:
    """Create every ``AWS::Events::EventBus``; logical id → bus name (its Ref)."""
    buses: dict[str, str] = {}
    for logical_id in resources_of_type(intrinsics, "AWS::Events::EventBus"):
        name = intrinsics.name(logical_id)
        try:
            events.create_event_bus(Name=name)
        except events.exceptions.ResourceAlreadyExistsException:
            logger.info("event bus %s already exists; reusing it", name)
        buses[logical_id] = name
        logger.info("event bus %s (%s) ready", name, logical_id)
    return buses


def _event_pattern(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def create_rules(events: Any, intrinsics: Intrinsics) -> dict[str, str]:
    """Put every ``AWS::Events::Rule`` with an event pattern, and its targets; logical id → rule name.

    moto delivers a matching ``PutEvents`` entry to SQS targets itself. Scheduled rules are created
    too (moto does not run them: :mod:`local.schedules` does).
    """
    rules: dict[str, str] = {}
    for logical_id in resources_of_type(intrinsics, "AWS::Events::Rule"):
        properties = intrinsics.resolve(intrinsics.resources[logical_id].get("Properties") or {})
        name, bus = intrinsics.name(logical_id), intrinsics.rule_bus(logical_id)
        rule: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": properties.get("State", "ENABLED")}
        if "EventPattern" in properties:
            rule["EventPattern"] = _event_pattern(properties["EventPattern"])
        if "ScheduleExpression" in properties:
            rule["ScheduleExpression"] = properties["ScheduleExpression"]
        if properties.get("Description"):
            rule["Description"] = properties["Description"]
        events.put_rule(**rule)
        targets = properties.get("Targets") or []
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        rules[logical_id] = name
        logger.info("rule %s on %s (%s) with %d target(s) ready", name, bus, logical_id, len(targets))
    return rules


def create_archives(events: Any, intrinsics: Intrinsics) -> dict[str, str]:
    """Create every ``AWS::Events::Archive`` (replay is then ``events:StartReplay`` against moto)."""
    archives: dict[str, str] = {}
    for logical_id in resources_of_type(intrinsics, "AWS::Events::Archive"):
        properties = intrinsics.resolve(intrinsics.resources[logical_id].get("Properties") or {})
        name = str(properties.get("ArchiveName") or intrinsics.name(logical_id))
        archive: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": properties["SourceArn"]}
        if "EventPattern" in properties:
            archive["EventPattern"] = _event_pattern(properties["EventPattern"])
        if "RetentionDays" in properties:
            archive["RetentionDays"] = int(properties["RetentionDays"])
        try:
            events.create_archive(**archive)
        except events.exceptions.ResourceAlreadyExistsException:
            logger.info("archive %s already exists; reusing it", name)
        archives[logical_id] = name
    return archives


def create_secrets(secretsmanager: Any, intrinsics: Intrinsics) -> dict[str, str]:
    """Create every ``AWS::SecretsManager::Secret`` with its local value; logical id → ARN (its Ref).

    The emulator chooses the ARN's random suffix; it is bound into ``intrinsics`` so Ref agrees.
    """
    arns: dict[str, str] = {}
    for logical_id in resources_of_type(intrinsics, "AWS::SecretsManager::Secret"):
        name, value = intrinsics.name(logical_id), intrinsics.secret_string(logical_id)
        try:
            arn = secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]
        except secretsmanager.exceptions.ResourceExistsException:
            arn = secretsmanager.put_secret_value(SecretId=name, SecretString=value)["ARN"]
        intrinsics.bind(logical_id, arn)
        arns[logical_id] = arn
        logger.info("secret %s (%s) ready", name, logical_id)
    return arns
