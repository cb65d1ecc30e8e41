"""Derived reports carry a key of what they read: current / stale / missing, and regenerate reruns only those."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinbench.results import derived as dv
from skinbench.results import records as rec
from scripts import load_script
from test_results import make_record, write_all



def _regenerate():
    from skinbench.sweep import regenerate  # the logic behind benchmarks/regenerate.py

    return regenerate


def _subgroups_script():
    return load_script("subgroups")


@pytest.fixture
def ham_root(tmp_path) -> tuple[Path, Path]:
    """A results root with synthetic HAM10000-like task2 / task4 records and a metadata file for them."""
    root, data = tmp_path / "results", tmp_path / "data"
    records = [make_record("task2", name, n_classes=7, n=90, dataset="ham10000", quality=q)
               for name, q in (("majority", 0.0), ("transfer-mobilenetv2", 0.8))]
    records += [make_record("task4", "ellipse", target="lesion", n=90, dataset="ham10000")]
    for r in records:
        r.run_key = f"key-{r.approach}"
    write_all(root, records)
    ids = records[0].predictions["image_id"]
    rng = np.random.default_rng(0)
    (data / "ham10000").mkdir(parents=True)
    pd.DataFrame({"lesion_id": "HAM_1", "image_id": ids, "dx": "nv", "dx_type": rng.choice(["histo", "consensus"], 90),
                  "age": rng.choice([20, 50, 70], 90), "sex": rng.choice(["male", "female"], 90),
                  "localization": rng.choice(["back", "face"], 90)}).to_csv(data / "ham10000" / "HAM10000_metadata.csv",
                                                                          index=False)
    return root, data


def _status(root: Path) -> dict[str, dv.DerivedStatus]:
    return {d.name: dv.check(d, root) for d in dv.DERIVED}


def test_subgroup_report_key_follows_the_records_it_read(ham_root):
    root, data = ham_root
    st = _status(root)
    assert st["subgroups/task2"].status == "missing" and "python benchmarks/subgroups.py --tasks task2" in \
        st["subgroups/task2"].reasons[0]
    assert _subgroups_script().main(["--results", str(root), "--data-root", str(data), "--n-boot", "1000"]) == 0
    key = json.loads((root / "subgroups" / "task2.md.key.json").read_text())
    made = rec.RunRecord.from_file(rec.record_path("task2", "ham10000", "majority", root=root)).created
    assert key["inputs"]["records"] == {"runs/task2/ham10000/majority.json": f"key-majority@{made}",
                                        "runs/task2/ham10000/transfer-mobilenetv2.json":
                                            f"key-transfer-mobilenetv2@{made}"}
    assert key["inputs"]["manifests"]["ham10000"] and key["inputs"]["params"] == {"n_boot": 1000}
    st = _status(root)
    assert st["subgroups/task2"].current and st["subgroups/task4"].current
    assert st["data_hygiene/duplicates"].status == "missing"

    # a record it read is rerun under the same run key (a migrated schema 1 record keeps its key): stale
    path = rec.record_path("task2", "ham10000", "transfer-mobilenetv2", root=root)
    same_key = rec.RunRecord.from_file(path)
    rec.write_record(replace(same_key, created="2026-12-07T11:34:51+00:00"), path)
    assert _status(root)["subgroups/task2"].status == "stale"
    rec.write_record(same_key, path)
    assert _status(root)["subgroups/task2"].current
    # a record it read is rerun (new run key): stale, and why; the task4 report did not read it
    rerun = replace(rec.RunRecord.from_file(path), run_key="key-new")
    rec.write_record(rerun, path)
    st = _status(root)
    assert st["subgroups/task2"].status == "stale" and st["subgroups/task4"].current
    assert any("records rerun since it was written: runs/task2/ham10000/transfer-mobilenetv2.json" in r
               for r in st["subgroups/task2"].reasons)
    # a new approach's record is one it would read: stale
    write_all(root, [make_record("task4", "classical-seg", target="lesion", n=90, dataset="ham10000")])
    assert any("records added" in r for r in dv.check(dv.derived("subgroups/task4"), root).reasons)
    # a later seed is not read (first seed of each approach): still current
    assert _subgroups_script().main(["--results", str(root), "--data-root", str(data)]) == 0
    write_all(root, [make_record("task2", "majority", n_classes=7, n=90, dataset="ham10000", seed=1)])
    assert dv.check(dv.derived("subgroups/task2"), root).current
    # other parameters than the defaults: the report is not the one regenerate keeps
    assert _subgroups_script().main(["--results", str(root), "--data-root", str(data), "--n-boot", "50",
                                     "--tasks", "task2"]) == 0
    assert any(r.startswith("params:") for r in dv.check(dv.derived("subgroups/task2"), root).reasons)


def test_report_without_key_is_stale_and_a_broken_key_is_not_current(ham_root):
    root, _ = ham_root
    d = dv.derived("subgroups/task2")
    (root / "subgroups").mkdir(parents=True)
    (root / "subgroups" / "task2.md").write_text("# old report\n")
    assert dv.check(d, root).status == "stale" and "made before reports were keyed" in dv.check(d, root).reasons[0]
    dv.write_key(d, root)
    status = dv.check(d, root)  # keyed, but the artefact's csv and png are not beside it
    assert status.status == "stale" and "no subgroups/task2.csv, subgroups/task2.png" in status.reasons[0]
    for name in ("task2.csv", "task2.png"):
        (root / "subgroups" / name).write_text("made\n")
    assert dv.check(d, root).current
    dv.key_path(d, root).write_text("{not json")
    assert dv.check(d, root).status == "stale"


def test_regenerate_status_lists_derived_and_reruns_only_stale_scripts(ham_root, capsys):
    root, data = ham_root
    regenerate = _regenerate()
    assert _subgroups_script().main(["--results", str(root), "--data-root", str(data), "--tasks", "task4"]) == 0
    assert regenerate.print_derived_status(root) is False
    out = capsys.readouterr().out
    assert "current  derived subgroups/task4" in out and "missing  derived subgroups/task2" in out
    # subgroups/task2, duplicates, ensembles/task1, task2, task4, learning_curves/task1, task2, task4
    assert "derived reports: 1 current, 8 missing" in out
    plan = regenerate.stale_extras(root, force=False)
    assert plan["subgroups.py"] == ["--tasks", "task2"] and plan["duplicates_report.py"] == []
    assert plan["seeds.py"] == []  # scripts without keyed reports always run
    assert regenerate.stale_extras(root, force=True)["subgroups.py"] == []
    assert _subgroups_script().main(["--results", str(root), "--data-root", str(data)]) == 0
    assert regenerate.stale_extras(root, force=False)["subgroups.py"] is None  # both current: not rerun
