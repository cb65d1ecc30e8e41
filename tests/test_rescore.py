"""Issue 31, "score what you store": every record re-scores from its own stored predictions to exactly its
numbers, and ``benchmarks/regenerate.py --rescore`` brings records of an older scoring version up to date
without refitting (and refuses any other stale record, and a dirty tree)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from skinbench import provenance, runner
from skinbench.errors import ConfigError
from skinbench.provenance import RunSpec
from skinbench.results.records import FLOAT_DECIMALS, RunRecord, dumps, load_records, read_record, write_record
from skinbench.results.tables import build_tables
from skinbench.scoring import SCORING_VERSION
from skinbench.sweep import regenerate

REPO = Path(__file__).resolve().parents[1]
#: records whose intervals are re-drawn with their own n_boot (about 1 s each for a 1512-image multiclass
#: record); every other record has its values checked (values do not depend on the resamples)
CI_SAMPLE = ("runs/task1/isic2016_task3/bovw.json", "runs/task2/ham10000/transfer-mobilenetv2-logreg.json",
             "runs/task1/isic2016_task3__on__ham10000-test/bovw.json",
             "runs/task3/isic2018_task2/classical-dots__globules.json", "runs/task4/ham10000/ellipse__lesion.json")


def _as_stored(record: RunRecord, scored: dict) -> RunRecord:
    """``record`` with ``scored``'s fields, as it would read back from its file (floats rounded as stored)."""
    new = replace(record, metrics=scored["metrics"], extras={**record.extras, **scored["extras"]},
                  predictions={**record.predictions, **scored["predictions"]})
    return RunRecord.from_dict(json.loads(dumps(new)))


def _values(r: RunRecord) -> dict:
    return {m: r.value(m) for m in r.metrics}


def test_every_committed_record_rescores_to_its_own_numbers():
    """Each committed record (runs, seed rows, cross-dataset, sweep points; classification and segmentation)
    scored again from its stored predictions alone gives its stored metric values exactly (to the stored 6
    decimals), and for a sample its CIs with its own n_boot and seed. Fails until the committed records are
    re-scored (``python benchmarks/regenerate.py --rescore``) after a scoring change."""
    files = regenerate.record_files(REPO / "results")
    records = {p.relative_to(REPO / "results").as_posix(): read_record(p) for p in files}
    records = {k: r for k, r in records.items() if r is not None and r.ok}
    kinds = {"counts" in r.predictions for r in records.values()}
    assert len(records) > 100 and kinds == {True, False}
    moved = []
    for rel, r in records.items():
        if rel in CI_SAMPLE:
            again = _as_stored(r, r.scored())
            if again.metrics != r.metrics:
                moved.append(f"{rel}: {_diff(r.metrics, again.metrics)}")
            continue
        values = {m: None if e["value"] is None else round(e["value"], FLOAT_DECIMALS)  # as a record stores it
                  for m, e in r.scored(cis=False)["metrics"].items()}
        if values != _values(r):
            moved.append(f"{rel}: {_diff(_values(r), values)}")
    assert set(CI_SAMPLE) <= set(records)
    assert not moved, ("records whose stored predictions do not give their numbers (run python "
                       "benchmarks/regenerate.py --rescore):\n" + "\n".join(moved[:20]) + f"\n({len(moved)} in all)")


def _diff(old: dict, new: dict) -> dict:
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def _as_scoring_v1(path: Path, **versions: int) -> RunRecord:
    """Rewrite the record at ``path`` as an older scoring version would have left it: scoring version 1 in its
    key (plus any other ``versions``), and numbers that differ from today's."""
    r = RunRecord.from_file(path)
    inputs = dict(r.key_inputs, versions={**r.key_inputs["versions"], "runner": 1, **versions})
    metrics = {m: {"value": None if e["value"] is None else e["value"] + 0.25, "ci": e["ci"]}
               for m, e in r.metrics.items()}
    old = replace(r, key_inputs=inputs, run_key=provenance.run_key(inputs), metrics=metrics)
    write_record(old, path)
    return old


@pytest.fixture(scope="module")
def made_today(tmp_path_factory) -> Path:
    """Synthetic records of today's runner (task1 and task3), made once for this module's tests."""
    root = tmp_path_factory.mktemp("made") / "results"
    for task, approach in (("task1", "stratified"), ("task3", "all-background")):
        spec = RunSpec(task, approach, "synthetic", 0, {}, None, None, 50)
        runner.execute(spec, results_root=root, dataset_kwargs={"n_images": 48})
    return root


@pytest.fixture
def old_results(made_today, tmp_path, monkeypatch):
    """A results folder of those records as scoring version 1 left them, and {path: today's record}."""
    root = tmp_path / "results"
    shutil.copytree(made_today / "runs", root / "runs")
    paths = sorted(root.glob("runs/*/*/*.json"))
    fresh = {p: RunRecord.from_file(p) for p in paths}
    for p in paths:
        _as_scoring_v1(p)
    monkeypatch.setenv("SKINBENCH_RESULTS", str(root))
    monkeypatch.setattr("skinbench.environment.code_is_dirty", lambda: False)
    return root, fresh


def test_rescore_brings_older_scoring_records_up_to_date_without_refitting(old_results, capsys):
    root, fresh = old_results
    before = {p: RunRecord.from_file(p) for p in fresh}
    assert regenerate.main(["--rescore", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("would rescore runs/") == len(fresh) and "-> " in out
    assert all(RunRecord.from_file(p).metrics == before[p].metrics for p in fresh)  # dry run: nothing written
    notes = [row["note"] for t in build_tables(load_records(root)) for row in t.rows if row["status"] == "ok"]
    assert notes and all("versions.runner: 1 -> 2" in n and "regenerate.py --rescore" in n for n in notes)

    assert regenerate.main(["--rescore"]) == 0
    out = capsys.readouterr().out
    assert out.count("rescored runs/") == len(fresh)
    assert f"rescored {len(fresh)}," in out and "largest change of any metric value or CI bound: 0.25" in out
    for path, made in fresh.items():
        now = RunRecord.from_file(path)
        assert now.metrics == made.metrics  # the numbers of today's scorer, from the stored predictions
        assert now.run_key == made.run_key and now.key_inputs["versions"]["runner"] == SCORING_VERSION
        assert now.rescored["from_scoring_version"] == 1 and "--rescore" in now.rescored["command"]
        assert now.rescored["commit"]
        # the fit's provenance is kept: its commit, machine, timings, creation time and command
        old = before[path]
        assert (now.versions, now.machine, now.timings, now.created, now.command) == \
            (old.versions, old.machine, old.timings, old.created, old.command)
    assert (root / "tables" / "task3__synthetic__globules.md").exists()  # re-rendered
    assert regenerate.main(["--rescore"]) == 0  # now current: nothing to do
    assert "rescored 0," in capsys.readouterr().out


def test_rescore_refuses_a_record_stale_for_another_reason(old_results, capsys):
    root, fresh = old_results
    path = next(p for p in fresh if p.parent.parent.name == "task1")
    stale = _as_scoring_v1(path, estimator=99)
    assert regenerate.main(["--rescore", "--only", "task1"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("refused"))
    assert "versions.estimator: 99 -> 1" in line and "left as it is" in line
    assert RunRecord.from_file(path).metrics == stale.metrics and "rescored 0," in out


def test_rescore_refuses_a_dirty_tree(old_results, monkeypatch):
    root, fresh = old_results
    before = {p: p.read_bytes() for p in fresh}
    monkeypatch.setattr("skinbench.environment.code_is_dirty", lambda: True)
    monkeypatch.delenv("SKINBENCH_ALLOW_DIRTY")  # conftest's escape for the other tests
    with pytest.raises(ConfigError, match="uncommitted changes"):  # one line, exit 2 through run_script
        regenerate.main(["--rescore"])
    assert {p: p.read_bytes() for p in fresh} == before
