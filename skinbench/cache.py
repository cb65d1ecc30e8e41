"""Content-keyed on-disk cache for expensive work (SIFT descriptors, backbone features, ...).

A key is the sha256 of everything the value depends on: the input file's bytes, the parameters and
a code version the caller bumps when its algorithm changes. Values are written atomically with a
checksum; a corrupted or truncated entry is detected, deleted and recomputed, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from skinbench.errors import StorageError
from skinbench.paths import cache_dir


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@lru_cache(maxsize=200_000)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content (memoised per path, size and mtime within a process)."""
    st = os.stat(path)
    return _file_digest(os.fspath(path), st.st_mtime_ns, st.st_size)


def make_key(*parts: Any) -> str:
    """Stable key from JSON-able parts (parameters, digests, code version)."""
    return digest_bytes(json.dumps(parts, sort_keys=True, default=str).encode())


def _file_mode() -> int:
    """The mode ``open()`` would give a new file (0666 less the umask); read once, at import."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file.

    ``mkstemp`` makes its file private (0600); it gets the usual mode back so shared results stay readable.
    A folder that cannot take the write (read-only, full, no permission) raises :class:`StorageError`
    (one line, exit 2 at the CLI) with any earlier version of ``path`` left as it was and no temporary
    file behind.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        mapped = StorageError.from_os(err, path) if isinstance(err, OSError) else None
        if mapped is not None:
            raise mapped from err
        raise


#: process-wide tally of cache use, per namespace: ``{"hits": n, "misses": n}``; the runner takes the
#: difference around ``fit`` so a record says how much of its work was found rather than done
_LEDGER: dict[str, dict[str, int]] = {}


def note_cache(namespace: str, hit: bool, n: int = 1) -> None:
    """Count ``n`` look-ups of ``namespace`` (an ArrayCache, or a reused training stage) as hits or misses."""
    entry = _LEDGER.setdefault(namespace, {"hits": 0, "misses": 0})
    entry["hits" if hit else "misses"] += n


def ledger() -> dict[str, dict[str, int]]:
    """A copy of the tally (see :func:`ledger_since`)."""
    return {k: dict(v) for k, v in _LEDGER.items()}


def ledger_since(before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Cache use since ``before`` (namespaces with no look-ups left out)."""
    out = {}
    for name, now in _LEDGER.items():
        then = before.get(name, {"hits": 0, "misses": 0})
        diff = {k: now[k] - then.get(k, 0) for k in now}
        if any(diff.values()):
            out[name] = diff
    return out


class ArrayCache:
    """Arrays stored under ``<cache root>/<namespace>/<key[:2]>/<key>.npz`` with a payload checksum."""

    def __init__(self, namespace: str, root: str | os.PathLike | None = None):
        self.dir = Path(root or cache_dir()) / namespace

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        hit = self._read(key)
        note_cache(self.dir.name, hit is not None)
        return hit

    def _read(self, key: str) -> dict[str, np.ndarray] | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            raw = path.read_bytes()
            stored, payload = raw[:64].decode(), raw[64:]
            if digest_bytes(payload) != stored:
                raise ValueError("checksum mismatch")
            with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except Exception:  # corrupted entry: drop it and recompute
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        payload = buf.getvalue()
        atomic_write_bytes(self._path(key), digest_bytes(payload).encode() + payload)

    def get_or_compute(self, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        hit = self.get(key)
        if hit is None:
            hit = compute()
            self.put(key, **hit)
        return hit
