"""Where data, caches and results live; one place so every module agrees."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from skinbench.errors import StorageError

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_DIR = REPO_ROOT / "data_manifests"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Root folder holding one sub-folder per dataset (``--data-root`` > ``$SKINBENCH_DATA`` > ../shared/data)."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("SKINBENCH_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


#: where ``run``/``table`` write without ``--results`` (relative to the working directory)
USER_RESULTS = "skinbench-results"


def committed_results_dir() -> Path:
    """The repository's committed ``results/``: what ``benchmarks/`` regenerate (``$SKINBENCH_RESULTS``
    overrides, e.g. for tests, so a test never writes into the checkout)."""
    return Path(os.environ.get("SKINBENCH_RESULTS", REPO_ROOT / "results")).resolve()


def user_results_dir() -> Path:
    """Where the command line writes a user's records and tables without ``--results``:
    ``$SKINBENCH_RESULTS``, else ``./skinbench-results`` in the working directory (never the tracked
    ``results/`` of the checkout, whose tables only ``benchmarks/`` regenerate)."""
    env = os.environ.get("SKINBENCH_RESULTS")
    return Path(env).expanduser().resolve() if env else (Path.cwd() / USER_RESULTS).resolve()


#: free space below which a folder is refused before any work: a run writes records, tables and figures of
#: a few MB (an overlay PNG is 1-2 MB), so less would fail at the write, after the whole fit
MIN_FREE_BYTES = 16 * 2**20


def check_writable(folder: str | os.PathLike, what: str = "results folder",
                   elsewhere: str = "--results DIR or $SKINBENCH_RESULTS") -> Path:
    """``folder`` (resolved) if skinbench can write there, checked before any work: its nearest existing
    folder (it is created at the first write) must be a folder, writable (``os.access`` and a probe file,
    which also catches a read-only mount where root's ``os.access`` says yes) and have
    ``MIN_FREE_BYTES`` free. Else :class:`StorageError` naming the folder and ``elsewhere``."""
    folder = Path(folder).expanduser().resolve()
    fix = f"free some space or make it writable, or pass {elsewhere}"
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise StorageError(f"cannot be the {what}: {existing} is a file, not a folder", path=folder,
                           fix=f"pass {elsewhere} naming a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StorageError(f"cannot write the {what} here: no permission to write in {existing}", path=folder,
                           fix=fix)
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".skinbench-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise (StorageError.from_os(err, folder, fix) or err) from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise StorageError(f"cannot write the {what} here: only {free / 2**20:.1f} MB free on its disk "
                           f"(a run needs about {MIN_FREE_BYTES // 2**20} MB)", path=folder, fix=fix)
    return folder


def user_results_root(explicit: str | os.PathLike | None = None, check: bool = True) -> Path:
    """The folder the command line's ``run``, ``table``, ``sweep`` and ``score`` write to: ``--results``
    (``explicit``) > ``$SKINBENCH_RESULTS`` > ``./skinbench-results``; with ``check`` it is checked
    writable before any work (:func:`check_writable`), not found read-only or full after a long fit."""
    root = Path(explicit).expanduser().resolve() if explicit else user_results_dir()
    return check_writable(root) if check else root


def results_dir() -> Path:
    """The library default (runner, records, tables): the committed results, as
    :func:`committed_results_dir`. The CLI passes :func:`user_results_dir` explicitly; benchmarks should
    call :func:`committed_results_dir` by name."""
    return committed_results_dir()


def cache_dir() -> Path:
    """Content-keyed cache of expensive intermediate work (``$SKINBENCH_CACHE`` overrides)."""
    return Path(os.environ.get("SKINBENCH_CACHE", REPO_ROOT / ".cache")).resolve()


def keras_home() -> Path | None:
    """Keras home holding offline ImageNet weights, if one is known (``$KERAS_HOME`` > data root's weights/keras)."""
    env = os.environ.get("KERAS_HOME")
    if env:
        return Path(env)
    candidate = data_root() / "weights" / "keras"
    return candidate if candidate.is_dir() else None


#: how records and reports name the data root and the Keras home (environment-variable notation, which the
#: committed-results check accepts; never one machine's absolute folder)
DATA_ROOT_NAME = "$SKINBENCH_DATA"
KERAS_HOME_NAME = "$KERAS_HOME"


def portable(path: str | os.PathLike, data: str | os.PathLike | None = None) -> str:
    """``path`` as committed records and reports name it: under ``$KERAS_HOME``, the data root, the
    repository or the home folder it is written relative to that place (``$KERAS_HOME/models/x.h5``,
    ``$SKINBENCH_DATA/ham10000/HAM10000_metadata.csv``, ``results/runs``, ``~/.keras/models``), the most
    specific first. Why: a record names the data and weights it used for every reader, and an absolute
    path names only the machine that wrote it (and leaks its layout). A path outside all of them is
    returned as given. ``data``: the data root in use when it is not the default (``--data-root``)."""
    p = Path(path).expanduser()
    p = p if p.is_absolute() else p.resolve()
    bases: list[tuple[str, Path]] = []
    if os.environ.get("KERAS_HOME"):
        bases.append((KERAS_HOME_NAME, Path(os.environ["KERAS_HOME"]).expanduser()))
    bases += [(DATA_ROOT_NAME, data_root(data)), ("", REPO_ROOT), ("~", Path.home())]
    best: tuple[int, str] | None = None
    for name, base in bases:
        for b in dict.fromkeys((base, base.resolve())):
            try:
                rel = p.relative_to(b)
            except ValueError:
                continue
            shown = "/".join(x for x in (name, rel.as_posix() if rel.parts else "") if x) or "."
            if best is None or len(b.parts) > best[0]:
                best = (len(b.parts), shown)
    return best[1] if best else str(path)
