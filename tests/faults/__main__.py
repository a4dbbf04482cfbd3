"""``python -m tests.faults [pytest arguments]``: run the fault suite (or what the arguments name) with
pytest, and end with one line ``N passed, N failed`` (``, N skipped`` when some were skipped).

A test counts as failed when any of its phases fails or errors (a fixture that cannot start the
stack fails every test that needs it). The exit status is pytest's.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest


class Tally:
    """A pytest plugin that counts each test once: failed if any phase failed, else passed or skipped."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        current = self.outcomes.get(report.nodeid)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif current is None and (report.when == "call" or report.skipped):
            self.outcomes[report.nodeid] = "skipped" if report.skipped else "passed"

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.outcomes[report.nodeid] = "failed"

    def line(self) -> str:
        counts = {outcome: list(self.outcomes.values()).count(outcome) for outcome in ("passed", "failed", "skipped")}
        line = f"{counts['passed']} passed, {counts['failed']} failed"
        return line + (f", {counts['skipped']} skipped" if counts["skipped"] else "")


def main(argv: list[str]) -> int:
    tally = Tally()
    status = pytest.main(["-q", "-p", "no:cacheprovider", *(argv or ["tests/faults"])], plugins=[tally])
    sys.stdout.flush()
    print(tally.line(), flush=True)
    return int(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
