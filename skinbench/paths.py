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


def results_dir() -> Path:
    """Committed results (``$SKINBENCH_RESULTS`` overrides, e.g. for tests)."""
    return Path(os.environ.get("SKINBENCH_RESULTS", REPO_ROOT / "results")).resolve()


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
