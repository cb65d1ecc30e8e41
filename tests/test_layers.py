"""The layering of ARCHITECTURE.md holds: ``lint-imports`` keeps pyproject.toml's contracts, and an upward
import, even one hidden inside a function, breaks them (so a new import circle cannot creep back)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports")
pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[test]')")


def _lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the skinbench package under ``root`` (its own pyproject.toml), never an installed copy."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT, "--no-cache", "--no-logo"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_package_keeps_its_layers():
    out = _lint(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("module, statement, contract", [
    # the old circle: records read back through provenance, provenance asked the runner for its version
    ("results/records.py", "from skinbench import runner", "skinbench layers"),
    ("provenance.py", "from skinbench.results.records import read_record", "provenance keys runs"),
    # results rendered a cross-dataset header by importing crossdata
    ("results/tables.py", "from skinbench.crossdata import geometry", "results render records"),
    ("metrics/segmentation.py", "from skinbench.data.images import read_mask", "metrics score arrays"),
    ("approaches/baselines.py", "from skinbench.results.records import RunRecord", "estimators, data and metrics"),
])
def test_an_upward_import_inside_a_function_breaks_the_layers(tmp_path, module, statement, contract):
    shutil.copytree(REPO / "skinbench", tmp_path / "skinbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "skinbench" / module
    path.write_text(path.read_text() + f"\n\ndef _upward() -> None:\n    {statement}  # noqa: F401\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    broken = [line for line in out.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), out.stdout


def test_the_cli_starts_without_the_numeric_stack():
    """The imports kept inside functions are there for start-up cost: ``skinbench list`` loads none of these."""
    code = ("import sys; from skinbench.cli import main; main(['list']); "
            "print(sorted(m for m in ('pandas', 'cv2', 'sklearn', 'scipy', 'tensorflow', 'matplotlib', 'dask') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
