"""Each bad input a user can give the data layer yields one DataError naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from skinbench.data import attributes, generic, ham10000, isic2016, load_dataset
from skinbench.data.images import mask_for_image, read_image, read_mask
from skinbench.errors import DataError


def _jpg(path: Path, w: int = 32, h: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 120, np.uint8))


def _isic2016(folder: Path, train: str, test: str, images=("ISIC_0000001", "ISIC_0000002", "ISIC_0000003")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / isic2016.TRAIN_CSV).write_text(train)
    (folder / isic2016.TEST_CSV).write_text(test)
    for i in images:
        _jpg(folder / ("ISBI2016_ISIC_Part3_Training_Data" if i != "ISIC_0000003" else "test") / f"{i}.jpg")
    return folder


def test_fake_isic2016_official_layout(tmp_path):
    ds = isic2016.load(_isic2016(tmp_path, "ISIC_0000001,benign\nISIC_0000002,malignant\n", "ISIC_0000003,1.0\n"),
                       manifest_dir=tmp_path / "none")
    assert ds.frame[["image_id", "label", "split"]].values.tolist() == [
        ["ISIC_0000001", "benign", "train"], ["ISIC_0000002", "malignant", "train"],
        ["ISIC_0000003", "malignant", "test"]]


def test_missing_data_root_names_expected_files_and_source(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("isic2016_task3", root=tmp_path / "nowhere")
    msg = str(err.value)
    assert "nowhere" in msg and "ISBI2016_ISIC_Part3_Training_GroundTruth.csv" in msg
    assert "https://challenge.isic-archive.com" in msg and "--data-root" in msg
    with pytest.raises(DataError, match="HAM10000_metadata.csv.*dataverse|HAM10000_metadata.csv.*DBW86T"):
        ham10000.load(tmp_path)  # folder exists, metadata absent


def test_missing_dataset_folder_is_named_not_a_file_the_adapter_looked_for(tmp_path):
    """A data root without the dataset's folder: the error names <root>/<folder>/, not <root>/train."""
    (tmp_path / "ham10000").mkdir()  # some other dataset is there
    with pytest.raises(DataError) as err:
        load_dataset("isic2016_part2b", root=tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'isic2016_part2b'}: dataset folder is missing")
    assert "train/ISIC_*.jpg" in str(err.value)


def test_ground_truth_unknown_label(tmp_path):
    folder = _isic2016(tmp_path, "ISIC_0000001,benign\nISIC_0000002,maybe\n", "ISIC_0000003,1.0\n")
    with pytest.raises(DataError, match=r"Training_GroundTruth.csv: line 2: unknown label 'maybe'.*Fix"):
        isic2016.load(folder, manifest_dir=tmp_path / "none")


def test_ground_truth_duplicate_id(tmp_path):
    folder = _isic2016(tmp_path, "ISIC_0000001,benign\nISIC_0000001,malignant\n", "ISIC_0000003,0.0\n")
    with pytest.raises(DataError, match=r"Training_GroundTruth.csv: duplicate image id\(s\) ISIC_0000001"):
        isic2016.load(folder, manifest_dir=tmp_path / "none")


def test_image_listed_but_absent(tmp_path):
    folder = _isic2016(tmp_path, "ISIC_0000001,benign\nISIC_0000009,malignant\n", "ISIC_0000003,0.0\n")
    with pytest.raises(DataError, match=r"1 image\(s\) listed but absent.*ISIC_0000009.*Fix"):
        isic2016.load(folder, manifest_dir=tmp_path / "none")


def test_generic_bad_csvs(tmp_path):
    (tmp_path / "images").mkdir()
    _jpg(tmp_path / "images" / "a.jpg")
    (tmp_path / "labels.csv").write_text("image_id,label\na,x\na,y\n")
    with pytest.raises(DataError, match="labels.csv: duplicate image_id a"):
        generic.load(tmp_path)
    (tmp_path / "labels.csv").write_text("id,label\na,x\n")
    with pytest.raises(DataError, match="lacks column 'image_id'"):
        generic.load(tmp_path)
    (tmp_path / "labels.csv").write_text("image_id,label,split\na,x,validation\n")
    with pytest.raises(DataError, match="unknown split"):
        generic.load(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncated"])
def test_truncated_or_non_image_file(tmp_path, content):
    path = tmp_path / "ISIC_0000001.jpg"
    if content == "truncated":
        _jpg(path, 64, 48)
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=r"ISIC_0000001.jpg: .*(empty|truncated|not a readable).*Fix"):
        read_image(path)
    mask = tmp_path / "m.png"
    mask.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="m.png: not a readable mask"):
        read_mask(mask)


def test_mask_of_a_different_size(tmp_path):
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((150, 200, 3), np.uint8))
    big = np.zeros((450, 600), np.uint8)
    big[150:300, 200:400] = 255
    cv2.imwrite(str(tmp_path / "same_aspect.png"), big)
    fitted = mask_for_image(tmp_path / "same_aspect.png", image)
    assert fitted.shape == (150, 200) and fitted[50:100, 67:133].all() and not fitted[:40].any()
    cv2.imwrite(str(tmp_path / "other_aspect.png"), np.zeros((300, 300), np.uint8))
    with pytest.raises(DataError, match=r"other_aspect.png: mask is 300x300 but its image is 200x150.*Fix"):
        mask_for_image(tmp_path / "other_aspect.png", image)
    assert not mask_for_image("", image).any()


def _lesion_zero() -> np.ndarray:
    idx = np.ones((60, 80), np.uint8)
    idx[20:40, 30:50] = 0  # raw value 0 = lesion
    return idx


def test_inverted_palette_mask(tmp_path):
    """A palette PNG whose palette draws index 0 (the lesion) white: read as displayed."""
    im = Image.fromarray(_lesion_zero(), "P")
    im.putpalette([255, 255, 255, 0, 0, 0])
    im.save(tmp_path / "pal.png")
    assert np.asarray(Image.open(tmp_path / "pal.png")).max() == 1  # raw indices say lesion = 0
    mask = read_mask(tmp_path / "pal.png")
    assert mask.sum() == 400 and mask[30, 40] and not mask[0, 0]
    # the same indices with a plain palette (lesion drawn black): the border rule inverts it
    im.putpalette([0, 0, 0, 255, 255, 255])
    im.save(tmp_path / "pal_plain.png")
    assert read_mask(tmp_path / "pal_plain.png").sum() == 400


def test_inverted_plain_mask_and_full_mask(tmp_path):
    cv2.imwrite(str(tmp_path / "inv.png"), _lesion_zero() * 255)
    mask = read_mask(tmp_path / "inv.png")
    assert mask.sum() == 400 and mask[30, 40]
    cv2.imwrite(str(tmp_path / "full.png"), np.full((60, 80), 255, np.uint8))
    assert read_mask(tmp_path / "full.png").all()
    edge = np.zeros((60, 80), np.uint8)
    edge[:, :50] = 255  # a lesion touching part of the border is not inverted
    cv2.imwrite(str(tmp_path / "edge.png"), edge)
    assert read_mask(tmp_path / "edge.png").sum() == 60 * 50


def test_jpeg_ish_mask_thresholded_at_128(tmp_path):
    grey = np.full((60, 80), 20, np.uint8)
    grey[20:40, 30:50] = 140
    grey[0, 0] = 127
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    assert read_mask(tmp_path / "g.png").sum() == 400


def test_fake_isic2016_part2b_and_missing_mask(tmp_path):
    for split, ids in (("train", ["ISIC_0000001", "ISIC_0000002"]), ("test", ["ISIC_0000003"])):
        for i in ids:
            _jpg(tmp_path / split / f"{i}.jpg")
            for t in ("globules", "streaks"):
                cv2.imwrite(str(tmp_path / split / f"{i}_{t}.png"), np.zeros((24, 32), np.uint8))
    ds = attributes.load_isic2016_part2b(tmp_path)
    assert ds.targets == ("globules", "streaks") and ds.frame["split"].tolist() == ["train", "train", "test"]
    assert all(Path(p).name == f"{i}_streaks.png" for p, i in zip(ds.masks("streaks"), ds.ids))
    (tmp_path / "test" / "ISIC_0000003_streaks.png").unlink()
    with pytest.raises(DataError, match="streaks mask ISIC_0000003_streaks.png of ISIC_0000003.jpg is missing"):
        attributes.load_isic2016_part2b(tmp_path)


def test_fake_isic2018_drops_image_without_mask(tmp_path):
    ids = ["ISIC_0000001", "ISIC_0000002", "ISIC_0000003"]
    (tmp_path / "split_membership_2016_2017.csv").write_text(
        "image_id,isic2016_split,isic2017_split\nISIC_0000001,train,train\nISIC_0000002,test,\n"
        "ISIC_0000003,train,\nISIC_0000004,,train\n")
    for i in ids:
        _jpg(tmp_path / "images" / f"{i}.jpg")
        for t in ("globules", "streaks"):
            if not (i == "ISIC_0000003" and t == "streaks"):
                (tmp_path / t).mkdir(exist_ok=True)
                cv2.imwrite(str(tmp_path / t / f"{i}_attribute_{t}.png"), np.zeros((24, 32), np.uint8))
    ds = attributes.load_isic2018(tmp_path, targets=("globules", "streaks"), manifest_dir=tmp_path / "none")
    assert ds.ids.tolist() == ["ISIC_0000001", "ISIC_0000002"]
    assert ds.frame["split"].tolist() == ["train", "test"] and "ISIC_0000003" in ds.extra["dropped"]


def test_fake_ham10000_official_download_layout(tmp_path):
    """Images split over part_1/part_2, masks in the tschandl folder, one palette mask with raw lesion = 0."""
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for k in range(12):
        image_id, dx = f"ISIC_00{24306 + k}", ("nv" if k % 3 else "mel")
        rows.append(f"HAM_{k // 2 if k < 4 else k:07d},{image_id},{dx},histo,50.0,male,back")
        _jpg(tmp_path / f"HAM10000_images_part_{1 + k % 2}" / f"{image_id}.jpg", 60, 45)
        im = Image.fromarray(_lesion_zero()[::1, ::1][:45, :60], "P")
        im.putpalette([255, 255, 255, 0, 0, 0])
        (tmp_path / "HAM10000_segmentations_lesion_tschandl").mkdir(exist_ok=True)
        im.save(tmp_path / "HAM10000_segmentations_lesion_tschandl" / f"{image_id}_segmentation.png")
    (tmp_path / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    ds = ham10000.load(tmp_path, manifest_dir=tmp_path / "none")
    assert len(ds) == 12 and ds.targets == ("lesion",) and set(ds.frame["split"]) == {"train", "test"}
    train, test = (set(ds.frame.loc[ds.frame["split"] == s, "lesion_id"]) for s in ("train", "test"))
    assert not train & test
    mask = mask_for_image(ds.masks("lesion")[0], ds.paths[0])
    assert mask.shape == (45, 60) and mask[30, 40] and not mask[0, 0]
    with pytest.raises(DataError, match=r"of the manifest ham10000.csv are not listed.*Fix"):
        ham10000.load(tmp_path)  # an incomplete download: the real manifest lists 10015
