"""Packaging tests: build the Lambda artifacts once per session, then inspect and import them.

The build runs ``packaging/build.py`` for real (pip downloads wheels from PyPI, cached in ~/.cache/pip as
pip always does), into a temporary folder so a developer's ``build/`` is left alone. The tests that need
it are marked ``packaging``; ``make test`` runs them, ``pytest -m "not packaging"`` skips them offline.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = PROJECT_ROOT / "packaging" / "build.py"
DEPLOY_SCRIPT = PROJECT_ROOT / "packaging" / "deploy.py"
# A cold pip cache downloads ~25 MB of wheels; a warm one builds in ~25 s on 2 cores.
BUILD_TIMEOUT_SECONDS = 300


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "packaging: builds the Lambda artifacts with pip (needs PyPI); make test runs them"
    )


@dataclass(frozen=True)
class Build:
    """One run of packaging/build.py: its output folder and manifest."""

    out: Path
    manifest: dict[str, Any]
    log: str

    def archive(self, name: str) -> zipfile.ZipFile:
        """The zip of a function (by logical id) or of the layer (``"layer"``)."""
        return zipfile.ZipFile(self.out / f"{name}.zip")

    def zips(self) -> list[Path]:
        return sorted(self.out.glob("*.zip"))


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    out = tmp_path_factory.mktemp("build")
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == 0, f"packaging/build.py failed:\n{result.stdout}\n{result.stderr}"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return Build(out, manifest, result.stdout)


@pytest.fixture(scope="session")
def build_module() -> ModuleType:
    """packaging/build.py as a module (it is a script: the folder is not a package, see its docstring)."""
    spec = importlib.util.spec_from_file_location("travel_search_packaging_build", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module
