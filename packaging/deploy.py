#!/usr/bin/env python3
"""Deploy the stack: build, upload the artifacts under content-hashed keys, deploy template.yaml, redeploy the API.

Steps (each an ``aws`` CLI call, printed before it runs; ``--dry-run`` prints them and runs none):

1. preflight: the ``aws`` CLI is installed, credentials work, the artifact bucket is reachable;
2. ``packaging/build.py`` (unless ``--skip-build``), which writes ``build/manifest.json``;
3. ``aws s3 cp`` of the layer and every function zip to ``s3://<bucket>/<name>-<sha256[:12]>.zip``;
4. ``aws cloudformation deploy`` of template.yaml with the bucket and every key as parameter overrides
   (the template is over CloudFormation's 51,200-byte inline limit, so it goes through the bucket too);
5. ``aws apigateway create-deployment`` of every stage of the REST API: CloudFormation does not redeploy a
   REST API when its OpenAPI ``Body`` changes, so without this the stage keeps serving the old routes.

Usage: ``python packaging/deploy.py --bucket BUCKET [--stack travel-search] [--region us-east-1]
[--parameter Key=Value ...] [--dry-run] [--skip-build]`` (``make deploy ARTIFACT_BUCKET=...`` runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PACKAGING = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGING.parent
TEMPLATE = PROJECT_ROOT / "template.yaml"
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")


class DeployError(Exception):
    """A precondition or a step failed; the message says which and what to do."""


class _RefLoader(yaml.SafeLoader):
    """Keeps ``!Ref x`` as ``{"Ref": "x"}``; every other intrinsic is irrelevant here and read as None."""


_RefLoader.add_constructor("!Ref", lambda loader, node: {"Ref": loader.construct_scalar(node)})  # type: ignore[arg-type]
_RefLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@dataclass(frozen=True)
class ApiStage:
    rest_api: str  # logical id of the AWS::ApiGateway::RestApi
    stage: str  # logical id of its AWS::ApiGateway::Stage (physical id = stage name)


def _template(template_path: Path = TEMPLATE) -> dict[str, Any]:
    with template_path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_RefLoader)  # noqa: S506 - SafeLoader subclass
    return document


def required_parameters(template_path: Path = TEMPLATE) -> set[str]:
    """Parameters without a default: a deploy that leaves one out fails in CloudFormation."""
    return {name for name, spec in _template(template_path)["Parameters"].items() if "Default" not in spec}


def api_stages(template_path: Path = TEMPLATE) -> list[ApiStage]:
    """Every (REST API, stage) pair of the template: the stages ``create-deployment`` must refresh."""
    resources: dict[str, Any] = _template(template_path)["Resources"]
    stages = []
    for name, resource in sorted(resources.items()):
        if resource["Type"] == "AWS::ApiGateway::Stage":
            rest_api = resource["Properties"]["RestApiId"]
            if isinstance(rest_api, dict) and "Ref" in rest_api:
                stages.append(ApiStage(rest_api["Ref"], name))
    return stages


@dataclass
class Plan:
    """The commands of one deploy, built from the manifest; ``run`` executes them in order."""

    stack: str
    bucket: str
    region: str | None
    manifest: dict[str, Any]
    build_dir: Path
    extra_parameters: list[str]

    def aws(self, *args: str) -> list[str]:
        return ["aws", *args, *(["--region", self.region] if self.region else [])]

    def preflight(self) -> list[list[str]]:
        return [
            self.aws("sts", "get-caller-identity", "--query", "Arn", "--output", "text"),
            self.aws("s3api", "head-bucket", "--bucket", self.bucket),
        ]

    def uploads(self) -> list[list[str]]:
        artifacts = [self.manifest["layer"], *self.manifest["functions"].values()]
        return [
            self.aws(
                "s3", "cp", str(self.build_dir / a["zip"]), f"s3://{self.bucket}/{a['s3_key']}", "--only-show-errors"
            )
            for a in artifacts
        ]

    def parameter_overrides(self) -> list[str]:
        overrides = {self.manifest["bucket_parameter"]: self.bucket, **self.manifest["parameter_overrides"]}
        for item in self.extra_parameters:
            key, _, value = item.partition("=")
            overrides[key] = value
        return [f"{key}={value}" for key, value in overrides.items()]

    def cloudformation_deploy(self) -> list[str]:
        return self.aws(
            "cloudformation", "deploy",
            "--template-file", str(TEMPLATE),
            "--stack-name", self.stack,
            "--s3-bucket", self.bucket,
            "--s3-prefix", f"{self.stack}/templates",
            "--capabilities", *CAPABILITIES,
            "--no-fail-on-empty-changeset",
            "--parameter-overrides", *self.parameter_overrides(),
        )  # fmt: skip

    def physical_id(self, logical_id: str) -> list[str]:
        return self.aws(
            "cloudformation", "describe-stack-resource",
            "--stack-name", self.stack, "--logical-resource-id", logical_id,
            "--query", "StackResourceDetail.PhysicalResourceId", "--output", "text",
        )  # fmt: skip

    def create_deployment(self, rest_api_id: str, stage_name: str) -> list[str]:
        description = f"make deploy: layer {self.manifest['layer']['sha256'][:12]}"
        return self.aws(
            "apigateway", "create-deployment",
            "--rest-api-id", rest_api_id, "--stage-name", stage_name, "--description", description,
        )  # fmt: skip

    def outputs(self) -> list[str]:
        return self.aws(
            "cloudformation", "describe-stacks", "--stack-name", self.stack,
            "--query", "Stacks[0].Outputs", "--output", "table",
        )  # fmt: skip


def _show(command: list[str]) -> None:
    print(shlex.join(command), flush=True)


class Runner:
    """Prints every command, then runs it, unless this is a dry run."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run

    def __call__(self, command: list[str], step: str, capture: bool = False) -> str:
        _show(command)
        if self.dry_run:
            return ""
        result = subprocess.run(command, text=True, capture_output=capture, check=False)
        if result.returncode != 0:
            detail = f"\n{result.stderr.strip()}" if capture and result.stderr else ""
            raise DeployError(f"{step} failed (exit {result.returncode}): {shlex.join(command)}{detail}")
        return (result.stdout or "").strip()


def deploy(plan: Plan, stages: list[ApiStage], run: Runner) -> None:
    """Upload, deploy the template, then redeploy every REST API stage and show the outputs."""
    for command in plan.uploads():
        run(command, "upload")
    run(plan.cloudformation_deploy(), "cloudformation deploy")
    for stage in stages:
        rest_api_id = run(plan.physical_id(stage.rest_api), f"looking up {stage.rest_api}", capture=True)
        stage_name = run(plan.physical_id(stage.stage), f"looking up {stage.stage}", capture=True)
        if run.dry_run:
            rest_api_id, stage_name = f"<physical id of {stage.rest_api}>", f"<physical id of {stage.stage}>"
        run(plan.create_deployment(rest_api_id, stage_name), f"redeploying {stage.rest_api} to {stage_name}")
    run(plan.outputs(), "reading the stack outputs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="travel-search", help="CloudFormation stack name")
    parser.add_argument("--bucket", default=os.environ.get("ARTIFACT_BUCKET", ""), help="artifact bucket")
    parser.add_argument("--region", default="", help="AWS region (default: the CLI's configured region)")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="more overrides")
    parser.add_argument("--build-dir", type=Path, default=PROJECT_ROOT / "build")
    parser.add_argument("--skip-build", action="store_true", help="use the existing build/manifest.json")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run none (no AWS needed)")
    args = parser.parse_args(argv)
    try:
        if not args.bucket:
            raise DeployError(
                "ARTIFACT_BUCKET is not set: give the S3 bucket (in the stack's region) that holds the code, "
                "e.g. make deploy ARTIFACT_BUCKET=my-artifacts-bucket"
            )
        bad = [item for item in args.parameter if "=" not in item or not item.partition("=")[0]]
        if bad:
            raise DeployError(f"parameters must be KEY=VALUE, got {bad}")
        if not args.dry_run and shutil.which("aws") is None:
            raise DeployError(
                "the aws CLI is not on PATH: install AWS CLI v2 "
                "(https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html) and configure "
                "credentials (aws configure / AWS_PROFILE), or run with --dry-run to see the commands"
            )
        build_dir = args.build_dir.resolve()
        run = Runner(args.dry_run)
        if args.dry_run:
            print("# dry run: these commands would run, in this order (nothing is run)")
        preflight = Plan(args.stack, args.bucket, args.region or None, {}, build_dir, args.parameter)
        for command in preflight.preflight():
            run(command, "preflight (credentials and bucket access)")
        if not args.skip_build:
            # Local and harmless, so it runs in a dry run too: the keys printed are the real ones.
            build = [sys.executable, str(PACKAGING / "build.py"), "--out", str(build_dir), "--no-host"]
            Runner(dry_run=False)(build, "packaging/build.py")
        manifest_path = build_dir / "manifest.json"
        if not manifest_path.is_file():
            raise DeployError(f"{manifest_path} is missing: run make package first")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        plan = Plan(args.stack, args.bucket, args.region or None, manifest, build_dir, args.parameter)
        given = {override.partition("=")[0] for override in plan.parameter_overrides()}
        missing = sorted(required_parameters() - given)
        if missing:
            raise DeployError(
                f"template.yaml needs {', '.join(missing)}, which {manifest_path} does not provide: it is older "
                "than the template (run make package) or the parameter has no default (give it with PARAMETERS=)"
            )
        deploy(plan, api_stages(), run)
    except DeployError as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
