"""User-facing errors: one clear line naming the file and the fix, never a traceback."""

from __future__ import annotations

import sys
from typing import Callable, NoReturn

from skinbench import quiet


class SkinbenchError(Exception):
    """An error caused by input the user controls (data, names, options).

    The CLI prints ``str(err)`` on one line and exits non-zero; programming errors
    are not wrapped in this class and keep their traceback.
    """

    def __init__(self, message: str, *, path: object | None = None, fix: str | None = None):
        self.path = path
        self.fix = fix
        parts = [message if path is None else f"{path}: {message}"]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class DataError(SkinbenchError):
    """A dataset file is missing, malformed or inconsistent."""


class ConfigError(SkinbenchError):
    """An unknown task/approach/dataset name or an invalid option."""


class WeightsError(SkinbenchError):
    """Pretrained weights are not available offline (never fall back to random weights)."""


def run_script(main: Callable[[], int | None], prog: str) -> NoReturn:
    """Run a benchmark script's ``main`` as the CLI runs its commands, and exit with its status: library
    start-up noise off (:func:`skinbench.quiet.install`), and a :class:`SkinbenchError` ends it with one
    line naming the fix (status 2) instead of a traceback."""
    quiet.install()
    try:
        raise SystemExit(main())
    except SkinbenchError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
