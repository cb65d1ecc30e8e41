"""What a segmenter chooses on its validation images: the cut (refined past the grid's ends), flip
test-time augmentation, and which epoch's weights it keeps (``select_by``)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from skinbench.approaches.seg_threshold import GRID, best_threshold, tuned_threshold  # noqa: E402
from skinbench.approaches.ynet import MobileNetUNetSegmenter, YNetSegmenter  # noqa: E402
from skinbench.errors import ConfigError  # noqa: E402

TINY = dict(input_size=32, weights=None, epochs=1, batch_size=8, verbose=0)


def _maps(best_cut: float) -> tuple[np.ndarray, np.ndarray]:
    """Truth and probabilities whose pooled Jaccard is highest when cut at ``best_cut``: the foreground
    sits just above it, background spread up to just below it."""
    rng = np.random.default_rng(0)
    truth = np.zeros((4, 20, 20), bool)
    truth[:, 5:12, 5:12] = True
    prob = rng.uniform(0.0, best_cut * 0.95, truth.shape)
    prob[truth] = best_cut + 1e-3
    return truth, prob.astype(np.float32)


def test_a_cut_below_the_grid_is_found_and_an_inner_cut_is_left_as_it_was():
    truth, prob = _maps(0.02)
    coarse, coarse_score = best_threshold(truth, prob)
    fine, fine_score = tuned_threshold(truth, prob)
    assert coarse == GRID[0] and coarse_score < 0.5  # the grid's floor cuts away all the foreground
    assert fine == pytest.approx(0.02) and fine_score == pytest.approx(1.0)
    truth, prob = _maps(0.32)  # inside the grid: the same cut and score as the grid alone
    assert tuned_threshold(truth, prob) == best_threshold(truth, prob)
    truth, _ = _maps(0.5)
    prob = np.where(truth, 0.985, np.linspace(0.0, 0.97, truth.size).reshape(truth.shape)).astype(np.float32)
    assert best_threshold(truth, prob)[0] == GRID[-1]  # background up to 0.97: above the grid's top
    assert tuned_threshold(truth, prob) == (pytest.approx(0.98), pytest.approx(1.0))


def test_flip_tta_is_the_mean_of_the_flipped_back_maps(synthetic_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr = synthetic_dataset.split("train")
    est = MobileNetUNetSegmenter(**TINY, tta="flips").fit(tr.paths, tr.masks("lesion"))
    x = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    views = [est.model_.predict(v, verbose=0)[..., 0] for v in (x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1])]
    expected = (views[0] + views[1][:, :, ::-1] + views[2][:, ::-1] + views[3][:, ::-1, ::-1]) / 4
    np.testing.assert_allclose(est._predict_arrays(x, tta=True)[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est._predict_arrays(x, tta=False)[0], views[0], rtol=1e-6, atol=1e-7)
    assert est.tta_ and est._predict_arrays(x)[0] == pytest.approx(expected, abs=1e-6)  # fit chose flips


def test_auto_tta_keeps_flips_only_when_they_score_higher_and_shares_the_training(synthetic_dataset, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr = synthetic_dataset.split("train")
    plain = MobileNetUNetSegmenter(**TINY).fit(tr.paths, tr.masks("lesion"))
    auto = MobileNetUNetSegmenter(**TINY, tta="auto").fit(tr.paths, tr.masks("lesion"))
    assert auto.run_dir_ == plain.run_dir_  # prediction-only: the same training folder, not retrained
    assert plain.tta_ is False and plain.tta_scores_ is None
    scores = auto.tta_scores_
    assert set(scores) == {"none", "flips"} and auto.tta_ == (scores["flips"] > scores["none"])
    assert scores["none"] == pytest.approx(plain.validation_jaccard_)
    assert auto.validation_jaccard_ == pytest.approx(max(scores.values()))
    from skinbench.scoring import fit_summary

    assert fit_summary(auto)["tta"] == {"validation": scores, "used": auto.tta_}


def test_flip_tta_averages_the_class_head_too():
    # a two-headed stand-in whose class scores change under a flip (Flatten keeps positions)
    inputs = keras.Input((8, 8, 3))
    seg = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
    cls = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))
    est = YNetSegmenter(batch_size=4)
    est.model_, est.tta_ = keras.Model(inputs, {"seg": seg, "cls": cls}), True
    x = np.random.default_rng(2).uniform(0, 1, (3, 8, 8, 3)).astype(np.float32)
    views = [est.model_.predict(v, verbose=0)["cls"] for v in (x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1])]
    assert np.abs(views[1] - views[0]).max() > 1e-3  # the head does see the flip (else the check is empty)
    np.testing.assert_allclose(est._predict_arrays(x)[1], np.mean(views, axis=0), rtol=1e-5, atol=1e-7)


def test_unknown_tta_is_a_config_error(synthetic_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr = synthetic_dataset.split("train")
    with pytest.raises(ConfigError, match="unknown tta 'rot90'"):
        MobileNetUNetSegmenter(**TINY, tta="rot90").fit(tr.paths, tr.masks("lesion"))


def test_select_by_val_jaccard_keeps_the_epoch_with_the_best_validation_jaccard(synthetic_dataset, tmp_path,
                                                                                monkeypatch, capsys):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SKINBENCH_PROGRESS", raising=False)
    tr = synthetic_dataset.split("train")
    est = MobileNetUNetSegmenter(**{**TINY, "epochs": 3, "verbose": None},
                                 select_by="val_jaccard").fit(tr.paths, tr.masks("lesion"))
    history = est.train_state_["history"]
    scores = [h["val_jaccard"] for h in history]
    # each epoch line shows the number that judges it
    lines = [line for line in capsys.readouterr().err.splitlines() if " epoch " in line]
    assert [f"val_jaccard {v:.4f}" in line for line, v in zip(lines, scores)] == [True] * 3, lines
    assert all(0.0 <= v <= 1.0 for v in scores) and len(scores) == 3
    assert est.train_state_["best"] == pytest.approx(max(scores))
    assert est.train_state_["best_epoch"] == int(np.argmax(scores))
    # the kept weights are that epoch's: the validation Jaccard fit reports is the callback's number again
    assert est.validation_jaccard_ == pytest.approx(max(scores), abs=1e-6)


def test_default_select_by_trains_into_the_folder_it_had_before_the_parameter(synthetic_dataset, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr = synthetic_dataset.split("train")
    X, masks, va = np.asarray(tr.paths), np.asarray(tr.masks("lesion")), np.arange(4)
    est = MobileNetUNetSegmenter(**TINY)
    before = MobileNetUNetSegmenter(**TINY)
    params = before.get_params()
    params.pop("select_by")
    monkeypatch.setattr(before, "get_params", lambda deep=True: params)  # as the class was without it
    assert est._run_dir(X, masks, None, va) == before._run_dir(X, masks, None, va)
    other = MobileNetUNetSegmenter(**TINY, select_by="val_jaccard")
    assert other._run_dir(X, masks, None, va) != est._run_dir(X, masks, None, va)
    with pytest.raises(ConfigError, match="unknown select_by"):
        MobileNetUNetSegmenter(**TINY, select_by="auc").fit(tr.paths, tr.masks("lesion"))
