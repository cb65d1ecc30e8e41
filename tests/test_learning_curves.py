"""Learning curves (issue 32): nested, stratified, lesion-aware training subsets drawn by seed; fraction
points on the one orchestrator with the fraction and subset digest in the run key; caches reused across
fractions; the crossover rule."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from skinbench import sweep
from skinbench.data.splits import DEFAULT_FRACTIONS, nested_subset, subset_digest, training_set
from skinbench.errors import ConfigError
from skinbench.provenance import RunSpec, key_inputs, run_key
from skinbench.results.records import RunRecord

TINY = {"n_images": 48}
#: 24-image sets: some bootstrap resamples of the tiny test split hold no positive image
pytestmark = pytest.mark.filterwarnings("ignore:No positive class found:UserWarning")


def _lesion_data(n_lesions: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and lesion ids as HAM10000 has them: 1-4 images per lesion, imbalanced classes."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df"], size=n_lesions,
                         p=[0.62, 0.12, 0.11, 0.06, 0.04, 0.03, 0.02])
    sizes = rng.integers(1, 5, size=n_lesions)
    y = np.repeat(classes, sizes)
    groups = np.repeat([f"L{i}" for i in range(n_lesions)], sizes)
    return y, groups


def test_subsets_are_nested_lesion_aware_stratified_and_drawn_by_seed():
    y, groups = _lesion_data()
    lesion_class = dict(zip(groups, y))
    share = {c: n / len(set(groups)) for c, n in Counter(lesion_class.values()).items()}
    paths = {}
    for seed in (0, 1, 2):
        subsets = [nested_subset(y, groups, f, seed) for f in DEFAULT_FRACTIONS]
        for small, large in zip(subsets, subsets[1:]):
            assert set(small) < set(large)  # nested: each smaller subset inside the larger
        assert np.array_equal(subsets[-1], np.arange(len(y)))  # 100 %: the whole training split
        for f, idx in zip(DEFAULT_FRACTIONS, subsets):
            assert abs(len(idx) - f * len(y)) <= 4  # at most one lesion's images beyond the target
            taken = set(groups[idx])
            assert not taken & set(groups[np.setdiff1d(np.arange(len(y)), idx)])  # whole lesions only
            per_class = Counter(lesion_class[g] for g in taken)
            assert set(per_class) == set(share)  # every class present, even the rarest at 5 %
            for c, p in share.items():  # stratified: each class within about one lesion of its share
                assert abs(per_class[c] - p * len(taken)) <= 1.5
        assert np.array_equal(nested_subset(y, groups, 0.1, seed), subsets[1])  # reproducible
        paths[seed] = subsets[1]
    assert not np.array_equal(paths[0], paths[1]) and not np.array_equal(paths[1], paths[2])


def test_images_without_lesion_ids_are_their_own_lesions_and_bad_fractions_are_refused():
    y = np.array(["benign"] * 80 + ["malignant"] * 20)
    idx = nested_subset(y, None, 0.25, seed=3)
    assert len(idx) == 25 and Counter(y[idx]) == {"benign": 20, "malignant": 5}
    for bad in (0, 1.5, -0.1, "half"):
        with pytest.raises(ConfigError, match="not in \\(0, 1\\]"):
            nested_subset(y, None, bad, seed=0)


def test_the_runner_trains_on_the_subset_and_keeps_the_whole_test_split(synthetic_dataset):
    train = training_set(synthetic_dataset, seed=1, fraction=0.5)
    full = synthetic_dataset.split("train")
    assert set(train.ids) < set(full.ids) and len(train) < len(full)
    assert subset_digest(train) != subset_digest(full)
    assert training_set(synthetic_dataset, seed=1, fraction=None).ids.tolist() == full.ids.tolist()


def test_a_spec_without_a_fraction_keeps_its_run_key_and_id():
    """Committed records must not go stale: the fraction enters a key only when it is given."""
    spec = RunSpec("task1", "majority", "synthetic", 0)
    inputs = key_inputs(spec, "digest")
    assert "subset" not in inputs and spec.id == "task1/synthetic/majority/seed0/" + spec.id.rsplit("/", 1)[1]
    curve = RunSpec("task1", "majority", "synthetic", 0, fraction=0.25)
    assert curve.id != spec.id
    with_subset = key_inputs(curve, "digest", subset="abc")
    assert with_subset["subset"]["fraction"] == 0.25 and run_key(with_subset) != run_key(inputs)
    with pytest.raises(ValueError, match="training subset"):
        key_inputs(curve, "digest")


def test_sweep_fractions_land_in_their_folder_and_100_percent_is_the_ordinary_row():
    config = sweep.SweepConfig(["task1"], ["majority"], seeds=[0, 1], dataset="synthetic",
                               fractions=[0.25, 1.0], name="learning_curves")
    points = config.points()
    assert [(p.spec.fraction, p.out) for p in points] == [
        (0.25, "learning_curves/task1/fraction=0.25"), (None, ""),
        (0.25, "learning_curves/task1/fraction=0.25"), (None, "")]
    for bad in ([], [0.5, 0.5], [2.0]):
        with pytest.raises(ConfigError):
            sweep.SweepConfig(["task1"], ["majority"], fractions=bad).points()


def test_fraction_points_record_their_subset_and_resume(tmp_path):
    config = sweep.SweepConfig(["task1"], ["majority"], seeds=[0, 1], dataset="synthetic", n_boot=20,
                               fractions=[0.25, 0.5], name="learning_curves")
    points = config.points()
    first = sweep.run_sweep(points, tmp_path, engine="local", dataset_kwargs=TINY, progress=False)
    assert first.ok and len(first.done) == 4
    records = {(r.seed, r.split["fraction"]): r for _, r in sweep.iter_records(first, points)}
    assert set(records) == {(0, 0.25), (0, 0.5), (1, 0.25), (1, 0.5)}
    r = records[(1, 0.25)]
    assert r.key_inputs["subset"]["digest"] == r.split["subset_digest"]
    assert r.split["n_train"] < records[(1, 0.5)].split["n_train"]
    assert r.split["n_test"] == records[(1, 0.5)].split["n_test"]  # the test split stays whole
    assert r.split["subset_digest"] != records[(0, 0.25)].split["subset_digest"]  # seeds: other paths
    again = sweep.run_sweep(points, tmp_path, engine="local", dataset_kwargs=TINY, progress=False)
    assert again.done == [] and len(again.current) == 4  # an interrupted curve resumes where it stopped
    assert isinstance(RunRecord.from_file(first.outputs[points[0].id][0]), RunRecord)


def test_status_lists_the_curve_points(tmp_path, capsys):
    """What ``regenerate.py --status`` (and ``learning_curves.py --status``) print for the curves."""
    from skinbench.sweep.regenerate import print_curve_status

    def config(seeds):
        return sweep.SweepConfig(["task1"], ["majority"], seeds=seeds, dataset="synthetic", n_boot=20,
                                 fractions=[0.25, 1.0], name="learning_curves").points()

    assert sweep.run_sweep(config([0, 1]), tmp_path, engine="local", progress=False).ok
    assert print_curve_status(config([0, 1, 2]), tmp_path) == 1
    out = capsys.readouterr().out
    assert "missing  curve task1/majority: 4 current, 2 missing" in out
    assert "learning-curve points: 4 current, 2 missing" in out


@pytest.mark.parametrize("task, approach, params, namespace", [
    ("task1", "bovw", {"n_words": 20, "image_size": 96}, "local_features"),
    ("task1", "transfer-mobilenetv2-logreg", {"input_size": 32, "n_views": 2, "val_size": 0}, "transfer_features"),
])
def test_a_fraction_recomputes_nothing_the_full_set_cached(tmp_path, mobilenet32_weights, task, approach, params,
                                                         namespace):
    """Counted, not timed: the 100 % row's fit computes the per-image work; every smaller fraction of the
    same seed then finds all of it in the cache (no miss in its record's ``timings.cache``)."""
    if approach.startswith("transfer"):
        params = {**params, "weights": str(mobilenet32_weights)}

    def run(fractions: list[float]) -> dict[float, dict]:
        config = sweep.SweepConfig([task], [approach], seeds=[1], dataset="synthetic", n_boot=10, params=params,
                                   limit=24, fractions=fractions, name="lc")
        points = config.points()
        summary = sweep.run_sweep(points, tmp_path, engine="local", dataset_kwargs=TINY, progress=False)
        assert summary.ok, summary.failed
        return {r.split.get("fraction", 1.0): r.timings["cache"] for _, r in sweep.iter_records(summary, points)}

    full = run([1.0])[1.0]
    assert full[namespace]["misses"] > 0  # the full set did the work (an empty cache)
    small = run([0.25, 0.5])
    for fraction, use in small.items():
        assert use[namespace]["misses"] == 0 and use[namespace]["hits"] > 0, (fraction, use)


def test_segmenter_pairs_of_a_subset_are_read_from_the_full_sets_cache(synthetic_dataset):
    """The Keras segmenters' resized image+mask pairs were cached per *set*, so every learning-curve
    fraction (and every other validation split) read all its images again; now each pair is its own entry."""
    from skinbench import cache
    from skinbench.approaches.seg_data import load_pairs

    train = synthetic_dataset.split("train")
    paths, masks = list(train.paths), list(train.masks("lesion"))
    before = cache.ledger()
    full_images, full_masks = load_pairs(paths, masks, 24)
    assert cache.ledger_since(before)["seg_pairs"]["misses"] == len(paths)
    keep = training_set(synthetic_dataset, seed=2, fraction=0.25)
    idx = [paths.index(p) for p in keep.paths]
    before = cache.ledger()
    images, sub_masks = load_pairs(list(keep.paths), list(keep.masks("lesion")), 24)
    assert cache.ledger_since(before)["seg_pairs"] == {"hits": len(idx), "misses": 0}
    assert np.array_equal(images, full_images[idx]) and np.array_equal(sub_masks, full_masks[idx])


# ----------------------------------------------------------------------------------- the crossover


def test_the_crossover_is_the_smallest_fraction_won_after_holm():
    from skinbench.results.learning_curves import FractionTest, crossover_fraction

    def tests(*rows):
        return [FractionTest(f, [0, 1, 2], 100, d, None, p) for f, d, p in rows]

    # raw p 0.04 at 10 %: Holm over four fractions keeps it (0.04 is the largest, multiplied by 1)
    won = tests((0.05, -0.10, 0.01), (0.1, 0.05, 0.04), (0.25, 0.10, 0.001), (0.5, 0.2, 0.0001))
    assert crossover_fraction(won) == 0.1 and [t.p_holm for t in won] == pytest.approx([0.02, 0.04, 0.003, 0.0004])
    # a significant loss is not a crossover; a raw p under 0.05 that Holm lifts above it is not one either
    assert crossover_fraction(tests((0.05, -0.2, 0.0001), (0.1, 0.05, 0.03), (0.25, 0.04, 0.03))) is None
    assert crossover_fraction(tests((0.05, 0.3, 0.001), (0.5, 0.3, 0.001))) == 0.05
    assert crossover_fraction([FractionTest(0.1, [])]) is None  # nothing paired: no answer, no error


def _write_curve(root, n_test: int = 150, deep: tuple[float, float, float] = (0.05, 0.6, 0.7)):
    """A made-up task1 curve: classical flat at a weak score, deep weak at 5 % and strong from 25 %."""
    from skinbench.results.records import RunRecord, record_path, write_record
    from skinbench.scoring import scored_classification

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n_test)
    ids = [f"img{i:03d}" for i in range(n_test)]
    strength = {("bovw", f): 0.15 for f in (0.05, 0.25, 1.0)}
    strength.update({("transfer-mobilenetv2-logreg", f): k for f, k in zip((0.05, 0.25, 1.0), deep)})
    for (approach, fraction), k in strength.items():
        for seed in (0, 1, 2):
            noise = np.random.default_rng([seed, int(fraction * 100), len(approach)]).random(n_test)
            s = np.clip(k * y + (1 - k) * noise, 0, 1)
            order = np.random.default_rng(seed).permutation(n_test)  # records list images in any order
            scored = scored_classification(np.array(ids)[order], y[order], np.column_stack([1 - s, s])[order],
                                           ["benign", "malignant"], "malignant", n_boot=20, seed=seed)
            split = {"n_train": int(900 * fraction), "n_test": n_test}
            folder = root if fraction == 1.0 else root / "learning_curves" / "task1" / f"fraction={fraction}"
            if fraction != 1.0:
                split.update(fraction=fraction, subset_digest="x")
            family = "classical" if approach == "bovw" else "deep"
            record = RunRecord(task="task1", dataset="isic2016_task3", approach=approach, family=family, seed=seed,
                               split=split, **scored)
            write_record(record, record_path("task1", "isic2016_task3", approach, root=folder, seed=seed))


def test_report_plot_table_and_crossover_from_the_records(tmp_path):
    """The report a user reads (``benchmarks/learning_curves.py --report-only``), from records alone."""
    import importlib.util

    from skinbench.paths import REPO_ROOT
    from skinbench.results.learning_curves import crossover, curve_points, summary_rows

    _write_curve(tmp_path)
    points = curve_points(tmp_path, "task1")
    assert len(points) == 18 and {p.fraction for p in points} == {0.05, 0.25, 1.0}
    rows = {(r["approach"], r["fraction"]): r for r in summary_rows(points)}
    assert rows[("bovw", 0.25)]["seeds"] == 3 and rows[("bovw", 0.25)]["n_train"] == 225
    result = crossover(points, "task1", n_boot=200)
    assert (result.classical, result.deep) == ("bovw", "transfer-mobilenetv2-logreg")
    assert result.fraction == 0.25  # deep is behind at 5 %, ahead from 25 % on
    assert result.tests[0].difference < 0 and result.tests[1].p_holm < 0.05

    path = REPO_ROOT / "benchmarks" / "learning_curves.py"
    spec = importlib.util.spec_from_file_location("learning_curves_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--tasks", "task1", "--report-only", "--results", str(tmp_path), "--n-boot", "200"]) == 0
    text = (tmp_path / "learning_curves" / "task1.md").read_text()
    assert "Crossover at 25 % of the training split" in text and "![learning curve](task1.png)" in text
    assert (tmp_path / "learning_curves" / "task1.png").stat().st_size > 0
    assert "transfer-mobilenetv2-logreg" in (tmp_path / "learning_curves" / "task1.csv").read_text()

    # keyed as a derived report (regenerate.py --status): current now, stale once one fraction point reruns
    from skinbench.results import derived as dv
    from skinbench.results.records import read_record, record_path, write_record

    report = dv.derived("learning_curves/task1")
    status = dv.check(report, tmp_path)  # made with --n-boot 200: not what the default command makes
    assert status.status == "stale" and any(r.startswith("params:") for r in status.reasons)
    dv.write_key(report, tmp_path)  # (as the default --n-boot would have keyed it)
    assert dv.check(report, tmp_path).current
    assert len(dv.key_inputs(report, tmp_path)["records"]) == 18  # one entry per point, fractions apart
    folder = tmp_path / "learning_curves" / "task1" / "fraction=0.25"
    path = record_path("task1", "isic2016_task3", "bovw", root=folder, seed=1)
    record = read_record(path)
    record.created = "2026-12-08T00:00:00"
    write_record(record, path)
    status = dv.check(report, tmp_path)
    assert status.status == "stale" and any("fraction=0.25" in r for r in status.reasons)

    # the dashboard's own section shows the report's answer and its figure (read, not re-tested)
    from skinbench.results.dashboard import scaling_section

    section = scaling_section(tmp_path)
    sentence = text.split("**")[-2]
    assert sentence.startswith("Crossover at 25 %") and sentence in section
    assert "![learning curve: task1](learning_curves/task1.png)" in section
    assert "(learning_curves/task1.md)" in section and "task1.md.key" not in section


def test_no_crossover_is_said_plainly(tmp_path):
    from skinbench.results.learning_curves import crossover, crossover_sentence, curve_points

    _write_curve(tmp_path, deep=(0.05, 0.1, 0.15))  # deep never ahead of classical
    points = curve_points(tmp_path, "task1")
    result = crossover(points, "task1", n_boot=200)
    assert result.fraction is None
    assert crossover_sentence(result, points).startswith("No crossover within the data we hold")
    classical_only = [p for p in points if p.family == "classical"]
    result = crossover(classical_only, "task1", n_boot=50)
    assert result.deep is None and "no 100 % deep record" in crossover_sentence(result, classical_only)


def test_a_sweep_config_with_fractions_runs_from_the_cli_and_a_bad_fraction_is_one_line(tmp_path, capsys):
    """``fractions`` in a sweep TOML: the user's way to a curve of their own (``skinbench sweep --config``)."""
    from skinbench import cli

    good = tmp_path / "curve.toml"
    good.write_text('name = "mine"\ntasks = ["task1"]\napproaches = ["majority"]\nseeds = [0]\ndataset = "synthetic"\n'
                    'n_boot = 10\nfractions = [0.5, 1]\n')
    assert cli.main(["sweep", "--config", str(good), "--workers", "0", "--results", str(tmp_path / "r")]) == 0
    assert list((tmp_path / "r" / "mine" / "task1" / "fraction=0.5" / "runs").rglob("majority.json"))
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text('tasks = ["task1"]\napproaches = ["majority"]\nfractions = [0.5, 5]\n')
    assert cli.main(["sweep", "--config", str(bad), "--workers", "0", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training fraction 5 is not in (0, 1]" in err[0]


def test_a_limited_curve_must_go_to_a_scratch_folder():
    """``--limit`` without ``--results`` would overwrite the committed 100 % records with limited ones."""
    import subprocess
    import sys

    from skinbench.paths import REPO_ROOT

    out = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "learning_curves.py"), "--tasks", "task1",
                          "--limit", "50"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "learning_curves: error: --limit makes scratch records Fix: pass --results DIR (a scratch folder) with --limit"]
