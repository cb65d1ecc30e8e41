"""Issue 31, "Provenance a reader can check" and "Reproducible, and saying how": every record states how it
reproduces and on which instruction set and lock it was made, ``regenerate.py --verify`` applies that rule,
the lock pins what the records were made with, nothing is written into the repository's results from
uncommitted code, and the tables say which records came from such code and which seed a paired test uses."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from skinbench import environment, info
from skinbench.cli import main
from skinbench.errors import ConfigError
from skinbench.results.dashboard import provenance_section, significance_section
from skinbench.results.records import RunRecord, compare_reproduction
from skinbench.results.render import render_all
from skinbench.results.tables import DIRTY_MARK, build_tables
from skinbench.sweep import regenerate

REPO = Path(__file__).resolve().parents[1]
RUN = ["--dataset", "synthetic", "--n-boot", "20"]


@pytest.fixture
def task1_on_synthetic(monkeypatch):
    """regenerate's task1 plan on the synthetic data (its records go to $SKINBENCH_RESULTS, a temporary folder)."""
    monkeypatch.setitem(info.TASKS, "task1", dataclasses.replace(info.TASKS["task1"], default_dataset="synthetic"))
    return Path(os.environ["SKINBENCH_RESULTS"])


def _majority(root: Path, *extra: str) -> RunRecord:
    assert main(["run", "task1", "-a", "majority", *RUN, "--results", str(root), *extra]) == 0
    return RunRecord.from_file(root / "runs" / "task1" / "synthetic" / "majority.json")


# ------------------------------------------------------------------ 1, 2: reproducibility class and ISA

def test_a_record_states_how_it_reproduces_its_isa_and_lock(tmp_path):
    record = _majority(tmp_path / "r")
    assert record.reproducibility == {"class": "bitwise", "tolerance": 0.0}
    assert record.machine["isa"] == environment.cpu_isa() and record.isa != ""
    assert record.versions["lock"] == environment.lock_digest() and len(record.versions["lock"]) == 12
    # a record made before records stated it reads its approach's declaration, and its ISA as unknown
    old = {k: v for k, v in record.to_dict().items() if k != "reproducibility"}
    old["machine"] = {"cpu": "AMD EPYC"}
    read = RunRecord.from_dict(old)
    assert read.reproducibility is None and read.reproduces() == {"class": "bitwise", "tolerance": 0.0}
    assert read.isa == "unknown"
    assert dataclasses.replace(read, approach="transfer-mobilenetv2").reproduces()["class"] == "bitwise-same-cpu"
    assert dataclasses.replace(read, approach="transfer-mobilenetv2-logreg").reproduces() == \
        {"class": "bitwise-same-cpu", "tolerance": 1e-3}  # the registry's own statement wins


def test_every_registered_approach_declares_a_known_class():
    from skinbench import provenance

    classes = {name: provenance.reproducibility(name)["class"] for name in info.approaches_for("task1")}
    assert classes["majority"] == classes["stratified"] == "bitwise"
    assert classes["cnn-scratch"] == classes["transfer-mobilenetv2-finetune"] == "bitwise-same-cpu"
    # BLAS-backed k-means and SVM: measured to move across CPUs (AMD EPYC -> Intel Xeon, up to 3.6e-4)
    assert classes["bovw"] == classes["bovw-dense"] == "bitwise-same-cpu"


@pytest.mark.parametrize("flags, isa", [("fpu sse2 avx avx2 avx512f avx512bw", "AVX-512"), ("fpu sse2 avx avx2", "AVX2"),
                                        ("fpu sse2 avx", "other")])
def test_machine_isa_from_cpuinfo_flags(flags, isa):
    assert environment.cpu_isa(f"processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n") == isa


def test_machine_isa_unknown_where_cpuinfo_has_no_flags():
    assert environment.cpu_isa("") is None and environment.cpu_isa("model name : M1\n") is None


def _rerun(record: RunRecord, delta: float, machine: dict | None = None) -> RunRecord:
    metrics = {m: {**e, "value": e["value"] + delta if e.get("value") is not None else None}
               for m, e in record.metrics.items()}
    return dataclasses.replace(record, metrics=metrics, machine=machine or record.machine)


def test_compare_reproduction_applies_each_class():
    base = RunRecord("task1", "synthetic", "transfer-mobilenetv2", metrics={"auc": {"value": 0.8, "ci": [0.7, 0.9]}},
                     machine={"cpu": "Intel Xeon", "isa": "AVX-512"},
                     reproducibility={"class": "bitwise-same-cpu", "tolerance": 1e-3})
    amd = {"cpu": "AMD EPYC", "isa": "AVX2"}
    assert compare_reproduction(base, _rerun(base, 0.0, amd)) == ("same", "same")
    verdict, line = compare_reproduction(base, _rerun(base, 3e-4, amd))
    assert verdict == "within" and line.startswith("within tolerance (max diff 0.0003 <= 0.001;")
    assert "Intel Xeon / ISA AVX-512, rerun on CPU AMD EPYC / ISA AVX2" in line
    assert compare_reproduction(base, _rerun(base, 3e-4))[0] == "differs"  # same CPU and ISA: identical or not
    assert compare_reproduction(base, _rerun(base, 2e-3, amd))[1].startswith("differs (max diff 0.002 > tolerance 0.001")
    bitwise = dataclasses.replace(base, reproducibility={"class": "bitwise", "tolerance": 0.0})
    assert compare_reproduction(bitwise, _rerun(bitwise, 1e-6, amd))[0] == "differs"
    unknown = dataclasses.replace(base, machine={"cpu": "Intel Xeon"})  # made before records named the ISA
    assert "ISA unknown" in compare_reproduction(unknown, _rerun(unknown, 3e-4))[1]


def test_regenerate_verify_says_same_within_tolerance_or_differs(task1_on_synthetic, capsys):
    """The committed record is changed as a rerun elsewhere would leave it; --verify reruns and judges."""
    root = task1_on_synthetic
    argv = ["--only", "task1", "--approach", "majority"]
    assert regenerate.main([*argv, "--no-extras", "--allow-dirty"]) == 0
    path = root / "runs" / "task1" / "synthetic" / "majority.json"
    committed = json.loads(path.read_text())
    capsys.readouterr()
    assert regenerate.main([*argv, "--verify"]) == 0
    assert "runs/task1/synthetic/majority.json: same" in capsys.readouterr().out

    moved = dict(committed, metrics={m: {**e, "value": e["value"] + 1e-4} for m, e in committed["metrics"].items()})
    path.write_text(json.dumps(moved))
    assert regenerate.main([*argv, "--verify"]) == 1  # bitwise: any difference
    assert "majority.json: differs (max diff 0.0001; bitwise: must be identical on any machine)" in \
        capsys.readouterr().out

    path.write_text(json.dumps(dict(moved, machine={"cpu": "AMD EPYC", "isa": "AVX2"},
                                    reproducibility={"class": "bitwise-same-cpu", "tolerance": 1e-3})))
    assert regenerate.main([*argv, "--verify"]) == 0
    assert "majority.json: within tolerance (max diff 0.0001 <= 0.001; record made on CPU AMD EPYC / ISA AVX2" in \
        capsys.readouterr().out


def test_dashboard_shows_each_approachs_class_isa_and_lock(tmp_path):
    record = _majority(tmp_path / "r")
    old = dataclasses.replace(record, approach="transfer-mobilenetv2", reproducibility=None, machine={"cpu": "AMD"},
                              versions={k: v for k, v in record.versions.items() if k != "lock"})
    text = provenance_section([record, old])
    row = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
           for line in text.splitlines() if line.startswith("| ")}
    assert row["majority"][:2] == ["bitwise", "1"]
    assert row["majority"][3] == f"`{environment.lock_digest()}` (today's) (1)"
    assert row["transfer-mobilenetv2"][0] == "bitwise-same-cpu (tolerance 0.05)"
    assert row["transfer-mobilenetv2"][2] == "AMD / unknown" and row["transfer-mobilenetv2"][3] == "none recorded (1)"
    render_all(tmp_path / "r")
    dashboard = (tmp_path / "r" / "README.md").read_text()
    assert "## Provenance and reproducibility" in dashboard and f"(ISA {environment.cpu_isa() or 'unknown'})" in dashboard


# ------------------------------------------------------------------ 3: the lock

def test_the_lock_pins_what_records_name_within_the_package_ranges():
    """constraints.txt pins every package a record names, each at a version pyproject's (loose) ranges allow,
    so `pip install -c constraints.txt -e ".[test]"` resolves."""
    pins = environment.read_lock()
    for dists in environment.RECORDED_PACKAGES.values():
        assert any(environment.canonical(d) in pins for d in dists), dists
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = environment.canonical(req.name)
        assert name in pins, f"{name} is not pinned"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name], str(req.specifier))
    assert not {"pip", "setuptools", "wheel"} & set(pins)  # build tools stay free, as pip freeze leaves them


def test_regenerate_warns_in_one_line_when_versions_differ_from_the_lock(task1_on_synthetic, tmp_path, monkeypatch,
                                                                        capsys):
    lock = tmp_path / "constraints.txt"
    lock.write_text(environment.LOCK_FILE.read_text())
    monkeypatch.setattr(environment, "LOCK_FILE", lock)
    regenerate.main(["--status", "--only", "task1", "--approach", "majority"])
    assert "warning" not in capsys.readouterr().err  # the installed versions are the lock's
    pins = environment.read_lock(lock)
    lock.write_text(lock.read_text().replace(f"numpy=={pins['numpy']}", "numpy==1.0.0"))
    regenerate.main(["--status", "--only", "task1", "--approach", "majority"])
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [f"regenerate: warning: installed versions differ from constraints.txt: numpy {pins['numpy']} "
                      f"(lock 1.0.0) (records made now name them; `pip install -c constraints.txt -e \".[test]\"` "
                      f"installs the lock's)"]


# ------------------------------------------------------------------ 4: uncommitted code

def test_sweep_and_run_refuse_to_write_repository_results_from_uncommitted_code(task1_on_synthetic, monkeypatch,
                                                                                 capsys):
    committed = task1_on_synthetic  # $SKINBENCH_RESULTS: the repository's results/ as far as the code knows
    monkeypatch.setattr(environment, "code_is_dirty", lambda: True)
    monkeypatch.delenv(environment.ALLOW_DIRTY_ENV)
    sweep = ["sweep", "task1", "-a", "majority", *RUN, "--workers", "0", "--no-render"]
    assert main([*sweep, "--results", str(committed)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "uncommitted changes" in err and "Fix: commit first (or pass --allow-dirty" in err
    assert not (committed / "runs").exists()
    assert main(["run", "task1", "-a", "majority", *RUN, "--results", str(committed / "sub")]) == 2
    with pytest.raises(ConfigError, match="commit first"):  # regenerate makes the same check (one line, exit 2)
        regenerate.main(["--only", "task1", "--approach", "majority", "--no-extras"])
    # another folder is free, and the escape writes a record that says where it came from
    assert main([*sweep, "--results", str(committed.parent / "elsewhere")]) == 0
    assert main([*sweep, "--results", str(committed), "--allow-dirty"]) == 0
    record = RunRecord.from_file(committed / "runs" / "task1" / "synthetic" / "majority.json")
    assert record.dirty and record.versions["git_commit"].endswith("+dirty")


def test_tables_and_dashboard_mark_records_from_uncommitted_code(tmp_path):
    record = _majority(tmp_path / "r")
    dirty = dataclasses.replace(record, seed=1, versions={**record.versions, "git_commit": "abc+dirty"})
    clean = dataclasses.replace(record, versions={**record.versions, "git_commit": "abc"})
    table = build_tables([clean, dirty], "task1")[0]
    text = table.markdown()
    assert f"| majority {DIRTY_MARK} " in text and "| stratified " in text and f"stratified {DIRTY_MARK}" not in text
    assert f"{DIRTY_MARK} Made from a tree with uncommitted code changes (`versions.git_commit` ends in `+dirty`)" \
           in text and "majority (seed 1)" in text
    assert DIRTY_MARK not in build_tables([clean], "task1")[0].markdown()
    assert provenance_section([clean]).splitlines()[-1].split("|")[-2].strip() == ""  # none from dirty code
    row = [line for line in provenance_section([clean, dirty]).splitlines() if line.startswith("| majority")][0]
    assert row.split("|")[-2].strip() == "1"


# ------------------------------------------------------------------ 5: significance names its seed

def test_significance_section_names_the_seed_each_test_pairs(tmp_path):
    record = _majority(tmp_path / "r")
    rows = [dataclasses.replace(record, approach="bovw", seed=0),
            dataclasses.replace(record, approach="bovw", seed=1),
            dataclasses.replace(record, approach="cnn-scratch", seed=0),
            dataclasses.replace(record, approach="cnn-scratch", seed=2)]
    tables = build_tables(rows, "task1")
    assert tables[0].multi_seed
    text = significance_section(tables)
    header = [ln for ln in text.splitlines() if ln.startswith("| table")][0]
    assert [c.strip() for c in header.split("|")][4:6] == ["deep row", "seeds paired"]
    assert "the first seed, whose values and CIs the tables show" in text
    assert "over-seed column" in text
    line = [ln for ln in text.splitlines() if "cnn-scratch" in ln][0]
    assert [c.strip() for c in line.split("|")][5] == "0 vs 0"


def test_an_estimator_that_declares_nothing_is_not_stated_and_verified_bitwise(monkeypatch):
    from skinbench import provenance

    monkeypatch.setitem(info.APPROACHES, "theirs", info.ApproachInfo("theirs", "sklearn.dummy:DummyClassifier",
                                                                     "classical", ("task1",), "a plugin's"))
    assert provenance.reproducibility("theirs") is None
    record = RunRecord("task1", "synthetic", "theirs", metrics={"auc": {"value": 0.8, "ci": None}})
    row = [line for line in provenance_section([record]).splitlines() if line.startswith("| theirs")][0]
    assert [c.strip() for c in row.split("|")][2] == "not stated"
    verdict, line = compare_reproduction(record, _rerun(record, 1e-6, {"cpu": "other"}))
    assert verdict == "differs" and "bitwise" in line


def test_regenerate_allow_dirty_reaches_the_scripts_it_starts(task1_on_synthetic, monkeypatch):
    """The scripts' sweeps make the same clean-tree check: regenerate --allow-dirty carries the escape."""
    monkeypatch.setattr(environment, "code_is_dirty", lambda: True)
    monkeypatch.delenv(environment.ALLOW_DIRTY_ENV)
    started: list[dict] = []
    monkeypatch.setattr(regenerate.subprocess, "call", lambda cmd, env: started.append(env) or 0)
    assert regenerate.main(["--only", "task1", "--approach", "majority", "--allow-dirty"]) == 0
    assert started and all(env[environment.ALLOW_DIRTY_ENV] == "1" for env in started)
