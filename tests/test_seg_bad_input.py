"""Segmentation bad input (issue 15): checkpoints of another size or architecture, targets with no
positive training mask, an attribute folder missing; and the FPN builds and trains."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from skinbench.approaches.fpn import FPNSegmenter, build_mobilenet_fpn
from skinbench.approaches.unet import UNetSegmenter
from skinbench.approaches.seg_data import load_pairs, unpack_masks
from skinbench.approaches.ynet import MobileNetUNetSegmenter, MultiOutputUNetSegmenter
from skinbench.data import attributes
from skinbench.errors import DataError, WeightsError

TINY = dict(input_size=32, weights=None, epochs=1, batch_size=8, verbose=0)


def test_fpn_shapes_and_a_tiny_fit(synthetic_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    model = build_mobilenet_fpn(64, weights=None, pyramid_filters=16, segmentation_filters=8)
    assert tuple(model.output.shape) == (None, 64, 64, 1)
    assert {"lateral5", "lateral2", "p4", "p2", "merge"} <= {layer.name for layer in model.layers}
    tr, te = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    est = FPNSegmenter(**TINY, pyramid_filters=16, segmentation_filters=8).fit(tr.paths, tr.masks("lesion"), groups=tr.groups)
    probs = list(est.predict_proba(te.paths[:2]))
    assert probs[0].shape == cv2.imread(te.paths[0]).shape[:2] and 0 <= probs[0].min() <= probs[0].max() <= 1


def test_a_checkpoint_of_another_input_size_is_refused(synthetic_dataset, tmp_path, monkeypatch):
    """Convolution weights fit any input size, so only the stored signature can tell: it must."""
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr = synthetic_dataset.split("train")
    small = MobileNetUNetSegmenter(**TINY).fit(tr.paths, tr.masks("lesion"))
    small.export_weights(tmp_path / "w32.npz")
    with pytest.raises(WeightsError, match=r"at input \[32, 32, 3\], this model is unet_mobilenetv2 at input \[64"):
        MobileNetUNetSegmenter(**{**TINY, "input_size": 64}, checkpoint=str(tmp_path / "w32.npz")).fit(
            tr.paths, tr.masks("lesion"))
    # the training folder's own best weights carry the signature in its state.json
    best = small.run_dir_ / "best.weights.h5"
    assert json.loads((small.run_dir_ / "state.json").read_text())["signature"]["input_shape"] == [32, 32, 3]
    with pytest.raises(WeightsError, match="input"):
        MobileNetUNetSegmenter(**{**TINY, "input_size": 64}, checkpoint=str(best)).fit(tr.paths, tr.masks("lesion"))
    with pytest.raises(WeightsError, match="unet_mobilenetv2"):
        FPNSegmenter(**TINY, checkpoint=str(tmp_path / "w32.npz")).fit(tr.paths, tr.masks("lesion"))
    # same architecture and size: loaded, not trained
    same = MobileNetUNetSegmenter(**TINY, checkpoint=str(tmp_path / "w32.npz")).fit(tr.paths, tr.masks("lesion"))
    assert "checkpoint" in same.train_state_


def test_a_target_with_no_positive_training_mask_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "streaks"
    folder.mkdir()
    paths, masks = [], []
    for i in range(6):
        img = tmp_path / f"ISIC_{i}.png"
        cv2.imwrite(str(img), np.full((24, 32, 3), 40 * i, np.uint8))
        mask = folder / f"ISIC_{i}_attribute_streaks.png"
        cv2.imwrite(str(mask), np.zeros((24, 32), np.uint8))
        paths.append(str(img))
        masks.append(str(mask))
    with pytest.raises(DataError, match="none of the 6 training masks has a foreground pixel") as err:
        UNetSegmenter(input_size=32, epochs=1, batch_size=4, verbose=0).fit(np.array(paths), np.array(masks))
    assert "streaks" in str(err.value)  # names the folder, so the attribute


def test_an_empty_output_of_a_multi_output_model_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    paths, table = [], []
    for i in range(6):
        img = tmp_path / f"ISIC_{i}.png"
        cv2.imwrite(str(img), np.full((24, 32, 3), 40 * i, np.uint8))
        row = []
        for attr, value in (("globules", 255 * (i % 2)), ("negative_network", 0)):
            (tmp_path / attr).mkdir(exist_ok=True)
            mask = tmp_path / attr / f"ISIC_{i}_attribute_{attr}.png"
            cv2.imwrite(str(mask), np.full((24, 32), value, np.uint8))
            row.append(str(mask))
        paths.append(str(img))
        table.append(row)
    with pytest.raises(DataError, match="masks of output 1 has a foreground pixel") as err:
        MultiOutputUNetSegmenter(**TINY).fit(np.array(paths), np.array(table))
    assert "negative_network" in str(err.value)


def test_multi_output_masks_are_bit_packed_and_one_training_serves_every_output(synthetic_dataset, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    tr, te = synthetic_dataset.split("train"), synthetic_dataset.split("test")
    table = np.stack([tr.masks("globules"), tr.masks("streaks")], axis=1)
    _, packed = load_pairs(list(tr.paths), table, 32)
    _, globules = load_pairs(list(tr.paths), tr.masks("globules"), 32)
    _, streaks = load_pairs(list(tr.paths), tr.masks("streaks"), 32)
    assert np.array_equal(unpack_masks(packed, 2), np.stack([globules, streaks], axis=-1))
    first = MultiOutputUNetSegmenter(**TINY, output=0).fit(tr.paths, table, groups=tr.groups)
    assert tuple(first.model_.output.shape) == (None, 32, 32, 2)
    second = MultiOutputUNetSegmenter(**TINY, output=1).fit(tr.paths, table, groups=tr.groups)
    assert second.run_dir_ == first.run_dir_  # the output picked is not part of the training
    # the training's own epoch timings, also when it was found cached
    assert first.training_["epochs"] == 1 and first.training_["images_per_s"] > 0
    assert second.training_ == first.training_
    a, b = next(iter(first.predict_proba(te.paths[:1]))), next(iter(second.predict_proba(te.paths[:1])))
    assert a.shape == b.shape and not np.allclose(a, b)


def test_an_attribute_folder_missing_is_named(tmp_path):
    (tmp_path / "split_membership_2016_2017.csv").write_text(
        "image_id,isic2016_split,isic2017_split\nISIC_0000001,train,train\nISIC_0000002,test,\n")
    (tmp_path / "images").mkdir()
    (tmp_path / "globules").mkdir()
    for i in ("ISIC_0000001", "ISIC_0000002"):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.jpg"), np.zeros((24, 32, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "globules" / f"{i}_attribute_globules.png"), np.zeros((24, 32), np.uint8))
    with pytest.raises(DataError, match="streaks"):
        attributes.load_isic2018(tmp_path, targets=("globules", "streaks"), manifest_dir=tmp_path / "none")
