"""MobileNetV2 U-Net and Y-Net: architecture, joint training, the classification head, clear errors.

Random encoders (``weights=None``) and 32 px inputs keep every test at a few seconds; the ImageNet
weights path is covered by test_backbones.py.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from skinbench.approaches.ynet import (  # noqa: E402
    SKIPS, MobileNetUNetSegmenter, YNetClassifier, YNetSegmenter, build_mobilenet_unet)
from skinbench.data.images import image_size  # noqa: E402
from skinbench.errors import ConfigError, DataError, WeightsError  # noqa: E402

TINY = dict(input_size=32, weights=None, epochs=1, batch_size=8, verbose=0)


def test_ynet_has_a_segmentation_and_a_classification_head():
    model = build_mobilenet_unet(64, weights=None, n_classes=7)
    shapes = {name: tuple(t.shape) for name, t in zip(model.output_names, model.outputs)}
    assert shapes == {"seg": (None, 64, 64, 1), "cls": (None, 7)}
    encoder = model.get_layer("encoder")
    assert [o.shape[1] for o in encoder.outputs] == [2, 4, 8, 16, 32]  # bottleneck 1/32, skips 1/16 .. 1/2
    for name in SKIPS:
        encoder.get_layer(name)  # raises if the reference's skip layer is absent


def test_plain_unet_has_one_output_and_a_frozen_encoder_by_default():
    model = build_mobilenet_unet(32, weights=None)
    assert model.output_shape == (None, 32, 32, 1)
    assert model.get_layer("encoder").trainable_weights == []
    tuned = build_mobilenet_unet(32, weights=None, train_encoder=True)
    assert len(tuned.trainable_weights) > len(model.trainable_weights)


def test_ynet_needs_labels():
    with pytest.raises(ConfigError, match="needs y"):
        YNetSegmenter(**TINY).fit(["a.png"] * 4, ["a_m.png"] * 4)


def test_ynet_trains_both_heads_jointly(synthetic_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr, te = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    n_classes = len(synthetic_dataset.class_names)
    est = YNetSegmenter(**TINY).fit(tr.paths, tr.masks("lesion"), tr.y)
    history = est.train_state_["history"][0]
    assert {"seg_loss", "cls_loss"} <= set(history), history  # both heads were in the loss
    # class weights are balanced: the rarer class of the training part weighs more
    counts = np.bincount(tr.y, minlength=n_classes)
    present = np.flatnonzero(counts)
    rare, common = present[np.argmin(counts[present])], present[np.argmax(counts[present])]
    assert est.class_weights_[rare] > est.class_weights_[common]
    proba = est.predict_classes_proba(te.paths)
    assert proba.shape == (len(te), n_classes)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)
    maps = list(est.predict_proba(te.paths[:2]))
    w, h = image_size(te.paths[0])
    assert maps[0].shape == (h, w) and 0.0 <= maps[0].min() <= maps[0].max() <= 1.0


def test_ynet_classifier_trains_on_the_masks_it_is_given_and_scores_the_head(synthetic_dataset, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr, te = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    clf = YNetClassifier(input_size=32, weights=None, epochs=1, batch_size=8).fit(
        tr.paths, tr.y, groups=tr.groups, masks=tr.masks("lesion"))
    proba = clf.predict_proba(te.paths)
    assert proba.shape == (len(te), len(clf.classes_)) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)
    assert (clf.predict(te.paths) == clf.classes_[proba.argmax(axis=1)]).all()


def test_ynet_classifier_needs_a_mask_for_every_image(synthetic_dataset):
    """Masks come from the runner (Dataset.masks), never guessed from paths: none or a gap is a clear error."""
    import skinbench.approaches.ynet as ynet

    assert not hasattr(ynet, "ham_mask_path")
    tr = synthetic_dataset.split("train")
    clf = YNetClassifier(input_size=32, weights=None, epochs=1)
    with pytest.raises(ConfigError, match="lesion masks"):
        clf.fit(tr.paths, tr.y)
    masks = tr.masks("lesion").copy()
    masks[3] = ""
    with pytest.raises(DataError) as err:
        clf.fit(tr.paths, tr.y, masks=masks)
    assert tr.paths[3] in str(err.value) and "1 of" in str(err.value)


def test_checkpoint_of_another_architecture_is_a_weights_error(synthetic_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr = synthetic_dataset.split("train")
    unet = MobileNetUNetSegmenter(**TINY).fit(tr.paths, tr.masks("lesion"))
    unet.export_weights(tmp_path / "unet.npz")
    with pytest.raises(WeightsError, match="saved from unet_mobilenetv2 .*this model is ynet_mobilenetv2"):
        YNetSegmenter(**TINY, checkpoint=str(tmp_path / "unet.npz")).fit(tr.paths, tr.masks("lesion"), tr.y)
    with pytest.raises(WeightsError, match="not found"):
        MobileNetUNetSegmenter(**TINY, checkpoint=str(tmp_path / "absent.npz")).fit(tr.paths, tr.masks("lesion"))


def test_ynet_classifier_scores_a_trained_ynet_checkpoint(synthetic_dataset, tmp_path, monkeypatch):
    """ynet-cls on task2 from the task4 Y-Net's weights: same head, no retraining (train_segmenters evaluate)."""
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr, te = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    ynet = YNetSegmenter(**TINY).fit(tr.paths, tr.masks("lesion"), tr.y)
    ynet.export_weights(tmp_path / "ynet.npz")
    clf = YNetClassifier(input_size=32, weights=None, checkpoint=str(tmp_path / "ynet.npz")).fit(
        tr.paths, tr.y, masks=tr.masks("lesion"))
    assert "checkpoint" in clf.ynet_.train_state_  # loaded, not trained
    assert np.abs(clf.predict_proba(te.paths) - ynet.predict_classes_proba(te.paths)).max() < 0.02


@pytest.fixture(scope="module")
def frozen_stage_cache(tmp_path_factory) -> str:
    """One cache folder for the fine-tuning tests: the frozen (decoder) stage is trained once, by the first
    of them, and found there by the other (each asserts what it needs of that reuse)."""
    return str(tmp_path_factory.mktemp("ynet_stages") / "cache")


def test_finetuning_reuses_the_frozen_stage_and_keeps_batchnorm_statistics(synthetic_dataset, frozen_stage_cache,
                                                                           monkeypatch):
    """Stage 2 trains the encoder's convolutions, never its BatchNorm statistics, and stage 1 is not redone."""
    monkeypatch.setenv("SKINBENCH_CACHE", frozen_stage_cache)
    tr = synthetic_dataset.split("train")

    def first_conv_and_bn_mean(est: MobileNetUNetSegmenter) -> tuple[np.ndarray, np.ndarray]:
        weights = est.model_.get_layer("encoder").weights
        conv = next(w for w in weights if "Conv1" in w.path and "kernel" in w.path)
        bn = next(w for w in weights if "moving_mean" in w.path)
        return np.array(conv), np.array(bn)

    frozen = MobileNetUNetSegmenter(**TINY).fit(tr.paths, tr.masks("lesion"), groups=tr.groups)
    conv_before, bn_before = first_conv_and_bn_mean(frozen)

    tuned = MobileNetUNetSegmenter(**TINY, finetune_epochs=1).fit(tr.paths, tr.masks("lesion"), groups=tr.groups)
    assert tuned.run_dir_ == frozen.run_dir_  # same stage-1 folder: its finished run was reused
    assert tuned.train_state_["head"]["epoch"] == frozen.train_state_["epoch"]
    assert len(tuned.train_state_["history"]) == 1  # one fine-tuning epoch ran
    assert any(p.name.startswith("finetune-") for p in tuned.run_dir_.iterdir())
    conv_after, bn_after = first_conv_and_bn_mean(tuned)
    assert not np.allclose(conv_after, conv_before)  # the encoder learned
    assert np.array_equal(bn_after, bn_before)  # ImageNet statistics kept


def test_finetuning_needs_a_pretrained_encoder(synthetic_dataset, tmp_path, monkeypatch):
    from skinbench.approaches.unet import UNetSegmenter

    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr = synthetic_dataset.split("train")
    est = UNetSegmenter(input_size=32, base_filters=4, depth=2, epochs=1, batch_size=8, verbose=0)
    est.finetune_epochs = 1  # not a UNetSegmenter parameter: set by hand to reach the guard
    with pytest.raises(ConfigError, match="no pretrained encoder"):
        est.fit(tr.paths, tr.masks("lesion"))


def test_ynet_segmenter_passes_every_parent_argument_by_name():
    """YNetSegmenter forwards its parent's hyper-parameters by keyword: a reordered parent cannot shift them."""
    values = dict(input_size=48, weights=None, train_encoder=True, loss="dice", learning_rate=0.5, epochs=7,
                  batch_size=3, validation_fraction=0.3, patience=2, augment=False, positive_fraction=0.25,
                  finetune_epochs=4, finetune_learning_rate=0.125, tune_threshold=False, checkpoint="c.npz",
                  random_state=11, verbose=1)
    est = YNetSegmenter(**values, seg_loss_weight=2.0, n_classes=3)
    assert {k: getattr(est, k) for k in values} == values
    assert est.get_params()["seg_loss_weight"] == 2.0 and est.get_params()["n_classes"] == 3


def test_ynet_cls_and_task4_ynet_share_one_training(synthetic_dataset, tmp_path, monkeypatch):
    """The registry gives ynet-cls (task2) the task4 Y-Net's parameters: one training folder serves both."""
    from skinbench import info

    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    assert info.approach("ynet-cls").params_for("task2") == info.approach("ynet").params_for("task4")
    tr = synthetic_dataset.split("train")
    params = {**TINY, "n_classes": int(tr.y.max()) + 1}
    params.pop("verbose")
    clf = YNetClassifier(**params).fit(tr.paths, tr.y, tr.groups, masks=tr.masks("lesion"))
    from skinbench.cache import ledger, ledger_since

    before = ledger()
    seg = YNetSegmenter(**params).fit(tr.paths, tr.masks("lesion"), tr.y, groups=tr.groups)
    assert seg.run_dir_ == clf.ynet_.run_dir_
    used = ledger_since(before)["segmenter_epochs"]
    assert used["misses"] == 0 and used["hits"] >= 1  # its epochs were found done, not trained again


def test_ynet_cls_with_more_classes_than_the_dataset_fails_before_training(tmp_path, monkeypatch):
    """The registry's 7 classes (HAM10000) on a 2-class dataset: one clear error, before any training."""
    from skinbench import runner
    from skinbench.errors import ConfigError

    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"set to 7 classes but dataset 'synthetic' has 2") as err:
        runner.run("task2", "ynet-cls", dataset="synthetic", params={"n_classes": 7, "weights": None,
                                                                    "input_size": 32, "epochs": 1},
                   results_root=tmp_path / "results", n_boot=0, dataset_kwargs={"labels": "binary"})
    assert "-p n_classes=2" in err.value.fix
    assert not (tmp_path / "cache" / "segmenters").exists()


def test_a_finetuning_stage_that_does_not_beat_the_first_keeps_its_weights(synthetic_dataset, frozen_stage_cache,
                                                                           monkeypatch):
    """Fine-tuning never makes the model worse on validation: with a learning rate that wrecks it, the
    decoder stage's best weights are what the fit ends with."""
    monkeypatch.setenv("SKINBENCH_CACHE", frozen_stage_cache)
    tr = synthetic_dataset.split("train")
    frozen = MobileNetUNetSegmenter(**TINY).fit(tr.paths, tr.masks("lesion"), groups=tr.groups)
    wrecked = MobileNetUNetSegmenter(**TINY, finetune_epochs=1, finetune_learning_rate=50.0).fit(
        tr.paths, tr.masks("lesion"), groups=tr.groups)
    state = wrecked.train_state_
    assert state["kept_previous"] and state["best"] == frozen.train_state_["best"] and state["best_epoch"] == -1
    for a, b in zip(frozen.model_.get_weights(), wrecked.model_.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_crop_trained_unet_trains_on_crops_and_predicts_whole_images(synthetic_dataset, tmp_path, monkeypatch):
    """crop_size: training batches are crop_size windows, the model takes any size, predictions cover each
    whole image; a checkpoint of the same sizes loads, one of another whole-image size is refused."""
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    from skinbench.approaches import seg_data

    seen = []
    original = seg_data.PairBatches.__getitem__

    def spy(self, i):
        batch = original(self, i)
        seen.append(batch[0].shape)
        return batch

    monkeypatch.setattr(seg_data.PairBatches, "__getitem__", spy)
    tr, te = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    est = MobileNetUNetSegmenter(**{**TINY, "input_size": 64}, crop_size=32).fit(tr.paths, tr.masks("lesion"))
    assert est.model_.inputs[0].shape[1:3] == (None, None)
    assert {s[1:3] for s in seen} == {(32, 32), (64, 64)}  # training crops, whole validation images
    prob = list(est.predict_proba(te.paths[:2]))
    assert [p.shape[::-1] for p in prob] == [image_size(p) for p in te.paths[:2]]
    est.export_weights(tmp_path / "crop.npz")
    again = MobileNetUNetSegmenter(**{**TINY, "input_size": 64}, crop_size=32, checkpoint=str(tmp_path / "crop.npz"))
    np.testing.assert_allclose(list(again.fit(tr.paths, tr.masks("lesion")).predict_proba(te.paths[:1]))[0],
                               prob[0], atol=1e-2)
    with pytest.raises(WeightsError, match="crop32_at64"):
        MobileNetUNetSegmenter(**{**TINY, "input_size": 96}, crop_size=32,
                               checkpoint=str(tmp_path / "crop.npz")).fit(tr.paths, tr.masks("lesion"))


@pytest.mark.parametrize("input_size, crop_size", [(64, 96), (64, 40), (80, 32)])
def test_crop_sizes_the_encoder_cannot_take_are_refused_before_training(synthetic_dataset, input_size, crop_size):
    tr = synthetic_dataset.split("train")
    with pytest.raises(ConfigError, match=f"crop_size={crop_size} with input_size={input_size}"):
        MobileNetUNetSegmenter(**{**TINY, "input_size": input_size}, crop_size=crop_size).fit(
            tr.paths, tr.masks("lesion"))
