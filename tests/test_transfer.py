"""Transfer classifier: head recipe, cached features, tf.data pipeline, fine-tuning stages, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from skinbench.approaches import backbones, tfdata, transfer
from skinbench.approaches.transfer import EndToEndTransferClassifier, FeatureTransferClassifier
from skinbench.errors import ConfigError, DataError

TINY = dict(weights=None, input_size=32, batch_size=16, patience=2)


def test_output_bias_and_class_weights():
    y = np.array([0] * 30 + [1] * 10)
    np.testing.assert_allclose(transfer.output_bias(y, 2), [np.log(10 / 30)], rtol=1e-3)
    w = transfer.class_weights(y, 2)
    assert w == pytest.approx({0: 40 / 60, 1: 40 / 20})
    y3 = np.array([0] * 6 + [1] * 3 + [2] * 1)
    np.testing.assert_allclose(np.exp(transfer.output_bias(y3, 3)), [0.6, 0.3, 0.1], rtol=1e-3)


@pytest.mark.parametrize("k", [2, 3])
def test_head_starts_at_the_prior(k):
    """With the output kernel zeroed, the untrained head predicts exactly the training prior."""
    y = np.array([0] * 6 + [1] * 3 + ([2] if k == 3 else [1]))
    head = transfer.head_model(8, k, transfer.output_bias(y, k))
    out = head.get_layer("head_out")
    out.set_weights([np.zeros_like(out.get_weights()[0]), out.get_weights()[1]])
    proba = transfer.as_proba(head.predict(np.random.default_rng(0).normal(size=(4, 8)), verbose=0))
    prior = np.bincount(y, minlength=k) / len(y)
    np.testing.assert_allclose(proba, np.tile(prior, (4, 1)), atol=1e-3)


def test_pipeline_handles_grayscale_odd_sizes_and_bad_files(tmp_path):
    import cv2

    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((37, 91), 200, np.uint8))
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.full((13, 7, 4), 50, np.uint8))
    batch = next(iter(tfdata.image_dataset([str(gray), str(rgba)], (24, 24))))
    assert batch.shape == (2, 24, 24, 3)
    np.testing.assert_allclose(batch.numpy()[0], 200, atol=1)
    np.testing.assert_allclose(batch.numpy()[1], 50, atol=1)
    with pytest.raises(DataError, match="missing.png"):
        tfdata.image_dataset([str(tmp_path / "missing.png")], (8, 8))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="bad.jpg"):
        transfer.extract_features([str(gray), str(bad)], weights=None, size=32, progress=False)


def test_augmented_views_are_deterministic_and_distinct(synthetic_dataset):
    paths = synthetic_dataset.paths[:2]
    seeds = transfer.view_seeds(["ab" * 32, "cd" * 32], view=1, seed=0)
    one = [b.numpy() for b in tfdata.image_dataset(paths, (40, 40), seeds=seeds, augment=tfdata.AUGMENT_MULTICLASS)]
    two = [b.numpy() for b in tfdata.image_dataset(paths, (40, 40), seeds=seeds, augment=tfdata.AUGMENT_MULTICLASS)]
    plain = next(iter(tfdata.image_dataset(paths, (40, 40)))).numpy()
    np.testing.assert_array_equal(one[0], two[0])
    assert np.abs(one[0] - plain).mean() > 1.0


def test_features_are_cached_by_content(synthetic_dataset, mobilenet32_weights, tmp_path, monkeypatch):
    paths = synthetic_dataset.paths[:5]
    kw = dict(backbone="mobilenet_v2", weights=mobilenet32_weights, size=32, views=(0, 1),
              augment=tfdata.AUGMENT_BINARY, cache_dir=tmp_path, progress=False)
    first = transfer.extract_features(paths, **kw)
    assert first.shape == (2, 5, 1280)
    assert np.abs(first[0] - first[1]).mean() > 0.01 * np.abs(first[0]).mean() > 0  # the view differs

    def no_model(*a, **k):
        raise AssertionError("the backbone ran although every feature was cached")

    monkeypatch.setattr(transfer, "feature_model", no_model)
    np.testing.assert_array_equal(transfer.extract_features(paths[::-1], **kw), first[:, ::-1])


def test_features_mode_fits_binary_and_multiclass(synthetic_dataset, mobilenet32_weights, tmp_path):
    from skinbench.data import synthetic

    train = synthetic_dataset.split("train")
    clf = FeatureTransferClassifier(weights=mobilenet32_weights, input_size=32, n_views=1, stages=[("head", 1e-3, 3)],
                             cache_dir=tmp_path, batch_size=16)
    clf.fit(train.paths, train.y, train.groups)
    proba = clf.predict_proba(synthetic_dataset.split("test").paths)
    assert proba.shape == (len(synthetic_dataset.split("test")), 2)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-6)
    assert clf.history_[0]["epochs"] >= 1 and clf.val_score_ is not None

    dx = synthetic.load(synthetic_dataset.root, n_images=48, seed=0, labels="dx")
    k = len(np.unique(dx.y))
    logreg = FeatureTransferClassifier(weights=mobilenet32_weights, input_size=32, n_views=0, head_solver="logreg",
                                cache_dir=tmp_path, val_size=0).fit(dx.paths, dx.y)
    assert logreg.predict_proba(dx.paths).shape == (len(dx), k)


def test_a_warm_feature_cache_trains_the_same_head_as_a_cold_one(synthetic_dataset, mobilenet32_weights, tmp_path):
    """Seeded runs agree whether the features were computed (drawing random numbers) or read from the cache."""
    train, test = synthetic_dataset.split("train"), synthetic_dataset.split("test")

    def fit_predict() -> np.ndarray:
        clf = FeatureTransferClassifier(weights=mobilenet32_weights, input_size=32, n_views=1, stages=[("head", 1e-3, 2)],
                                 cache_dir=tmp_path / "cache", batch_size=16, random_state=3)
        return clf.fit(train.paths, train.y, train.groups).predict_proba(test.paths)

    cold = fit_predict()
    assert any((tmp_path / "cache").rglob("*.npz"))  # the second fit reads the features from here
    np.testing.assert_allclose(fit_predict(), cold, rtol=1e-5, atol=1e-6)


def test_bad_labels_and_splits(synthetic_dataset):
    paths = synthetic_dataset.paths
    with pytest.raises(ConfigError, match="single class"):
        FeatureTransferClassifier(**TINY).fit(paths[:6], np.zeros(6, int))
    with pytest.raises(ConfigError, match="val_size=0"):  # 3 + 3 images cannot give a 15% stratified split
        FeatureTransferClassifier(**TINY).fit(paths[:6], np.array([0, 1, 0, 1, 0, 1]))
    with pytest.raises(ConfigError, match="only the head.*EndToEndTransferClassifier"):
        FeatureTransferClassifier(**TINY, stages=[("all", 1e-5, 1)]).fit(paths[:8], np.array([0, 1] * 4))
    with pytest.raises(ConfigError, match="unknown fine-tuning stage.*top"):  # before any model is built
        EndToEndTransferClassifier(**TINY, stages=[("head", 1e-3, 1), ("top", 1e-4, 1)]).fit(
            paths[:8], np.array([0, 1] * 4))


def test_empty_validation_trains_fixed_epochs(synthetic_dataset):
    clf = FeatureTransferClassifier(**TINY, n_views=0, val_size=0, stages=[("head", 1e-3, 2)])
    clf.fit(synthetic_dataset.paths[:8], np.array([0, 1] * 4))
    assert clf.history_[0]["epochs"] == 2 and clf.val_score_ is None


def test_set_stage_unfreezes_only_the_last_block():
    base = backbones.build("vgg16", (32, 32, 3), weights=None)
    transfer.set_stage(base, "last_block", "vgg16")
    trainable = {layer.name for layer in base.layers if layer.trainable and layer.weights}
    assert trainable == {"block5_conv1", "block5_conv2", "block5_conv3"}
    transfer.set_stage(base, "head", "vgg16")
    assert not base.trainable_weights
    with pytest.raises(ConfigError):
        transfer.set_stage(base, "middle", "vgg16")


@pytest.mark.parametrize("backbone,size", [("vgg16", 32), ("mobilenet_v2", 64)])
def test_finetune_runs_on_cpu_end_to_end(synthetic_dataset, backbone, size):
    """The GPU path on tiny data: tf.data + staged unfreezing, one tiny epoch per stage, random init."""
    train = synthetic_dataset.split("train")
    clf = EndToEndTransferClassifier(backbone=backbone, weights=None, input_size=size, batch_size=16,
                                     stages=[("head", 1e-3, 1), ("last_block", 1e-4, 1)], patience=1)
    clf.fit(train.paths, train.y, train.groups)
    assert [h["stage"] for h in clf.history_] == ["head", "last_block"]
    proba = clf.predict_proba(synthetic_dataset.split("test").paths)
    assert proba.shape[1] == 2 and np.isfinite(proba).all()
