"""Partial fine-tuning: cut points, the activation cache and its bad inputs, cached stages, TTA."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skinbench.approaches import activations, backbones, finetune, tfdata, transfer
from skinbench.approaches.finetune import PartialFinetuneClassifier
from skinbench.errors import ConfigError

PARTIAL = dict(input_size=32, n_views=1, batch_size=16, patience=2,
               stages=[("head", 1e-3, 2), ("top", 1e-3, 2)])


def test_cut_points_default_and_errors():
    assert backbones.resolve_cut("mobilenet_v2", None) == "block_13"
    assert backbones.resolve_cut("vgg16", None) == "block5"
    with pytest.raises(ConfigError, match="block_99") as err:
        backbones.resolve_cut("mobilenet_v2", "block_99")
    assert "block_13" in err.value.fix and "Conv_1" in err.value.fix  # names the valid cut points
    with pytest.raises(ConfigError, match="no cut points"):
        backbones.resolve_cut("resnet50", None)


def test_a_bad_cut_fails_before_any_work(synthetic_dataset, monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("a backbone was built for an invalid configuration")

    monkeypatch.setattr(finetune, "build_partial", no_build)
    train = synthetic_dataset.split("train")
    with pytest.raises(ConfigError, match="not a cut point"):
        PartialFinetuneClassifier(weights=None, **PARTIAL, cut="block_40").fit(train.paths, train.y, train.groups)
    with pytest.raises(ConfigError, match="head, top, all in that order"):
        PartialFinetuneClassifier(weights=None, **{**PARTIAL, "stages": [("top", 1e-3, 1), ("head", 1e-3, 1)]}).fit(
            train.paths, train.y, train.groups)


@pytest.mark.parametrize("backbone,cut", [("mobilenet_v2", "block_13"), ("mobilenet_v2", "block_14"),
                                          ("vgg16", "block5")])
def test_the_split_network_computes_the_whole_one(backbone, cut):
    """lower then upper (a cut inside a residual stage too) gives the backbone's own output."""
    import keras

    pool = keras.layers.GlobalAveragePooling2D()
    models = finetune.build_partial(backbone, None, 32, cut, transfer.head_layers(2, np.zeros(1)), pool)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    act = models.extract(x)
    whole = pool(models.base(keras.layers.Lambda(backbones.preprocess_fn(backbone))(x)))
    np.testing.assert_allclose(models.pooled(act), whole, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(models.top(act), models.full(x), rtol=1e-5, atol=1e-5)


def _store(tmp_path, **settings):
    base = {"backbone": "mobilenet_v2", "weights": "w1", "size": 32, "cut": "block_13", "augment": None,
            "view_seed": 0}
    return activations.ActivationStore({**base, **settings}, (2, 2, 3), tmp_path)


def test_activations_of_other_settings_are_never_reused(tmp_path):
    store = _store(tmp_path)
    store.add([("d1", 0)], np.ones((1, 2, 2, 3)))
    assert _store(tmp_path).index.keys() == {("d1", 0)}  # same settings: found again
    for change in ({"cut": "block_14"}, {"size": 64}, {"backbone": "vgg16"}, {"weights": "w2"},
                   {"augment": {"rotation": 5}}):
        assert _store(tmp_path, **change).missing([("d1", 0)]) == [("d1", 0)], change
    # a shard whose JSON claims other settings (copied between folders) is dropped, not read
    other = _store(tmp_path, cut="block_14")
    for f in store.dir.iterdir():
        (other.dir / f.name).parent.mkdir(parents=True, exist_ok=True)
        (other.dir / f.name).write_bytes(f.read_bytes())
    reopened = _store(tmp_path, cut="block_14")
    assert not reopened.index and reopened.dropped


@pytest.mark.parametrize("damage", ["flip", "truncate", "json"])
def test_a_damaged_activation_shard_is_detected_and_rebuilt(tmp_path, damage):
    store = _store(tmp_path)
    values = np.arange(24, dtype=np.float32).reshape(2, 2, 2, 3)
    store.add([("a", 0), ("b", 0)], values)
    data = next(store.dir.glob("*.f16"))
    raw = bytearray(data.read_bytes())
    if damage == "flip":
        raw[5] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "truncate":
        data.write_bytes(bytes(raw[:-4]))
    else:
        meta = data.with_suffix(".json")
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "shape": [1, 1, 1]}))
    again = _store(tmp_path)
    assert again.missing([("a", 0), ("b", 0)]) == [("a", 0), ("b", 0)] and again.dropped
    assert not any(again.dir.iterdir())  # the damaged files are gone
    again.add([("a", 0), ("b", 0)], values)
    np.testing.assert_array_equal(_store(tmp_path).gather(_store(tmp_path).locate([("b", 0), ("a", 0)])),
                                  values[::-1])


def test_fill_computes_only_what_is_missing_and_resumes(synthetic_dataset, tmp_path, monkeypatch):
    import keras

    from skinbench.cache import file_digest

    paths = list(synthetic_dataset.paths[:6])
    digests = [file_digest(p) for p in paths]
    models = finetune.build_partial("mobilenet_v2", None, 32, None, transfer.head_layers(2, np.zeros(1)),
                                    keras.layers.GlobalAveragePooling2D())
    store = activations.ActivationStore({"t": 1}, models.activation_shape, tmp_path)
    monkeypatch.setattr(activations, "SHARD_ROWS", 4)
    activations.fill(store, paths[:4], digests[:4], [0], model=models.extract, size=32, augment=None, seed=0,
                     progress=False)
    (store.dir / "interrupted.f16").write_bytes(b"half a shard")  # data whose JSON never landed
    calls = []
    real = tfdata.compiled
    monkeypatch.setattr(tfdata, "compiled", lambda m, **k: (calls.append(1), real(m, **k))[1])
    reopened = activations.ActivationStore({"t": 1}, models.activation_shape, tmp_path)
    assert not (store.dir / "interrupted.f16").exists()
    activations.fill(reopened, paths, digests, [0, 1], model=models.extract, size=32, augment=tfdata.AUGMENT_BINARY,
                     seed=0, progress=False)
    assert len(reopened.index) == 12 and calls  # 8 computed now, 4 found
    expected = np.asarray(models.extract(next(iter(tfdata.image_dataset(paths[:4], (32, 32))))))
    got = reopened.gather(reopened.locate([(d, 0) for d in digests[:4]]))
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)  # float16 storage


def test_partial_fit_caches_its_stages(synthetic_dataset, mobilenet32_weights, tmp_path, monkeypatch):
    train, test = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    clf = PartialFinetuneClassifier(weights=mobilenet32_weights, **PARTIAL, cache_dir=tmp_path, tta="auto")
    first = clf.fit(train.paths, train.y, train.groups).predict_proba(test.paths)
    assert [s["stage"] for s in clf.stage_log_] == ["activations", "head", "top"]
    assert not any(s.get("cached") for s in clf.stage_log_)
    assert set(clf.tta_scores_) == {"none", "flips"}
    assert clf.tta_ == (clf.tta_scores_["flips"] > clf.tta_scores_["none"])
    np.testing.assert_allclose(first.sum(1), 1, atol=1e-6)

    def no_training(*a, **k):
        raise AssertionError("a finished stage was trained again")

    # (a context, not monkeypatch.undo(): that would also undo conftest's environment, the engine included)
    with monkeypatch.context() as patch:
        patch.setattr(PartialFinetuneClassifier, "_fit_stage", no_training)
        again = PartialFinetuneClassifier(weights=mobilenet32_weights, **PARTIAL, cache_dir=tmp_path, tta="auto")
        np.testing.assert_allclose(again.fit(train.paths, train.y, train.groups).predict_proba(test.paths), first,
                                   atol=1e-5)
        assert [s.get("cached") for s in again.stage_log_] == [True, True]
    # a longer schedule reuses the finished head stage and trains only the new one
    longer = PartialFinetuneClassifier(weights=mobilenet32_weights, **{**PARTIAL, "stages": [("head", 1e-3, 2), ("top", 1e-3, 3)]},
                                cache_dir=tmp_path)
    longer.fit(train.paths, train.y, train.groups)
    assert [s.get("cached") for s in longer.stage_log_ if s["stage"] != "activations"] == [True, False]


def test_a_damaged_stage_file_is_retrained(synthetic_dataset, mobilenet32_weights, tmp_path):
    train = synthetic_dataset.split("train")
    kw = dict(weights=mobilenet32_weights, **{**PARTIAL, "stages": [("head", 1e-3, 1)]}, cache_dir=tmp_path)
    PartialFinetuneClassifier(**kw).fit(train.paths, train.y, train.groups)
    for f in (tmp_path / "transfer_stages").glob("*.weights.h5"):
        f.write_bytes(b"garbage")
    clf = PartialFinetuneClassifier(**kw).fit(train.paths, train.y, train.groups)
    assert clf.stage_log_[-1]["cached"] is False


def test_end_to_end_stage_at_a_reduced_size(synthetic_dataset):
    train, test = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    clf = PartialFinetuneClassifier(weights=None, **{**PARTIAL, "input_size": 48, "finetune_size": 32,
                                              "stages": [("head", 1e-3, 1), ("top", 1e-3, 1), ("all", 1e-4, 1)]})
    clf.fit(train.paths, train.y, train.groups)
    assert [h["stage"] for h in clf.history_] == ["head", "top", "all"]
    log = {s["stage"]: s for s in clf.stage_log_}
    # each stage starts from the previous best: the top stage never ends below the head's score
    assert log["top"]["val_score"] >= log["head"]["val_score"]
    # the smaller end-to-end model predicts only if it beat the top stage on validation
    assert log["all"]["used"] == (log["all"]["val_score"] > log["top"]["val_score"])
    assert clf.predict_size_ == (32 if log["all"]["used"] else 48)
    assert np.isfinite(clf.predict_proba(test.paths)).all()


def test_flip_tta_is_the_mean_over_flips():
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    views = [x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]]
    expected = np.mean([np.asarray(model(v)) for v in views], axis=0)
    np.testing.assert_allclose(np.asarray(tfdata.compiled(model, tta=True)(x)), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.asarray(tfdata.compiled(model)(x)), expected)


def test_tta_needs_the_image_model():
    """The features estimator predicts from cached features of the image alone: it takes no ``tta``,
    so `-p tta=flips` is refused by name before any work, with the parameters it does take."""
    from skinbench.params import validate_params

    with pytest.raises(ConfigError, match="approach 'transfer-mobilenetv2' has no parameter 'tta'"):
        validate_params("transfer-mobilenetv2", "task1", {"tta": "flips"})
    assert validate_params("transfer-mobilenetv2-ft-top", "task1", {"tta": "flips"}) == {"tta": "flips"}


def test_end_to_end_training_keeps_batchnorm_statistics(synthetic_dataset):
    """Keras 3 updates a trainable BatchNorm's moving statistics even under training=False: set_stage
    freezes them, in the end-to-end stage as in the GPU fine-tuning path."""
    import keras

    model, base = transfer.full_model("mobilenet_v2", None, 32, 2, np.zeros(1))
    transfer.set_stage(base, "all", "mobilenet_v2")
    bn = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    before = [np.array(layer.moving_mean) for layer in bn]
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    model.fit(x, np.array([0, 1] * 4), epochs=1, verbose=0)
    assert all(np.array_equal(b, np.array(layer.moving_mean)) for b, layer in zip(before, bn))
    trainable = {w.path for w in model.trainable_weights}
    assert {"Conv1/kernel", "Conv_1/kernel"} <= trainable  # the backbone trains (random init: tiny steps)
    assert not any("gamma" in p or "beta" in p for p in trainable)  # BatchNorm does not


def test_balanced_draws_make_every_class_equally_likely_and_shuffle_is_a_permutation():
    y = np.array([0] * 90 + [1] * 9 + [2] * 1)
    rng = np.random.default_rng(0)
    draws = np.concatenate([activations.draw_order(rng, y, "balanced") for _ in range(200)])
    share = np.bincount(y[draws], minlength=3) / len(draws)
    np.testing.assert_allclose(share, [1 / 3] * 3, atol=0.01)
    # the default draws what it drew before the option existed (same generator calls): records stay current
    assert np.array_equal(activations.draw_order(np.random.default_rng(5), y), np.random.default_rng(5).permutation(100))
    with pytest.raises(ConfigError, match="unknown sampling 'oversample'") as err:
        PartialFinetuneClassifier(sampling="oversample").fit(np.array(["a.png", "b.png"]), np.array([0, 1]))
    assert "balanced" in err.value.fix


def test_balanced_sampling_trains_its_own_stages_on_the_shared_activations(synthetic_dataset, mobilenet32_weights,
                                                                           tmp_path):
    train, test = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    kw = dict(weights=mobilenet32_weights, **{**PARTIAL, "stages": [("head", 1e-3, 1), ("top", 1e-3, 1)]},
              cache_dir=tmp_path)
    PartialFinetuneClassifier(**kw).fit(train.paths, train.y, train.groups)
    balanced = PartialFinetuneClassifier(**kw, sampling="balanced", class_weight=None).fit(
        train.paths, train.y, train.groups)
    log = {s["stage"]: s for s in balanced.stage_log_}
    assert log["activations"]["cached"] and not log["head"]["cached"] and not log["top"]["cached"]
    np.testing.assert_allclose(balanced.predict_proba(test.paths).sum(1), 1, atol=1e-6)


def test_task2_recipes_script_runs_points_and_chooses_on_validation(tmp_path):
    """benchmarks/task2_recipes.py (issue 33): each recipe is a sweep point with its own record; the report
    names the recipe with the best validation score, whatever the test column says."""
    from scripts import load_script
    from skinbench.results.records import load_records

    script = load_script("task2_recipes")
    quick = {"weights": None, "input_size": 32, "n_views": 1, "stages": [["head", 1e-3, 1], ["top", 1e-3, 1]],
             "tta": "none"}
    assert script.main(["--workers", "0", "--dataset", "synthetic", "--limit", "48", "--results", str(tmp_path),
                        "--params", json.dumps(quick), "--recipes", "registered", "balanced-sampling"]) == 0
    folder = tmp_path / "sweeps" / script.NAME
    balanced = load_records(folder / "balanced-sampling")[0]
    assert balanced.params["sampling"] == "balanced" and balanced.params["class_weight"] is None
    val = {name: load_records(folder / name)[0].extras["fit"]["val_scores"]["balanced_accuracy"]
           for name in ("registered", "balanced-sampling")}
    text = (tmp_path / "sweeps" / f"{script.NAME}.md").read_text()
    assert f"Chosen on validation: **{max(val, key=val.get)}**" in text
    with pytest.raises(ConfigError, match="scratch records"):
        script.main(["--limit", "48"])
