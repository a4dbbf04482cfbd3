"""Security rules over the whole of template.yaml, whatever resources are added later.

tests/template checks each function's exact grants and variables; these are the blanket rules that
hold for every resource and every function: no action wildcard anywhere, and no secret in a
function's environment but the one documented Secrets Manager reference.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from local.template import template as project_template

# docs/operations.md: the page-token key reaches the search functions as this dynamic reference only
# (optionally pinned to a version for rotation). CloudFormation resolves it at deploy time.
DOCUMENTED_SECRET_VARIABLE = "PAGE_TOKEN_SECRET"
DOCUMENTED_SECRET_REFERENCE = re.compile(r"\{\{resolve:secretsmanager:\$\{(\w+)\}:SecretString(:::\$\{\w+\})?\}\}")
DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:(secretsmanager|ssm-secure|ssm):")
SECRET_LIKE_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY", re.IGNORECASE)
# What a credential pasted into a template tends to look like.
CREDENTIAL_LIKE_VALUE = [
    re.compile(r"(AKIA|ASIA)[0-9A-Z]{16}"),  # an AWS access key id
    re.compile(r"[A-Za-z0-9/+=_-]{32,}"),  # a long opaque token (keys, secrets, bearer tokens)
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # credentials inside a URL
]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return project_template()


def actions_anywhere(node: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(where, key, action) of every ``Action``/``NotAction`` value at any depth of the template."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key in ("Action", "NotAction"):
                for action in value if isinstance(value, list) else [value]:
                    yield where, key, action if isinstance(action, str) else repr(action)
            yield from actions_anywhere(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from actions_anywhere(item, f"{path}[{index}]")


def test_no_action_wildcard_and_no_not_action_anywhere_in_the_template(template: dict[str, Any]) -> None:
    found = list(actions_anywhere(template["Resources"]))
    # (Not vacuous: roles, key policies, queue and bus policies, and Lambda permissions all have actions.)
    assert len(found) > 50
    for where, key, action in found:
        assert key != "NotAction", f"{where}: NotAction grants everything else"
        assert action.strip() != "*", f"{where}: Action '*'"
        assert not re.fullmatch(r"[A-Za-z0-9-]+:\*", action.strip()), f"{where}: Action '{action}'"


def environment_variables(template: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
            variables = ((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
            for name, value in variables.items():
                yield logical_id, name, value


def text_of(value: Any) -> str | None:
    """The literal text of a variable's value: a plain scalar, or the string of an ``Fn::Sub``."""
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    if isinstance(value, dict) and "Fn::Sub" in value:
        argument = value["Fn::Sub"]
        return str(argument[0] if isinstance(argument, list) else argument)
    return None  # Ref, GetAtt …: a name, an ARN or an id of a resource, resolved by CloudFormation


def test_no_secret_in_function_environments_but_the_documented_secrets_manager_reference(
    template: dict[str, Any],
) -> None:
    secrets = {
        logical_id for logical_id, r in template["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret"
    }
    documented = 0
    variables = list(environment_variables(template))
    assert variables
    for function, name, value in variables:
        text = text_of(value)
        where = f"{function} {name}"
        if text is not None and DYNAMIC_REFERENCE.search(text):
            # The one dynamic reference allowed: the documented one, to a secret of this template
            match = DOCUMENTED_SECRET_REFERENCE.fullmatch(text)
            assert name == DOCUMENTED_SECRET_VARIABLE and match, f"{where}: undocumented secret reference {text!r}"
            assert match.group(1) in secrets, f"{where}: {match.group(1)} is not a secret of this template"
            documented += 1
            continue
        if SECRET_LIKE_NAME.search(name):
            # A secret-sounding variable holds a reference (a secret's ARN, an API key's id), never a value
            assert text is None, f"{where}: a literal value {text!r} in a secret-like variable"
        if text is not None:
            for pattern in CREDENTIAL_LIKE_VALUE:
                assert not pattern.search(text), f"{where}: {text!r} looks like a credential"
    assert documented >= 1, "the search functions get the page-token key through the documented reference"


def test_parameters_that_reach_function_environments_have_no_credential_defaults(template: dict[str, Any]) -> None:
    referenced = {
        value["Ref"]
        for _, _, value in environment_variables(template)
        if isinstance(value, dict) and isinstance(value.get("Ref"), str)
    }
    parameters = template.get("Parameters") or {}
    for name in sorted(referenced & set(parameters)):
        default = str(parameters[name].get("Default", ""))
        for pattern in CREDENTIAL_LIKE_VALUE:
            assert not pattern.search(default), f"parameter {name}: default {default!r} looks like a credential"
