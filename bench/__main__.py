"""``python -m bench`` (``make bench``): measure every figure, print the table, write bench/results/latest.json.

``python -m bench hit_path miss_path`` measures only those (and keeps the other figures of the last
run); ``cost`` then takes the inputs it needs from the last run's bench/results/details.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import fixtures, results
from bench.results import Figure

STEPS = ("hit_path", "miss_path", "cold_init", "hit_ratio", "ingest", "cost")


def _hit_path(_: dict[str, Figure]) -> list[Figure]:
    from bench import hit_path

    return [hit_path.measure()]


def _miss_path(_: dict[str, Figure]) -> list[Figure]:
    from bench import miss_path

    return [miss_path.measure()]


def _cold_init(_: dict[str, Figure]) -> list[Figure]:
    from bench import cold_init

    return [cold_init.measure()]


def _hit_ratio(_: dict[str, Figure]) -> list[Figure]:
    from bench import hit_ratio, ttl_sweep

    figure = hit_ratio.measure()
    points = ttl_sweep.sweep()
    figure.details["ttl_sweep"] = [point.__dict__ for point in points]
    figure.details["recommended_ttl_seconds"] = ttl_sweep.recommended(points)
    figure.details["plot"] = str(
        ttl_sweep.plot(points, figure.details["ttl_seconds"], (figure.details["ttl_seconds"], figure.value))
    )
    print(ttl_sweep.report(points), flush=True)
    return [figure]


def _ingest(_: dict[str, Figure]) -> list[Figure]:
    from bench import ingest

    return list(ingest.measure())


def _cost(done: dict[str, Figure]) -> list[Figure]:
    from bench import cost
    from bench.hit_ratio import seeded_day
    from bench.ingest import metric_names

    def details(name: str) -> dict[str, Any]:
        if name in done:
            return done[name].details
        recorded = json.loads(results.DETAILS.read_text(encoding="utf-8")) if results.DETAILS.exists() else {}
        if name not in recorded:
            raise SystemExit(f"cost needs the figure {name}: run `python -m bench` (all figures) first")
        return dict(recorded[name])

    hit, miss = details("hit_path_vs_bare_get"), details("miss_path_vs_client_query")
    ratio, cold = details("hit_ratio_vs_oracle"), details("cold_init_vs_boto3_client")
    throughput, validation = details("ingest_records_per_s"), details("ingest_validation_vs_write")
    table_bytes, item_bytes, query_bytes = cost.seeded_table_bytes()
    measured = {
        "hit_ratio": ratio["hit_ratio"],
        "mean_stored_bytes": ratio["simulated_mean_stored_bytes"],
        "stored_value_bytes": hit["stored_value_bytes"],
        "response_body_bytes": hit["response_body_bytes"],
        "stdout_bytes_per_hit": hit["stdout_bytes_per_hit"],
        "stdout_bytes_per_miss": miss["stdout_bytes_per_miss"],
        "hit_cpu_ms": hit["handler_median_us"] / 1000,
        "miss_cpu_ms": miss["handler_cpu_us"] / 1000,
        "cold_init_ms": cold["handler_median_ms"],
        "ingest_cpu_ms_per_record": throughput["cpu_us_per_record"] / 1000,
        "offers_per_event": validation["offers_per_record"],
        "search_metric_names": sorted(metric_names(hit["stdout_per_hit"] + miss["stdout_per_miss"])),
        "ingest_metric_names": throughput["metric_names"],
        "query_items_bytes": query_bytes,
        "flight_item_bytes": item_bytes,
        "table_bytes": table_bytes,
        "search_times": [moment for moment, _ in seeded_day().trace.searches],
    }
    return list(cost.measure(measured))


MEASURE: dict[str, Callable[[dict[str, Figure]], list[Figure]]] = {
    "hit_path": _hit_path,
    "miss_path": _miss_path,
    "cold_init": _cold_init,
    "hit_ratio": _hit_ratio,
    "ingest": _ingest,
    "cost": _cost,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="*", metavar="step", help=f"any of {', '.join(STEPS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown steps {unknown}; choose from {', '.join(STEPS)}")
    steps = args.steps or list(STEPS)
    done: dict[str, Figure] = {}
    started = time.perf_counter()
    with fixtures.environment(fixtures.AWS_ENVIRONMENT):
        for step in steps:
            began = time.perf_counter()
            print(f"[bench] {step} …", flush=True)
            for figure in MEASURE[step](done):
                done[figure.name] = figure
                print(f"[bench]   {figure.name} = {figure.value:.4g} (goal {figure.goal:g})", flush=True)
            print(f"[bench] {step} took {time.perf_counter() - began:.0f} s", flush=True)
    figures = list(done.values())
    results.write(figures, merge=len(steps) < len(STEPS))
    print()
    print(results.table(figures))
    print(f"\n{len(figures)} figures in {time.perf_counter() - started:.0f} s → {results.LATEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
