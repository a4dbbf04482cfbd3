"""Fixtures for the template tests: template.yaml parsed once, as CloudFormation sees it."""

from __future__ import annotations

from typing import Any

import pytest

from local.template import template as parsed_template


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return parsed_template()


@pytest.fixture(scope="session")
def resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return template["Resources"]


@pytest.fixture(scope="session")
def rest_api_id(resources: dict[str, dict[str, Any]]) -> str:
    """Logical id of the one REST API (the template has exactly one)."""
    ids = [name for name, resource in resources.items() if resource["Type"] == "AWS::ApiGateway::RestApi"]
    assert len(ids) == 1, f"expected exactly one RestApi, found {ids}"
    return ids[0]


@pytest.fixture(scope="session")
def openapi(resources: dict[str, dict[str, Any]], rest_api_id: str) -> dict[str, Any]:
    """The OpenAPI document inside the REST API's Body."""
    body: dict[str, Any] = resources[rest_api_id]["Properties"]["Body"]
    return body
