"""Fuzz fixtures: the local stack, and the API's OpenAPI document as template.yaml holds it.

The document is read from ``TravelApi.Properties.Body`` (never restated): the
``x-amazon-apigateway-*`` blocks, which only API Gateway reads and which hold CloudFormation
intrinsics, are dropped; the intrinsics left (the title's ``!Sub``) are resolved as the local stack
resolves them. Schemathesis then drives the very gateway object ``make run`` serves, in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.gateway import Gateway
from local.stack import LocalStack
from local.template import template as project_template
from tests.faults.harness import Unthrottled, stack_for_tests


def without_gateway_extensions(node: Any) -> Any:
    """``node`` without the ``x-amazon-apigateway-*`` keys, at every depth."""
    if isinstance(node, dict):
        return {
            key: without_gateway_extensions(value)
            for key, value in node.items()
            if not (isinstance(key, str) and key.startswith("x-amazon-apigateway"))
        }
    if isinstance(node, list):
        return [without_gateway_extensions(item) for item in node]
    return node


def openapi_document(resolve: Callable[[Any], Any]) -> dict[str, Any]:
    """The OpenAPI document of the template's REST API, ready for a client-side tool."""
    (body,) = [
        resource["Properties"]["Body"]
        for resource in project_template()["Resources"].values()
        if resource["Type"] == "AWS::ApiGateway::RestApi"
    ]
    document: dict[str, Any] = resolve(without_gateway_extensions(body))
    return document


class CountingApp:
    """WSGI middleware in front of the gateway: counts requests and the responses of each status class.

    It exists before the gateway does (schemathesis binds its operations to it at collection); the
    ``app`` fixture puts the gateway behind it.
    """

    def __init__(self) -> None:
        self.target: Callable[..., Any] | None = None
        self.requests = 0
        self.by_class: dict[int, int] = {}
        self.server_errors: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.target is not None, "the app fixture puts the gateway behind CountingApp"
        self.requests += 1

        def counting_start_response(status: str, headers: Any, *args: Any) -> Any:
            code = int(status.split()[0])
            self.by_class[code // 100] = self.by_class.get(code // 100, 0) + 1
            if code >= 500:
                self.server_errors.append(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO')} → {status}")
            return start_response(status, headers, *args)

        return self.target(environ, counting_start_response)


APP = CountingApp()


@pytest.fixture(scope="package")
def stack() -> Iterator[LocalStack]:
    with stack_for_tests() as local:
        yield local


@pytest.fixture(scope="package")
def gateway(stack: LocalStack) -> Gateway:
    """The template's gateway; its clock refills usage-plan buckets, so no fuzz case is throttled."""
    return Gateway(stack.gateway.intrinsics, clock=Unthrottled())


@pytest.fixture(scope="package")
def app(gateway: Gateway) -> Iterator[CountingApp]:
    APP.target = gateway
    yield APP
    APP.target = None
