#!/usr/bin/env python3
"""Build the Lambda artifacts ``template.yaml`` deploys: the core layer and one zip per function.

Everything is read from the template, nothing is listed here: every ``AWS::Lambda::Function`` whose
``Code`` is ``S3Bucket``/``S3Key`` parameters gets ``build/<LogicalId>.zip``, holding the module of its
``Handler`` and the project modules that module imports (a walk of the import graph over the function
packages), plus the data files those modules read at run time. The one ``AWS::Lambda::LayerVersion``
gets ``build/layer.zip``: ``python/core/`` and the runtime dependencies of ``pyproject.toml``, installed
by pip for the template's runtime and architecture (``python3.13`` + ``arm64`` → cp313
``manylinux2014_aarch64`` or ``manylinux_2_28_aarch64`` wheels, binary only, no Docker).

Zips are deterministic (sorted entries, fixed timestamps and permissions), so unchanged code gives an
unchanged sha256 and therefore an unchanged S3 key (``<name>-<sha256[:12]>.zip``). ``build/manifest.json``
maps every artifact to its zip, hash, S3 key and the template parameter that takes the key.

``build/host/`` is the same layout built for this machine (layer ``python/`` with host wheels, the
function zips unpacked, and ``runtime/`` standing in for the boto3 the Lambda runtime ships), so tests
can import every handler from the built artifacts; the arm64 wheels cannot load on an x86_64 host.

Usage: ``python packaging/build.py [--out build] [--host-python PATH] [--no-host]``
(run it as a script: this folder is deliberately not a package, it would shadow PyPI's ``packaging``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from local.template import load_template as read_template

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = PROJECT_ROOT / "template.yaml"
PYPROJECT = PROJECT_ROOT / "pyproject.toml"
CONSTRAINTS = PROJECT_ROOT / "constraints.txt"

# The shared layer ships these packages; function zips ship these. Anything else of the project
# (local/, tests/, packaging/) is development tooling: a handler that imports it fails the build.
LAYER_PACKAGES = frozenset({"core"})
FUNCTION_PACKAGES = frozenset({"domains", "integrations"})

# Files a module reads at run time through a path relative to itself, outside its package directory
# (files inside a shipped package's own directory travel with it automatically, e.g.
# domains/destinations/major_airports.txt). integrations/contracts.py resolves
# ``Path(__file__).parent.parent / "schemas" / "events"``, so every zip that contains it carries
# schemas/events/*.json next to integrations/. The example payloads are test fixtures and stay out.
RUNTIME_DATA: dict[str, tuple[str, ...]] = {
    "integrations.contracts": ("schemas/events/*.json",),
}

# The Lambda Python runtime ships boto3 and botocore (with s3transfer). They stay out of the layer unless
# pyproject names them as runtime dependencies; what only they need (python-dateutil) goes with them.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
RUNTIME_PROVIDED_MODULES = frozenset({"boto3", "botocore", "s3transfer"})

# Stdlib modules PEP 594 removed in Python 3.13: present on a 3.11 build host, missing on Lambda.
REMOVED_IN_3_13 = frozenset(
    {
        "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "lib2to3", "mailcap", "msilib", "nis",
        "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib",
    }
)  # fmt: skip

ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}
# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34); manylinux2014 (glibc 2.17) and
# manylinux_2_28 wheels load there. jsonschema-rs publishes its aarch64 wheels for manylinux_2_28 only.
PLATFORM_TAGS = ("manylinux2014_{machine}", "manylinux_2_28_{machine}")

# Lambda's deployment limit: function code plus all its layers, unzipped.
UNZIPPED_LIMIT_BYTES = 262_144_000
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
STRIPPED_DIRS = frozenset({"__pycache__", "tests", "test"})


class BuildError(Exception):
    """A problem with the template, the code or the dependencies that makes the artifacts unusable."""


# ----------------------------------------------------------------------------- the template


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return read_template(path)  # the one CloudFormation YAML reader, shared with the local stack


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    key_parameter: str
    runtime: str
    architecture: str
    layers: tuple[str, ...]

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]


@dataclass(frozen=True)
class LayerSpec:
    logical_id: str
    key_parameter: str


@dataclass(frozen=True)
class Artifacts:
    """What the template deploys from the artifact bucket."""

    bucket_parameter: str
    layer: LayerSpec
    functions: tuple[FunctionSpec, ...]
    runtime: str  # "python3.13"
    architecture: str  # "arm64"

    @property
    def python_version(self) -> str:
        return self.runtime.removeprefix("python")


def _s3_code(owner: str, code: Any, parameters: dict[str, Any]) -> tuple[str, str]:
    """(bucket parameter, key parameter) of an ``S3Bucket``/``S3Key`` code location made of two Refs."""
    if not isinstance(code, dict):
        raise BuildError(f"{owner}: code location {code!r} is not S3Bucket/S3Key")
    refs = []
    for prop in ("S3Bucket", "S3Key"):
        value = code.get(prop)
        if not (isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters):
            raise BuildError(f"{owner}: {prop} must be a Ref to a template parameter, found {value!r}")
        refs.append(value["Ref"])
    return refs[0], refs[1]


def artifacts_from_template(template: dict[str, Any]) -> Artifacts:
    """The layer and the functions to build, their key parameters, runtime and architecture."""
    parameters = template.get("Parameters", {})
    resources = template["Resources"]
    layers = {name: r for name, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion"}
    if len(layers) != 1:
        raise BuildError(f"expected exactly one AWS::Lambda::LayerVersion (the core layer), found {sorted(layers)}")
    ((layer_id, layer),) = layers.items()
    layer_props = layer["Properties"]
    buckets = set()
    bucket, layer_key = _s3_code(layer_id, layer_props.get("Content"), parameters)
    buckets.add(bucket)
    functions = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        props = resource["Properties"]
        if props.get("PackageType", "Zip") != "Zip" or "ZipFile" in props.get("Code", {}):
            raise BuildError(f"{name}: only S3 zip packages are built (found an image or inline code)")
        bucket, key = _s3_code(name, props.get("Code"), parameters)
        buckets.add(bucket)
        layer_refs = tuple(
            ref["Ref"] for ref in props.get("Layers", []) if isinstance(ref, dict) and set(ref) == {"Ref"}
        )
        functions.append(
            FunctionSpec(
                logical_id=name,
                handler=props["Handler"],
                key_parameter=key,
                runtime=props["Runtime"],
                architecture=(props.get("Architectures") or ["x86_64"])[0],
                layers=layer_refs,
            )
        )
    if not functions:
        raise BuildError("template.yaml defines no AWS::Lambda::Function")
    keys = [layer_key] + [f.key_parameter for f in functions]
    if len(set(keys)) != len(keys):
        shared = sorted({key for key in keys if keys.count(key) > 1})
        raise BuildError(f"each artifact needs its own S3 key parameter; shared: {shared}")
    if len(buckets) != 1:
        raise BuildError(f"all code must come from one artifact bucket parameter, found {sorted(buckets)}")
    runtimes = {f.runtime for f in functions} | set(layer_props.get("CompatibleRuntimes", []))
    architectures = {f.architecture for f in functions} | set(layer_props.get("CompatibleArchitectures", []))
    if len(runtimes) != 1 or len(architectures) != 1:
        raise BuildError(
            f"one layer serves every function, so they must share one runtime and one architecture; found "
            f"runtimes {sorted(runtimes)} and architectures {sorted(architectures)}"
        )
    (runtime,), (architecture,) = runtimes, architectures
    if not runtime.startswith("python3.") or architecture not in ARCHITECTURES:
        raise BuildError(f"unsupported runtime/architecture {runtime}/{architecture}")
    return Artifacts(
        bucket_parameter=buckets.pop(),
        layer=LayerSpec(layer_id, layer_key),
        functions=tuple(sorted(functions, key=lambda f: f.logical_id)),
        runtime=runtime,
        architecture=architecture,
    )


# ----------------------------------------------------------------------------- the import graph


def module_file(module: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The source file of a project module (``a.b`` → ``a/b.py`` or ``a/b/__init__.py``), if it exists."""
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, including lazy ones inside functions, except ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(module: str, path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports; ``from a import b`` yields ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            anchor = ".".join(parts[: len(parts) - node.level + 1])
            base = f"{anchor}.{base}" if base else anchor
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


@dataclass
class ModuleClosure:
    """The project modules a set of root modules needs, and what they import from outside."""

    modules: dict[str, Path] = field(default_factory=dict)
    layer_imports: set[str] = field(default_factory=set)
    external_imports: set[str] = field(default_factory=set)


def walk_imports(roots: Iterable[str], shipped: frozenset[str], root: Path = PROJECT_ROOT) -> ModuleClosure:
    """Follow imports from ``roots`` through the packages in ``shipped``.

    Imports of the layer's packages and of third-party modules are recorded, not followed; an import of
    any other project package (local/, tests/) is an error, since it would fail on Lambda.
    """
    project_packages = {p.parent.name for p in root.glob("*/__init__.py")}
    closure = ModuleClosure()
    pending = list(roots)
    while pending:
        module = pending.pop()
        if module in closure.modules:
            continue
        path = module_file(module, root)
        if path is None:
            raise BuildError(f"module {module} not found under {root}")
        closure.modules[module] = path
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        for name in imported_modules(module, path):
            top = name.split(".")[0]
            if top in shipped:
                if module_file(name, root) is not None:
                    pending.append(name)
                elif module_file(name.rpartition(".")[0], root) is None:
                    raise BuildError(f"{module} imports {name}, which does not exist")
            elif top in LAYER_PACKAGES:
                closure.layer_imports.add(name)
            elif top in project_packages:
                raise BuildError(f"{module} imports {name}: {top}/ is development tooling and is not deployed")
            elif name:
                closure.external_imports.add(top)
    return closure


def package_data(modules: dict[str, Path], root: Path = PROJECT_ROOT) -> set[Path]:
    """Non-Python files in the directory of every shipped package, plus ``RUNTIME_DATA`` of shipped modules."""
    files: set[Path] = set()
    for path in modules.values():
        if path.name == "__init__.py":
            files.update(
                item for item in path.parent.iterdir() if item.is_file() and item.suffix not in {".py", ".pyc", ".pyi"}
            )
    for module, patterns in RUNTIME_DATA.items():
        if module in modules:
            for pattern in patterns:
                matched = sorted(root.glob(pattern))
                if not matched:
                    raise BuildError(f"{module} needs {pattern} at run time, but nothing matches it")
                files.update(matched)
    return files


# ----------------------------------------------------------------------------- dependencies


@dataclass(frozen=True)
class Target:
    """A platform to install wheels for: the Lambda runtime, or this machine."""

    name: str
    python_version: str  # "3.13"
    machine: str  # "aarch64"
    platforms: tuple[str, ...]  # pip --platform tags; () = this machine's own tags

    def pip_options(self) -> list[str]:
        options = ["--python-version", self.python_version, "--implementation", "cp", "--only-binary=:all:"]
        for platform_tag in self.platforms:
            options += ["--platform", platform_tag]
        return options

    def marker_environment(self) -> dict[str, str]:
        environment = dict(default_environment())
        environment.update(
            python_version=self.python_version,
            python_full_version=f"{self.python_version}.0",
            implementation_version=f"{self.python_version}.0",
        )
        if self.platforms:
            environment.update(
                platform_machine=self.machine,
                sys_platform="linux",
                platform_system="Linux",
                os_name="posix",
                implementation_name="cpython",
                platform_python_implementation="CPython",
            )
        return environment


def lambda_target(artifacts: Artifacts) -> Target:
    machine = ARCHITECTURES[artifacts.architecture]
    return Target(
        "lambda", artifacts.python_version, machine, tuple(tag.format(machine=machine) for tag in PLATFORM_TAGS)
    )


def runtime_requirements(pyproject: Path = PYPROJECT) -> list[Requirement]:
    """``[project].dependencies``: what the layer ships."""
    with pyproject.open("rb") as handle:
        return [Requirement(spec) for spec in tomllib.load(handle)["project"]["dependencies"]]


def _pip(args: list[str], what: str) -> None:
    command = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"pip failed to {what}:\n$ {' '.join(command)}\n{result.stdout}\n{result.stderr}")


def resolve(target: Target, requirements: list[Requirement]) -> dict[str, tuple[str, list[str]]]:
    """Name → (version, requires_dist) of every distribution pip resolves for ``target`` (nothing installed)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        _pip(
            [
                "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                *target.pip_options(), "--constraint", str(CONSTRAINTS), *map(str, requirements),
            ],
            f"resolve the runtime dependencies for {target.name}",
        )  # fmt: skip
        installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    return {
        canonicalize_name(item["metadata"]["name"]): (
            item["metadata"]["version"],
            item["metadata"].get("requires_dist") or [],
        )
        for item in installs
    }


def layer_distributions(
    target: Target, requirements: list[Requirement], resolved: dict[str, tuple[str, list[str]]]
) -> dict[str, str]:
    """Name → version of what the layer ships: the closure of ``requirements`` on ``target``.

    Markers are evaluated for the target (pip evaluates them for the interpreter running it), and the
    walk stops at what the Lambda runtime provides unless pyproject names it directly.
    """
    environment = target.marker_environment()
    roots = {canonicalize_name(r.name) for r in requirements}
    keep: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(r, frozenset(r.extras)) for r in requirements if r.marker is None or r.marker.evaluate(environment)]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if (name, extras) in seen or (name in RUNTIME_PROVIDED and name not in roots):
            continue
        seen.add((name, extras))
        if name not in resolved:
            raise BuildError(
                f"{name} is required on {target.name} (python {target.python_version}, {target.machine}) but pip "
                "did not resolve it (its marker differs between this interpreter and the target): pin it in "
                "pyproject.toml's dependencies"
            )
        version, requires = resolved[name]
        keep[name] = version
        for spec in requires:
            dependency = Requirement(spec)
            applies = dependency.marker is None or any(
                dependency.marker.evaluate({**environment, "extra": extra}) for extra in (extras or {""})
            )
            if applies:
                pending.append((dependency, frozenset(dependency.extras)))
    return keep


def install(target: Target, distributions: dict[str, str], site: Path, *, with_dependencies: bool = False) -> None:
    """pip-install exact versions into ``site`` (a ``--target`` folder), binary wheels only, no bytecode."""
    pins = [f"{name}=={version}" for name, version in sorted(distributions.items())]
    _pip(
        [
            "install", "--quiet", "--no-compile", "--target", str(site), *target.pip_options(),
            *([] if with_dependencies else ["--no-deps"]), "--constraint", str(CONSTRAINTS), *pins,
        ],
        f"install {', '.join(pins)} for {target.name}",
    )  # fmt: skip
    strip_site(site)


def strip_site(site: Path) -> None:
    """Drop what Lambda never uses (bytecode of the build interpreter, tests, type stubs) and what would
    make the zip differ between machines.

    Console scripts (``bin/``) carry the build interpreter's path in their shebang; ``direct_url.json``
    carries a local path. RECORD is rewritten to list only files that are still there.
    """
    shutil.rmtree(site / "bin", ignore_errors=True)
    for path in sorted(site.rglob("*"), reverse=True):
        if path.is_dir() and (path.name in STRIPPED_DIRS and path.parent != site or path.name.endswith("-stubs")):
            shutil.rmtree(path)
        elif path.is_file() and (path.suffix in {".pyc", ".pyi"} or path.name == "direct_url.json"):
            path.unlink()
    for record in site.glob("*.dist-info/RECORD"):
        lines = record.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if (site / line.split(",", 1)[0]).resolve().is_file() or "RECORD," in line]
        record.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


def top_level_modules(site: Path) -> set[str]:
    """Importable top-level names in a ``--target`` folder."""
    names = set()
    for entry in site.iterdir():
        if entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)
        elif entry.suffix in {".py", ".so"}:
            names.add(entry.name.split(".")[0])
    return names


# ----------------------------------------------------------------------------- zips


def zip_entries(root: Path, prefix: str = "") -> list[tuple[str, Path]]:
    entries = []
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            entries.append((prefix + path.relative_to(root).as_posix(), path))
    return sorted(entries)


def write_zip(entries: list[tuple[str, Path]], destination: Path) -> None:
    """A zip that depends only on file names and contents: sorted, fixed timestamps and modes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, path in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so external_attr carries the permission bits
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r-- (Lambda needs only read)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unzipped_size(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


def copy_tree(files: Iterable[Path], destination: Path, root: Path = PROJECT_ROOT) -> None:
    for source in files:
        target = destination / source.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def stage_function(spec: FunctionSpec, destination: Path, root: Path = PROJECT_ROOT) -> ModuleClosure:
    """Copy the handler's modules and their data files into ``destination``."""
    closure = walk_imports([spec.module], FUNCTION_PACKAGES, root)
    handler_file = closure.modules[spec.module]
    function_name = spec.handler.rsplit(".", 1)[1]
    defined = {
        node.name if isinstance(node, ast.FunctionDef) else getattr(target, "id", None)
        for node in ast.parse(handler_file.read_text(encoding="utf-8")).body
        for target in (getattr(node, "targets", None) or [node])
    }
    if function_name not in defined:
        raise BuildError(f"{spec.logical_id}: Handler {spec.handler}: {handler_file} defines no {function_name}")
    copy_tree([*closure.modules.values(), *package_data(closure.modules, root)], destination, root)
    return closure


def core_files(root: Path = PROJECT_ROOT) -> list[Path]:
    files = []
    for package in sorted(LAYER_PACKAGES):
        files += [p for p in (root / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(p for p in files if p.suffix != ".pyc")


def core_modules(root: Path = PROJECT_ROOT) -> list[str]:
    """Every module of the layer's packages (the layer ships them whole)."""
    modules = []
    for path in core_files(root):
        if path.suffix == ".py":
            parts = path.relative_to(root).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def check_imports(owner: str, imports: set[str], available: set[str], python_version: str) -> None:
    stdlib = set(sys.stdlib_module_names)
    if tuple(map(int, python_version.split("."))) >= (3, 13):
        stdlib -= REMOVED_IN_3_13
    missing = sorted(imports - stdlib - available - RUNTIME_PROVIDED_MODULES - {"__future__"})
    if missing:
        raise BuildError(
            f"{owner} imports {', '.join(missing)}, which neither the layer, the Python {python_version} "
            "standard library nor the Lambda runtime provides: add it to pyproject.toml's dependencies"
        )


# ----------------------------------------------------------------------------- host interpreter


def _python_version_of(executable: str) -> str | None:
    try:
        result = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def find_host_python(version: str) -> str:
    """An interpreter of the Lambda runtime's version on this machine if there is one, else this one."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}*/bin/python{version}"), reverse=True)]
    for candidate in filter(None, candidates):
        if _python_version_of(candidate) == version:
            return candidate
    return sys.executable


# ----------------------------------------------------------------------------- the build


def _remove_previous(out: Path) -> None:
    """Remove what an earlier build wrote, and only that (``--out`` may be any folder)."""
    for path in out.glob("*.zip"):
        path.unlink()
    for name in ("manifest.json",):
        (out / name).unlink(missing_ok=True)
    for name in ("host", ".stage"):
        shutil.rmtree(out / name, ignore_errors=True)


def _s3_key(name: str, sha256: str) -> str:
    return f"{name}-{sha256[:12]}.zip"


def _artifact_entry(zip_path: Path, out: Path, name: str) -> dict[str, Any]:
    digest = sha256_of(zip_path)
    return {
        "zip": zip_path.relative_to(out).as_posix(),
        "sha256": digest,
        "size": zip_path.stat().st_size,
        "unzipped_size": unzipped_size(zip_path),
        "s3_key": _s3_key(name, digest),
    }


def build(out: Path, host_python: str | None = None, with_host: bool = True) -> dict[str, Any]:
    """Build every artifact into ``out`` and return the manifest (also written to ``out/manifest.json``)."""
    started = time.monotonic()
    artifacts = artifacts_from_template(load_template())
    target = lambda_target(artifacts)
    requirements = runtime_requirements()
    out.mkdir(parents=True, exist_ok=True)
    _remove_previous(out)
    stage = out / ".stage"

    host: Target | None = None
    if with_host:
        host_python = host_python or find_host_python(artifacts.python_version)
        host_version = _python_version_of(host_python)
        if host_version is None:
            raise BuildError(f"host interpreter {host_python} does not run")
        host = Target("host", host_version, platform.machine(), ())

    # Resolving and installing are network- and disk-bound: run the Lambda and host builds side by side.
    with ThreadPoolExecutor(max_workers=3) as pool:
        resolutions = {t: pool.submit(resolve, t, requirements) for t in filter(None, (target, host))}
        layers = {t: layer_distributions(t, requirements, f.result()) for t, f in resolutions.items()}
        installs = [pool.submit(install, t, layers[t], stage / t.name / "python") for t in layers]
        if host is not None:
            # Stands in for /var/runtime: the boto3 and botocore the Lambda runtime ships.
            provided = _pinned(RUNTIME_PROVIDED)
            installs.append(pool.submit(install, host, provided, stage / "host-runtime", with_dependencies=True))
        for future in installs:
            future.result()

    layer_site = stage / target.name / "python"
    layer_modules = top_level_modules(layer_site) | set(LAYER_PACKAGES)
    core_closure = walk_imports(core_modules(), LAYER_PACKAGES)
    check_imports("the core layer", core_closure.external_imports, layer_modules, target.python_version)
    for site in {stage / t.name / "python" for t in layers}:
        copy_tree(core_files(), site)
    layer_zip = out / "layer.zip"
    write_zip(zip_entries(layer_site, "python/"), layer_zip)

    manifest: dict[str, Any] = {
        "template": TEMPLATE.name,
        "runtime": artifacts.runtime,
        "architecture": artifacts.architecture,
        "platforms": list(target.platforms),
        "bucket_parameter": artifacts.bucket_parameter,
        "layer": {
            "logical_id": artifacts.layer.logical_id,
            "parameter": artifacts.layer.key_parameter,
            "distributions": layers[target],
            **_artifact_entry(layer_zip, out, layer_zip.stem),
        },
        "functions": {},
    }
    layer_size = manifest["layer"]["unzipped_size"]
    for spec in artifacts.functions:
        function_dir = stage / "functions" / spec.logical_id
        closure = stage_function(spec, function_dir)
        own = {p.split(".")[0] for p in closure.modules}
        check_imports(spec.logical_id, closure.external_imports, layer_modules | own, target.python_version)
        if closure.layer_imports and artifacts.layer.logical_id not in spec.layers:
            raise BuildError(f"{spec.logical_id} imports {sorted(closure.layer_imports)[0]} but does not attach "
                             f"the layer {artifacts.layer.logical_id}")  # fmt: skip
        zip_path = out / f"{spec.logical_id}.zip"
        write_zip(zip_entries(function_dir), zip_path)
        entry = _artifact_entry(zip_path, out, spec.logical_id)
        if entry["unzipped_size"] + layer_size > UNZIPPED_LIMIT_BYTES:
            raise BuildError(f"{spec.logical_id}: code and layer unzipped exceed Lambda's 250 MB limit")
        manifest["functions"][spec.logical_id] = {
            "handler": spec.handler,
            "parameter": spec.key_parameter,
            "modules": sorted(closure.modules),
            **entry,
        }
    manifest["parameter_overrides"] = {
        manifest["layer"]["parameter"]: manifest["layer"]["s3_key"],
        **{f["parameter"]: f["s3_key"] for f in manifest["functions"].values()},
    }

    if host is not None:
        host_dir = out / "host"
        (host_dir / "layer").mkdir(parents=True)
        shutil.move(stage / host.name / "python", host_dir / "layer" / "python")
        shutil.move(stage / "host-runtime", host_dir / "runtime")
        for name in manifest["functions"]:
            with zipfile.ZipFile(out / f"{name}.zip") as archive:  # the exact bytes Lambda gets
                archive.extractall(host_dir / "functions" / name)
        manifest["host"] = {
            "python": host_python,
            "python_version": host.python_version,
            "layer": "host/layer/python",
            "runtime": "host/runtime",
            "functions": {name: f"host/functions/{name}" for name in manifest["functions"]},
        }
    shutil.rmtree(stage)
    manifest["build_seconds"] = round(time.monotonic() - started, 1)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _pinned(names: Iterable[str]) -> dict[str, str]:
    """Versions from constraints.txt for ``names`` (the boto3 the runtime stand-in gets)."""
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    return {name: pins[name] for name in sorted(names) if name in pins}


def _report(manifest: dict[str, Any], out: Path) -> None:
    rows = [("layer", manifest["layer"]), *manifest["functions"].items()]
    width = max(len(name) for name, _ in rows)
    print(f"{'artifact':<{width}}  {'zip':>10}  {'unzipped':>10}  s3 key")
    for name, entry in rows:
        print(f"{name:<{width}}  {entry['size']:>10,}  {entry['unzipped_size']:>10,}  {entry['s3_key']}")
    target = f"{manifest['runtime']}/{manifest['architecture']}"
    print(f"\nbuilt {target} artifacts into {out} in {manifest['build_seconds']}s")
    if "host" in manifest:
        print(f"host build for tests: {out / 'host'} (python {manifest['host']['python_version']})")
    overrides = " ".join(f"{k}={v}" for k, v in sorted(manifest["parameter_overrides"].items()))
    print(f"parameter overrides (plus {manifest['bucket_parameter']}=<bucket>):\n  {overrides}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "build", help="output folder (default: build/)")
    parser.add_argument("--host-python", help="interpreter for the host build (default: python<runtime> if found)")
    parser.add_argument("--no-host", action="store_true", help="skip the host build used by the tests")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    try:
        manifest = build(out, args.host_python, with_host=not args.no_host)
    except BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    _report(manifest, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
