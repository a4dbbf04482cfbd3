"""Create the template's tables in moto and give the functions their local environment.

Tables are built from each ``AWS::DynamoDB::Table``'s own properties, so the local stack and the
tests cannot drift from the template. Function environments are the template's
``Environment.Variables`` with every intrinsic resolved locally (see :mod:`local.intrinsics`) and
a few deliberate local overrides (plain-TCP Redis without IAM auth, no X-Ray).
"""

from __future__ import annotations

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


def function_environment(intrinsics: Intrinsics, logical_id: str) -> dict[str, str]:
    """One function's environment variables, resolved for the local stack."""
    properties = intrinsics.resources[logical_id].get("Properties", {})
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    environment: dict[str, str] = {}
    for name, raw in variables.items():
        if name in LOCAL_OVERRIDES:
            environment[name] = LOCAL_OVERRIDES[name]
            continue
        try:
            value = intrinsics.resolve(raw)
        except (UnresolvableError, KeyError, ValueError, TypeError) as error:
            raise UnresolvableError(f"{logical_id} environment variable {name}: {error}") from error
        if value is not None and not isinstance(value, dict):
            environment[name] = _as_env_value(value)
    environment.update(LOCAL_ADDITIONS)
    return environment


def function_environments(intrinsics: Intrinsics) -> dict[str, dict[str, str]]:
    """Function logical id → its local environment, for every function under the defaults."""
    return {
        logical_id: function_environment(intrinsics, logical_id)
        for logical_id, resource in intrinsics.resources.items()
        if resource["Type"] == "AWS::Lambda::Function" and intrinsics.included(logical_id)
    }


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
