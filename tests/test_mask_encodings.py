"""Issue 30 (masks): every mask encoding a user may hand in is read by its meaning, for dataset truths
(`run`) and for submitted predictions (`score`) alike; sets of masks that all read empty or all full
are refused with one line naming the folder and the encoding; 16-bit images keep their values; JPEG
masks are read, never taken as missing."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_generic import generic_copy
from PIL import Image

from skinbench.cli import main
from skinbench.data.base import check_for_task
from skinbench.data.generic import load as load_generic
from skinbench.data.images import decode_mask, read_image, read_mask
from skinbench.errors import DataError
from skinbench.score import read_prediction_mask

H, W = 64, 80
#: the lesion of the small test masks: a block aligned to JPEG's 8x8 grid, so JPEG keeps it exact
LESION = np.zeros((H, W), bool)
LESION[16:40, 24:48] = True


def voc_palette() -> list[int]:
    """The PASCAL VOC colour map (index 1 = (128, 0, 0), 8 = (64, 0, 0), ...), flattened RGB."""
    flat = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        flat += [r, g, b]
    return flat


def _palette_image(index: np.ndarray, palette: list[int]) -> Image.Image:
    im = Image.fromarray(index.astype(np.uint8), "P")
    im.putpalette(palette)
    return im


def write_mask(mask: np.ndarray, path: Path, encoding: str) -> Path:
    """Write the boolean ``mask`` in ``encoding`` at ``path`` (its suffix is set for JPEG)."""
    m = mask.astype(np.uint8)
    rgb = lambda colour: (m[..., None] * np.array(colour, np.uint8)).astype(np.uint8)  # noqa: E731
    if encoding.startswith("jpeg"):
        path = path.with_suffix(".jpg")
        img = m * 255 if encoding == "jpeg-grey" else rgb((0, 0, 255))  # BGR: red
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        return path
    if encoding == "grey-255":
        cv2.imwrite(str(path), m * 255)
    elif encoding == "grey-01":
        cv2.imwrite(str(path), m)
    elif encoding == "grey-0-2":  # class labels 0/2: no foreground by the rule (dataset-level check)
        cv2.imwrite(str(path), m * 2)
    elif encoding == "1-bit":
        Image.fromarray(mask.astype(bool)).save(path)
    elif encoding == "16-bit-full":
        cv2.imwrite(str(path), m.astype(np.uint16) * 65535)
    elif encoding == "16-bit-255":
        cv2.imwrite(str(path), m.astype(np.uint16) * 255)
    elif encoding == "16-bit-01":
        cv2.imwrite(str(path), m.astype(np.uint16))
    elif encoding == "rgb-red":
        Image.fromarray(rgb((255, 0, 0))).save(path)
    elif encoding == "rgb-dark-red":
        Image.fromarray(rgb((128, 0, 0))).save(path)
    elif encoding == "rgba-green":
        Image.fromarray(np.dstack([rgb((0, 200, 0)), np.full((*m.shape, 1), 255, np.uint8)]), "RGBA").save(path)
    elif encoding == "rgb16-red":  # 16-bit colour PNG, full range
        cv2.imwrite(str(path), (m[..., None] * np.array((0, 0, 65535))).astype(np.uint16))
    elif encoding == "rgb16-red-255":  # 16-bit colour PNG holding 8-bit values
        cv2.imwrite(str(path), (m[..., None] * np.array((0, 0, 255))).astype(np.uint16))
    elif encoding == "voc":  # PASCAL VOC palette, lesion = index 1 = dark red (128, 0, 0)
        _palette_image(m, voc_palette()).save(path)
    elif encoding == "voc-index-8":  # lesion = (64, 0, 0): no channel reaches 128
        _palette_image(m * 8, voc_palette()).save(path)
    elif encoding == "ham-grey-ramp":  # HAM10000's inverted palette masks: raw 0 = lesion, shown white
        _palette_image(np.where(mask, 0, 255), list(np.repeat(255 - np.arange(256), 3))).save(path)
    elif encoding == "white-background-palette":  # background white, lesion red: every pixel is "non-black"
        _palette_image(m, [255, 255, 255, 255, 0, 0]).save(path)
    elif encoding == "grey-inverted":  # lesion = 0 on 255: the border rule inverts it
        cv2.imwrite(str(path), (1 - m) * 255)
    else:
        raise ValueError(encoding)
    return path


ENCODINGS = ["grey-255", "grey-01", "1-bit", "16-bit-full", "16-bit-255", "16-bit-01", "rgb-red", "rgb-dark-red",
             "rgba-green", "rgb16-red", "rgb16-red-255", "voc", "voc-index-8", "ham-grey-ramp", "grey-inverted",
             "jpeg-grey", "jpeg-red"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_reads_the_lesion_as_truth_and_as_prediction(tmp_path, encoding):
    path = write_mask(LESION, tmp_path / "m.png", encoding)
    assert (read_mask(path) == LESION).all(), decode_mask(path)[1]
    if encoding != "grey-inverted":  # a prediction is read as it is drawn (no inverted-coding fix)
        assert (read_prediction_mask(path, (H, W)) == LESION).all(), decode_mask(path)[1]
    # the same encoding with no lesion reads empty (nothing of the encoding itself is foreground)
    if encoding not in ("grey-inverted", "ham-grey-ramp"):
        assert not read_mask(write_mask(np.zeros_like(LESION), tmp_path / "e.png", encoding)).any()


def test_encodings_that_are_not_masks_are_refused(tmp_path):
    Image.fromarray(LESION.astype(np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(DataError, match=r"f.tif: pixel values of type float32 .* neither 8- nor 16-bit.*Fix"):
        read_mask(tmp_path / "f.tif")


def test_16bit_images_are_read_by_their_range(tmp_path):
    rng = np.random.default_rng(0)
    rgb8 = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "eight.png"), rgb8)
    cv2.imwrite(str(tmp_path / "sixteen_0_255.png"), rgb8.astype(np.uint16))  # 16-bit file, 8-bit values
    cv2.imwrite(str(tmp_path / "sixteen_full.png"), rgb8.astype(np.uint16) * 257)  # 0..65535
    eight = read_image(tmp_path / "eight.png")
    assert eight.max() > 200
    assert (read_image(tmp_path / "sixteen_0_255.png") == eight).all()
    assert (read_image(tmp_path / "sixteen_full.png") == eight).all()
    grey16 = (rgb8[..., 0].astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "grey16.png"), grey16)
    assert (read_image(tmp_path / "grey16.png") == rgb8[..., :1]).all()


# ------------------------------------------------------------------ at the CLI, on a generic copy of the synthetic set

def _rewrite(folder: Path, target: str, encoding: str, fn=lambda m: m) -> None:
    """Re-encode every ``target`` mask of a generic folder (``fn`` edits the boolean mask first)."""
    for path in sorted((folder / "masks").glob(f"*_{target}.png")):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) >= 128
        path.unlink()
        write_mask(fn(mask), path, encoding)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _run(capsys, folder: Path, out: Path, task: str = "task4", approach: str = "all-background") -> tuple[int, str]:
    rc = main(["run", task, "-a", approach, "--dataset", "generic", "--data-root", str(folder),
               "--results", str(out), "--n-boot", "20"])
    return rc, capsys.readouterr().err


def _score(capsys, task: str, folder: Path, data: Path, out: Path) -> tuple[int, str]:
    rc = main(["score", task, str(folder), "--dataset", "generic", "--data-root", str(data), "--results", str(out),
               "--n-boot", "20", "--name", "theirs"])
    return rc, capsys.readouterr().err


def _metric(out: Path, approach: str, name: str = "jaccard_mean") -> float:
    record = json.loads(next((out / "runs").rglob(f"{approach}*.json")).read_text())
    return record["metrics"][name]["value"]


def _perfect_predictions(dataset, folder: Path, encoding: str, target: str = "lesion", scale: int = 1) -> Path:
    """The test split's truth masks as predictions, in ``encoding`` (``scale``: times the truth's size)."""
    folder.mkdir(parents=True, exist_ok=True)
    test = dataset.split("test")
    for image_id, path in zip(test.ids, test.masks(target)):
        mask = read_mask(path)
        if scale != 1:
            mask = cv2.resize(mask.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) > 0
        write_mask(mask, folder / f"{image_id}_{'segmentation' if target == 'lesion' else target}.png", encoding)
    return folder


@pytest.mark.parametrize("encoding", ["rgb-red", "voc", "16-bit-full", "jpeg-grey"])
def test_cli_score_reads_coloured_palette_16bit_and_jpeg_predictions(tmp_path, synthetic_dataset, capsys, encoding):
    """Red RGB and VOC predictions used to score 0.000 (one channel kept); JPEG ones were not found."""
    data = generic_copy(synthetic_dataset.root, tmp_path / "g")
    pred = _perfect_predictions(load_generic(data), tmp_path / "pred", encoding)
    rc, err = _score(capsys, "task4", pred, data, tmp_path / "out")
    assert rc == 0, err
    assert _metric(tmp_path / "out", "theirs") > (0.99 if encoding.startswith("jpeg") else 0.999999)


def test_cli_score_resizes_a_same_aspect_prediction_as_run_does(tmp_path, synthetic_dataset, capsys):
    """A prediction at twice the truth's size (same aspect) used to be refused; run resizes such masks."""
    data = generic_copy(synthetic_dataset.root, tmp_path / "g")
    pred = _perfect_predictions(load_generic(data), tmp_path / "pred", "grey-255", scale=2)
    rc, err = _score(capsys, "task4", pred, data, tmp_path / "out")
    assert rc == 0, err
    assert _metric(tmp_path / "out", "theirs") == 1.0


def test_cli_all_empty_or_all_full_truth_masks_are_refused(tmp_path, synthetic_dataset, capsys):
    labels = generic_copy(synthetic_dataset.root, tmp_path / "labels")
    _rewrite(labels, "lesion", "grey-0-2")  # class labels 0/2: no pixel reaches the grey threshold
    rc, err = _run(capsys, labels, tmp_path / "out1")
    line = _one_error_line(err)
    assert rc == 2 and f"{labels / 'masks'}: all 48 lesion masks read as empty" in line
    assert "encoding found: 8-bit grey PNG (values 0..2)" in line and "Fix:" in line
    white = generic_copy(synthetic_dataset.root, tmp_path / "white")
    _rewrite(white, "lesion", "white-background-palette")
    rc, err = _run(capsys, white, tmp_path / "out2")
    line = _one_error_line(err)
    assert rc == 2 and "all 48 lesion masks read as full" in line
    assert "palette PNG with colours (255, 255, 255), (255, 0, 0)" in line
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()


def test_task3_declares_empty_attribute_masks_normal(tmp_path, synthetic_dataset, capsys):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    for target in ("globules", "streaks"):
        _rewrite(folder, target, "grey-255", np.zeros_like)
    ds = load_generic(folder)
    check_for_task("task3", ds.split("train"), ds.split("test"))  # no error: attributes are often absent
    with pytest.raises(DataError, match="all 48 globules masks read as empty"):
        check_for_task("task4", ds.split("train"), ds.split("test"), targets=["globules"])
    # a submission of empty attribute masks is an answer for task3, an error for task4's lesions
    test = ds.split("test")
    empty = tmp_path / "empty"
    empty.mkdir()
    for image_id in test.ids:
        for name in (f"{image_id}_attribute_globules.png", f"{image_id}_attribute_streaks.png",
                     f"{image_id}_segmentation.png"):
            write_mask(np.zeros((96, 128), bool), empty / name, "grey-255")
    rc, err = _score(capsys, "task3", empty, folder, tmp_path / "out3")
    assert rc == 0, err
    rc, err = _score(capsys, "task4", empty, folder, tmp_path / "out4")
    line = _one_error_line(err)
    assert rc == 2 and f"{empty}: all {len(test)} predicted lesion masks read as empty" in line
    assert "8-bit grey PNG (values 0..0)" in line


@pytest.mark.parametrize("encoding", ["voc", "rgb-dark-red", "jpeg-grey"])
def test_cli_score_reads_palette_colour_and_jpeg_truth_masks(tmp_path, synthetic_dataset, capsys, encoding):
    """Dark-red palette or RGB truths used to read empty (all-background then scored Jaccard 1.000 and a
    perfect prediction 0.000); truths saved as .jpg were ignored (the dataset had no lesion masks)."""
    data = generic_copy(synthetic_dataset.root, tmp_path / "g")
    pred = _perfect_predictions(load_generic(data), tmp_path / "pred", "grey-255")
    _rewrite(data, "lesion", encoding)
    ds = load_generic(data)
    check_for_task("task4", ds.split("train"), ds.split("test"))
    rc, err = _score(capsys, "task4", pred, data, tmp_path / "out")
    assert rc == 0, err
    assert _metric(tmp_path / "out", "theirs") > (0.99 if encoding.startswith("jpeg") else 0.999999)


def test_png_mask_preferred_to_a_jpeg_of_the_same_name(tmp_path, synthetic_dataset):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    _rewrite(folder, "lesion", "jpeg-grey")
    assert not list((folder / "masks").glob("*_lesion.png"))
    victim = sorted((folder / "masks").glob("*_lesion.jpg"))[0]
    write_mask(LESION, victim.with_suffix(".png"), "grey-255")
    masks = {Path(p).stem: Path(p).suffix for p in load_generic(folder).masks("lesion")}
    assert masks.pop(victim.stem) == ".png" and set(masks.values()) == {".jpg"}


def test_cli_score_names_mask_files_of_a_type_it_does_not_read(tmp_path, synthetic_dataset, capsys):
    data = generic_copy(synthetic_dataset.root, tmp_path / "g")
    pred = _perfect_predictions(load_generic(data), tmp_path / "pred", "grey-255")
    for png in pred.glob("*.png"):
        Image.open(png).save(png.with_suffix(".tif"))
        png.unlink()
    rc, err = _score(capsys, "task4", pred, data, tmp_path / "out")
    line = _one_error_line(err)
    assert rc == 2 and "have no predicted lesion mask" in line and "holds .tif files, which are not read" in line
