"""The environment a record was made in: package versions, git commit, CPU, memory and GPUs.

Kept apart from :mod:`skinbench.results.records` (which stores records) so that anything that writes a
record, a sweep or a benchmark report takes the same capture without importing the results layer.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import skinbench
from skinbench.paths import REPO_ROOT


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


#: what a record's numbers can depend on: edits elsewhere (results/, docs) do not make a commit "dirty"
CODE_PATHS = ("skinbench", "benchmarks", "data_manifests", "pyproject.toml")


def code_is_dirty() -> bool:
    """Uncommitted changes to the code or manifests (records written meanwhile do not count)."""
    return bool(_run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS], cwd=REPO_ROOT))


def _git_commit() -> str | None:
    commit = _run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT)
    if commit and code_is_dirty():
        commit += "+dirty"
    return commit


def environment() -> dict:
    """``{"versions": {...}, "machine": {...}}`` for a record (``record.update(environment())``).

    Versions come from package metadata, so TensorFlow is never imported just to record its version.
    """
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
        # the inference engine's packages (skinbench.approaches.engines runs ONNX Runtime when both are here
        # and $SKINBENCH_ENGINE is not "tensorflow")
        "onnxruntime": _version("onnxruntime"),
        "tf2onnx": _version("tf2onnx"),
    }
    if "cv2" in sys.modules:  # the version actually running wins over metadata
        versions["opencv"] = getattr(sys.modules["cv2"], "__version__", versions["opencv"])
    return {"versions": versions, "machine": dict(_machine())}
