"""Resolve CloudFormation intrinsic functions the way the local stack sees the world.

``Ref``/``Fn::GetAtt``/``Fn::Sub``/``Fn::If``/… evaluate against local stand-ins: parameters take
their ``Default``, conditions are evaluated on those defaults, resources get local names and
fake-but-well-formed ARNs, and cache endpoints point at the private Redis. Anything that cannot be
resolved raises :class:`UnresolvableError` naming what was asked for, instead of guessing.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from collections.abc import Mapping
from typing import Any

DEFAULT_STACK_NAME = "travel-local"

CACHE_RESOURCE_TYPES = frozenset(
    {"AWS::ElastiCache::ServerlessCache", "AWS::ElastiCache::ReplicationGroup", "AWS::ElastiCache::CacheCluster"}
)
# Resources whose Ref is a short generated id in AWS (not a name): API Gateway ids look like "a1b2c3d4e5".
_GENERATED_ID_TYPES = frozenset(
    {
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::ApiKey",
        "AWS::ApiGateway::UsagePlan",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Resource",
    }
)
_SUB_PATTERN = re.compile(r"\$\{([^}]*)\}")
_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:([a-z-]+):([^}]*)\}\}")


class UnresolvableError(ValueError):
    """An intrinsic that has no local meaning (or a template mistake)."""


class _NoValue:
    """``AWS::NoValue``: the property is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def generated_id(logical_id: str, length: int = 10) -> str:
    """A stable, AWS-looking id (lower-case alphanumerics) for a logical id."""
    alphabet = string.ascii_lowercase + string.digits
    digest = int.from_bytes(hashlib.sha256(logical_id.encode()).digest(), "big")
    chars = []
    for _ in range(length):
        digest, index = divmod(digest, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


class Intrinsics:
    """Evaluates intrinsic functions of one template for the local stack."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        stack_name: str = DEFAULT_STACK_NAME,
        physical_ids: Mapping[str, str] | None = None,
        cache_host: str | None = None,
        cache_port: int | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.resources: Mapping[str, Any] = template.get("Resources", {})
        self.parameters: Mapping[str, Any] = template.get("Parameters", {}) or {}
        self.conditions: Mapping[str, Any] = template.get("Conditions", {}) or {}
        self._physical_ids = dict(physical_ids or {})
        self.cache_host = cache_host
        self.cache_port = cache_port
        self._condition_values: dict[str, bool] = {}
        self._secrets: dict[str, str] = {}

    # --- names ------------------------------------------------------------------------------

    def physical_id(self, logical_id: str) -> str:
        """What ``Ref`` gives for a resource locally."""
        if logical_id in self._physical_ids:
            return self._physical_ids[logical_id]
        resource_type = self.resource_type(logical_id)
        if resource_type in _GENERATED_ID_TYPES:
            return generated_id(logical_id)
        if resource_type == "AWS::SNS::Topic":
            return self.arn(logical_id)
        return f"{self.stack_name}-{logical_id}"

    def resource_type(self, logical_id: str) -> str:
        try:
            resource_type: str = self.resources[logical_id]["Type"]
        except KeyError:
            raise UnresolvableError(f"no resource or parameter named {logical_id!r} in the template") from None
        return resource_type

    def arn(self, logical_id: str) -> str:
        resource_type = self.resource_type(logical_id)
        name = f"{self.stack_name}-{logical_id}"
        service = resource_type.split("::")[1].lower()
        prefix = f"arn:aws:{service}:{self.region}:{self.account_id}"
        by_type = {
            "AWS::DynamoDB::Table": f"{prefix}:table/{name}",
            "AWS::Lambda::Function": f"{prefix}:function:{name}",
            "AWS::SQS::Queue": f"{prefix}:{name}",
            "AWS::SNS::Topic": f"{prefix}:{name}",
            "AWS::Events::EventBus": f"{prefix}:event-bus/{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{self.account_id}:role/{name}",
        }
        return by_type.get(resource_type, f"{prefix}:{resource_type.split('::')[-1].lower()}/{name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource_type = self.resource_type(logical_id)
        if resource_type in CACHE_RESOURCE_TYPES and attribute.endswith((".Address", ".Port")):
            if self.cache_host is None or self.cache_port is None:
                raise UnresolvableError(f"{logical_id}.{attribute}: no local cache endpoint given")
            return self.cache_host if attribute.endswith(".Address") else str(self.cache_port)
        if attribute == "Arn":
            return self.arn(logical_id)
        if resource_type == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return f"{self.arn(logical_id)}/stream/1970-01-01T00:00:00.000"
        if attribute in ("Name", "QueueName", "TopicName"):
            return f"{self.stack_name}-{logical_id}"
        if resource_type == "AWS::ApiGateway::RestApi" and attribute == "RootResourceId":
            return generated_id(f"{logical_id}/", 10)
        raise UnresolvableError(f"Fn::GetAtt {logical_id}.{attribute} ({resource_type}) has no local value")

    # --- parameters and conditions ------------------------------------------------------------

    def parameter(self, name: str) -> Any:
        definition = self.parameters[name]
        if "Default" not in definition:
            raise UnresolvableError(f"parameter {name!r} has no Default, so it has no local value")
        value = definition["Default"]
        if str(definition.get("Type", "")).startswith(("CommaDelimitedList", "List<")) and isinstance(value, str):
            return [item.strip() for item in value.split(",")]
        return value

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self.conditions:
                raise UnresolvableError(f"no condition named {name!r} in the template")
            self._condition_values[name] = bool(self.resolve(self.conditions[name]))
        return self._condition_values[name]

    def included(self, logical_id: str) -> bool:
        """Whether a resource exists under the default parameters (its ``Condition`` holds)."""
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    # --- evaluation ---------------------------------------------------------------------------

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameter(name)
        return self.physical_id(name)

    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic inside ``value``; ``AWS::NoValue`` entries are dropped."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return self._dynamic_references(value) if isinstance(value, str) else value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._function(key, argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Ref":
            return self.ref(argument)
        if name == "Condition":
            return self.condition(argument)
        if name == "Fn::GetAtt":
            logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self.get_att(logical_id, attribute)
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::If":
            condition, if_true, if_false = argument
            return self.resolve(if_true if self.condition(condition) else if_false)
        if name == "Fn::Equals":
            left, right = (self.resolve(item) for item in argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self.resolve(argument[0])
        if name == "Fn::And":
            return all(self.resolve(item) for item in argument)
        if name == "Fn::Or":
            return any(self.resolve(item) for item in argument)
        if name == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(str(item) for item in self.resolve(items))
        if name == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if name == "Fn::Split":
            delimiter, text = argument
            return str(self.resolve(text)).split(delimiter)
        if name == "Fn::FindInMap":
            map_name, top, second = (self.resolve(item) for item in argument)
            return self.resolve(self.template["Mappings"][map_name][top][second])
        if name == "Fn::GetAZs":
            return [f"{self.region}{zone}" for zone in "abc"]
        if name == "Fn::Base64":
            return base64.b64encode(str(self.resolve(argument)).encode()).decode()
        raise UnresolvableError(f"{name} has no local meaning")

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(expression))

        return self._dynamic_references(_SUB_PATTERN.sub(replace, text))

    def _dynamic_references(self, text: str) -> str:
        if "{{resolve:" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            service = match.group(1)
            if service not in ("secretsmanager", "ssm-secure"):
                raise UnresolvableError(f"dynamic reference {match.group(0)!r} has no local value")
            # One random value per reference and run: every function that reads the same secret
            # sees the same value, and nothing real is ever needed.
            return self._secrets.setdefault(match.group(0), secrets.token_urlsafe(32))

        return _DYNAMIC_REFERENCE.sub(replace, text)

    def sub_references(self, text: str) -> list[str]:
        """The ``${...}`` names a ``Fn::Sub`` string refers to (``!`` escapes excluded)."""
        return [name for name in _SUB_PATTERN.findall(text) if not name.startswith("!")]
