"""``make load``: the local stack under 50 concurrent clients for 60 s (locust, headless), then a push audit.

1. Start ``python -m local`` on a free 127.0.0.1 port with its own state file (seed scale 0.1, seeded
   before serving), and wait until it answers.
2. Run ``locust -f bench/locustfile.py --headless -u 50 -r 10 -t 60s`` against it.
3. Audit the partner pushes: every event the API accepted must reach the flights table (EventBridge →
   SQS → ingest, bridged locally by the stack's pollers) with its sequence, and a sample must show up
   in search results (the ingest's INCR invalidated the cached page).
4. Stop the stack (SIGINT to the process this script started; it stops its redis-server and moto).

Results: bench/results/load.json and a summary on stdout. Everything stays on 127.0.0.1 and is bounded
in time.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from domains.flights.offers import item_key, offer_attribute, route_key
from local.redis_server import free_port

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "load.json"
USERS, SPAWN_RATE, DURATION = 50, 10, "60s"
SEED_SCALE = 0.1
START_TIMEOUT_SECONDS = 300
LANDING_TIMEOUT_SECONDS = 90
SEARCH_SAMPLE = 20


def _get(url: str, key: str | None = None, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"x-api-key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def start_stack(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    state_file = workdir / "stack.json"
    log = (workdir / "stack.log").open("wb")
    command = [
        sys.executable, "-m", "local", "--host", "127.0.0.1", "--port", str(free_port()),
        "--state-file", str(state_file), "--seed-scale", str(SEED_SCALE), "--seed-wait",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited ({process.returncode}); see {workdir / 'stack.log'}")
        if state_file.exists():
            state = json.loads(state_file.read_text(encoding="utf-8"))
            if _get(state["url"] + "/v1/health")[0] == 200:
                return process, state
        time.sleep(0.5)
    stop_stack(process)
    raise RuntimeError(f"the local stack did not come up within {START_TIMEOUT_SECONDS} s")


def stop_stack(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def run_locust(state_file: Path, push_log: Path, workdir: Path, url: str) -> dict[str, Any]:
    environment = {
        **os.environ,
        "LOAD_STATE": str(state_file),
        "LOAD_PUSH_LOG": str(push_log),
        "LOAD_SEED_SCALE": str(SEED_SCALE),
        "LOAD_USERS": str(USERS),
        "PYTHONPATH": str(REPO),
    }
    command = [
        str(Path(sys.executable).with_name("locust")), "-f", str(REPO / "bench" / "locustfile.py"), "--headless",
        "-u", str(USERS), "-r", str(SPAWN_RATE), "-t", DURATION, "--host", url, "--csv", str(workdir / "locust"),
        "--only-summary", "--stop-timeout", "10",
    ]  # fmt: skip
    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=180)
    (workdir / "locust.log").write_text(finished.stdout + finished.stderr, encoding="utf-8")
    rows = list(csv.DictReader((workdir / "locust_stats.csv").open(encoding="utf-8")))
    failures = list(csv.DictReader((workdir / "locust_failures.csv").open(encoding="utf-8")))
    by_name = {row["Name"]: row for row in rows}
    total = by_name["Aggregated"]

    def summary(row: dict[str, str]) -> dict[str, Any]:
        return {
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "rps": float(row["Requests/s"]),
            "p50_ms": float(row["50%"]),
            "p99_ms": float(row["99%"]),
            "max_ms": float(row["Max Response Time"]),
        }

    return {
        "total": summary(total),
        "by_endpoint": {name: summary(row) for name, row in by_name.items() if name != "Aggregated"},
        "failures": [
            {"name": row["Name"], "error": row["Error"][:300], "occurrences": int(row["Occurrences"])}
            for row in failures
        ],
        "locust_exit_code": finished.returncode,
    }


def audit_pushes(state: dict[str, Any], push_log: Path) -> dict[str, Any]:
    """Did every accepted event land in the flights table, and do searches see them?"""
    import boto3

    pushed = (
        [json.loads(line) for line in push_log.read_text(encoding="utf-8").splitlines()] if push_log.exists() else []
    )
    report: dict[str, Any] = {"accepted_events": len(pushed)}
    endpoint = state.get("aws_endpoint_url")
    if not endpoint:
        report["verified"] = "not checked: the state file has no aws_endpoint_url (no local DynamoDB to read)"
        return report
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    tables = [name for name in dynamodb.list_tables()["TableNames"] if "flights" in name.lower()]
    if len(tables) != 1:
        report["verified"] = f"not checked: cannot tell the flights table among {tables}"
        return report
    bridged = bool(state.get("queues"))
    report["ingest_bridging"] = "EventBridge → SQS → ingest pollers" if bridged else "none found in the state file"
    missing = pushed
    deadline = time.monotonic() + LANDING_TIMEOUT_SECONDS
    while missing and time.monotonic() < deadline:
        still = []
        for record in missing:
            offer = record["offers"][0]
            key = item_key(route_key(record["origin"], record["destination"]), record["date"], "skylink")
            item = dynamodb.get_item(TableName=tables[0], Key=key).get("Item") or {}
            stored = item.get(offer_attribute(offer["flight_id"], offer["cabin"]))
            # Landed: the offer holds this push's sequence, or a later push's that superseded it.
            if stored is None or int(stored["M"]["sequence"]["N"]) < record["sequence"]:
                still.append(record)
        missing = still
        if missing:
            time.sleep(2)
    report["landed_in_table"] = len(pushed) - len(missing)
    report["lost"] = len(missing)
    report["lost_examples"] = missing[:5]
    sample = random.Random(1).sample(pushed, min(SEARCH_SAMPLE, len(pushed)))
    seen = 0
    for record in sample:
        offer = record["offers"][0]
        query = {
            "origin": record["origin"], "destination": record["destination"], "date": record["date"],
            "cabin": offer["cabin"], "limit": "50",
        }  # fmt: skip
        status, _, body = _get(
            f"{state['url']}/v1/flights/search?{urllib.parse.urlencode(query)}", state["api_keys"]["basic"]
        )
        if status == 200 and any(result["flight_id"] == offer["flight_id"] for result in json.loads(body)["results"]):
            seen += 1
        time.sleep(0.15)  # stay inside the basic plan's 10 rps
    report["visible_in_search_sample"] = f"{seen}/{len(sample)}"
    return report


def server_side(stack_log: Path) -> dict[str, Any]:
    """From the stack's EMF lines: cache hits and misses, and the handlers' own SearchLatency, per domain."""
    domains: dict[str, dict[str, Any]] = {}
    for line in stack_log.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith('{"_aws"'):
            continue
        record = json.loads(line)
        domain = domains.setdefault(record.get("Domain", "?"), {"CacheHit": 0, "CacheMiss": 0, "latencies": []})
        for name in ("CacheHit", "CacheMiss"):
            domain[name] += int(record.get(name, 0))
        latency = record.get("SearchLatency")
        if latency is not None:
            domain["latencies"] += latency if isinstance(latency, list) else [latency]
    report = {}
    for name, domain in domains.items():
        latencies = sorted(domain.pop("latencies"))
        if latencies:
            domain["handler_p50_ms"] = latencies[len(latencies) // 2]
            domain["handler_p99_ms"] = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        report[name] = domain
    return report


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="travel-load-") as directory:
        workdir = Path(directory)
        push_log = workdir / "pushes.jsonl"
        process, state = start_stack(workdir)
        try:
            print(
                f"[load] local stack on {state['url']}; locust -u {USERS} -r {SPAWN_RATE} -t {DURATION} …", flush=True
            )
            load = run_locust(workdir / "stack.json", push_log, workdir, state["url"])
            print("[load] auditing partner pushes …", flush=True)
            pushes = audit_pushes(state, push_log)
        finally:
            stop_stack(process)
        load["server_side"] = server_side(workdir / "stack.log")
        result = {"users": USERS, "spawn_rate": SPAWN_RATE, "duration": DURATION, "seed_scale": SEED_SCALE, **load,
                  "pushes": pushes}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    total = result["total"]
    print(
        f"[load] {total['requests']} requests, {total['rps']:.1f} req/s, p50 {total['p50_ms']:.0f} ms, "
        f"p99 {total['p99_ms']:.0f} ms, errors {total['failures']}"
    )
    for name, row in result["by_endpoint"].items():
        print(
            f"[load]   {name}: {row['requests']} req, p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
            f"errors {row['failures']}"
        )
    print(f"[load] pushes: {json.dumps(pushes)}")
    print(f"[load] server side (EMF): {json.dumps(result['server_side'])}")
    print(f"[load] → {RESULTS}")
    ok = total["failures"] == 0 and pushes.get("lost", 0) == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
