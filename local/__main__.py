"""``python -m local``: serve the whole API on http://127.0.0.1:3000 (``make run``).

No AWS account, no Docker: a private redis-server (or ``REDIS_URL``), an in-process moto server,
tables, queues, the partner bus and its rules and seed data from template.yaml, the gateway
emulator, the ingest pollers, the schedules (``--schedule-every`` for demos) with a fake skylink
provider, and the change pipes. Ctrl-C (or SIGTERM) stops all of it and removes the state file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from urllib.parse import urlencode

from local.fake_provider import NAME as FAKE_PROVIDER
from local.stack import DEFAULT_STATE_FILE, LocalServer, LocalStack, write_state

logger = logging.getLogger("local")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "3000")), help="port (default $PORT or 3000; 0 = any)"
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=Path(os.environ.get("LOCAL_STACK_FILE", DEFAULT_STATE_FILE)),
        help="where to write url, api keys and examples once serving (default $LOCAL_STACK_FILE or .local/stack.json)",
    )
    parser.add_argument(
        "--seed-scale",
        type=float,
        default=float(os.environ.get("SEED_SCALE", "1.0")),
        help="fraction of the seed data (default $SEED_SCALE or 1.0 = 240 routes x 60 days)",
    )
    parser.add_argument(
        "--schedule-every",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="run every schedule (the provider refresh) this often instead of its template rate, e.g. 30 for a demo",
    )
    parser.add_argument(
        "--seed-wait",
        action="store_true",
        help="write all seed data before serving (default: the example routes first, the rest in the background)",
    )
    return parser.parse_args(argv)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < seconds <= 86_400:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 86400 seconds")
    return seconds


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def curl_examples(stack: LocalStack, url: str, state_file: Path | None = None) -> list[str]:
    """Ready-to-paste commands for a first look at the API."""
    keys = stack.api_keys
    key = keys.get("basic") or next(iter(keys.values()), "")
    search_paths = {route.resource for route in stack.gateway.routes if route.resource.endswith("/search")}
    health = next((route.resource for route in stack.gateway.routes if route.resource.endswith("/health")), None)
    lines = []
    for domain, params in stack.examples.items():
        path = next((p for p in sorted(search_paths) if f"/{domain}/" in p), None)
        if path is None:
            continue
        query = f"{url}{path}?{urlencode(params)}"
        lines += [
            f"# {domain}: without a key → 403",
            f"curl -si {shlex.quote(query)}",
            f"# {domain}: basic key → 200 with X-Cache: MISS; run it again → X-Cache: HIT",
            f"curl -si -H 'x-api-key: {key}' {shlex.quote(query)}",
        ]
        if "date" in params:
            bad = f"{url}{path}?{urlencode({**params, 'date': '2024-02-30'})}"
            lines += [
                f"# {domain}: a bad date → 400 naming the parameter",
                f"curl -si -H 'x-api-key: {key}' {shlex.quote(bad)}",
            ]
    if health:
        lines += ["# health, no key needed → 200", f"curl -si {url}{health}"]
    return lines + partner_push_examples(stack, url, state_file)


def partner_push_examples(stack: LocalStack, url: str, state_file: Path | None = None) -> list[str]:
    """The partner push of ``stack.json`` as curl commands, and how to see its effect."""
    push = stack.partner_push
    keys = stack.api_keys
    search_path = next((r.resource for r in stack.gateway.routes if r.resource.endswith("/flights/search")), None)
    if push is None or "partner" not in keys or search_path is None:
        return []
    body = json.dumps(push["body"], separators=(",", ":"))
    search = f"{url}{search_path}?{urlencode(push['search'])}"
    basic = keys.get("basic", keys["partner"])
    return [
        f"# partner push (partner key): a new lowest price {push['lowest_price']} for the flights example → 202",
        f"curl -si -X POST -H 'x-api-key: {keys['partner']}' -H 'content-type: application/json' \\",
        f"  -d {shlex.quote(body)} \\",
        f"  {url}{push['path']}",
        *(
            [
                "# (or from the state file:) "
                f"jq -c .examples.partner_push.body {shlex.quote(str(state_file))} | curl -si -X POST "
                f"-H 'x-api-key: {keys['partner']}' -H 'content-type: application/json' -d @- {url}{push['path']}"
            ]
            if state_file is not None
            else []
        ),
        f"# then, within a second or two, the search answers X-Cache: MISS with {push['lowest_price']} first",
        f"curl -si -H 'x-api-key: {basic}' {shlex.quote(search)}",
        "# the same push again (or with a lower sequence) changes nothing: the search stays X-Cache: HIT",
        "# a basic key on the push route → 403; an invalid event → 202 with the rejected field named",
    ]


def schedule_summary(stack: LocalStack) -> list[str]:
    """What runs on its own: the schedules and the fake provider they pull from."""
    lines = []
    for runner in stack.schedules:
        if runner.period is None:
            every = f"{runner.schedule.expression}: not run locally (--schedule-every SECONDS runs it)"
        elif stack.schedule_every is None:
            every = f"every {runner.period:g}s ({runner.schedule.expression}; --schedule-every SECONDS for a demo)"
        else:
            every = f"every {runner.period:g}s (--schedule-every)"
        lines.append(f"Schedule {runner.schedule.logical_id}: {runner.schedule.function} {every}")
    if stack.provider is not None:
        routes = ", ".join(f"{origin}-{destination}" for origin, destination in stack.provider.routes)
        lines.append(f"Fake {FAKE_PROVIDER} provider (the refresh pulls it): {stack.provider.url}/fares ({routes})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupt)
    stack = LocalStack(
        seed_scale=args.seed_scale,
        seed_in_background=not args.seed_wait,
        redis_url=os.environ.get("REDIS_URL") or None,
        schedule_every=args.schedule_every,
    )
    server: LocalServer | None = None
    wrote_state = False
    try:
        # Bind first, so a busy port fails in a second rather than after seeding; requests wait in
        # the listen backlog until the stack is up and the server starts serving.
        try:
            server = LocalServer(lambda environ, respond: stack.gateway(environ, respond), args.host, args.port)
        except (OSError, SystemExit):  # werkzeug reports a busy port with sys.exit(1)
            logger.error("cannot listen on %s:%s; pick another port with --port or PORT=", args.host, args.port)
            return 2
        stack.start()
        server.start()
        write_state(args.state_file, stack.state(server.url))
        wrote_state = True
        print(f"\nTravel Search API (local) on {server.url}", flush=True)
        print(f"API keys by tier: {json.dumps(stack.api_keys)}", flush=True)
        if stack.seed is not None and stack.seed.seeding:
            print("Example routes are seeded; the rest follows in the background (a few minutes).", flush=True)
        print("\n".join(schedule_summary(stack)), flush=True)
        print(f"State (url, keys, examples): {args.state_file}\n", flush=True)
        print("\n".join(curl_examples(stack, server.url, args.state_file)) + "\n\nCtrl-C stops everything.", flush=True)
        # Until a stop signal raises KeyboardInterrupt here. Wake up every half second: the kernel may
        # deliver the signal to another thread, and then only running Python code in the main thread
        # notices it (a wait without a timeout would never return, and Ctrl-C would be ignored).
        idle = threading.Event()
        while not idle.wait(0.5):
            pass
    except KeyboardInterrupt:
        logger.info("stopping")
    finally:
        # A second Ctrl-C must not cut the clean-up short (and leave redis-server behind).
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        if server is not None:
            server.stop()
        stack.stop()
        if wrote_state:
            args.state_file.unlink(missing_ok=True)
        logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
