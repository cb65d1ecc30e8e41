"""User-facing errors: one clear line naming the file and the fix, never a traceback."""

from __future__ import annotations

import errno
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


class StorageError(SkinbenchError):
    """A folder skinbench writes to cannot take the write: read-only, no permission, full, or a file is
    where the folder should be. Raised before any work where it can be seen then (:func:`skinbench.paths.
    check_writable`), else at the write (:func:`skinbench.cache.atomic_write_bytes`), which leaves what was
    already there intact."""

    #: errno -> what it means for a user (the write-time errors mapped to this class)
    REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only", errno.EACCES: "no permission to write",
               errno.EPERM: "no permission to write", errno.ENOTDIR: "a file is where a folder should be",
               errno.EEXIST: "a file is where a folder should be"}

    @classmethod
    def from_os(cls, err: OSError, path: object, fix: str = "free some space or make it writable, or write "
                "elsewhere (--results DIR / $SKINBENCH_RESULTS for results, $SKINBENCH_CACHE for the cache)"
                ) -> "StorageError | None":
        """The user-facing error for an OS error of a write to ``path``; None for any other OS error."""
        reason = cls.REASONS.get(err.errno)  # type: ignore[arg-type]
        return None if reason is None else cls(f"cannot write: {reason} ({err.strerror})", path=path, fix=fix)


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
