"""One orchestrator (#29): ``run``, ``smoke``, ``sweep`` and ``benchmarks/regenerate.py`` hand their work to
:func:`skinbench.sweep.engine.run_sweep` as points and run each through the one point executor
(:func:`skinbench.sweep.work.execute_point`); the terminal prints tables from the rendered objects."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from skinbench import cli, info, runner
from skinbench.errors import DataError
from skinbench.results.render import render_all
from skinbench.sweep import regenerate, work

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def executed(monkeypatch) -> list[tuple[str, str, int]]:
    """Every point the one executor runs: (task, approach, seed), the real work done."""
    calls: list[tuple[str, str, int]] = []
    real = work.execute_point

    def spy(point, *args, **kwargs):
        calls.append((point.spec.task, point.spec.approach, point.spec.seed))
        return real(point, *args, **kwargs)

    monkeypatch.setattr(work, "execute_point", spy)
    return calls


def test_run_smoke_sweep_and_regenerate_share_one_point_executor(tmp_path, monkeypatch, executed, capsys):
    root = tmp_path / "run"
    assert cli.main(["run", "task1", "-a", "majority", "--dataset", "synthetic", "--n-boot", "20",
                     "--seed", "0", "1", "--results", str(root)]) == 0
    # run's own rows, every seed, then the baseline beside them (not current in this folder)
    assert executed == [("task1", "majority", 0), ("task1", "majority", 1), ("task1", "stratified", 0)]
    err = capsys.readouterr().err
    assert err.count("== task1 / majority\n") == 1 and "== task1 / stratified (baseline, beside every row)" in err
    assert f"wrote {root / 'runs' / 'task1' / 'synthetic' / 'majority__seed1.json'}" in err

    executed.clear()  # run reruns what it is asked, and keeps a current baseline
    assert cli.main(["run", "task1", "-a", "majority", "--dataset", "synthetic", "--n-boot", "20",
                     "--results", str(root)]) == 0
    assert executed == [("task1", "majority", 0)]

    executed.clear()
    assert cli.main(["smoke", "--task", "task1", "-a", "majority", "--workers", "0"]) == 0
    assert executed == [("task1", "majority", 0)]

    executed.clear()
    assert cli.main(["sweep", "task1", "-a", "majority", "--dataset", "synthetic", "--workers", "0",
                     "--n-boot", "20", "--results", str(tmp_path / "sweep"), "--no-render"]) == 0
    assert executed == [("task1", "majority", 0)]

    executed.clear()
    monkeypatch.setitem(info.TASKS, "task1", dataclasses.replace(info.TASKS["task1"], default_dataset="synthetic"))
    monkeypatch.setenv("SKINBENCH_RESULTS", str(tmp_path / "regen"))
    argv = ["--only", "task1", "--approach", "majority", "--no-extras", "--allow-dirty"]
    assert regenerate.main(argv) == 0
    assert executed == [("task1", "majority", 0)]
    record = json.loads((tmp_path / "regen" / "runs" / "task1" / "synthetic" / "majority.json").read_text())
    assert record["command"] == "python benchmarks/regenerate.py " + " ".join(argv)


def test_run_with_one_approach_stops_at_its_error_with_one_line(tmp_path, monkeypatch, capsys):
    """A point's user error is the command's error (exit 2, one line) when it was the only approach asked;
    with several, that approach is skipped and the others run."""
    real = work.execute_point

    def broken(point, *args, **kwargs):
        if point.spec.approach == "majority":
            raise DataError("synthetic trouble", fix="none")
        return real(point, *args, **kwargs)

    monkeypatch.setattr(work, "execute_point", broken)
    argv = ["run", "task1", "--dataset", "synthetic", "--n-boot", "20", "--results", str(tmp_path)]
    assert cli.main(argv + ["-a", "majority"]) == 2
    err = capsys.readouterr().err
    assert "skinbench: error: synthetic trouble Fix: none" in err and "Traceback" not in err
    assert cli.main(argv + ["-a", "majority", "-a", "stratified"]) == 0
    err = capsys.readouterr().err
    assert "skinbench: majority skipped: synthetic trouble" in err
    assert (tmp_path / "runs" / "task1" / "synthetic" / "stratified.json").is_file()


def test_tables_print_from_the_rendered_objects_not_the_files(tmp_path, monkeypatch, capsys):
    """`table` prints each Table's `to_terminal()` (positive class from the records, not a regex over the
    markdown): the files it wrote are not read back."""
    assert cli.main(["run", "task1", "-a", "majority", "--dataset", "synthetic", "--n-boot", "20",
                     "--results", str(tmp_path)]) == 0
    capsys.readouterr()
    tables_dir = tmp_path / "tables"
    real_read = Path.read_text

    def no_table_reads(self, *args, **kwargs):
        if tables_dir in self.parents:
            raise AssertionError(f"read back {self}")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_table_reads)
    assert cli.main(["table", "task1", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (table,) = render_all(tmp_path, task="task1").tables
    assert out == table.to_terminal() + "\n" + table.clinical.to_terminal() + "\n"
    assert out.startswith("task1 / synthetic  (* primary: ap; positive class: malignant; n_test ")


def test_regenerate_is_importable_and_the_script_is_thin():
    """Tests import regenerate's logic from the package; the script keeps its flags."""
    options = {o for a in regenerate.parser()._actions for o in a.option_strings}
    assert {"--status", "--verify", "--only", "--approach", "--force", "--quick", "--no-extras",
            "--allow-cpu", "--dataset", "--seed", "--allow-dirty"} <= options
    points = regenerate.registered_points(["task1"], approaches=["majority"])
    assert [(p.spec.task, p.spec.approach, p.spec.dataset, p.out) for p in points] == \
        [("task1", "majority", info.task("task1").default_dataset, "")]
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "regenerate.py"), "--help"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0 and "--status" in proc.stdout and "--allow-cpu" in proc.stdout


def test_train_segmenters_fits_through_the_runner_with_lesion_groups(tmp_path, monkeypatch):
    """benchmarks/train_segmenters.py fits as the runner fits a segmenter: seeded, with the lesion ids as
    ``groups`` (it fitted without them, so the validation split could part a lesion's images)."""
    spec = importlib.util.spec_from_file_location("train_segmenters", REPO / "benchmarks" / "train_segmenters.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    seen: dict = {}

    class Recording:
        def fit(self, X, masks, y=None, groups=None):
            seen.update(X=X, masks=masks, y=y, groups=groups)
            return self

    monkeypatch.setattr(runner, "build_estimator", lambda ainfo, seed, params, task: Recording())
    monkeypatch.setattr(runner, "seed_everything", lambda seed: seen.setdefault("seed", seed))
    table = pd.DataFrame({"image_id": ["a", "b", "c"], "image": ["a.jpg", "b.jpg", "c.jpg"],
                          "mask": ["a_lesion.png", "b_lesion.png", "c_lesion.png"], "y": [0, 1, 0],
                          "lesion_id": ["L1", "L1", "L2"]})
    est, fit_s = script.fit("task4", "unet", table, tmp_path)
    assert isinstance(est, Recording) and fit_s >= 0 and seen["seed"] == 0
    assert list(seen["groups"]) == ["L1", "L1", "L2"] and list(seen["y"]) == [0, 1, 0]
    assert seen["X"] == [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), str(tmp_path / "c.jpg")]
