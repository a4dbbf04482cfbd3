"""Process environment overrides that can be undone: the local stack sets what the template's
functions would see, and puts the developer's environment back when it stops."""

from __future__ import annotations

import os
from collections.abc import Mapping


class EnvironmentOverride:
    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def apply(self, variables: Mapping[str, str | None]) -> None:
        """Set each variable (``None`` removes it), remembering its first value before any change."""
        for name, value in variables.items():
            self._saved.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def restore(self) -> None:
        """Put back every variable as it was before the first ``apply``."""
        self.apply(self._saved)
        self._saved.clear()
