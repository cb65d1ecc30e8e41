"""Each bad input a user can give the data layer yields one DataError naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
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
    with pytest.raises(DataError, match=r"Training_GroundTruth.csv: line 2: duplicate image id 'ISIC_0000001' \(first on line 1\)"):
        isic2016.load(folder, manifest_dir=tmp_path / "none")


def test_image_listed_but_absent(tmp_path):
    folder = _isic2016(tmp_path, "ISIC_0000001,benign\nISIC_0000009,malignant\n", "ISIC_0000003,0.0\n")
    with pytest.raises(DataError, match=r"1 image\(s\) listed but absent.*ISIC_0000009.*Fix"):
        isic2016.load(folder, manifest_dir=tmp_path / "none")


def test_generic_bad_csvs(tmp_path):
    (tmp_path / "images").mkdir()
    _jpg(tmp_path / "images" / "a.jpg")
    (tmp_path / "labels.csv").write_text("image_id,label\na,x\na,y\n")
    with pytest.raises(DataError, match="labels.csv: line 3: duplicate image id 'a' \\(first on line 2\\)"):
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


def test_fake_isic2018_all_trains_on_every_non_test_image_except_copies_of_test_images(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "split_membership_2016_2017.csv").write_text(
        "image_id,isic2016_split,isic2017_split\nISIC_0000001,train,\nISIC_0000002,test,\n"
        "ISIC_0000003,,train\nISIC_0000004,,\nISIC_0000005,,\n")
    (tmp_path / "images").mkdir()
    for i in ("ISIC_0000001", "ISIC_0000002", "ISIC_0000003", "ISIC_0000004"):
        img = cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), (7, 7), 2)
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), img)
    test_image = cv2.imread(str(tmp_path / "images" / "ISIC_0000002.png"))
    cv2.imwrite(str(tmp_path / "images" / "ISIC_0000005.jpg"), test_image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    for t in ("globules", "streaks"):
        (tmp_path / t).mkdir()
        for k in range(1, 6):
            cv2.imwrite(str(tmp_path / t / f"ISIC_000000{k}_attribute_{t}.png"), np.zeros((96, 128), np.uint8))
    (tmp_path / "streaks" / "ISIC_0000004_attribute_streaks.png").unlink()
    ds = attributes.load_isic2018_all(tmp_path, targets=("globules", "streaks"), manifest_dir=tmp_path / "none")
    assert dict(zip(ds.ids, ds.frame["split"])) == {"ISIC_0000001": "train", "ISIC_0000002": "test",
                                                     "ISIC_0000003": "train"}
    assert "copy of test image ISIC_0000002" in ds.extra["dropped"]["ISIC_0000005"]
    assert "streaks mask missing" in ds.extra["dropped"]["ISIC_0000004"]
    # the 2016-style variant of the same files keeps only the ISIC 2016 images
    assert attributes.load_isic2018(tmp_path, targets=("globules",), manifest_dir=tmp_path / "none").ids.tolist() \
        == ["ISIC_0000001", "ISIC_0000002"]


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


# --------------------------------------------------------------------------- issue 13: checks before a run

from helpers_generic import edit_labels, first, generic_copy, line_of  # noqa: E402

from skinbench.data.base import check_for_task  # noqa: E402
from skinbench.data.images import ASPECT_TOLERANCE, check_mask_sizes, check_readable  # noqa: E402


def _check(ds, task, **kw):
    check_for_task(task, ds.split("train"), ds.split("test"), **kw)


def test_mask_size_rule_same_aspect_within_one_percent_else_error(tmp_path):
    """Rule 4: same size or aspect within 1% (HAM10000's 600x450 masks of 200x150 images) -> resized;
    anything else -> DataError naming the mask, both sizes and the fix."""
    assert ASPECT_TOLERANCE == 0.01
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((150, 200, 3), np.uint8))
    for name, (w, h), ok in (("ham.png", (600, 450), True), ("close.png", (600, 452), True),
                             ("far.png", (600, 460), False), ("square.png", (150, 150), False)):
        cv2.imwrite(str(tmp_path / name), np.zeros((h, w), np.uint8))
        sizes = check_readable([image, tmp_path / name])
        if ok:
            check_mask_sizes([(str(image), str(tmp_path / name))], sizes)
            assert mask_for_image(tmp_path / name, image).shape == (150, 200)
        else:
            with pytest.raises(DataError, match=rf"{name}: mask is {w}x{h} but its image img.png is 200x150.*1%.*Fix"):
                check_mask_sizes([(str(image), str(tmp_path / name))], sizes)
            with pytest.raises(DataError, match=rf"{name}: mask is {w}x{h}"):
                mask_for_image(tmp_path / name, image)


def test_generic_mask_of_another_aspect_fails_the_task_check(tmp_path, synthetic_dataset):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    victim = folder / "masks" / f"{first(edit_labels(folder, lambda t: None), 'test')}_lesion.png"
    cv2.imwrite(str(victim), np.zeros((96, 96), np.uint8))  # the image is 128x96
    ds = generic.load(folder)
    with pytest.raises(DataError, match=rf"{victim.name}: mask is 96x96 but its image .* is 128x96"):
        _check(ds, "task4")
    cv2.imwrite(str(victim), np.zeros((288, 384), np.uint8))  # 3x, same aspect: resized by rule 4
    _check(generic.load(folder), "task4")


def test_missing_mask_is_an_error_not_an_empty_lesion(tmp_path, synthetic_dataset):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    gone = first(edit_labels(folder, lambda t: None), "test")
    (folder / "masks" / f"{gone}_lesion.png").unlink()
    ds = generic.load(folder)
    with pytest.raises(DataError, match=rf"1 image\(s\) have no lesion mask file \(first: {gone}\).*Fix: add .*{gone[:0]}"):
        ds.masks("lesion")
    assert ds.masks("lesion", missing="empty")[list(ds.ids).index(gone)] == ""
    with pytest.raises(DataError, match=gone):
        _check(ds, "task4")
    _check(ds, "task3")  # globules/streaks masks are all there


def _fake_ham(folder: Path, n: int = 12, drop_mask: str | None = None) -> list[str]:
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    ids = []
    for k in range(n):
        image_id, dx = f"ISIC_00{24306 + k}", ("nv" if k % 3 else "mel")
        ids.append(image_id)
        rows.append(f"HAM_{k:07d},{image_id},{dx},histo,50.0,male,back")
        _jpg(folder / "images" / f"{image_id}.jpg", 60, 45)
        (folder / "masks").mkdir(exist_ok=True)
        if image_id != drop_mask:
            mask = np.zeros((135, 180), np.uint8)  # 3x the image, as HAM10000 masks are
            mask[40:90, 60:120] = 255
            cv2.imwrite(str(folder / "masks" / f"{image_id}_segmentation.png"), mask)
    (folder / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    return ids


def test_ham10000_missing_mask_fails_before_work_and_verify_reports_it(tmp_path):
    from skinbench.data.manifests import write_manifest
    from skinbench.data.verify import verify

    ids = _fake_ham(tmp_path / "ham10000", drop_mask="ISIC_0024309")
    ds = ham10000.load(tmp_path / "ham10000", manifest_dir=tmp_path / "none")
    with pytest.raises(DataError, match=r"1 image\(s\) have no lesion mask file \(first: ISIC_0024309\).*"
                                        r"Fix: download .*skinbench data verify ham10000"):
        ds.masks("lesion")
    with pytest.raises(DataError, match="ISIC_0024309"):
        _check(ds, "task4")
    _check(ds, "task2")  # diagnosis needs no masks
    manifest = ds.frame[["image_id", "label", "lesion_id", "split"]].assign(sha256="")
    write_manifest("ham10000", manifest, {"checksums": ""}, directory=tmp_path / "manifests")
    report = verify("ham10000", tmp_path, manifest_dir=tmp_path / "manifests")
    assert report.missing_masks == {"lesion": ["ISIC_0024309"]} and not report.ok and not report.usable
    assert "missing lesion masks: 1 (ISIC_0024309)" in report.summary()
    assert len(ids) == 12


def test_label_typo_is_named_with_file_line_and_valid_labels(tmp_path, synthetic_dataset):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    table = edit_labels(folder, lambda t: None)
    victim = first(table, "test", "malignant")  # a test row only: must not pass unnoticed
    edit_labels(folder, lambda t: t.assign(label=t["label"].where(t["image_id"] != victim, "malignamt")))
    ds = generic.load(folder)
    with pytest.raises(DataError, match=rf"labels.csv: line {line_of(table, victim)}: label 'malignamt' \(image "
                                        rf"{victim}\) is not a class of task1 \(valid labels: benign, malignant\)"):
        _check(ds, "task1")
    with pytest.raises(DataError, match=rf"labels.csv: line {line_of(table, victim)}: label 'malignamt' \(image "
                                        rf"{victim}\) is not a declared class \(valid labels: benign, malignant\)"):
        generic.load(folder, class_names=["benign", "malignant"])  # a declared list: checked at load


def test_positive_class_is_declared_never_the_second_sorted_label(tmp_path, synthetic_dataset):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    edit_labels(folder, lambda t: t.assign(label=t["label"].map({"benign": "other", "malignant": "melanoma"})))
    ds = generic.load(folder)
    assert ds.positive_class is None and ds.class_names == ("melanoma", "other")
    with pytest.raises(DataError, match=r"labels.csv: labels .* do not say which class is positive for task1.*"
                                        r"Fix: declare your classes: --classes NEG,POS .* --positive"):
        _check(ds, "task1")
    ds = generic.load(folder, positive_class="melanoma")
    assert ds.class_names == ("other", "melanoma") and ds.positive_class == "melanoma"
    _check(ds, "task1")
    ds = generic.load(folder, class_names=["other", "melanoma"])
    assert ds.positive_class == "melanoma" and list(ds.split("test").y) == [
        int(v == "melanoma") for v in ds.split("test").frame["label"]]
    edit_labels(folder, lambda t: t.assign(label=t["label"].map({"other": "0", "melanoma": "1"})))
    ds = generic.load(folder)  # the 0/1 convention declares 1 positive
    assert ds.class_names == ("0", "1") and ds.positive_class == "1"
    _check(ds, "task1")
    assert synthetic_dataset.positive_class == "malignant"


def test_three_labels_on_a_binary_task_are_listed_with_lines(tmp_path, synthetic_dataset):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    edit_labels(folder, lambda t: t.assign(label=t["dx"]))  # nevus / melanoma / keratosis
    with pytest.raises(DataError, match=r"labels.csv: the labels are not task1's classes \(benign, malignant\): 'nevus' \(\d+ row\(s\), first "
                                        r"labels.csv line \d+\).*Fix: declare"):
        _check(generic.load(folder), "task1")
    with pytest.raises(DataError, match=r"task1 is binary but the data has 3 classes: 'nevus' \(\d+ row\(s\), "
                                        r"first labels.csv line \d+\)"):
        _check(generic.load(folder, class_names=["nevus", "melanoma", "keratosis"]), "task1")
    _check(generic.load(folder, class_names=["nevus", "melanoma", "keratosis"]), "task2")


def test_segmentation_only_csv_and_official_mask_names(tmp_path, synthetic_dataset):
    """labels.csv without a label column; <id>_segmentation.png is the lesion target without a flag."""
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    for p in (folder / "masks").glob("*_lesion.png"):
        p.rename(p.with_name(p.name.replace("_lesion.png", "_segmentation.png")))
    for p in (folder / "masks").glob("*_globules.png"):
        p.rename(p.with_name(p.name.replace("_globules.png", "_attribute_globules.png")))
    edit_labels(folder, lambda t: t[["image_id", "lesion_id"]])  # no label, no split column
    ds = generic.load(folder)
    assert set(ds.targets) == {"lesion", "globules", "streaks"} and ds.class_names == ()
    assert all(p.endswith("_segmentation.png") for p in ds.masks("lesion"))
    assert set(ds.frame["split"]) == {"train", "test"}
    train, test = (set(ds.frame.loc[ds.frame["split"] == s, "lesion_id"]) for s in ("train", "test"))
    assert not train & test
    _check(ds, "task4")
    with pytest.raises(DataError, match=r"task1 .* needs a label per image.*Fix: add a label column"):
        _check(ds, "task1")


def test_every_listed_file_is_checked_up_front(tmp_path, synthetic_dataset):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    table = edit_labels(folder, lambda t: None)
    zero, junk = first(table, "test"), first(table, "train")
    (folder / "images" / f"{zero}.png").write_bytes(b"")
    cut = folder / "images" / f"{junk}.png"
    cut.write_bytes(cut.read_bytes()[:300])
    ds = generic.load(folder)
    with pytest.raises(DataError, match=r"\.png: .*(empty|truncated).*and 1 more bad image file"):
        _check(ds, "task1")


def test_one_class_training_set_and_single_image_class_name_label_and_file(tmp_path, synthetic_dataset):
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    table = edit_labels(folder, lambda t: t.assign(label=t["label"].where(t["split"] == "test", "benign")))
    with pytest.raises(DataError, match=r"labels.csv: the training split holds one class only: 'benign' "
                                        r"\(\d+ image\(s\)\).*valid labels: benign, malignant"):
        _check(generic.load(folder), "task1")
    lone = first(table, "train")
    edit_labels(folder, lambda t: t.assign(label=t["label"].where(t["image_id"] != lone, "malignant")))
    with pytest.raises(DataError, match=rf"class 'malignant' has a single training image, {lone}.png "
                                        rf"\(labels.csv line {line_of(table, lone)}\).*Fix: add another training "
                                        r"image labelled 'malignant'"):
        _check(generic.load(folder), "task1")


def test_fix_texts_lead_somewhere_that_works(tmp_path, synthetic_dataset):
    """Generic data: removing the rows of absent images (the fix) loads. Official data: the fix is a
    download, never removing rows (which the manifest check would then reject)."""
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    gone = first(edit_labels(folder, lambda t: None), "train")
    (folder / "images" / f"{gone}.png").unlink()
    with pytest.raises(DataError, match=r"remove those rows from labels.csv") as err:
        generic.load(folder)
    assert err.value.fix and "remove those rows" in err.value.fix
    edit_labels(folder, lambda t: t[t["image_id"] != gone])  # follow the fix
    assert gone not in set(generic.load(folder).ids)
    official = _isic2016(tmp_path / "isic", "ISIC_0000001,benign\nISIC_0000009,malignant\n", "ISIC_0000003,0.0\n")
    with pytest.raises(DataError) as err:
        isic2016.load(official, manifest_dir=tmp_path / "none")
    assert "remove" not in err.value.fix and "data verify isic2016_task3" in err.value.fix


# ------------------------------------------------------------------ unique image ids: a Dataset invariant

def test_dataset_refuses_a_repeated_image_id_naming_dataset_and_id(tmp_path):
    from skinbench.data.base import Dataset

    frame = pd.DataFrame({"image_id": ["a", "b", "a"], "image": ["x", "y", "z"], "label": ["n", "m", "n"],
                          "lesion_id": ["a", "b", "a"], "split": ["train", "train", "test"]})
    with pytest.raises(DataError, match=r"duplicate image id 'a' in dataset 'mine'.*Fix: list every image once"):
        Dataset("mine", tmp_path, frame)


def test_ham10000_repeated_metadata_row_is_refused_by_the_invariant(tmp_path):
    ids = _fake_ham(tmp_path)
    meta = tmp_path / "HAM10000_metadata.csv"
    meta.write_text(meta.read_text() + f"HAM_0000099,{ids[3]},nv,histo,50.0,male,back\n")
    with pytest.raises(DataError, match=rf"duplicate image id '{ids[3]}' in dataset 'ham10000'"):
        ham10000.load(tmp_path, manifest_dir=tmp_path / "none")


def test_part2b_image_in_both_splits_is_refused(tmp_path):
    for split, ids in (("train", ["ISIC_0000001", "ISIC_0000002"]), ("test", ["ISIC_0000002"])):
        for i in ids:
            _jpg(tmp_path / split / f"{i}.jpg")
            for t in ("globules", "streaks"):
                cv2.imwrite(str(tmp_path / split / f"{i}_{t}.png"), np.zeros((24, 32), np.uint8))
    with pytest.raises(DataError, match=r"duplicate image id 'ISIC_0000002' in dataset .*one split"):
        attributes.load_isic2016_part2b(tmp_path)


def test_cli_names_the_csv_line_of_a_repeated_id(tmp_path, capsys):
    from skinbench.cli import main

    (tmp_path / "images").mkdir()
    for i in ("a", "b", "c"):
        _jpg(tmp_path / "images" / f"{i}.jpg")
    (tmp_path / "labels.csv").write_text("image_id,label\na,x\nb,y\nc,x\nb,y\n")
    assert main(["data", "verify", "generic", "--data-root", str(tmp_path)]) != 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "labels.csv: line 5: duplicate image id 'b' (first on line 3)" in text
