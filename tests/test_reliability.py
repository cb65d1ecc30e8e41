"""Reliability (issue 7): same seed -> same numbers; an interrupted run leaves results and caches
consistent and its rerun reuses the finished work; regenerate.py skips exactly the current records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from skinbench import info, runner
from skinbench.cache import ArrayCache
from skinbench.paths import REPO_ROOT

#: BoVW settings small enough for seconds-long runs on 120 synthetic 128x96 images
TINY_BOVW = {"n_words": 20, "C": 1.0, "gamma": 1.0, "n_jobs": 1, "progress": False}
#: a U-Net that learns something (mean Jaccard ~0.6) on 48 synthetic images in ~15 s
TINY_UNET = {"input_size": 32, "base_filters": 8, "depth": 2, "epochs": 6, "batch_size": 8, "learning_rate": 0.01,
             "patience": 0, "augment": True, "verbose": 0}
#: stated tolerance for deep runs: on CPU two runs were bit-identical (per-image counts equal); GPU kernels
#: (cuDNN) may sum in a scheduling-dependent order, so a few pixels may flip and a metric may move this much
DEEP_ATOL = 0.02


def _record(paths: list[Path]) -> dict:
    (path,) = paths
    return json.loads(path.read_text())


def _jaccard(counts: np.ndarray) -> np.ndarray:
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    return np.where(tp + fp + fn > 0, tp / np.maximum(tp + fp + fn, 1), 1.0)


def _set_cache(monkeypatch, folder: Path) -> Path:
    monkeypatch.setenv("SKINBENCH_CACHE", str(folder))
    return folder


# ------------------------------------------------------------------------------------------ determinism

@pytest.mark.slow
def test_classical_run_is_exactly_reproducible(tmp_path, monkeypatch):
    """Same seed twice (fresh caches each time, then from cache): identical metrics, CIs and per-image scores."""
    records = []
    for name, cache in (("a", "cache_a"), ("b", "cache_b"), ("a_cached", "cache_a")):
        _set_cache(monkeypatch, tmp_path / cache)
        paths = runner.run("task1", "bovw", dataset="synthetic", seed=3, params=dict(TINY_BOVW, image_size=128),
                           n_boot=50, results_root=tmp_path / name, dataset_kwargs={"n_images": 48})
        records.append(_record(paths))
    first = records[0]
    for other in records[1:]:
        assert other["metrics"] == first["metrics"]
        assert other["predictions"] == first["predictions"]
        assert other["run_key"] == first["run_key"]
        assert other["extras"]["confusion_matrix"] == first["extras"]["confusion_matrix"]
    # not a degenerate constant predictor: the check above would then prove little
    scores = np.asarray(first["predictions"]["scores"])
    assert scores[:, 1].std() > 0.01
    # and another seed does change the result (the seed reaches the estimator)
    _set_cache(monkeypatch, tmp_path / "cache_a")
    other_seed = _record(runner.run("task1", "stratified", dataset="synthetic", seed=4, n_boot=50,
                                    results_root=tmp_path / "s4", dataset_kwargs={"n_images": 48}))
    same_seed = _record(runner.run("task1", "stratified", dataset="synthetic", seed=3, n_boot=50,
                                   results_root=tmp_path / "s3", dataset_kwargs={"n_images": 48}))
    again = _record(runner.run("task1", "stratified", dataset="synthetic", seed=3, n_boot=50,
                               results_root=tmp_path / "s3b", dataset_kwargs={"n_images": 48}))
    assert same_seed["predictions"] == again["predictions"]
    assert other_seed["predictions"]["scores"] != same_seed["predictions"]["scores"]


@pytest.mark.slow
def test_deep_run_is_reproducible_within_tolerance(tmp_path, monkeypatch):
    """A tiny U-Net trained twice from scratch (separate caches): per-image Jaccard within DEEP_ATOL."""
    pytest.importorskip("keras")  # skip on the third-party package; a broken skinbench module must fail
    from skinbench.approaches import unet  # noqa: F401
    runs = []
    for name in ("a", "b"):
        _set_cache(monkeypatch, tmp_path / f"cache_{name}")
        paths = runner.run("task4", "unet", dataset="synthetic", seed=1, params=TINY_UNET, n_boot=20,
                           results_root=tmp_path / name, dataset_kwargs={"n_images": 48})
        runs.append(_record(paths))
    a, b = (np.asarray(r["predictions"]["counts"], dtype=float) for r in runs)
    assert a.shape == b.shape and a.shape[1] == 4
    # the model learned something: neither all-background nor all-foreground (equal by triviality otherwise)
    assert a[:, 0].sum() > 0 and a[:, 3].sum() > 0 and _jaccard(a).mean() > 0.3
    np.testing.assert_allclose(_jaccard(a), _jaccard(b), atol=DEEP_ATOL)
    for metric, value in runs[0]["metrics"].items():
        if value["value"] is not None:
            assert runs[1]["metrics"][metric]["value"] == pytest.approx(value["value"], abs=DEEP_ATOL), metric


# ------------------------------------------------------------------------------------------- interruption

N_SYNTHETIC = 120  # the CLI's synthetic default


@pytest.fixture(scope="module")
def synthetic_template(tmp_path_factory) -> Path:
    """The CLI's default synthetic set, generated once; each test copies it into its own cache."""
    from skinbench.data import synthetic

    root = tmp_path_factory.mktemp("template_cache")
    old = os.environ.get("SKINBENCH_CACHE")
    os.environ["SKINBENCH_CACHE"] = str(root)
    try:
        synthetic.cached_folder(N_SYNTHETIC, 0)
    finally:
        if old is None:
            os.environ.pop("SKINBENCH_CACHE")
        else:
            os.environ["SKINBENCH_CACHE"] = old
    return root


def _cli_command(results: Path) -> list[str]:
    params = [f"{k}={json.dumps(v)}" for k, v in {**TINY_BOVW, "n_jobs": 2}.items()]
    return [sys.executable, "-m", "skinbench", "run", "task1", "--approach", "bovw", "--dataset", "synthetic",
            "--results", str(results), "--n-boot", "50"] + [a for p in params for a in ("--param", p)]


def _entries(cache: Path) -> dict[Path, tuple[int, int]]:
    """Descriptor cache entries -> (inode, mtime_ns): a rewritten entry gets a new inode (atomic rename)."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (cache / "local_features").rglob("*.npz")}


def _temp_files(*folders: Path) -> list[Path]:
    return [p for f in folders for p in f.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


#: the run pauses after its 10th computed descriptor (skinbench.testing_hooks): the signal then lands
#: mid-extraction at a known point, however loaded the machine, instead of racing the run's end
PAUSE_AT = "descriptors:10"


def _interrupt_run(tmp_path: Path, template: Path, sig: int, *, whole_group: bool):
    """Start the CLI run, wait until it pauses mid-extraction (10 entries cached), send ``sig``, wait for exit."""
    cache, results, paused = tmp_path / "cache", tmp_path / "results", tmp_path / "paused"
    shutil.copytree(template, cache)
    env = dict(os.environ, SKINBENCH_CACHE=str(cache), SKINBENCH_RESULTS=str(results), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(_cli_command(results), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(env, SKINBENCH_TEST_PAUSE_AT=PAUSE_AT, SKINBENCH_TEST_PAUSE_FILE=str(paused)),
                            start_new_session=True,  # own process group: Ctrl-C reaches it and its workers
                            # SIGINT as a terminal gives it: a child inherits an ignored SIGINT, and Python
                            # then never raises KeyboardInterrupt (some earlier test in the suite leaves
                            # SIGINT ignored in the pytest process)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not paused.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"run ended or stalled before its pause point: {(tmp_path / 'run.log').read_text()[-2000:]}")
            time.sleep(0.05)
        assert len(_entries(cache)) >= 10
        if whole_group:
            os.killpg(proc.pid, sig)  # as Ctrl-C in a terminal does
        else:
            proc.send_signal(sig)  # as `kill PID` does
        rc = proc.wait(timeout=60)
        # worker processes must not outlive the run (orphans would keep writing into the cache)
        deadline = time.monotonic() + 20
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        orphans = _group_alive(proc.pid)
    finally:
        if proc.poll() is None or _group_alive(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # only the group this test started
            except ProcessLookupError:
                pass
        proc.wait()
        log.close()
    return rc, orphans, cache, results, env


def _assert_consistent(cache: Path, results: Path) -> dict[Path, tuple[int, int]]:
    """No half-written record, every cache entry loads; returns the entries found."""
    records = list(results.rglob("*.json")) if results.exists() else []
    for path in records:
        json.loads(path.read_text())  # a record that exists is complete
    assert not [p for p in records if "runs" in p.parts], "an interrupted run must not leave a record"
    entries = _entries(cache)
    assert entries, "the run was interrupted before any work was cached"
    store = ArrayCache("local_features", cache)
    for path in entries:
        assert store.get(path.stem) is not None, f"corrupt cache entry {path}"
    return entries


@pytest.mark.slow
def test_sigint_leaves_consistent_state_and_rerun_reuses_work(tmp_path, synthetic_template):
    rc, orphans, cache, results, env = _interrupt_run(tmp_path, synthetic_template, signal.SIGINT, whole_group=True)
    log = (tmp_path / "run.log").read_text()
    assert rc == 130, log[-2000:]
    assert "interrupted" in log
    assert not orphans, "worker processes outlived the interrupted run"
    before = _assert_consistent(cache, results)
    assert _temp_files(cache, results) == []
    # the rerun completes, reuses every finished entry untouched and computes only the rest
    done = subprocess.run(_cli_command(results), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _entries(cache)
    assert len(after) == N_SYNTHETIC  # one descriptor entry per image (train and test)
    assert all(after[p] == stamp for p, stamp in before.items()), "finished work was recomputed"
    record = json.loads(next(results.rglob("runs/task1/synthetic/bovw.json")).read_text())
    assert record["status"] == "ok" and record["split"]["n_train"] + record["split"]["n_test"] == N_SYNTHETIC


@pytest.mark.slow
def test_sigterm_leaves_consistent_state(tmp_path, synthetic_template):
    """SIGTERM to the main process only (`kill PID`): the same guarantees as Ctrl-C."""
    rc, orphans, cache, results, _ = _interrupt_run(tmp_path, synthetic_template, signal.SIGTERM, whole_group=False)
    # Python's default SIGTERM action kills at once (rc -15): joblib's loky workers are orphaned and keep
    # computing and writing cache entries for minutes. cli.main turns SIGTERM into KeyboardInterrupt, so
    # the run stops like Ctrl-C: workers ended, exit code 130.
    assert not orphans, "worker processes outlived the terminated run (SIGTERM not handled in cli.main)"
    assert rc in (130, 128 + signal.SIGTERM), rc
    _assert_consistent(cache, results)
    # a killed atomic write may leave a temporary file; it is never read as an entry, but must not be .npz
    assert all(not p.name.endswith(".npz") for p in _temp_files(cache))


# ------------------------------------------------------------------------------------- regenerate skips

@pytest.mark.slow
def test_regenerate_keeps_current_records_and_reruns_changed_ones(tmp_path, monkeypatch):
    """On a synthetic stand-in for task1's default dataset: rerun only when seed, code or data change."""
    monkeypatch.setitem(info.TASKS, "task1", dataclasses.replace(info.TASKS["task1"], default_dataset="synthetic"))
    monkeypatch.setenv("SKINBENCH_RESULTS", str(tmp_path / "results"))
    from skinbench.sweep import regenerate as regen, work

    calls: list[tuple[str, str, int]] = []
    real_execute = work.execute_point

    def spy(point, *args):  # the one point executor of run, smoke, sweep and regenerate
        calls.append((point.spec.task, point.spec.approach, point.spec.seed))
        return real_execute(point, *args)  # the default n_boot: it is part of the run key

    monkeypatch.setattr(work, "execute_point", spy)
    argv = ["--only", "task1", "--approach", "majority", "--approach", "stratified", "--no-extras", "--allow-dirty"]
    assert regen.main(argv) == 0
    assert calls == [("task1", "majority", 0), ("task1", "stratified", 0)]
    record = tmp_path / "results" / "runs" / "task1" / "synthetic" / "stratified.json"
    first = json.loads(record.read_text())
    assert first["command"] == "python benchmarks/regenerate.py " + " ".join(argv)  # rerunnable as recorded
    assert (tmp_path / "results" / "README.md").exists()

    calls.clear()
    assert regen.main(argv) == 0
    assert calls == []  # both current: kept
    assert json.loads(record.read_text())["created"] == first["created"]

    calls.clear()
    assert regen.main(argv + ["--seed", "1"]) == 0  # another seed: both rerun
    assert calls == [("task1", "majority", 1), ("task1", "stratified", 1)]
    assert json.loads(record.read_text())["seed"] == 0  # seed 0's record is kept beside seed 1's
    record = record.with_name("stratified__seed1.json")
    assert json.loads(record.read_text())["seed"] == 1

    calls.clear()
    assert regen.main(argv + ["--seed", "1", "--force"]) == 0
    assert len(calls) == 2

    calls.clear()  # a declared version bump (here the metrics contract): every record reruns
    monkeypatch.setattr("skinbench.metrics.METRICS_VERSION", 99)
    assert regen.main(argv + ["--seed", "1"]) == 0
    assert len(calls) == 2

    calls.clear()  # a damaged record is not current: rerun that one only
    record.write_text(record.read_text()[:100])
    assert regen.main(argv + ["--seed", "1"]) == 0
    assert calls == [("task1", "stratified", 1)]
    json.loads(record.read_text())


def _key(manifest_digest: str = "abc", **spec) -> str:
    from skinbench import provenance

    spec = {"task": "task1", "approach": "bovw", "dataset": "synthetic", **spec}
    return provenance.run_key(provenance.key_inputs(provenance.RunSpec(**spec), manifest_digest))


def test_run_key_changes_with_everything_a_record_depends_on():
    key = _key()
    assert _key() == key
    for change in ({"seed": 1}, {"params": {"n_words": 50}}, {"limit": 200}, {"manifest_digest": "abd"},
                   {"approach": "majority"}, {"dataset": "generic"}, {"task": "task2"}, {"n_boot": 200}):
        assert _key(**change) != key, change
    assert _key(params={}) == key  # no params and empty params are the same run


def test_code_digest_follows_each_approach_imports_only():
    """Provenance: each record's code digest covers the code it ran (the U-Net is not in the BoVW's)."""
    from skinbench import provenance

    def names(approach):
        return {p.relative_to(provenance.PACKAGE).as_posix() for p in provenance.approach_sources(approach)}

    bovw, unet, ynet = names("bovw"), names("unet"), names("ynet")
    assert {"approaches/bovw.py", "approaches/local_features.py", "metrics/segmentation.py", "runner.py"} <= bovw
    assert not {"approaches/unet.py", "approaches/seg_training.py"} & bovw
    assert {"approaches/unet.py", "approaches/seg_training.py", "approaches/seg_losses.py"} <= unet
    assert unet < ynet and "approaches/backbones.py" in ynet  # the Y-Net imports the U-Net's conv block
    assert names(None) >= bovw | ynet
    assert provenance.code_digest("bovw") != provenance.code_digest("unet")


def test_task_params_override_registry_params_for_that_task_only():
    ainfo = runner.info.approach("mobilenet-unet")
    assert ainfo.params_for("task3")["input_size"] != ainfo.params_for("task4")["input_size"]
    assert ainfo.params_for("task4") == {**ainfo.params, **ainfo.task_params["task4"]}
    assert ainfo.params_for("task1") == ainfo.params  # a task without overrides gets the shared params
    est3 = runner.build_estimator(ainfo, 0, None, "task3")
    assert est3.input_size == ainfo.task_params["task3"]["input_size"] and est3.train_encoder is False
    assert runner.build_estimator(ainfo, 0, {"input_size": 64}, "task3").input_size == 64  # user wins
    assert _key(task="task3", approach="mobilenet-unet") != _key(task="task4", approach="mobilenet-unet")


def test_regenerate_keeps_gpu_records_on_a_machine_without_gpu(tmp_path, monkeypatch):
    """A GPU-marked approach is not retrained on a CPU machine (hours); --allow-cpu trains it."""
    monkeypatch.setitem(info.TASKS, "task1", dataclasses.replace(info.TASKS["task1"], default_dataset="synthetic"))
    monkeypatch.setitem(info.APPROACHES, "majority",
                        dataclasses.replace(info.APPROACHES["majority"], gpu_tasks=("task1",)))
    monkeypatch.setenv("SKINBENCH_RESULTS", str(tmp_path / "results"))
    from skinbench.sweep import regenerate as regen, work

    calls: list[str] = []
    monkeypatch.setattr(work, "execute_point", lambda point, *a: calls.append(point.spec.approach)
                        or work.PointResult(point.id))
    monkeypatch.setattr(regen, "gpu_present", lambda: False)
    argv = ["--only", "task1", "--approach", "majority", "--approach", "stratified", "--no-extras", "--allow-dirty"]
    assert regen.main(argv) == 0
    assert calls == ["stratified"]
    calls.clear()
    assert regen.main(argv + ["--allow-cpu"]) == 0
    assert calls == ["majority", "stratified"]
    calls.clear()
    monkeypatch.setattr(regen, "gpu_present", lambda: True)
    assert regen.main(argv) == 0
    assert calls == ["majority", "stratified"]


def test_pause_point_pauses_only_at_its_point_and_call(tmp_path, monkeypatch):
    """The hook the interruption tests use: the n-th call of the named point writes the marker and waits."""
    from skinbench import testing_hooks as hooks

    marker = tmp_path / "paused"
    monkeypatch.setattr(hooks, "_calls", {})
    monkeypatch.setenv(hooks.PAUSE_AT, "here:2")
    monkeypatch.setenv(hooks.PAUSE_FILE, str(marker))
    monkeypatch.setenv(hooks.PAUSE_S, "0.2")
    hooks.pause_point("elsewhere")
    hooks.pause_point("here")
    assert not marker.exists()
    start = time.monotonic()
    hooks.pause_point("here")
    assert marker.read_text() == str(os.getpid()) and time.monotonic() - start >= 0.2
    marker.unlink()
    hooks.pause_point("here")
    assert not marker.exists()
