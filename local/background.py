"""The background threads of the local stack (SQS pollers, schedules, pipes): each one stops on request.

A :class:`Worker` runs :meth:`Worker.run` on a daemon thread; ``run`` must return soon after
:attr:`Worker.stopping` turns true (every wait in it is ``self.wait(seconds)``, never a bare sleep),
so :meth:`LocalStack.stop` ends all of them within about a second.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

logger = logging.getLogger(__name__)

JOIN_SECONDS = 10.0


class Worker:
    """A named daemon thread with a stop event."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the worker was asked to stop meanwhile."""
        return self._stop.wait(max(0.0, seconds))

    def start(self) -> Worker:
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = JOIN_SECONDS) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("%s did not stop within %.0fs", self.name, timeout)

    def stop(self, timeout: float = JOIN_SECONDS) -> None:
        self.request_stop()
        self.join(timeout)

    def run(self) -> None:
        raise NotImplementedError

    def _main(self) -> None:
        try:
            self.run()
        except Exception:
            logger.exception("%s stopped on an unexpected error", self.name)


def stop_all(workers: Iterable[Worker], timeout: float = JOIN_SECONDS) -> None:
    """Ask every worker to stop first, then wait for each: they wind down in parallel."""
    workers = list(workers)
    for worker in workers:
        worker.request_stop()
    for worker in workers:
        worker.join(timeout)
