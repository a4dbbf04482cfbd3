"""``python -m local``: serve the whole API on http://127.0.0.1:3000 (``make run``).

No AWS account, no Docker: a private redis-server (or ``REDIS_URL``), an in-process moto server,
tables and seed data from template.yaml, and the gateway emulator. Ctrl-C (or SIGTERM) stops the
server, moto and redis-server, and removes the state file.
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
        "--seed-wait",
        action="store_true",
        help="write all seed data before serving (default: the example routes first, the rest in the background)",
    )
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def curl_examples(stack: LocalStack, url: str) -> list[str]:
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
        print(f"State (url, keys, examples): {args.state_file}\n", flush=True)
        print("\n".join(curl_examples(stack, server.url)) + "\n\nCtrl-C stops everything.", flush=True)
        threading.Event().wait()  # until a stop signal raises KeyboardInterrupt here
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
