"""Where data, caches and results live; one place so every module agrees."""

from __future__ import annotations

import os
from pathlib import Path

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
