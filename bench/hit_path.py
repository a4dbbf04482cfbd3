"""``hit_path_vs_bare_get``: a whole flights search invocation on a cache hit ÷ a bare redis-py GET.

Both read the same stored value from the same private redis-server. The handler is the real
``domains.flights.handler.lambda_handler``: a full API Gateway proxy event in, the proxy response
out, its EMF line written to /dev/null. The GET is ``redis.Redis(...).get`` with its connection pool,
the way most code reads Redis. Each round times both alternately (handler first on even calls, GET
first on odd ones) and takes the ratio of their medians; the figure is the median round ratio, so a
noisy neighbour slows both sides of a round alike.
"""

from __future__ import annotations

import gc
import time

from bench import fixtures
from bench.flights_function import flights_function
from bench.results import Figure

GOAL = 1.3
ROUNDS = 41
CALLS_PER_ROUND = 400
WARMUP_CALLS = 2000


def measure(rounds: int = ROUNDS, calls: int = CALLS_PER_ROUND) -> Figure:
    with flights_function() as function:
        invoke, get, key = function.invoke, function.bare.get, function.entry_key
        response, written = function.invoke_capturing()
        assert response["headers"]["X-Cache"] == "HIT", response["headers"]
        ratios: list[float] = []
        handler_medians: list[float] = []
        get_medians: list[float] = []
        with fixtures.stdout_to_devnull():
            for index in range(WARMUP_CALLS):
                invoke()
                get(key)
                if index % 500 == 0:
                    assert invoke()["headers"]["X-Cache"] == "HIT"
            clock = time.perf_counter
            for _ in range(rounds):
                gc.collect()
                handler_times: list[float] = []
                get_times: list[float] = []
                for call in range(calls):
                    if call % 2:
                        started = clock()
                        get(key)
                        middle = clock()
                        invoke()
                        ended = clock()
                        get_times.append(middle - started)
                        handler_times.append(ended - middle)
                    else:
                        started = clock()
                        invoke()
                        middle = clock()
                        get(key)
                        ended = clock()
                        handler_times.append(middle - started)
                        get_times.append(ended - middle)
                handler_medians.append(fixtures.median(handler_times))
                get_medians.append(fixtures.median(get_times))
                ratios.append(handler_medians[-1] / get_medians[-1])
        stored = function.bare.get(key) or b""
    return Figure(
        name="hit_path_vs_bare_get",
        value=fixtures.median(ratios),
        goal=GOAL,
        unit="ratio",
        samples=ratios,
        details={
            "what": "median per round of (median handler invocation on a hit) / (median redis-py GET of the entry)",
            "rounds": rounds,
            "calls_per_round": calls,
            "handler_median_us": fixtures.median(handler_medians) * 1e6,
            "bare_get_median_us": fixtures.median(get_medians) * 1e6,
            "response_body_bytes": len(response["body"]),
            "stored_value_bytes": len(stored),
            "stdout_bytes_per_hit": len(written.encode()),
            "stdout_per_hit": written,
        },
    )
