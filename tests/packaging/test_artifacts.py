"""The artifacts ``make package`` builds are the ones template.yaml deploys, and they work on Lambda.

Expectations come from the template (functions, handlers, key parameters, runtime, architecture), from
pyproject.toml (runtime dependencies) and from the stdlib's own ``modulefinder`` (which modules a handler
needs), never from packaging/build.py itself. The host build (same layout, wheels for this machine) lets
each handler be imported from exactly the files Lambda would get.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import tomllib
from modulefinder import ModuleFinder
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from local.template import resources_of_type, template
from tests.packaging.conftest import BUILD_TIMEOUT_SECONDS, PROJECT_ROOT, Build

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(BUILD_TIMEOUT_SECONDS + 60)]

FUNCTIONS: dict[str, dict[str, Any]] = resources_of_type("AWS::Lambda::Function")
(LAYER_ID, LAYER), *_ = resources_of_type("AWS::Lambda::LayerVersion").items()
FUNCTION_PACKAGES = {"domains", "integrations"}

ELF_MAGIC = b"\x7fELF"
ELF_MACHINES = {"aarch64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64
LAMBDA_MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}


def _runtime_and_machine() -> tuple[str, str]:
    """("313", "aarch64") for python3.13 on arm64: what every function of the template runs on."""
    runtimes = {f["Properties"]["Runtime"] for f in FUNCTIONS.values()}
    architectures = {(f["Properties"].get("Architectures") or ["x86_64"])[0] for f in FUNCTIONS.values()}
    assert len(runtimes) == 1 and len(architectures) == 1, "one layer cannot serve several runtimes"
    return runtimes.pop().removeprefix("python").replace(".", ""), LAMBDA_MACHINES[architectures.pop()]


PY, MACHINE = _runtime_and_machine()


def _runtime_dependencies() -> dict[str, str]:
    """Canonical name → pinned version of pyproject's [project].dependencies (what the layer ships)."""
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as handle:
        requirements = [Requirement(spec) for spec in tomllib.load(handle)["project"]["dependencies"]]
    return {canonicalize_name(r.name): str(r.specifier).removeprefix("==") for r in requirements}


def _elf_machine(data: bytes) -> int:
    little_endian = data[5] == 1
    return int(struct.unpack("<H" if little_endian else ">H", data[18:20])[0])


def _dist_infos(names: list[str]) -> set[str]:
    return {name.split("/")[1] for name in names if name.split("/")[1].endswith(".dist-info")}


# ----------------------------------------------------------------------------- every function, its zip


def test_every_function_and_the_layer_get_a_zip_whose_s3_key_is_its_content_hash(build: Build) -> None:
    # Given the functions template.yaml defines (re-read now: it changes while others work on it)
    assert set(build.manifest["functions"]) == set(FUNCTIONS)
    artifacts = {name: (f["Properties"]["Code"]["S3Key"]["Ref"], name) for name, f in FUNCTIONS.items()}
    artifacts["layer"] = (LAYER["Properties"]["Content"]["S3Key"]["Ref"], "layer")
    entries = {**build.manifest["functions"], "layer": build.manifest["layer"]}
    for name, (parameter, key_name) in artifacts.items():
        entry = entries[name]
        # When its zip is hashed
        digest = hashlib.sha256((build.out / f"{name}.zip").read_bytes()).hexdigest()
        # Then the manifest names that hash, the key derived from it, and the parameter that takes the key
        assert entry["sha256"] == digest, name
        assert entry["s3_key"] == f"{key_name}-{digest[:12]}.zip"
        assert entry["parameter"] == parameter
        assert build.manifest["parameter_overrides"][parameter] == entry["s3_key"]
    assert len(build.manifest["parameter_overrides"]) == len(artifacts)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_zip_holds_its_handler_and_exactly_the_modules_it_imports(build: Build, name: str) -> None:
    # Given the function's Handler property
    module, function = FUNCTIONS[name]["Properties"]["Handler"].rsplit(".", 1)
    handler_path = module.replace(".", "/") + ".py"
    with build.archive(name) as archive:
        names = archive.namelist()
        handler_source = archive.read(handler_path).decode()
    # Then the handler module is at the zip's root path and defines the handler function
    assert re.search(rf"^def {function}\(", handler_source, re.MULTILINE), f"{handler_path} has no {function}()"
    # And the zip holds exactly the project modules the stdlib's modulefinder says the handler imports
    finder = ModuleFinder(path=[str(PROJECT_ROOT)])
    finder.run_script(str(PROJECT_ROOT / handler_path))
    needed = {
        Path(m.__file__).relative_to(PROJECT_ROOT).as_posix()
        for m in finder.modules.values()
        if m.__file__ and Path(m.__file__).relative_to(PROJECT_ROOT).parts[0] in FUNCTION_PACKAGES
    }
    assert {n for n in names if n.endswith(".py")} == needed
    # And nothing the layer ships (core/) or that never deploys (local/, tests/) is in it
    assert {n.split("/")[0] for n in names} <= FUNCTION_PACKAGES | {"schemas"}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_zip_carries_the_files_its_code_reads_at_run_time(build: Build, name: str) -> None:
    with build.archive(name) as archive:
        names = set(archive.namelist())
    schemas = {p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "schemas" / "events").glob("*.json")}
    # contracts.py reads Path(__file__).parent.parent / "schemas" / "events": the zip needs them beside it
    if "integrations/contracts.py" in names:
        assert schemas <= names
    else:
        assert not any(n.startswith("schemas/") for n in names)
    # The example payloads are test fixtures, not run-time data
    assert not any("/examples/" in n for n in names)
    # A package's own data files travel with it (airports ranking of destinations)
    for package_dir in {Path(n).parent for n in names if n.endswith("/__init__.py")}:
        data = {p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / package_dir).glob("*.txt")}
        assert data <= names


# ----------------------------------------------------------------------------- the layer


def test_layer_ships_core_and_every_runtime_dependency_at_its_pinned_version(build: Build) -> None:
    with build.archive("layer") as archive:
        names = archive.namelist()
        core = {p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "core").glob("*.py")}
        assert {f"python/{path}" for path in core} <= set(names)
        shipped = {}
        for dist_info in _dist_infos(names):
            metadata = archive.read(f"python/{dist_info}/METADATA").decode()
            name = re.search(r"^Name: (.+)$", metadata, re.MULTILINE)
            version = re.search(r"^Version: (.+)$", metadata, re.MULTILINE)
            assert name and version
            shipped[canonicalize_name(name.group(1).strip())] = version.group(1).strip()
    for dependency, pinned in _runtime_dependencies().items():
        assert shipped.get(dependency) == pinned, f"{dependency}=={pinned} is not in the layer"
    assert build.manifest["layer"]["distributions"] == shipped


def test_layer_leaves_boto3_and_botocore_to_the_lambda_runtime(build: Build) -> None:
    # The Lambda Python runtime ships boto3/botocore; shipping them again would add ~25 MB to every cold start
    dependencies = _runtime_dependencies()
    with build.archive("layer") as archive:
        top_level = {n.split("/")[1] for n in archive.namelist()}
    for package in ("boto3", "botocore", "s3transfer"):
        if package not in dependencies:
            assert package not in top_level


def test_every_wheel_in_the_layer_is_built_for_the_lambda_runtime(build: Build) -> None:
    # Given the WHEEL file of every distribution in the layer
    with build.archive("layer") as archive:
        names = archive.namelist()
        wheels = {d: archive.read(f"python/{d}/WHEEL").decode() for d in _dist_infos(names)}
    for dist_info, wheel in wheels.items():
        tags = re.findall(r"^Tag: (\S+)$", wheel, re.MULTILINE)
        assert tags, dist_info
        for tag in tags:
            python, abi, platform = tag.split("-")
            if platform == "any":  # pure Python
                assert abi == "none" and python.startswith("py"), f"{dist_info}: {tag}"
            else:  # native: CPython of the runtime (or the stable ABI), manylinux, the runtime's architecture
                assert (python, abi) == (f"cp{PY}", f"cp{PY}") or abi == "abi3", f"{dist_info}: {tag}"
                assert platform.startswith("manylinux") and platform.endswith(f"_{MACHINE}"), f"{dist_info}: {tag}"


def test_every_native_extension_in_the_layer_loads_on_the_lambda_architecture(build: Build) -> None:
    with build.archive("layer") as archive:
        extensions = {n: archive.read(n) for n in archive.namelist() if n.endswith(".so")}
    assert extensions, "expected native extensions (orjson, hiredis, rpds-py)"
    for name, data in extensions.items():
        assert name.endswith((f".cpython-{PY}-{MACHINE}-linux-gnu.so", ".abi3.so")), name
        assert data.startswith(ELF_MAGIC) and _elf_machine(data) == ELF_MACHINES[MACHINE], name


def test_no_artifact_contains_x86_64_machine_code(build: Build) -> None:
    for path in build.zips():
        with build.archive(path.stem) as archive:
            for info in archive.infolist():
                assert "x86_64" not in info.filename, f"{path.name}: {info.filename}"
                with archive.open(info) as member:
                    header = member.read(20)
                if header.startswith(ELF_MAGIC):
                    assert _elf_machine(header) != ELF_MACHINES["x86_64"], f"{path.name}: {info.filename}"


def test_artifacts_carry_no_bytecode_tests_or_build_machine_paths(build: Build) -> None:
    for path in build.zips():
        with build.archive(path.stem) as archive:
            names = archive.namelist()
            records = [archive.read(n).decode() for n in names if n.endswith(".dist-info/RECORD")]
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")], path.name
        assert not [n for n in names if re.search(r"^python/[^/]+/(.+/)?tests?/", n)], path.name
        assert not [n for n in names if n.startswith("python/bin/")], path.name  # console scripts' shebangs
        for record in records:
            assert str(PROJECT_ROOT) not in record and "/bin/" not in record


# ----------------------------------------------------------------------------- reproducible keys


def test_unchanged_code_gives_byte_identical_zips(build: Build, build_module: ModuleType, tmp_path: Path) -> None:
    # Given a function's unpacked zip whose files are touched (new mtimes, as a fresh checkout has)
    name = sorted(FUNCTIONS)[0]
    unpacked = build.out / build.manifest["host"]["functions"][name]
    for path in unpacked.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    # When it is zipped again
    again = tmp_path / "again.zip"
    build_module.write_zip(build_module.zip_entries(unpacked), again)
    # Then the bytes, and so the S3 key, are the same
    assert hashlib.sha256(again.read_bytes()).hexdigest() == build.manifest["functions"][name]["sha256"]


def test_rebuilding_a_function_from_the_sources_gives_the_same_key(
    build: Build, build_module: ModuleType, tmp_path: Path
) -> None:
    artifacts = build_module.artifacts_from_template(build_module.load_template())
    for spec in artifacts.functions:
        staged = tmp_path / spec.logical_id
        build_module.stage_function(spec, staged)
        rebuilt = tmp_path / f"{spec.logical_id}.zip"
        build_module.write_zip(build_module.zip_entries(staged), rebuilt)
        digest = hashlib.sha256(rebuilt.read_bytes()).hexdigest()
        assert digest == build.manifest["functions"][spec.logical_id]["sha256"], spec.logical_id


# ----------------------------------------------------------------------------- importable from the artifacts

IMPORT_CHECK = """
import importlib, json, sys
module_name, function_name, check_contracts = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
module = importlib.import_module(module_name)
assert callable(getattr(module, function_name)), f"{module_name}.{function_name} is not callable"
types = []
if check_contracts:
    from integrations.contracts import event_contracts
    types = sorted(event_contracts().types)
files = {name: getattr(m, "__file__", None) for name, m in sys.modules.items()}
print(json.dumps({"files": files, "event_types": types, "path": sys.path}))
"""


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_handler_imports_from_the_built_function_zip_and_layer(build: Build, name: str, tmp_path: Path) -> None:
    # Given only the host build on the path, in Lambda's order: /var/task, /opt/python, /var/runtime
    host = build.manifest["host"]
    task = build.out / host["functions"][name]
    path = [task, build.out / host["layer"], build.out / host["runtime"]]
    module, function = FUNCTIONS[name]["Properties"]["Handler"].rsplit(".", 1)
    check_contracts = (task / "integrations" / "contracts.py").is_file()
    # When the handler is imported by a bare interpreter (-S: no site-packages, so no project checkout or
    # editable install; -P: not even the current directory), outside the checkout
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(map(str, path)),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": name,
    }
    command = [host["python"], "-S", "-P", "-c", IMPORT_CHECK, module, function, "1" if check_contracts else "0"]
    result = subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=60, check=False
    )
    # Then it imports, from the build and nothing else of the project
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert str(PROJECT_ROOT) not in [str(p) for p in report["path"]]
    for module_name, file in report["files"].items():
        if module_name.split(".")[0] in FUNCTION_PACKAGES | {"core"}:
            assert file and Path(file).is_relative_to(build.out), f"{module_name} came from {file}"
    assert report["files"][module].startswith(str(task))
    assert report["files"]["core"].startswith(str(build.out / host["layer"]))
    # And the event contracts compile from the schemas shipped in the zip
    if check_contracts:
        schema_types = {p.name.split(".")[0] for p in (PROJECT_ROOT / "schemas" / "events").glob("*.v*.json")}
        assert set(report["event_types"]) == schema_types - {"envelope"}


def test_manifest_names_the_template_runtime_and_architecture(build: Build) -> None:
    properties = next(iter(FUNCTIONS.values()))["Properties"]
    assert build.manifest["runtime"] == properties["Runtime"]
    assert build.manifest["architecture"] == properties["Architectures"][0]
    assert build.manifest["platforms"] == [f"manylinux2014_{MACHINE}", f"manylinux_2_28_{MACHINE}"]
    bucket = {f["Properties"]["Code"]["S3Bucket"]["Ref"] for f in FUNCTIONS.values()}
    assert bucket == {build.manifest["bucket_parameter"]} and bucket <= set(template()["Parameters"])
