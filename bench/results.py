"""Figures, the printed table and ``bench/results/latest.json``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATEST = RESULTS_DIR / "latest.json"
DETAILS = RESULTS_DIR / "details.json"


@dataclass
class Figure:
    """One measured or computed figure: its value (a median where repeated), goal and raw samples."""

    name: str
    value: float
    goal: float
    unit: str
    samples: list[float]
    higher_is_better: bool = False
    details: dict[str, Any] = field(default_factory=dict)  # how it was measured; goes to details.json

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def record(self) -> dict[str, Any]:
        return {"value": _round(self.value), "goal": self.goal, "unit": self.unit, "samples": _round(self.samples)}


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else value
    if isinstance(value, list):
        return [_round(item) for item in value]
    if isinstance(value, dict):
        return {key: _round(item) for key, item in value.items()}
    return value


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "goal", "unit", "met")]
    for figure in figures:
        goal = f"{'≥' if figure.higher_is_better else '≤'} {figure.goal:g}"
        rows.append((figure.name, f"{figure.value:.4g}", goal, figure.unit, "yes" if figure.met else "NO"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write(figures: list[Figure], merge: bool = False, path: Path = LATEST, details_path: Path = DETAILS) -> None:
    """Write latest.json and details.json; ``merge`` keeps the figures of the last run that were not measured now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    latest = json.loads(path.read_text(encoding="utf-8")) if merge and path.exists() else {}
    details = json.loads(details_path.read_text(encoding="utf-8")) if merge and details_path.exists() else {}
    for figure in figures:
        latest[figure.name] = figure.record()
        details[figure.name] = _round(figure.details)
    path.write_text(json.dumps(latest, indent=2) + "\n", encoding="utf-8")
    details_path.write_text(json.dumps(details, indent=2) + "\n", encoding="utf-8")
