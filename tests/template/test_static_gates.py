"""Static gates on template.yaml: cfn-lint with the serverless rules, and checkov, both reporting nothing.

A finding that is wrong for a resource is suppressed in that resource's own Metadata, with the reason next to
it: ``cfn-lint: config: ignore_checks`` (a comment above each id) and ``checkov: skip`` (an ``id`` and a
``comment``). The tests below keep those suppressions honest: each serverless-rule suppression must be backed by
the fact its comment states, each checkov skip must carry a reason and still match a finding, and neither kind
can grow in number without a change to this file.

checkov runs from its own venv (.venv-checkov: it pins its own boto3), which ``make test`` and ``make template``
set up and name in CHECKOV_BIN; only outside make, with no venv, are its tests skipped. It starts in the
background when this module starts, so it runs while cfn-lint does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint, lint_file

from local.template import TEMPLATE_PATH

Resources = dict[str, dict[str, Any]]

PROJECT_ROOT = Path(TEMPLATE_PATH).parent
SERVERLESS_RULES = "cfn_lint_serverless.rules"
CHECKOV_VENV_BIN = PROJECT_ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_SECONDS = 300  # ~25 s on a laptop; generous for a loaded CI runner

# Raising either number is a decision: say in the resource's Metadata why the finding does not apply.
MAX_CHECKOV_SKIPS = 50
MAX_SERVERLESS_RULE_SUPPRESSIONS = 14

SERVERLESS_RULE_ID = re.compile(r"^[EW]S\d{4}$")  # cfn-lint-serverless: ES/WS + 4 digits; cfn-lint's own: E/W/I
CHECKOV_ID = re.compile(r"^CKV2?_AWS_\d+$")
MIN_REASON_WORDS = 8  # a skip's comment is a reason, not "ok" or "n/a"


# ------------------------------------------------------------------------------------------ helpers
def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def getatt(name: str, attribute: str = "Arn") -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attribute]}


def of_type(resources: Resources, resource_type: str) -> Resources:
    return {name: resource for name, resource in resources.items() if resource["Type"] == resource_type}


def walk(value: Any, parent: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (parent key, key, value) in a nested template value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield parent, key, inner
            yield from walk(inner, key)
    elif isinstance(value, list):
        for inner in value:
            yield from walk(inner, parent)


def cfn_lint_ignores(resources: Resources) -> dict[str, list[str]]:
    """Resource → the check ids in its Metadata.cfn-lint.config.ignore_checks."""
    found = {}
    for name, resource in resources.items():
        ignored = resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        if ignored:
            found[name] = list(ignored)
    return found


def checkov_skips(resources: Resources) -> list[tuple[str, str, str]]:
    """(resource, check id, comment) of every checkov skip in the resources' Metadata (bridgecrew: the old name)."""
    found = []
    for name, resource in resources.items():
        metadata = resource.get("Metadata", {})
        for key in ("checkov", "bridgecrew"):
            for skip in metadata.get(key, {}).get("skip", []):
                found.append((name, str(skip.get("id", "")), str(skip.get("comment", "") or "")))
    return found


def is_dead_letter_target(resources: Resources, queue: str) -> bool:
    """The queue receives what something else could not deliver or process: an SQS redrive, an EventBridge rule
    or schedule target, a pipe, or an async invocation's on-failure destination names it."""
    arn = getatt(queue)
    for name, resource in resources.items():
        if name == queue:
            continue
        for parent, key, value in walk(resource.get("Properties", {})):
            if value == arn and (
                key == "deadLetterTargetArn"
                or (parent == "DeadLetterConfig" and key == "Arn")
                or (parent == "OnFailure" and key == "Destination")
            ):
                return True
    return False


def alarm_actions_on_queue_depth(resources: Resources, queue: str) -> list[Any]:
    """AlarmActions of the alarms on the queue's AWS/SQS metrics."""
    queue_name = {"Name": "QueueName", "Value": getatt(queue, "QueueName")}
    return [
        action
        for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/SQS" and queue_name in alarm["Properties"].get("Dimensions", [])
        for action in alarm["Properties"].get("AlarmActions", [])
    ]


# ------------------------------------------------------------------------------------------ checkov process
def checkov_executable() -> Path | None:
    """checkov in its venv, or None when it was never set up (only possible outside make)."""
    configured = os.environ.get("CHECKOV_BIN")
    if configured:
        return Path(configured)  # make set it up: missing now is a failure, not a skip
    return CHECKOV_VENV_BIN if CHECKOV_VENV_BIN.exists() else None


@pytest.fixture(scope="module", autouse=True)
def checkov_process() -> Iterator[subprocess.Popen[str] | None]:
    """checkov's scan, started as the module starts so it overlaps the cfn-lint tests (about 25 s each)."""
    executable = checkov_executable()
    if executable is None or not executable.exists():
        yield None
        return
    # Run from an empty directory, so no .checkov.yaml can skip checks behind the template's back.
    with tempfile.TemporaryDirectory() as cwd:
        process = subprocess.Popen(
            [
                str(executable),
                "--skip-download",  # offline: no Prisma Cloud guidelines, severities or suppressions
                "--framework",
                "cloudformation",
                "--file",
                str(TEMPLATE_PATH),
                "--output",
                "json",
            ],
            cwd=cwd,
            env={**os.environ, "LOG_LEVEL": "ERROR"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture(scope="module")
def checkov_report(checkov_process: subprocess.Popen[str] | None) -> dict[str, Any]:
    if checkov_process is None:
        executable = checkov_executable()
        if executable is not None:
            pytest.fail(
                f"CHECKOV_BIN={executable} does not exist: make should have installed it (requirements/checkov.txt)"
            )
        if os.environ.get("CI"):
            pytest.fail(f"{CHECKOV_VENV_BIN} is missing in CI: run the tests through `make test`")
        pytest.skip(
            f"checkov's venv is not set up ({CHECKOV_VENV_BIN} missing): `make test` or `make checkov` installs it"
        )
    stdout, stderr = checkov_process.communicate(timeout=CHECKOV_SECONDS)
    # Exit status 1 means "failed checks", which the report lists; anything else is checkov itself failing.
    assert checkov_process.returncode in (0, 1), f"checkov exited {checkov_process.returncode}:\n{stderr[-3000:]}"
    output = json.loads(stdout)
    reports = output if isinstance(output, list) else [output]
    (report,) = [report for report in reports if report.get("check_type") == "cloudformation"]
    return report


def resource_id(checkov_resource: str) -> str:
    """checkov names a resource "<Type>.<LogicalId>"."""
    return checkov_resource.rsplit(".", 1)[1]


# ------------------------------------------------------------------------------------------ cfn-lint
def test_serverless_rules_are_loaded() -> None:
    """Given a function without tracing, when cfn-lint runs with the serverless rules, then it reports WS1000:
    the rules are really in force (a wrong module name would make the gate below pass on nothing)."""
    function_without_tracing = """
Resources:
  Function:
    Type: AWS::Lambda::Function
    Properties:
      Role: arn:aws:iam::123456789012:role/function
      Runtime: python3.13
      Handler: handler.main
      MemorySize: 128
      Timeout: 3
      Code: {ZipFile: "def main(event, context): pass"}
"""
    matches = lint(function_without_tracing, config=ManualArgs(append_rules=[SERVERLESS_RULES]))

    assert "WS1000" in {match.rule.id for match in matches}


def test_cfn_lint_with_serverless_rules_reports_nothing() -> None:
    """Given template.yaml, when `cfn-lint template.yaml --append-rules cfn_lint_serverless.rules` runs, then it
    reports nothing: every function has a log group with retention, tracing, a timeout and memory; every queue a
    redrive policy; every async invocation and event source a failure destination (or a stated reason why not)."""
    matches = lint_file(Path(TEMPLATE_PATH), config=ManualArgs(append_rules=[SERVERLESS_RULES]))

    assert [str(match) for match in matches] == []


def test_every_cfn_lint_suppression_has_a_comment_above_it() -> None:
    """Given every id in a Metadata.cfn-lint ignore_checks list, then the line above it is a comment (the reason)."""
    lines = Path(TEMPLATE_PATH).read_text().splitlines()
    uncommented = []
    resource = ""
    for number, line in enumerate(lines):
        if match := re.match(r"^  (\w+):\s*$", line):
            resource = match.group(1)
        if line.strip() != "ignore_checks:":
            continue
        indent = len(line) - len(line.lstrip())
        for index in range(number + 1, len(lines)):
            item = lines[index]
            if item.strip() and len(item) - len(item.lstrip()) <= indent:
                break
            if item.strip().startswith("- ") and not lines[index - 1].strip().startswith("#"):
                uncommented.append(f"{resource}: {item.strip()}")

    assert uncommented == []


def test_every_serverless_rule_suppression_states_a_fact_the_template_bears_out(resources: Resources) -> None:
    """Given every serverless rule suppressed on a resource, then what its comment says holds:
    WS1004 (log retention): the function's LoggingConfig.LogGroup is a log group of the template with retention;
    ES6000 (redrive policy): the queue is itself a dead-letter target, alarmed on depth, keeping messages 14 days;
    ES1001 (ESM failure destination): the source is an SQS queue whose redrive policy names a DLQ;
    ES7000 (SNS redrive): the subscription is on the topic the alarms notify."""
    alarm_topics = {
        json.dumps(action, sort_keys=True)
        for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values()
        for action in alarm["Properties"].get("AlarmActions", [])
    }
    suppressed = [
        (name, rule)
        for name, rules in cfn_lint_ignores(resources).items()
        for rule in rules
        if SERVERLESS_RULE_ID.match(rule)
    ]
    assert suppressed, "no serverless rule is suppressed: lower MAX_SERVERLESS_RULE_SUPPRESSIONS and drop this test"

    for name, rule in suppressed:
        resource = resources[name]
        properties = resource.get("Properties", {})
        if rule == "WS1004":
            assert resource["Type"] == "AWS::Lambda::Function", name
            log_group = properties["LoggingConfig"]["LogGroup"]["Ref"]
            assert resources[log_group]["Type"] == "AWS::Logs::LogGroup", name
            assert resources[log_group]["Properties"].get("RetentionInDays"), f"{name}: {log_group} keeps logs forever"
        elif rule == "ES6000":
            assert resource["Type"] == "AWS::SQS::Queue", name
            assert "RedrivePolicy" not in properties, f"{name} has a redrive policy: drop the suppression"
            assert is_dead_letter_target(resources, name), f"{name} is no dead-letter target, so it needs a DLQ itself"
            assert alarm_actions_on_queue_depth(resources, name), f"{name}: nobody hears of messages landing here"
            assert properties.get("MessageRetentionPeriod") == 1209600, f"{name} should keep messages 14 days"
        elif rule == "ES1001":
            assert resource["Type"] == "AWS::Lambda::EventSourceMapping", name
            queue = properties["EventSourceArn"]["Fn::GetAtt"][0]
            assert resources[queue]["Type"] == "AWS::SQS::Queue", f"{name}: streams support OnFailure, use it"
            dlq = resources[queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
            assert resources[dlq["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue", name
        elif rule == "ES7000":
            assert resource["Type"] == "AWS::SNS::Subscription", name
            assert json.dumps(properties["TopicArn"], sort_keys=True) in alarm_topics, (
                f"{name} is not on the alarm topic"
            )
        else:
            pytest.fail(f"{name} suppresses {rule}: add the fact its comment states to this test")


# ------------------------------------------------------------------------------------------ checkov
@pytest.mark.timeout(CHECKOV_SECONDS + 60)
def test_checkov_reports_no_failed_check(checkov_report: dict[str, Any]) -> None:
    """Given template.yaml, when checkov scans it (cloudformation framework), then no check fails: each finding
    is fixed, or skipped in the resource's Metadata with the reason."""
    summary = checkov_report["summary"]
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for check in checkov_report["results"]["failed_checks"]
    ]

    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] > 0
    assert failed == []


def test_every_checkov_skip_gives_a_reason(resources: Resources) -> None:
    """Given every checkov skip in the template, then it names a check and says, in a sentence, why it does not
    apply to this resource (checkov itself accepts a skip with no comment at all)."""
    unexplained = [
        f"{name}: {check_id} {comment!r}"
        for name, check_id, comment in checkov_skips(resources)
        if not CHECKOV_ID.match(check_id) or len(comment.split()) < MIN_REASON_WORDS
    ]

    assert unexplained == []


@pytest.mark.timeout(CHECKOV_SECONDS + 60)
def test_every_checkov_skip_still_skips_a_finding(resources: Resources, checkov_report: dict[str, Any]) -> None:
    """Given the skips in the template, then they are exactly the checks checkov reports as skipped: none is
    misspelt, on the wrong resource, or left behind after the finding was fixed."""
    declared = {(name, check_id) for name, check_id, _ in checkov_skips(resources)}
    skipped = {
        (resource_id(check["resource"]), check["check_id"]) for check in checkov_report["results"]["skipped_checks"]
    }

    assert sorted(declared - skipped) == [], "skips that match no finding"
    assert sorted(skipped - declared) == [], "skipped without a skip in the resource's Metadata"


def test_suppressions_do_not_grow_unnoticed(resources: Resources) -> None:
    """Given the template, then it has at most MAX_CHECKOV_SKIPS checkov skips and MAX_SERVERLESS_RULE_SUPPRESSIONS
    serverless-rule suppressions: one more is a decision made here, in review, not a line slipped into Metadata."""
    serverless = [
        rule for rules in cfn_lint_ignores(resources).values() for rule in rules if SERVERLESS_RULE_ID.match(rule)
    ]

    assert len(checkov_skips(resources)) <= MAX_CHECKOV_SKIPS
    assert len(serverless) <= MAX_SERVERLESS_RULE_SUPPRESSIONS
