"""A private ``redis-server`` (or ``valkey-server``) for the local stack and the integration tests.

Each :class:`RedisServer` is a child process on its own free 127.0.0.1 port with its own temporary
directory and no persistence, so it never touches a Redis the developer already runs. ``make run``
may point at an existing server instead with ``REDIS_URL`` (:func:`redis_endpoint_from_url`);
tests always start their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

SERVER_BINARIES = ("redis-server", "valkey-server")
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


class RedisServerError(RuntimeError):
    """The private Redis could not be found, started or reached."""


class RedisEndpoint(Protocol):
    """What the local stack needs from a Redis: where it is, and how to let go of it."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def find_server_binary() -> str:
    """Path of ``redis-server`` or ``valkey-server``, or a clear error saying how to install one."""
    override = os.environ.get("REDIS_SERVER_BIN")
    if override:
        if shutil.which(override):
            return override
        raise RedisServerError(f"REDIS_SERVER_BIN={override!r} is not an executable")
    for name in SERVER_BINARIES:
        path = shutil.which(name)
        if path:
            return path
    raise RedisServerError(
        "Neither redis-server nor valkey-server is on PATH. The local stack and the integration tests "
        "start a private one. Install it with `make setup`, or directly: "
        "`sudo apt-get install -y redis-server` (Debian/Ubuntu), `brew install redis` (macOS). "
        "Or set REDIS_URL=redis://127.0.0.1:<port> to use a server you already run (make run only)."
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (callers retry if someone else takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Redis answers PING on host:port (inline protocol; no client library needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask Linux to SIGTERM redis-server if the stack
    # process dies without cleaning up (SIGKILL, OOM), so no orphan server keeps the port.
    # PDEATHSIG follows the thread that forked, so start servers from a long-lived thread.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class RedisServer:
    """A private redis-server child process on a free 127.0.0.1 port.

    ``with RedisServer() as redis: ...`` or ``start()``/``stop()``. ``pause()``/``resume()`` stall
    and revive it with SIGSTOP/SIGCONT, for fault tests that need a cache that stops answering.
    """

    host = "127.0.0.1"

    def __init__(self, binary: str | None = None, *, start_timeout: float = START_TIMEOUT_SECONDS) -> None:
        self._binary = binary
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._port = 0
        self._paused = False

    @property
    def port(self) -> int:
        if not self._port:
            raise RedisServerError("RedisServer is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        if self._process is not None:
            raise RedisServerError("RedisServer is already started")
        binary = self._binary or find_server_binary()
        self._workdir = Path(tempfile.mkdtemp(prefix="travel-local-redis-"))
        last_error = "not started"
        try:
            # A free port can be taken between probing and binding: try a few.
            for _attempt in range(3):
                port = free_port(self.host)
                error = self._spawn(binary, port)
                if error is None:
                    self._port = port
                    logger.info("redis-server %s listening on %s (pid %s)", binary, self.url, self.pid)
                    return self
                last_error = error
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise RedisServerError(f"could not start {binary}: {last_error}")

    def _spawn(self, binary: str, port: int) -> str | None:
        """Start the child and wait for PING; None when ready, else why it failed."""
        assert self._workdir is not None
        log_path = self._workdir / f"redis-{port}.log"
        command = [
            binary,
            "--port", str(port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self._workdir),
            "--logfile", str(log_path),
        ]  # fmt: skip
        # A session of its own keeps the terminal's Ctrl-C away from the child: the stack stops it
        # in order, after the gateway has stopped sending it requests.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=self._workdir,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if ping(self.host, port):
                return None
            time.sleep(0.05)
        self._terminate()
        log = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        return f"no PING answer on {self.host}:{port} within {self._start_timeout:.0f}s. Log tail:\n{log}"

    def pause(self) -> None:
        """Stall the server (SIGSTOP): connections stay open but nothing is answered."""
        if not self.running:
            raise RedisServerError("RedisServer is not running")
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Let a paused server answer again (SIGCONT)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)
        self._paused = False

    def stop(self) -> None:
        """Terminate, wait, kill if it must; remove the temporary directory. Safe to call twice."""
        self._terminate()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._port = 0

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            if self._paused:
                # A stopped process would hold SIGTERM pending forever.
                process.send_signal(signal.SIGCONT)
                self._paused = False
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                logger.warning("redis-server pid %s ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class ExternalRedis:
    """A Redis the developer already runs (``REDIS_URL``); the stack uses it and never stops it."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def stop(self) -> None:
        """Nothing to do: the server is not ours."""


def redis_endpoint_from_url(url: str) -> ExternalRedis:
    """Parse ``REDIS_URL`` (``redis://host:port``), checking the server answers PING."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise RedisServerError(f"REDIS_URL={url!r}: expected redis://host:port (plain TCP; TLS is not used locally)")
    if parts.username or parts.password or parts.path.strip("/") not in ("", "0"):
        raise RedisServerError(
            f"REDIS_URL={url!r}: the local stack passes only host and port to the functions "
            "(CACHE_AUTH=none, database 0); drop the credentials/database from the URL"
        )
    endpoint = ExternalRedis(parts.hostname, parts.port or 6379)
    if not ping(endpoint.host, endpoint.port, timeout=2.0):
        raise RedisServerError(f"REDIS_URL={url!r}: no PING answer from {endpoint.host}:{endpoint.port}")
    return endpoint
