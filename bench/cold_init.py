"""``cold_init_vs_boto3_client``: a fresh process serving its first search ÷ a fresh process making a boto3 client.

One side is a new ``python`` that imports ``domains.flights.handler`` and answers one real proxy event
with a cache hit from a private redis-server (the entry is stored first, by a miss through the same
handler in this process). The other is a new ``python`` running ``import boto3; boto3.client("dynamodb")``,
the first thing most Lambda functions do. Both get the same interpreter, environment (fake
credentials, no instance metadata) and working directory; each sample is the wall time of the whole
subprocess. The two alternate (and swap order every pair); the figure is the ratio of their medians.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench import fixtures
from bench.flights_function import flights_function
from bench.results import Figure

GOAL = 1.3
SAMPLES = 11
REPO = Path(__file__).resolve().parent.parent
BOTO3 = 'import boto3; boto3.client("dynamodb")'


def handler_program(event: dict[str, object]) -> str:
    return (
        "from domains.flights.handler import lambda_handler\n"
        f"response = lambda_handler({event!r}, None)\n"
        "assert response['headers']['X-Cache'] == 'HIT', response\n"
    )


def _run(program: str, environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPO,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
        timeout=60,
    )
    return time.perf_counter() - started


def measure(samples: int = SAMPLES) -> Figure:
    with flights_function() as function:
        environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        environment.pop("PYTHONPATH", None)
        handler_side = handler_program(function.event)
        _run(handler_side, environment), _run(BOTO3, environment)  # warm the page cache for both
        handler_times: list[float] = []
        boto3_times: list[float] = []
        for index in range(samples):
            pair = [(handler_side, handler_times), (BOTO3, boto3_times)]
            for program, times in pair if index % 2 == 0 else reversed(pair):
                times.append(_run(program, environment))
    handler_median, boto3_median = fixtures.median(handler_times), fixtures.median(boto3_times)
    return Figure(
        name="cold_init_vs_boto3_client",
        value=handler_median / boto3_median,
        goal=GOAL,
        unit="ratio",
        samples=[h / b for h, b in zip(handler_times, boto3_times, strict=True)],
        details={
            "what": "median wall time of a fresh process: import the flights handler + first request (cache hit) "
            "/ import boto3 + boto3.client('dynamodb')",
            "samples_each": samples,
            "handler_process_ms": [t * 1000 for t in handler_times],
            "boto3_process_ms": [t * 1000 for t in boto3_times],
            "handler_median_ms": handler_median * 1000,
            "boto3_median_ms": boto3_median * 1000,
        },
    )
