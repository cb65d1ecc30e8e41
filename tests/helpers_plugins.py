"""Installed-looking plugin packages for tests: a package folder plus its ``*.dist-info`` (METADATA and
entry_points.txt), exactly what pip leaves in site-packages, so ``importlib.metadata.entry_points`` finds
them when the folder is on ``PYTHONPATH``; and a runner for the CLI in a subprocess with that path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

WORKTREE = Path(__file__).resolve().parents[1]


def install_fake(site: Path, dist: str, version: str, package: str, files: dict[str, str],
                 entry_points: dict[str, dict[str, str]]) -> Path:
    """Write ``site/<package>/<file>`` and ``site/<dist>-<version>.dist-info``; returns ``site``."""
    for name, text in files.items():
        path = site / package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (info / "top_level.txt").write_text(package + "\n")
    return site


def cli(*args: str, path: list[Path] = (), cwd: Path | None = None, env: dict | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m skinbench ARGS`` with the worktree and ``path`` first on PYTHONPATH."""
    # COLUMNS: wide enough that `list` keeps a row on one line (pytest-xdist workers set 80)
    full = {**os.environ, "COLUMNS": "200", **(env or {}), "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(WORKTREE), *map(str, path)])}
    return subprocess.run([sys.executable, "-m", "skinbench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=full)


#: a tiny classifier module (mean colour + logistic regression) for ad hoc and entry-point tests
TINY_CLASSIFIER = '''
    """A tiny classifier following skinbench's contract."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from skinbench.approaches.base import PathClassifier
    from skinbench.data.images import read_image


    class MeanColourClassifier(PathClassifier):
        """Mean RGB colour + logistic regression (test plugin)."""

        algorithm_version = 3

        def __init__(self, C: float = 1.0, size: int = 16, random_state: int = 0):
            self.C = C
            self.size = size
            self.random_state = random_state

        def _x(self, X):
            return np.array([read_image(p, size=(self.size, self.size)).reshape(-1, 3).mean(0) for p in X]) / 255

        def fit(self, X, y, groups=None):
            if len(set(np.asarray(y).tolist())) < 2:
                raise ValueError("MeanColourClassifier needs two classes to fit")
            self.model_ = LogisticRegression(C=self.C).fit(self._x(X), y)
            self.classes_ = self.model_.classes_
            return self

        def predict_proba(self, X):
            return self.model_.predict_proba(self._x(X))
'''


def restore_registry():
    """Generator for an autouse fixture: approaches registered ad hoc in-process (and the environment
    variable that carries them to workers) are removed after each test, so later tests see the suite only."""
    from skinbench import info, plugins

    saved, env = dict(dict.items(info.APPROACHES)), os.environ.get(plugins.ADHOC_ENV)
    yield
    dict.clear(info.APPROACHES)
    dict.update(info.APPROACHES, saved)
    if env is None:
        os.environ.pop(plugins.ADHOC_ENV, None)
    else:
        os.environ[plugins.ADHOC_ENV] = env
