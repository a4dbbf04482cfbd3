"""docs/operations.md keeps up with template.yaml: a runbook row for every alarm, a row for every parameter.

The template changes while others add resources; these tests fail until the operations page says what a
new alarm means and what a new parameter does, so an on-call engineer never meets an alarm the runbook
does not name.
"""

from __future__ import annotations

import re

import pytest

from local.template import resources_of_type, template
from tests.packaging.conftest import PROJECT_ROOT

OPERATIONS = PROJECT_ROOT / "docs" / "operations.md"


def _table_rows() -> set[str]:
    """The first cell of every Markdown table row, when it is a code span (`` `Name` ``)."""
    text = OPERATIONS.read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([A-Za-z0-9]+)` \|", text, re.MULTILINE))


@pytest.mark.parametrize("alarm", sorted(resources_of_type("AWS::CloudWatch::Alarm")))
def test_every_alarm_has_a_runbook_row(alarm: str) -> None:
    assert alarm in _table_rows(), f"docs/operations.md has no runbook row for {alarm}"


@pytest.mark.parametrize("parameter", sorted(template()["Parameters"]))
def test_every_template_parameter_is_documented(parameter: str) -> None:
    assert parameter in _table_rows(), f"docs/operations.md does not say what {parameter} does"


def test_the_runbook_names_no_alarm_the_template_lost() -> None:
    rows = {row for row in _table_rows() if row.endswith("Alarm")}
    assert rows <= set(resources_of_type("AWS::CloudWatch::Alarm"))
