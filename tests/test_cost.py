"""The full-rebuild figure: summed from the records, and the README's figure is that sum."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from skinbench.paths import REPO_ROOT
from skinbench.results.cost import rebuild_cost

COMMITTED = Path(REPO_ROOT) / "results"  # the checkout's (tests point $SKINBENCH_RESULTS elsewhere)


def test_sum_counts_runs_and_sweep_runs_skips_the_rest(tmp_path):
    src = sorted((COMMITTED / "runs/task4/ham10000").glob("*.json"))[:2]
    for i, path in enumerate(src):
        dest = tmp_path / ("runs/task4/ham10000" if i == 0 else "sweeps/x/runs/a/runs/task4/ham10000") / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest)
    (tmp_path / "sweeps").mkdir(exist_ok=True)
    (tmp_path / "sweeps/x.json").write_text(json.dumps({"timings": {"fit_s": 1e6}}))  # a summary, not a run
    expected = sum(sum(v for k, v in json.loads(p.read_text())["timings"].items()
                       if k.endswith("_s") and isinstance(v, (int, float))) for p in src)
    cost = rebuild_cost(tmp_path)
    assert cost.records == 2 and abs(cost.seconds - expected) < 1e-6
    assert set(cost.by_task) == {"task4"}


def test_readme_states_the_current_rebuild_figure():
    hours = rebuild_cost(COMMITTED).hours
    readme = (Path(REPO_ROOT) / "README.md").read_text()
    stated = re.search(r"full rebuild: \*\*([\d.]+) h\*\*", readme)
    assert stated, "README: the regenerate.py row states the full-rebuild figure"
    assert stated.group(1) == f"{hours:.1f}", \
        f"README says {stated.group(1)} h, the records sum to {hours:.1f} h: python benchmarks/regenerate.py --cost"
