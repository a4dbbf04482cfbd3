"""Resolve CloudFormation intrinsic functions the way the local stack sees the world.

``Ref``/``Fn::GetAtt``/``Fn::Sub``/``Fn::If``/… evaluate against local stand-ins: parameters take
their ``Default``, conditions are evaluated on those defaults, resources get local names and
fake-but-well-formed ARNs, and cache endpoints point at the private Redis. Anything that cannot be
resolved raises :class:`UnresolvableError` naming what was asked for, instead of guessing.
"""

from __future__ import annotations

import base64
import hashlib
import json
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
# The property that names a resource, by type: when the template sets it, Ref and the ARN use it (as in AWS).
_NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Pipes::Pipe": "Name",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
}
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
        """What ``Ref`` gives for a resource locally (as CloudFormation documents it per type)."""
        if logical_id in self._physical_ids:
            return self._physical_ids[logical_id]
        resource_type = self.resource_type(logical_id)
        if resource_type in _GENERATED_ID_TYPES:
            return generated_id(logical_id)
        if resource_type in ("AWS::SNS::Topic", "AWS::SecretsManager::Secret"):
            return self.arn(logical_id)
        if resource_type == "AWS::SQS::Queue":
            return self.queue_url(logical_id)
        if resource_type == "AWS::Events::Rule":
            bus = self.rule_bus(logical_id)
            return self.name(logical_id) if bus == "default" else f"{bus}|{self.name(logical_id)}"
        return self.name(logical_id)

    def name(self, logical_id: str) -> str:
        """A resource's name: its name property when the template sets one, else ``<stack>-<logical id>``."""
        resource_type = self.resource_type(logical_id)
        name_property = _NAME_PROPERTIES.get(resource_type)
        explicit = (self.resources[logical_id].get("Properties") or {}).get(name_property) if name_property else None
        if explicit is not None:
            value = self.resolve(explicit)
            if isinstance(value, str) and value:
                return value
        return f"{self.stack_name}-{logical_id}"

    def bind(self, logical_id: str, physical_id: str) -> None:
        """Use the emulator's own id for a resource (a secret's ARN has a random suffix AWS chooses)."""
        self._physical_ids[logical_id] = physical_id

    def queue_url(self, logical_id: str) -> str:
        # The URL CloudFormation returns; boto3 sends the request to AWS_ENDPOINT_URL whatever its host.
        return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.name(logical_id)}"

    def rule_bus(self, logical_id: str) -> str:
        """The name of the bus an ``AWS::Events::Rule`` is on (``EventBusName`` may be a name or an ARN)."""
        bus = self.resolve((self.resources[logical_id].get("Properties") or {}).get("EventBusName", "default"))
        return str(bus).rsplit("event-bus/", 1)[-1]

    def logical_id_of(self, value: Any) -> str | None:
        """The resource a ``Ref``/``Fn::GetAtt`` points at (``None`` for anything else)."""
        target: Any = None
        if isinstance(value, dict) and len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                target = argument
            elif key == "Fn::GetAtt":
                target = argument.split(".", 1)[0] if isinstance(argument, str) else argument[0]
        return target if isinstance(target, str) and target in self.resources else None

    def resource_type(self, logical_id: str) -> str:
        try:
            resource_type: str = self.resources[logical_id]["Type"]
        except KeyError:
            raise UnresolvableError(f"no resource or parameter named {logical_id!r} in the template") from None
        return resource_type

    def arn(self, logical_id: str) -> str:
        resource_type = self.resource_type(logical_id)
        if resource_type == "AWS::SecretsManager::Secret" and logical_id in self._physical_ids:
            return self._physical_ids[logical_id]
        name = self.name(logical_id)
        service = resource_type.split("::")[1].lower()
        prefix = f"arn:aws:{service}:{self.region}:{self.account_id}"
        by_type = {
            "AWS::DynamoDB::Table": f"{prefix}:table/{name}",
            "AWS::Lambda::Function": f"{prefix}:function:{name}",
            "AWS::SQS::Queue": f"{prefix}:{name}",
            "AWS::SNS::Topic": f"{prefix}:{name}",
            "AWS::Events::EventBus": f"{prefix}:event-bus/{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{self.account_id}:role/{name}",
            "AWS::Scheduler::Schedule": f"{prefix}:schedule/default/{name}",
            # AWS adds 6 random characters; bind() replaces this with the emulator's ARN.
            "AWS::SecretsManager::Secret": f"{prefix}:secret:{name}-{generated_id(logical_id, 6)}",
        }
        if resource_type == "AWS::Events::Rule":
            bus = self.rule_bus(logical_id)
            return f"{prefix}:rule/{name}" if bus == "default" else f"{prefix}:rule/{bus}/{name}"
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
            return self.name(logical_id)
        if resource_type == "AWS::SQS::Queue" and attribute == "QueueUrl":
            return self.queue_url(logical_id)
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
            whole_secret = self._template_secret(match.group(2)) if service == "secretsmanager" else None
            if whole_secret is not None:
                return self.secret_string(whole_secret)
            # One random value per reference and run: every function that reads the same secret
            # sees the same value, and nothing real is ever needed.
            return self._secrets.setdefault(match.group(0), secrets.token_urlsafe(32))

        return _DYNAMIC_REFERENCE.sub(replace, text)

    def _template_secret(self, reference: str) -> str | None:
        """The template secret a ``{{resolve:secretsmanager:<id>[:SecretString]}}`` reads whole, if any."""
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::SecretsManager::Secret":
                continue
            for identifier in (self.arn(logical_id), self.name(logical_id)):
                if reference in (identifier, f"{identifier}:SecretString", f"{identifier}:SecretString:"):
                    return logical_id
        return None

    def secret_string(self, logical_id: str) -> str:
        """A template secret's local value: its ``SecretString``, or one generated per run.

        Dynamic references to the whole secret resolve to this value too, so a function reading the
        secret from Secrets Manager and one given it at deploy time see the same thing.
        """
        key = f"secret:{logical_id}"
        if key not in self._secrets:
            properties = self.resolve(self.resources[logical_id].get("Properties") or {})
            value = properties.get("SecretString")
            if value is None:
                generate = properties.get("GenerateSecretString") or {}
                value = secrets.token_urlsafe(32)
                if generate.get("SecretStringTemplate") and generate.get("GenerateStringKey"):
                    document = json.loads(generate["SecretStringTemplate"])
                    document[generate["GenerateStringKey"]] = value
                    value = json.dumps(document)
            self._secrets[key] = str(value)
        return self._secrets[key]

    def set_secret_string(self, logical_id: str, value: str) -> None:
        """Give a template secret a local value of its own (a provider token instead of ``{}``)."""
        self._secrets[f"secret:{logical_id}"] = value

    def sub_references(self, text: str) -> list[str]:
        """The ``${...}`` names a ``Fn::Sub`` string refers to (``!`` escapes excluded)."""
        return [name for name in _SUB_PATTERN.findall(text) if not name.startswith("!")]
