"""Read template.yaml: the one source of routes, keys, tables and function settings.

CloudFormation short-form tags (``!Ref``, ``!Sub``, ``!GetAtt`` …) are loaded as their long
form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``) so the local stack and the tests see the same
structure CloudFormation does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a CloudFormation YAML template into plain dicts (long-form intrinsics)."""
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return document


@lru_cache(maxsize=1)
def template() -> dict[str, Any]:
    """The project's template.yaml, parsed once per process."""
    return load_template()


def resources_of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id → resource for every resource of one ``AWS::`` type."""
    return {
        logical_id: resource
        for logical_id, resource in template()["Resources"].items()
        if resource["Type"] == resource_type
    }
