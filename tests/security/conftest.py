"""Security-test fixtures: the local stack (as ``make run`` builds it) for the journey whose logs are read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.stack import LocalStack
from tests.faults.harness import stack_for_tests


@pytest.fixture(scope="package")
def stack() -> Iterator[LocalStack]:
    with stack_for_tests() as local:
        yield local
