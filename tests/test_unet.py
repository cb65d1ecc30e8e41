"""U-Net segmenter, losses and the paired augmentation on tiny synthetic data."""

from __future__ import annotations

import keras
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from skinbench.approaches import seg_losses  # noqa: E402
from skinbench.approaches.seg_data import PairAugment, load_pairs  # noqa: E402
from skinbench.approaches.seg_threshold import recalibrate  # noqa: E402
from skinbench.approaches.unet import UNetSegmenter, build_unet  # noqa: E402
from skinbench.errors import ConfigError  # noqa: E402


def _mask():
    m = np.zeros((2, 16, 16, 1), np.float32)
    m[:, 4:10, 5:12] = 1.0
    return m


@pytest.mark.parametrize("name", ["dice", "jaccard", "tversky", "focal_tversky"])
def test_overlap_losses_are_zero_for_perfect_and_high_for_inverse(name):
    m = _mask()
    loss = seg_losses.get_loss(name)
    assert float(loss(m, m)) == pytest.approx(0.0, abs=1e-3)
    assert float(loss(m, 1.0 - m)) > 0.9


def test_cross_entropies_order_and_weighting():
    m = _mask()
    half = np.full_like(m, 0.5)
    assert float(seg_losses.get_loss("bce")(m, m)) < 1e-3
    assert float(seg_losses.get_loss("bce")(m, half)) == pytest.approx(np.log(2), rel=1e-3)
    wbce = float(seg_losses.get_loss("wbce", pos_weight=10.0)(m, half))
    frac = m.mean()
    assert wbce == pytest.approx(np.log(2) * (10 * frac + (1 - frac)), rel=1e-3)
    assert float(seg_losses.get_loss("focal")(m, half)) < float(seg_losses.get_loss("bce")(m, half))


def test_unknown_loss_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown segmentation loss"):
        seg_losses.get_loss("nope")


def test_augmentation_moves_image_and_mask_together():
    rng = np.random.default_rng(0)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:40, 20:50] = 1
    image = np.repeat((mask * 255)[..., None], 3, axis=2).astype(np.uint8)
    aug = PairAugment(brightness=(1.0, 1.0))
    changed = 0
    for _ in range(10):
        img2, m2 = aug(image, mask, rng)
        changed += int((m2 != mask).any())
        assert set(np.unique(m2)) <= {0, 1}
        agree = ((img2[..., 0] > 127) == (m2 > 0)).mean()
        assert agree > 0.98
    assert changed >= 8  # the augmentation really transforms


def test_brightness_changes_image_only():
    rng = np.random.default_rng(1)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 1
    image = np.full((32, 32, 3), 100, np.uint8)
    aug = PairAugment(rotation=0, shift=0, zoom=0, flip=False, brightness=(1.5, 1.5))
    img2, m2 = aug(image, mask, rng)
    assert np.allclose(img2, 150) and (m2 == mask).all()


def test_recalibrate_puts_threshold_at_half():
    p = np.array([0.0, 0.2, 0.3, 0.31, 1.0], np.float32)
    q = recalibrate(p, 0.3)
    assert ((q >= 0.5) == (p >= 0.3)).all() and q[0] == 0 and q[-1] == pytest.approx(1.0)


def test_build_unet_shapes_width_depth_and_dropout():
    model = build_unet(32, base_filters=4, depth=2)
    assert model.output_shape == (None, 32, 32, 1)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    wider = build_unet(32, base_filters=8, depth=3, dropout=0.3)
    drops = [layer for layer in wider.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(drops) == 4 and all(d.rate == 0.3 for d in drops)  # bottleneck + 3 expanding blocks
    assert wider.count_params() > model.count_params()


def test_fit_predict_resume(synthetic_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr, te = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    kw = dict(input_size=32, base_filters=4, depth=2, epochs=1, batch_size=8, verbose=0)
    est = UNetSegmenter(**kw).fit(tr.paths, tr.masks("lesion"))
    maps = list(est.predict_proba(te.paths[:2]))
    first = te.paths[0]
    from skinbench.data.images import image_size

    w, h = image_size(first)
    assert maps[0].shape == (h, w) and maps[0].dtype == np.float32
    assert 0.0 <= maps[0].min() and maps[0].max() <= 1.0
    assert est.train_state_["epoch"] == 0 and (est.run_dir_ / "best.weights.h5").exists()
    # a longer run with the same data resumes from the saved epoch instead of restarting
    state = est.train_state_
    est2 = UNetSegmenter(**{**kw, "epochs": 2})
    run_dir = est2._run_dir(np.asarray(tr.paths), np.asarray(tr.masks("lesion")), None, est.validation_index_)
    (run_dir).mkdir(parents=True, exist_ok=True)
    for name in ("last.weights.h5", "best.weights.h5", "state.json"):
        (run_dir / name).write_bytes((est.run_dir_ / name).read_bytes())
    est2.fit(tr.paths, tr.masks("lesion"))
    assert [h["loss"] for h in est2.train_state_["history"]][0] == pytest.approx(state["history"][0]["loss"])
    assert est2.train_state_["epoch"] == 1 and len(est2.train_state_["history"]) == 2
    # exported float16 weights load back as a checkpoint (no training)
    est2.export_weights(tmp_path / "w.npz")
    est3 = UNetSegmenter(**{**kw, "checkpoint": str(tmp_path / "w.npz")}).fit(tr.paths, tr.masks("lesion"))
    a, b = next(est2.predict_proba(te.paths[:1])), next(est3.predict_proba(te.paths[:1]))
    assert np.abs(a - b).max() < 0.05


#: stated tolerance of interrupt-then-resume vs an uninterrupted fit. On CPU the two were bit-identical
#: (same weights, Adam moments, step count and batches); GPU kernels may sum in another order.
RESUME_ATOL = 1e-6


def test_interrupted_fit_resumes_to_the_uninterrupted_weights(synthetic_dataset, tmp_path, monkeypatch):
    """Ctrl-C after epoch 1 of 2, then the same fit again: it resumes (optimizer state, batch order and
    augmentation of epoch 2 restored) and ends where a 2-epoch fit from scratch ends."""
    import warnings

    from skinbench.approaches import seg_checkpoints

    tr = synthetic_dataset.split("train")
    kw = dict(input_size=32, base_filters=4, depth=2, epochs=2, batch_size=8, patience=0, verbose=0)

    def fit(cache: str) -> UNetSegmenter:
        monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / cache))
        return UNetSegmenter(**kw).fit(tr.paths, tr.masks("lesion"), groups=tr.groups)

    straight = fit("straight")
    real_epoch_end = seg_checkpoints.Checkpointer.on_epoch_end

    def interrupt_after_first_epoch(self, epoch, logs=None):
        real_epoch_end(self, epoch, logs)  # epoch 1's checkpoint and state are written, then Ctrl-C
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(seg_checkpoints.Checkpointer, "on_epoch_end", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit("resumed")
    monkeypatch.setattr(seg_checkpoints.Checkpointer, "on_epoch_end", real_epoch_end)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = fit("resumed")
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]  # optimizer state loaded
    for a, b in zip(straight.train_state_["history"], resumed.train_state_["history"], strict=True):
        assert a.pop("seconds") > 0 and b.pop("seconds") > 0  # wall time: the one entry allowed to differ
        assert b == pytest.approx(a, abs=RESUME_ATOL)
    last = {}
    for name, est in (("straight", straight), ("resumed", resumed)):
        est.model_.load_weights(str(est.run_dir_ / "last.weights.h5"))
        last[name] = est.model_.get_weights()
    for a, b in zip(last["straight"], last["resumed"], strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=RESUME_ATOL)


def test_masks_inverted_resized_nonbinary_are_normalised(tmp_path):
    import cv2

    img = np.full((40, 60, 3), 120, np.uint8)
    cv2.imwrite(str(tmp_path / "i.png"), img)
    truth = np.zeros((80, 120), np.uint8)
    truth[20:60, 30:90] = 1
    cv2.imwrite(str(tmp_path / "inverted.png"), (1 - truth) * 255)   # lesion = 0, twice the image size
    cv2.imwrite(str(tmp_path / "grey.png"), truth * 200 + 10)        # not binary
    _, masks = load_pairs([str(tmp_path / "i.png")] * 3,
                          [str(tmp_path / "inverted.png"), str(tmp_path / "grey.png"), ""], 20)
    expect = cv2.resize(truth, (20, 20), interpolation=cv2.INTER_NEAREST)
    assert (masks[0] == expect).all() and (masks[1] == expect).all() and masks[2].sum() == 0
