"""The environment a record was made in: package versions, git commit, CPU (and its instruction set), memory
and GPUs, and the digest of the lock file (``constraints.txt``) the versions are pinned by.

Kept apart from :mod:`skinbench.results.records` (which stores records) so that anything that writes a
record, a sweep or a benchmark report takes the same capture without importing the results layer.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import skinbench
from skinbench.errors import ConfigError
from skinbench.paths import REPO_ROOT, committed_results_dir

#: the lock file: exact versions of skinbench[test]'s dependency closure (``benchmarks/write_lock.py``)
LOCK_FILE = REPO_ROOT / "constraints.txt"
#: the packages a record's ``versions`` names -> their distributions (the first one installed is read)
RECORDED_PACKAGES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "scikit-learn": ("scikit-learn",),
    "opencv": ("opencv-contrib-python-headless", "opencv-contrib-python", "opencv-python-headless", "opencv-python"),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
}


def _installed(*dists: str) -> tuple[str, str] | None:
    """(distribution, version) of the first of ``dists`` installed here."""
    for dist in dists:
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _version(*dists: str) -> str | None:
    found = _installed(*dists)
    return found[1] if found else None


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503: ``tensorflow_cpu`` is ``tensorflow-cpu``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path | None = None) -> dict[str, str]:
    """``{canonical name: version}`` pinned by the lock file (``name==version`` lines); {} without one (an
    installed wheel ships no lock)."""
    try:
        text = (path or LOCK_FILE).read_text()
    except OSError:
        return {}
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name.split("[", 1)[0].strip())] = version.split(";", 1)[0].strip()
    return pins


def lock_digest(path: Path | None = None) -> str | None:
    """A digest of the lock's pins (comments and order left out), which a record stores as ``versions.lock``:
    rows made under one lock share it. None without a lock file."""
    pins = read_lock(path)
    if not pins:
        return None
    return hashlib.sha256("".join(f"{k}=={v}\n" for k, v in sorted(pins.items())).encode()).hexdigest()[:12]


def lock_mismatches(path: Path | None = None) -> list[str]:
    """``"numpy 2.4.7 (lock 2.4.6)"`` for each package a record names whose installed version differs from
    the lock's pin (packages the lock does not pin, or a missing lock: nothing to compare)."""
    pins = read_lock(path)
    out = []
    for dists in RECORDED_PACKAGES.values():
        found = _installed(*dists)
        if found is None:
            continue
        dist, version = found
        pinned = pins.get(canonical(dist))
        if pinned is not None and pinned != version:
            out.append(f"{dist} {version} (lock {pinned})")
    return out


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


def cpu_isa(cpuinfo: str | None = None) -> str | None:
    """The widest vector instruction set TensorFlow's CPU kernels can use here: "AVX-512", "AVX2" or
    "other", from the ``flags`` of /proc/cpuinfo (``cpuinfo``: its text, for tests); None where it cannot
    be read (not Linux), which tables show as unknown. Kernels dispatch on it, so float results of
    TensorFlow-trained rows are identical only between machines of the same ISA."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):  # x86: flags; ARM: Features
            flags.update(line.split(":", 1)[-1].split())
            break
    else:
        return None
    if "avx512f" in flags:
        return "AVX-512"
    return "AVX2" if "avx2" in flags else "other"


@lru_cache(maxsize=1)
def _machine() -> dict:
    """The hardware a run used (no host name: records are committed publicly)."""
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "isa": cpu_isa(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "gpus": _gpus(),
    }


#: how ``versions.git_commit`` marks a commit with uncommitted code changes
DIRTY_SUFFIX = "+dirty"
#: set to 1 by ``regenerate.py --allow-dirty`` for the benchmark scripts it starts (their sweeps check too)
ALLOW_DIRTY_ENV = "SKINBENCH_ALLOW_DIRTY"
#: what a record's numbers can depend on: edits elsewhere (results/, docs) do not make a commit "dirty"
CODE_PATHS = ("skinbench", "benchmarks", "data_manifests", "pyproject.toml", "constraints.txt")


def code_is_dirty() -> bool:
    """Uncommitted changes to the code or manifests (records written meanwhile do not count)."""
    return bool(_run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS], cwd=REPO_ROOT))


def check_clean_tree(results_root: str | os.PathLike, allow_dirty: bool = False) -> None:
    """Refuse to write into the repository's results (``committed_results_dir()`` or a folder under it) from
    code with uncommitted changes: such records could not be traced to a commit (``git_commit`` ends in
    ``+dirty``). ``allow_dirty`` (``--allow-dirty``) lets a scratch run through; any other folder is free.
    The one check ``regenerate.py``, ``sweep`` and the benchmark scripts built on sweeps make;
    ``regenerate.py --allow-dirty`` carries the escape to the scripts it starts as ``$SKINBENCH_ALLOW_DIRTY``."""
    root, committed = Path(results_root).resolve(), committed_results_dir()
    allowed = allow_dirty or os.environ.get(ALLOW_DIRTY_ENV) == "1"
    if allowed or not (root == committed or root.is_relative_to(committed)) or not code_is_dirty():
        return
    raise ConfigError(f"the code has uncommitted changes, so records written into {committed} could not be traced "
                      f"to a commit", fix="commit first (or pass --allow-dirty for a scratch run)")


def _git_commit() -> str | None:
    commit = _run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT)
    if commit and code_is_dirty():
        commit += DIRTY_SUFFIX
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
        "lock": lock_digest(),
        # the inference engine's packages (skinbench.approaches.engines runs ONNX Runtime when both are here
        # and $SKINBENCH_ENGINE is not "tensorflow")
        "onnxruntime": _version("onnxruntime"),
        "tf2onnx": _version("tf2onnx"),
    }
    if "cv2" in sys.modules:  # the version actually running wins over metadata
        versions["opencv"] = getattr(sys.modules["cv2"], "__version__", versions["opencv"])
    return {"versions": versions, "machine": dict(_machine())}
