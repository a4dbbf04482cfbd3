"""``make deploy`` runs the right AWS CLI commands, in the right order, with the keys of the build.

There is no AWS account here, so the commands are checked as ``--dry-run`` prints them: every zip is
uploaded under the key the manifest names, the stack gets every key and every required parameter, and the
REST API is redeployed after CloudFormation (which does not redeploy it when the OpenAPI body changes).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from local.template import TEMPLATE_PATH, resources_of_type, template
from tests.packaging.conftest import BUILD_TIMEOUT_SECONDS, DEPLOY_SCRIPT, PROJECT_ROOT, Build

BUCKET = "travel-artifacts-test"
STACK = "travel-search-test"
REGION = "eu-west-1"


def _deploy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "ARTIFACT_BUCKET"} if env is None else env
    return subprocess.run(
        [sys.executable, str(DEPLOY_SCRIPT), *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=False,
    )


def _commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if line.startswith("aws ")]


def _option(command: list[str], name: str) -> list[str]:
    """The values after ``--name`` up to the next option."""
    start = command.index(name) + 1
    end = next((i for i in range(start, len(command)) if command[i].startswith("--")), len(command))
    return command[start:end]


@pytest.mark.packaging
@pytest.mark.timeout(BUILD_TIMEOUT_SECONDS + 60)
def test_dry_run_uploads_every_zip_deploys_every_key_then_redeploys_the_api(build: Build) -> None:
    # Given a build and a deploy with one extra parameter
    result = _deploy(
        "--dry-run", "--skip-build", "--build-dir", str(build.out),
        "--bucket", BUCKET, "--stack", STACK, "--region", REGION, "--parameter", "AlarmEmail=ops@example.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    commands = _commands(result.stdout)
    # Then every command targets the region
    assert all(_option(c, "--region") == [REGION] for c in commands)
    # And every zip is uploaded to the bucket under its content-hashed key
    uploads = [c for c in commands if c[1:3] == ["s3", "cp"]]
    artifacts = [build.manifest["layer"], *build.manifest["functions"].values()]
    assert sorted((c[3], c[4]) for c in uploads) == sorted(
        (str(build.out / a["zip"]), f"s3://{BUCKET}/{a['s3_key']}") for a in artifacts
    )
    # And the stack is deployed with the IAM capabilities, through the bucket (over the inline size limit)
    (deploy,) = [c for c in commands if c[1:3] == ["cloudformation", "deploy"]]
    assert _option(deploy, "--template-file") == [str(TEMPLATE_PATH)]
    assert _option(deploy, "--stack-name") == [STACK]
    assert set(_option(deploy, "--capabilities")) == {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"}
    if TEMPLATE_PATH.stat().st_size > 51_200:
        assert _option(deploy, "--s3-bucket") == [BUCKET]
    # And with every key of the manifest, the bucket, and every parameter the template has no default for
    overrides = dict(item.split("=", 1) for item in _option(deploy, "--parameter-overrides"))
    assert overrides == {
        build.manifest["bucket_parameter"]: BUCKET,
        **build.manifest["parameter_overrides"],
        "AlarmEmail": "ops@example.com",
    }
    required = {name for name, p in template()["Parameters"].items() if "Default" not in p}
    assert required <= set(overrides)
    # And after CloudFormation, every stage of the REST API gets a new deployment
    rest_apis = set(resources_of_type("AWS::ApiGateway::RestApi"))
    stages = resources_of_type("AWS::ApiGateway::Stage")
    lookups = [_option(c, "--logical-resource-id")[0] for c in commands if "describe-stack-resource" in c]
    redeploys = [i for i, c in enumerate(commands) if c[1:3] == ["apigateway", "create-deployment"]]
    assert set(lookups) == rest_apis | set(stages)
    assert len(redeploys) == len(stages) >= 1
    assert min(redeploys) > commands.index(deploy) > max(commands.index(c) for c in uploads)


def test_deploy_without_an_artifact_bucket_stops_before_doing_anything() -> None:
    result = _deploy("--stack", STACK)
    assert result.returncode != 0
    assert "ARTIFACT_BUCKET" in result.stderr
    assert _commands(result.stdout) == []


def test_deploy_without_the_aws_cli_stops_with_a_clear_message(tmp_path: Path) -> None:
    # Given a PATH on which there is no aws executable
    environment = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    result = _deploy("--bucket", BUCKET, "--skip-build", env=environment)
    assert result.returncode != 0
    assert "aws CLI" in result.stderr
    assert _commands(result.stdout) == []


def test_deploy_rejects_a_parameter_that_is_not_key_equals_value() -> None:
    result = _deploy("--bucket", BUCKET, "--dry-run", "--skip-build", "--parameter", "AlarmEmail")
    assert result.returncode != 0
    assert "KEY=VALUE" in result.stderr


@pytest.mark.packaging
@pytest.mark.timeout(BUILD_TIMEOUT_SECONDS + 60)
def test_deploy_refuses_a_manifest_older_than_the_template(build: Build, tmp_path: Path) -> None:
    # Given a manifest that lacks the key of one function (the template gained a function since the build)
    manifest = json.loads((build.out / "manifest.json").read_text(encoding="utf-8"))
    dropped = sorted(manifest["parameter_overrides"])[0]
    del manifest["parameter_overrides"][dropped]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    # When deploying it
    result = _deploy("--dry-run", "--skip-build", "--build-dir", str(tmp_path), "--bucket", BUCKET)
    # Then nothing is uploaded or deployed, and the message names the missing parameter
    assert result.returncode != 0
    assert dropped in result.stderr and "make package" in result.stderr
    assert not [c for c in _commands(result.stdout) if c[1:3] in (["s3", "cp"], ["cloudformation", "deploy"])]
