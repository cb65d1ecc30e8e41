"""One JSON record per run: where it lives, how it is written (atomically) and read back.

Tables, plots, the dashboard and submission files are rendered from these records only, so a record
carries everything needed to re-score a run: per-image predictions, split, seed, versions and machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import warnings
from datetime import date, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from skinbench.cache import atomic_write_bytes
from skinbench.paths import REPO_ROOT, results_dir

#: bump when the record layout changes incompatibly
SCHEMA = 1
#: decimals kept for floats: enough for any metric or score, small diffs in git
FLOAT_DECIMALS = 6


def record_path(task: str, dataset: str, approach: str, target: str | None = None,
                root: str | os.PathLike | None = None) -> Path:
    """``<root>/runs/<task>/<dataset>/<approach>[__<target>].json`` (root: ``paths.results_dir()``)."""
    base = Path(root) if root is not None else results_dir()
    name = f"{approach}__{target}" if target else approach
    return base / "runs" / task / dataset / f"{name}.json"


def _clean(obj: Any) -> Any:
    """JSON-able copy: numpy types to Python, floats rounded, NaN/inf to None (JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return round(value, FLOAT_DECIMALS) if math.isfinite(value) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    raise TypeError(f"record value of type {type(obj).__name__} is not JSON serialisable: {obj!r}")


def _is_flat(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _to_json(obj: Any, level: int = 0) -> str:
    """Indented JSON with sorted keys, but a list of scalars on one line and a table (list of such
    lists) one row per line: per-image predictions stay readable and diffable, not one number a line."""
    pad, inner = " " * level, " " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_to_json(obj[k], level + 1)}" for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list):
        if all(_is_flat(v) for v in obj):
            return json.dumps(obj, allow_nan=False)
        return "[\n" + ",\n".join(inner + _to_json(v, level + 1) for v in obj) + f"\n{pad}]"
    return json.dumps(obj, allow_nan=False)


def dumps(record: dict) -> bytes:
    """The exact bytes a record is stored as (sorted keys, indented, rounded floats, compact rows)."""
    return (_to_json(_clean(record)) + "\n").encode()


def write_record(record: dict, path: str | os.PathLike | None = None) -> Path:
    """Write ``record`` atomically (default path from its task/dataset/approach/target); return the path.

    Serialisation happens before anything touches the disk, so a record that cannot be serialised
    leaves no file behind, and an existing record is replaced only by a complete new one.
    """
    data = dumps({"schema": SCHEMA, **record})
    if path is None:
        path = record_path(record["task"], record["dataset"], record["approach"], record.get("target"))
    path = Path(path)
    atomic_write_bytes(path, data)
    return path


def load_records(root: str | os.PathLike | None = None, task: str | None = None,
                 dataset: str | None = None) -> list[dict]:
    """All records under ``<root>/runs`` (optionally one task / dataset), sorted by path.

    A file that is not a valid record is skipped with a warning naming it (one bad file must not hide
    every other result); delete or regenerate it to silence the warning.
    """
    base = (Path(root) if root is not None else results_dir()) / "runs"
    pattern = f"{task or '*'}/{dataset or '*'}/*.json"
    out = []
    for path in sorted(base.glob(pattern)):
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or not {"task", "dataset", "approach"} <= record.keys():
                raise ValueError("not a skinbench record (needs task, dataset, approach)")
        except (OSError, ValueError) as err:
            warnings.warn(f"{path}: skipped unreadable result record ({err}). Fix: rerun that approach "
                          f"or delete the file.", stacklevel=2)
            continue
        out.append(record)
    return out


# --------------------------------------------------------------------------- per-image predictions

def prediction_arrays(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image_ids, y_true int, scores (n, n_classes))`` of a classification record.

    Binary records may store only the positive-class score (1-D); it is expanded to two columns.
    """
    pred = record["predictions"]
    ids = np.asarray(pred["image_id"], dtype=str)
    scores = np.asarray(pred["scores"], dtype=float)
    if scores.ndim == 1:
        scores = np.stack([1.0 - scores, scores], axis=1)
    y = pred["y_true"]
    names = list(record.get("extras", {}).get("class_names") or [])
    if len(y) and isinstance(y[0], str):
        y = [names.index(v) for v in y]
    return ids, np.asarray(y, dtype=np.int64), scores


def per_image_jaccard(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(image_ids, jaccard)`` from a segmentation record's ``predictions.counts`` ([tp, fp, fn, tn]).

    Computed by :func:`skinbench.metrics.segmentation.per_image_scores` (empty truth and empty
    prediction score 1.0, as the official ISIC scorer does).
    """
    from skinbench.metrics.segmentation import per_image_scores

    pred = record["predictions"]
    jac = per_image_scores(np.asarray(pred["counts"], dtype=np.int64).reshape(-1, 4))["jaccard"]
    return np.asarray(pred["image_id"], dtype=str), jac


def is_ok(record: dict) -> bool:
    """A record with results (not one that says the approach was skipped or failed)."""
    return record.get("status", "ok") == "ok"


# --------------------------------------------------------------------------- environment

def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[str]:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return []
    if not shutil.which("nvidia-smi"):
        return []
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"])
    return [line.strip() for line in out.splitlines() if line.strip()] if out else []


@lru_cache(maxsize=1)
def _machine() -> dict:
    """The hardware a run used (no host name: records are committed publicly)."""
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "gpus": _gpus(),
    }


def _git_commit() -> str | None:
    commit = _run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT)
    if commit and _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT):
        commit += "+dirty"
    return commit


def environment() -> dict:
    """``{"versions": {...}, "machine": {...}}`` for a record (``record.update(environment())``).

    Versions come from package metadata, so TensorFlow is never imported just to record its version.
    """
    import skinbench

    versions = {
        "python": platform.python_version(),
        "skinbench": skinbench.__version__,
        "git_commit": _git_commit(),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "scikit-learn": _version("scikit-learn"),
        "opencv": _version("opencv-contrib-python-headless", "opencv-contrib-python",
                           "opencv-python-headless", "opencv-python"),
        "tensorflow": _version("tensorflow-cpu", "tensorflow"),
        "keras": _version("keras"),
    }
    if "cv2" in sys.modules:  # the version actually running wins over metadata
        versions["opencv"] = getattr(sys.modules["cv2"], "__version__", versions["opencv"])
    return {"versions": versions, "machine": dict(_machine())}


def distinct(records: Iterable[dict], key: str) -> list[Any]:
    """Distinct values of a top-level record field (e.g. ``"machine"``), in first-seen order."""
    seen: list[Any] = []
    for r in records:
        value = r.get(key)
        if value is not None and value not in seen:
            seen.append(value)
    return seen
