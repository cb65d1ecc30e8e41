"""Sweeps: expansion from arguments and TOML, currency (resume), and a real 2-worker LocalCluster that
completes, survives a worker killed mid-point, reports a failing point, and does nothing on a rerun."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

from skinbench import sweep
from skinbench.errors import ConfigError, DataError
from skinbench.provenance import RunSpec
from skinbench.results.records import RunRecord, record_path

TINY = {"n_images": 48}
APPROACHES = ["majority", "stratified", "all-foreground"]


def tiny_points(seeds=(0, 1)) -> list[sweep.Point]:
    config = sweep.SweepConfig(["task1", "task4"], APPROACHES, seeds=list(seeds), dataset="synthetic",
                               limit=24, n_boot=50)
    return config.points()


def all_files(root: Path) -> dict[str, float]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------------- what a sweep is

def test_points_are_the_product_with_stable_ids():
    points = tiny_points()
    assert len(points) == 6  # task1 x {majority, stratified} x 2 seeds + task4 x all-foreground x 2 seeds
    assert [p.id for p in points] == [p.id for p in tiny_points()]
    assert {p.spec.seed for p in points} == {0, 1}
    assert all(p.out == "" for p in points)  # no parameters: the suite's ordinary rows
    assert points[0].id == RunSpec("task1", "majority", "synthetic", 0, {}, None, 24, 50).id


def test_grid_applies_to_the_approaches_that_have_the_parameter():
    config = sweep.SweepConfig(["task1"], ["majority", "bovw"], seeds=[0, 1], name="g",
                               grid=sweep.parse_grid(["n_words=10,20", "kernel=rbf"]), params={"image_size": 96})
    points = config.points()
    bovw = [p for p in points if p.spec.approach == "bovw"]
    assert len(bovw) == 4 and len(points) == 6  # the majority baseline runs once per seed
    assert {p.out for p in bovw} == {"sweeps/g/image_size=96,kernel=rbf,n_words=10",
                                     "sweeps/g/image_size=96,kernel=rbf,n_words=20"}
    assert dict(bovw[0].spec.params) == {"image_size": 96, "kernel": "rbf", "n_words": 10}
    with pytest.raises(ConfigError, match="approach 'majority' has no parameter 'n_wrds'"):
        sweep.SweepConfig(["task1"], ["majority"], grid={"n_wrds": [1]}).points()


def test_output_template_and_targets():
    config = sweep.SweepConfig(["task3"], ["all-background"], grid={"value": [0.0]}, targets=["globules", "streaks"],
                               out="sweeps/{name}/runs/{value}", name="losses")
    points = config.points()
    assert [p.spec.target for p in points] == ["globules", "streaks"]
    assert {p.out for p in points} == {"sweeps/losses/runs/0.0"}
    with pytest.raises(ConfigError, match="unknown field"):
        sweep.SweepConfig(["task1"], ["majority"], out="x/{nope}").points()
    with pytest.raises(ConfigError, match="inside the results root"):
        sweep.SweepConfig(["task1"], ["majority"], out="../elsewhere").points()


def test_parse_grid_values():
    """Grid values stay text until the points are made, where each is typed per approach as `-p` types it."""
    assert sweep.parse_grid(["k=1,2", "s=a,b", "l=[1,2],[3]", "b=true", 'q="x,y",z']) == \
        {"k": ["1", "2"], "s": ["a", "b"], "l": ["[1,2]", "[3]"], "b": ["true"], "q": ['"x,y"', "z"]}
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        sweep.parse_grid(["novalue"])
    with pytest.raises(ConfigError, match="empty value"):
        sweep.parse_grid(["n_words=10,"])
    points = sweep.SweepConfig(["task1"], ["bovw"], grid=sweep.parse_grid(["C_grid=[1,10],[0.1,1]", "rootsift=yes,no"]),
                               name="t").points()
    assert sorted((p.spec.params["C_grid"], p.spec.params["rootsift"]) for p in points) == \
        [([0.1, 1.0], False), ([0.1, 1.0], True), ([1.0, 10.0], False), ([1.0, 10.0], True)]


def test_toml_config(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('name = "t"\ntasks = ["task1"]\napproaches = ["bovw"]\nseeds = [0, 1, 2]\nworkers = 1\n'
                    '[grid]\nn_words = [10, 20]\nkernel = "rbf"\n')
    data = sweep.load_config(path)
    assert data["grid"] == {"n_words": [10, 20], "kernel": ["rbf"]} and data["workers"] == 1
    (tmp_path / "bad.toml").write_text('tasks = ["task1"]\nfoo = 1\n')
    with pytest.raises(ConfigError, match="unknown sweep setting"):
        sweep.load_config(tmp_path / "bad.toml")


def test_unreachable_data_is_one_clear_error(tmp_path):
    points = sweep.SweepConfig(["task1"], ["majority"]).points()  # the real isic2016_task3 dataset
    with pytest.raises(DataError, match="data not reachable"):
        sweep.run_sweep(points, tmp_path, engine="local", data_root=str(tmp_path / "nowhere"), progress=False)


def test_in_process_sweep_resumes_and_matches_the_runner(tmp_path):
    from skinbench import runner

    points = [p for p in tiny_points() if p.spec.task == "task1"]
    first = sweep.run_sweep(points, tmp_path / "a", engine="local", dataset_kwargs=TINY, progress=False)
    assert first.ok and len(first.done) == 4
    again = sweep.run_sweep(points, tmp_path / "a", engine="local", dataset_kwargs=TINY, progress=False)
    assert again.done == [] and len(again.current) == 4 and again.engine == "nothing to run"
    direct = runner.execute(points[1].spec, results_root=tmp_path / "b", dataset_kwargs=TINY)[0]
    swept = record_path("task1", "synthetic", "majority", root=tmp_path / "a", seed=1)
    a, b = RunRecord.from_file(swept), RunRecord.from_file(direct)
    assert a.metrics == b.metrics and a.run_key == b.run_key and a.predictions == b.predictions


def test_workers_keep_the_clients_tensorflow_log_level_or_stay_quiet(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert sweep.thread_env(1)["TF_CPP_MIN_LOG_LEVEL"] == "3"  # skinbench.quiet's level, not 2
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # a user debugging an installation
    env = sweep.thread_env(2)
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0" and env["OMP_NUM_THREADS"] == "2"


def test_dry_run_trains_nothing_and_returns_only_current_outputs(tmp_path):
    points = [p for p in tiny_points() if p.spec.task == "task1"]
    sweep.run_sweep(points[:2], tmp_path, engine="local", dataset_kwargs=TINY, progress=False)
    before, calls = all_files(tmp_path), []
    dry = sweep.run_sweep(points, tmp_path, dataset_kwargs=TINY, progress=False, dry_run=True,
                          work_fn=lambda *a: calls.append(a))
    assert calls == [] and all_files(tmp_path) == before and dry.done == [] and dry.engine == "dry run"
    assert sorted(dry.current) == sorted(p.id for p in points[:2])
    assert set(dry.outputs) == {p.id for p in points[:2]} and set(dry.reasons) == {p.id for p in points[2:]}
    assert [p.id for p, _ in sweep.iter_records(dry, points)] == [p.id for p in points[:2]]


def test_cli_sweep_and_run_with_several_seeds(tmp_path, capsys):
    from skinbench import cli

    code = cli.main(["sweep", "task1", "-a", "majority", "--seeds", "0", "2", "--dataset", "synthetic",
                     "--limit", "24", "--n-boot", "20", "--workers", "0", "--results", str(tmp_path / "s"),
                     "--no-render"])
    assert code == 0
    assert record_path("task1", "synthetic", "majority", root=tmp_path / "s", seed=2).is_file()
    assert "majority" in RunRecord.from_file(record_path("task1", "synthetic", "majority", root=tmp_path / "s",
                                                         seed=2)).command
    code = cli.main(["run", "task1", "-a", "stratified", "--seed", "0", "1", "--dataset", "synthetic",
                     "--limit", "24", "--n-boot", "20", "--results", str(tmp_path / "r")])
    assert code == 0
    for seed in (0, 1):
        assert record_path("task1", "synthetic", "stratified", root=tmp_path / "r", seed=seed).is_file()


# ----------------------------------------------------------------------------------- a real LocalCluster

def crash_once(point, data_root, dataset_kwargs, command, *, marker: str):
    """The worker running the stratified seed-1 point dies (os._exit) on the first attempt only."""
    if point.spec.approach == "stratified" and point.spec.seed == 1 and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)
    return sweep.execute_point(point, data_root, dataset_kwargs, command)


def fail_always(point, data_root, dataset_kwargs, command, *, attempts: str):
    """The majority seed-0 point raises every time (the attempts are counted in a file)."""
    if point.spec.approach == "majority" and point.spec.seed == 0:
        with open(attempts, "a") as fh:
            fh.write("x")
        raise RuntimeError("boom in the estimator\nsecond line of the traceback text")
    return sweep.execute_point(point, data_root, dataset_kwargs, command)


@pytest.fixture
def by_value():
    """Let the worker processes unpickle this test module's functions (they cannot import it)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
def test_cluster_sweep_completes_and_rerun_does_no_work(tmp_path):
    points = tiny_points()
    summary = sweep.run_sweep(points, tmp_path, workers=2, dataset_kwargs=TINY, progress=False)
    assert summary.ok, summary
    assert len(summary.done) == 6 and "2 worker processes" in summary.engine
    for p in points:
        for path in summary.outputs[p.id]:
            record = RunRecord.from_file(path)
            assert record.ok and record.seed == p.spec.seed
    overlays = list(tmp_path.rglob("*.png"))
    assert overlays, "segmentation overlay figures come back from the workers"
    before = all_files(tmp_path)
    again = sweep.run_sweep(points, tmp_path, workers=2, dataset_kwargs=TINY, progress=False)
    assert again.done == [] and len(again.current) == 6 and again.engine == "nothing to run"
    assert all_files(tmp_path) == before  # nothing rewritten


@pytest.mark.slow
def test_killed_worker_loses_nothing_and_its_point_is_retried(tmp_path, by_value):
    marker = tmp_path / "crashed"
    points = [p for p in tiny_points() if p.spec.task == "task1"]
    work = functools.partial(crash_once, marker=str(marker))
    summary = sweep.run_sweep(points, tmp_path / "results", workers=2, dataset_kwargs=TINY, progress=False,
                              work_fn=work)
    assert marker.exists(), "the worker was killed once"
    assert summary.ok and len(summary.done) == 4, summary
    path = record_path("task1", "synthetic", "stratified", root=tmp_path / "results", seed=1)
    assert RunRecord.from_file(path).ok
    assert not [p for p in (tmp_path / "results").rglob("*") if p.is_file() and p.suffix != ".json"]


@pytest.mark.slow
def test_failing_point_is_retried_boundedly_and_reported_in_one_line(tmp_path, by_value):
    attempts = tmp_path / "attempts"
    points = [p for p in tiny_points() if p.spec.task == "task1"]
    work = functools.partial(fail_always, attempts=str(attempts))
    summary = sweep.run_sweep(points, tmp_path / "results", workers=2, retries=1, dataset_kwargs=TINY,
                              progress=False, work_fn=work)
    assert attempts.read_text() == "xx"  # the first try and one retry
    assert len(summary.done) == 3 and list(summary.failed) == [points[0].id]
    assert summary.failed[points[0].id] == "RuntimeError: boom in the estimator"
    assert "failed points" in str(summary) and not summary.ok
    assert not record_path("task1", "synthetic", "majority", root=tmp_path / "results").exists()
    # a user error is deterministic: reported, not retried
    bad = sweep.execute_point(sweep.Point(RunSpec("task1", "majority", "ham10000")))  # not a task1 dataset
    assert bad.error and "\n" not in bad.error


def test_every_record_says_what_its_fit_chose(tmp_path):
    """The runner stores ``extras.fit`` (no sweep-side capture of estimators needed)."""
    from skinbench import runner
    from skinbench.provenance import RunSpec
    from skinbench.results.records import RunRecord

    spec = RunSpec("task1", "bovw", "synthetic", params={"n_words": 20, "image_size": 96}, limit=24, n_boot=20)
    (path,) = runner.execute(spec, results_root=tmp_path, dataset_kwargs={"n_images": 48})
    fit = RunRecord.from_file(path).extras["fit"]
    assert len(fit["best_params"]) == 2 and 0.0 <= fit["val_selection_score"] <= 1.0


# ----------------------------------------------------------------------------------- from the command line

def sweep_cli(*args: str, results: Path) -> int:
    from skinbench import cli

    return cli.main(["sweep", *args, "--workers", "0", "--n-boot", "20", "--results", str(results)])


def test_sweep_on_a_generic_folder_resumes(tmp_path, capsys):
    """Records of a user's folder land under its data slug (generic-<folder>-<digest>); the currency check
    looks there too, so --dry-run says current after a sweep and a rerun fits nothing."""
    from skinbench.data import synthetic

    folder = tmp_path / "my lesions"
    synthetic.generate(folder, n_images=40, seed=0)
    args = ["task1", "-a", "majority", "stratified", "-g", "strategy=prior,uniform", "--dataset", "generic",
            "--data-root", str(folder), "--no-render"]
    assert sweep_cli(*args, results=tmp_path / "r") == 0
    records = sorted(p.relative_to(tmp_path / "r").as_posix() for p in (tmp_path / "r").rglob("*.json"))
    assert len(records) == 4 and all("/generic-my-lesions-" in r for r in records), records
    capsys.readouterr()
    assert sweep_cli(*args, "--dry-run", results=tmp_path / "r") == 0
    states = [line.rsplit("\t", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert states == ["current"] * 4
    before = all_files(tmp_path / "r")
    assert sweep_cli(*args, results=tmp_path / "r") == 0
    assert "4 points: 0 run, 4 current (kept)" in capsys.readouterr().err
    assert all_files(tmp_path / "r") == before


def test_the_currency_check_never_looks_for_a_generic_folder_by_name(tmp_path):
    from skinbench.results import currency

    with pytest.raises(ValueError, match="data slug"):
        currency.check(RunSpec("task1", "majority", "generic"), tmp_path, "0" * 64)


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
@pytest.mark.parametrize("grid, needle", [
    ("n_words=10,abc", "-g n_words=abc: parameter n_words of approach 'bovw' takes an integer, not 'abc'"),
    ("n_wrds=10,20", "did you mean n_words?"),
    ("vocab_size=10", "did you mean n_words?"),
    ("kernel=rbf,chi3", "-g kernel=chi3: parameter kernel of approach 'bovw' takes one of linear, rbf, chi2, "
                        "intersection, not 'chi3'"),
])
def test_grid_values_are_checked_before_any_work(tmp_path, capsys, grid, needle, extra):
    results = tmp_path / "r"
    assert sweep_cli("task1", "-a", "majority", "bovw", "-g", grid, "--dataset", "synthetic", *extra,
                     results=results) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not results.exists(), "nothing ran, not even the good point"


def test_fixed_params_are_filed_as_run_files_them_and_grid_points_get_a_sweep_table(tmp_path, capsys):
    from skinbench import cli

    results = tmp_path / "r"
    # a grid-only sweep: `table` shows its points (one row each, with the parameter), not "no records"
    assert sweep_cli("task1", "-a", "majority", "-g", "strategy=prior,uniform", "--dataset", "synthetic",
                     "--limit", "24", "--name", "dummy", results=results) == 0
    out = capsys.readouterr().out
    assert "# sweep dummy: task1 / synthetic" in out
    assert cli.main(["table", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| strategy=")]
    assert len(rows) == 2 and "| prior " in rows[0] and "| uniform " in rows[1]
    assert (results / "tables/sweeps/dummy__task1__synthetic.csv").is_file()
    # a fixed -p without a grid is the point's own params: filed where `run -p` files it, a row of `table`
    assert sweep_cli("task1", "-a", "stratified", "-p", "strategy=uniform", "--dataset", "synthetic",
                     "--limit", "24", results=results) == 0
    record = RunRecord.from_file(record_path("task1", "synthetic", "stratified", root=results))
    assert record.key_inputs["params"]["strategy"] == "uniform"
    assert not list((results / "sweeps").glob("sweep*"))
    capsys.readouterr()
    assert cli.main(["table", "task1", "--results", str(results)]) == 0
    stratified = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("stratified"))
    assert "not run" not in stratified


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("item, expected", [
    ("C_grid=1,10", {"C_grid": [1.0, 10.0]}),
    ("gamma_grid=[0.5,2]", {"gamma_grid": [0.5, 2.0]}),
    ("n_words=30", {"n_words": 30}),
    ("rootsift=yes", {"rootsift": True}),
    ("C=none", {"C": None}),
    ("kernel=chi2", {"kernel": "chi2"}),
])
def test_p_means_the_same_in_run_and_sweep(monkeypatch, tmp_path, command, item, expected):
    """One -p reader (params.parse_assignments + validate_params) for both commands."""
    from skinbench import cli
    from skinbench.results.render import Rendered

    seen: list[dict] = []
    monkeypatch.setattr(cli, "preflight", lambda *a, **k: None)
    monkeypatch.setattr("skinbench.results.render.render_all", lambda *a, **k: Rendered(tmp_path))
    # both commands hand their points to the one orchestrator (run adds the baselines beside its row)
    monkeypatch.setattr(sweep.engine, "run_sweep", lambda points, *a, **k: seen.extend(
        dict(p.spec.params) for p in points if p.spec.approach == "bovw") or sweep.Summary(total=len(points)))
    argv = [command, "task1", "-a", "bovw", "-p", item, "--dataset", "synthetic", "--results", str(tmp_path)]
    assert cli.main(argv) == 0
    assert seen == [expected]


def test_configuring_a_sweep_reads_parameters_without_importing_tensorflow():
    """Names and values of deep approaches are checked from their source (skinbench.params), not by
    importing their modules (TensorFlow's start-up is seconds and a wall of log lines)."""
    import subprocess

    code = ("import sys\n"
            "from skinbench import cli, sweep\n"
            "args = cli._build_parser().parse_args(['sweep', 'task4', '-a', 'unet', 'mobilenet-unet', 'ellipse',\n"
            "    '-g', 'epochs=1,2', '-p', 'input_size=64', '--dataset', 'synthetic'])\n"
            "config, _ = sweep.config_from_args(args)\n"
            "points = config.points()\n"
            "sweep.validate_points(points)\n"
            "assert len(points) == 5, points\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_a_validation_point_is_a_run_record_scored_on_the_validation_split(tmp_path):
    """Issue 29: a `work="validation"` point writes a RunRecord (scored by the one scorer, stamped by the one
    builder) where its untyped row was, under the same path and run key; the sweep keeps it current, and
    benchmarks/validate_transfer.py reads it as it read the row."""
    import importlib.util
    import json

    from skinbench.data import load_dataset

    repo = Path(__file__).resolve().parents[1]
    point = sweep.Point(RunSpec("task1", "stratified", "synthetic", 0, {}, None, None, 0), work="validation",
                        out="validation/check", label="strat")
    first = sweep.run_sweep([point], tmp_path, engine="local", dataset_kwargs=TINY, progress=False)
    assert first.ok and len(first.done) == 1
    (path,) = first.outputs[point.id]
    assert path.relative_to(tmp_path).as_posix().startswith("validation/check/task1/synthetic/stratified__")
    record = RunRecord.from_file(path)
    key, inputs = sweep.validation_key(point.spec, load_dataset("synthetic", **TINY))
    assert record.run_key == key and record.key_inputs == inputs and record.extras["validation"] is True
    assert record.split["n_val"] == record.split["n_test"] == len(record.predictions["image_id"])
    assert record.value("auc") is not None and record.ci("auc") == (None, None)  # no bootstrap on validation
    assert record.created and record.machine and "fit_s" in record.timings and record.extras["label"] == "strat"
    again = sweep.run_sweep([point], tmp_path, engine="local", dataset_kwargs=TINY, progress=False)
    assert again.done == [] and again.current == [point.id]
    spec = importlib.util.spec_from_file_location("validate_transfer", repo / "benchmarks" / "validate_transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    split, fit, seconds, scores = module._row(json.loads(path.read_text()))
    assert set(split) == {"n_fit", "n_val", "manifest_digest", "how"} and scores["auc"] == record.value("auc")
