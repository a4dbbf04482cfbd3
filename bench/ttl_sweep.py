"""Hit ratio against TTL for the synthetic day (in-memory model of SearchCache's policy) → docs/performance.png.

``python -m bench.ttl_sweep`` prints the sweep and draws the plot; ``make bench`` runs it too and marks
the real redis-server replay at the template's default TTL on the same plot. The recommended TTL is
the shortest one on the grid whose simulated ratio clears the goal by ``MARGIN``: with explicit
invalidation, a longer TTL only lengthens how long a result may outlive a lost invalidation.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bench import trace
from bench.hit_ratio import GOAL, seeded_day, template_ttl_seconds, value_sizes
from core.redis_client import cache_policy

PLOT = Path(__file__).resolve().parent.parent / "docs" / "performance.png"
TTLS = (60, 300, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400)
MARGIN = 0.01


@dataclass
class Point:
    ttl_seconds: int
    hit_ratio: float
    vs_oracle: float
    mean_stored_mb: float
    short_negative_vs_oracle: float  # the same TTL with empty results cached for only 30 s


def sweep(ttls: tuple[int, ...] = TTLS) -> list[Point]:
    day = seeded_day()
    sizes = value_sizes(day)
    points = []
    for ttl in ttls:
        policy = cache_policy(ttl)
        result = trace.simulate(day.trace, ttl, sizes, negative_ttl_seconds=policy.negative_ttl_seconds)
        short = trace.simulate(day.trace, ttl, sizes, negative_ttl_seconds=min(30, ttl))
        points.append(Point(ttl, result.hit_ratio, result.hit_ratio / day.oracle, result.mean_stored_bytes / 1e6, 0.0))
        points[-1].short_negative_vs_oracle = short.hit_ratio / day.oracle
    return points


def recommended(points: list[Point]) -> int | None:
    return next((point.ttl_seconds for point in points if point.vs_oracle >= GOAL + MARGIN), None)


def plot(points: list[Point], default_ttl: int, replayed: tuple[int, float] | None = None, path: Path = PLOT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [point.ttl_seconds / 3600 for point in points]
    figure, axis = plt.subplots(figsize=(8, 4.8), dpi=120)
    axis.plot(hours, [p.vs_oracle for p in points], "o-", label="SearchCache policy (model)")
    axis.plot(hours, [p.short_negative_vs_oracle for p in points], "s--", alpha=0.6, label="empty results cached 30 s")
    axis.axhline(GOAL, color="tab:red", linestyle=":", label=f"goal {GOAL}")
    axis.axvline(default_ttl / 3600, color="tab:green", linestyle="-.", label=f"template default {default_ttl} s")
    if replayed is not None:
        axis.plot([replayed[0] / 3600], [replayed[1]], "*", markersize=14, color="black", label="redis-server replay")
    axis.set_xscale("log")
    axis.set_xlabel("TTL (hours, log scale)")
    axis.set_ylabel("hit ratio ÷ oracle")
    axis.set_ylim(0, 1.02)
    axis.grid(True, which="both", alpha=0.3)
    storage = axis.twinx()
    storage.plot(hours, [p.mean_stored_mb for p in points], color="tab:gray", alpha=0.5, label="mean stored MB")
    storage.set_ylabel("mean cached data (MB)", color="tab:gray")
    day = seeded_day()
    axis.set_title(
        f"Flight search cache: {len(day.trace.searches):,} searches, {len(day.trace.queries):,} distinct, "
        f"{len(day.trace.invalidations):,} invalidations (oracle {day.oracle:.3f})",
        fontsize=9,
    )
    lines, labels = axis.get_legend_handles_labels()
    more_lines, more_labels = storage.get_legend_handles_labels()
    axis.legend(lines + more_lines, labels + more_labels, loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def report(points: list[Point]) -> str:
    lines = ["ttl_s     hit_ratio  vs_oracle  (30 s empties)  stored_MB"]
    for point in points:
        lines.append(
            f"{point.ttl_seconds:<8d}  {point.hit_ratio:9.4f}  {point.vs_oracle:9.4f}  "
            f"{point.short_negative_vs_oracle:14.4f}  {point.mean_stored_mb:9.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    points = sweep()
    print(report(points))
    print(f"recommended TTL (shortest with model ≥ {GOAL + MARGIN}): {recommended(points)} s")
    print(f"plot: {plot(points, template_ttl_seconds())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
