"""Cross-dataset evaluation and the official ISIC ground-truth readers, on synthetic data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from skinbench import crossdata
from skinbench.data import isic_csv, load_dataset, synthetic
from skinbench.errors import DataError
from skinbench.provenance import RunSpec
from skinbench.results.records import RunRecord

TINY = {"n_images": 48}


# ----------------------------------------------------------------------------------- ISIC CSV readers

def _csv(tmp_path: Path, text: str, name: str = "gt.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_isic2017_format_maps_to_task1_and_task2(tmp_path):
    path = _csv(tmp_path, "image_id,melanoma,seborrheic_keratosis\nISIC_1,1.0,0.0\nISIC_2,0.0,1.0\nISIC_3,0,0\n")
    truth = isic_csv.read_ground_truth(path)
    assert truth["dx"].tolist() == ["mel", "sk", "nv"]
    rows, excluded = isic_csv.read_for_task(path, "task1")
    assert rows["label"].tolist() == ["malignant", "benign", "benign"] and excluded == {}
    rows, _ = isic_csv.read_for_task(path, "task2")
    assert rows["label"].tolist() == ["mel", "bkl", "nv"]


def test_onehot_2019_format_and_explicit_exclusions(tmp_path):
    path = _csv(tmp_path, "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"
                          "a,1,0,0,0,0,0,0,0,0\nb,0,1,0,0,0,0,0,0,0\nc,0,0,1,0,0,0,0,0,0\n"
                          "d,0,0,0,1,0,0,0,0,0\ne,0,0,0,0,0,0,0,1,0\nf,0,0,0,0,0,0,0,0,1\n")
    rows, excluded = isic_csv.read_for_task(path, "task1")
    assert dict(zip(rows["image_id"], rows["label"])) == {"a": "malignant", "b": "benign"}
    assert excluded == {"bcc": 1, "ak": 1, "scc": 1, "unk": 1}
    rows, excluded = isic_csv.read_for_task(path, "task2")
    assert dict(zip(rows["image_id"], rows["label"])) == {"a": "mel", "b": "nv", "c": "bcc", "d": "akiec"}
    assert excluded == {"scc": 1, "unk": 1}
    rows, _ = isic_csv.read_for_task(path, "task1", mapping={"mel": "malignant", "bcc": "malignant", "nv": "benign"})
    assert set(rows["image_id"]) == {"a", "b", "c"}


def test_isic2020_metadata_format(tmp_path):
    path = _csv(tmp_path, "image_name,patient_id,lesion_id,sex,age_approx,anatom_site_general_challenge,"
                          "diagnosis,benign_malignant,target\n"
                          "x1,p,l,male,45,torso,melanoma,malignant,1\nx2,p,l,male,45,torso,nevus,benign,0\n"
                          "x3,p,l,male,45,torso,unknown,benign,0\n")
    rows, excluded = isic_csv.read_for_task(path, "task1")
    assert rows["label"].tolist() == ["malignant", "benign"] and excluded == {"unk": 1}


@pytest.mark.parametrize("text, message", [
    ("image_id,melanoma,seborrheic_keratosis\nA,1,1\n", "both melanoma and seborrheic_keratosis"),
    ("image,MEL,NV,BCC\nA,1,1,0\n", "one-hot needs exactly one"),
    ("image,MEL,NV,BCC\nA,yes,0,0\n", "non-numeric"),
    ("image,MEL,NV,BCC\nA,1,0,0\nA,0,1,0\n", "line 3: duplicate image id 'A'"),
    ("id,label\nA,benign\n", "not an ISIC ground-truth header"),
])
def test_malformed_ground_truth_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(DataError, match=message) as err:
        isic_csv.read_ground_truth(_csv(tmp_path, text))
    assert "gt.csv" in str(err.value)


def test_ground_truth_with_excel_bom_and_spaced_ids_is_recognised(tmp_path, capsys):
    """An official header behind Excel's byte-order mark is still official (it was read as a generic
    labels file without labels); ids lose their spaces with one line saying so, as in labels.csv."""
    path = tmp_path / "gt.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"image_id,melanoma,seborrheic_keratosis\r\nISIC_1,1.0,0.0\r\n\r\n"
                     b" ISIC_2 ,0.0,1.0\r\n")
    table, meta = isic_csv.generic_table(path, "task1")
    assert meta["format"] == "isic2017" and table["image_id"].tolist() == ["ISIC_1", "ISIC_2"]
    assert table["label"].tolist() == ["malignant", "benign"] and table["_line"].tolist() == [2, 4]
    assert "gt.csv: 1 image id(s) have spaces before or after them" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- cross-dataset runs

@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """A foreign test set in the official ISIC 2017 layout: 24 new synthetic images, plus two training
    images copied under new ids (same content) and one under its own id (same id and content)."""
    train = load_dataset("synthetic", **TINY).split("train")
    src = tmp_path_factory.mktemp("foreign_src")
    synthetic.generate(src, n_images=24, seed=7)
    table = pd.read_csv(src / "labels.csv", dtype=str)
    folder = tmp_path_factory.mktemp("isic2017")
    (folder / "images").mkdir()
    rows = []
    for i, r in table.iterrows():
        new_id = f"ISIC_{9000000 + i}"
        shutil.copy(src / "images" / f"{r.image_id}.png", folder / "images" / f"{new_id}.png")
        rows.append((new_id, int(r.label == "malignant"), int(r.dx == "keratosis")))
    for k, (image_id, path) in enumerate(zip(train.ids[:3], train.paths[:3])):
        new_id = image_id if k == 2 else f"ISIC_dup{k}"
        shutil.copy(path, folder / "images" / f"{new_id}.png")
        label = train.frame["label"].iloc[k]
        rows.append((new_id, int(label == "malignant"), 0))
    lines = ["image_id,melanoma,seborrheic_keratosis"] + [f"{a},{b}.0,{c}.0" for a, b, c in rows]
    (folder / "ISIC-2017_Test_v2_Part3_GroundTruth.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_load_foreign_reads_the_official_layout(foreign):
    test = crossdata.load_foreign(foreign, "task1")
    assert len(test) == 27 and set(test.frame["split"]) == {"test"}
    assert test.class_names == ("benign", "malignant") and test.positive_class == "malignant"


def test_cross_dataset_record_excludes_overlap_and_reuses_the_model(foreign, tmp_path):
    test = crossdata.load_foreign(foreign, "task1")
    spec = RunSpec("task1", "stratified", "synthetic", 0, {}, None, None, 50)
    store = crossdata.ModelStore(tmp_path / "models")
    path = crossdata.cross_evaluate(spec, test, results_root=tmp_path / "r", dataset_kwargs=TINY, store=store)
    record = RunRecord.from_file(path)
    overlap = record.extras["overlap"]
    assert overlap == {"n_foreign": 27, "same_id": 1, "same_content": 3, "same_content_other_id": 2,
                       "excluded": 3, "n_scored": 24}
    assert record.split["n_test"] == 24 and len(record.predictions["image_id"]) == 24
    assert record.dataset.startswith("synthetic__on__") and record.extras["train_dataset"] == "synthetic"
    assert "runs/task1/synthetic__on__" in path.as_posix()
    geo = record.extras["geometry"]
    assert geo["train"]["n"] > 0 and geo["test"]["n"] == 24 and len(geo["test"]["aspect_p5_50_95"]) == 3
    assert record.extras["model"]["reused"] is False and record.extras["model"]["stored"] is True
    assert record.value("accuracy") is not None and record.ci("accuracy")[0] is not None
    # a second test set (here: the same one without its last 4 images) costs prediction only
    again = crossdata.cross_evaluate(spec, test.subset(range(23)), results_root=tmp_path / "r2",
                                     dataset_kwargs=TINY, store=store)
    second = RunRecord.from_file(again)
    assert second.extras["model"]["reused"] is True and second.timings["fit_s"] == 0.0
    assert second.extras["model"]["run_key"] == record.extras["model"]["run_key"]


def test_a_test_set_inside_the_training_set_is_refused(tmp_path):
    ds = load_dataset("synthetic", **TINY)
    train_as_test = ds.split("train")
    spec = RunSpec("task1", "majority", "synthetic", 0, {}, None, None, 20)
    with pytest.raises(DataError, match="in the training set"):
        crossdata.cross_evaluate(spec, train_as_test, results_root=tmp_path, dataset_kwargs=TINY,
                                 store=crossdata.ModelStore(tmp_path / "m"))


# ------------------------------------------------------------------------- the generic adapter's hook

def _tiny_images(folder: Path, ids, size=(16, 12)) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for k, image_id in enumerate(ids):
        pixels = np.full((size[1], size[0], 3), 40 + 10 * k, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{image_id}.png")


def test_generic_reads_an_official_2017_download_as_it_is(tmp_path):
    """No labels.csv: the folder's one *GroundTruth*.csv, images beside it (the official layout)."""
    from skinbench.data import generic

    (tmp_path / "ISIC-2017_Test_v2_Part3_GroundTruth.csv").write_text(
        "image_id,melanoma,seborrheic_keratosis\nISIC_1,1.0,0.0\nISIC_2,0.0,1.0\nISIC_3,0.0,0.0\nISIC_4,1.0,0.0\n"
        "ISIC_5,0.0,0.0\nISIC_6,1,0\nISIC_7,0,0\nISIC_8,0,0\nISIC_9,0,0\n")
    _tiny_images(tmp_path, [f"ISIC_{i}" for i in range(1, 10)])
    ds = generic.load(tmp_path, task="task1")
    assert dict(zip(ds.ids, ds.frame["label"])) == {"ISIC_1": "malignant", "ISIC_2": "benign", "ISIC_3": "benign",
                                                    "ISIC_4": "malignant", "ISIC_5": "benign", "ISIC_6": "malignant",
                                                    "ISIC_7": "benign", "ISIC_8": "benign", "ISIC_9": "benign"}
    assert ds.class_names == ("benign", "malignant") and ds.positive_class == "malignant" and ds.classes_declared
    assert ds.extra["format"] == "isic2017" and ds.extra["excluded"] == {}
    assert ds.extra["mapping"]["name"] == "task1 default" and ds.frame["dx"].tolist()[:4] == ["mel", "sk", "nv", "mel"]
    assert ds.extra["label_lines"]["ISIC_3"] == 4 and Path(ds.paths[0]).parent == tmp_path
    ds2 = load_dataset("generic", tmp_path, task="task2")
    assert ds2.frame["label"].tolist()[:4] == ["mel", "bkl", "nv", "mel"] and len(ds2.class_names) == 7


def test_generic_reads_a_onehot_2019_csv_with_the_mapping(tmp_path):
    from skinbench.data import generic

    ids = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    dx = {"a": "MEL", "b": "NV", "c": "BCC", "d": "BKL", "e": "SCC", "f": "UNK", "g": "MEL", "h": "NV", "i": "DF",
          "j": "NV"}
    columns = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    rows = [",".join([i] + ["1.0" if c == dx[i] else "0.0" for c in columns]) for i in ids[:2] + ids[6:] + ids[2:6]]
    (tmp_path / "gt2019.csv").write_text("\n".join(["image," + ",".join(columns)] + rows) + "\n")
    _tiny_images(tmp_path / "images", ids)
    ds = generic.load(tmp_path, csv="gt2019.csv", task="task1")
    assert dict(zip(ds.ids, ds.frame["label"])) == {"a": "malignant", "b": "benign", "g": "malignant", "h": "benign",
                                                    "i": "benign", "j": "benign", "d": "benign"}
    assert ds.extra["format"] == "onehot" and ds.extra["excluded"] == {"bcc": 1, "scc": 1, "unk": 1}
    ds = generic.load(tmp_path, csv="gt2019.csv", task="task1", mapping="melanoma-vs-rest")
    assert dict(zip(ds.ids, ds.frame["label"])) == {"a": "malignant", "b": "benign", "g": "malignant", "h": "benign",
                                                    "i": "benign", "j": "benign", "c": "benign", "d": "benign",
                                                    "e": "benign"}
    assert ds.extra["excluded"] == {"unk": 1} and ds.extra["mapping"]["name"] == "melanoma-vs-rest"
    with pytest.raises(DataError, match="needs a task") as err:
        generic.load(tmp_path, csv="gt2019.csv")
    assert "gt2019.csv" in str(err.value)
    with pytest.raises(DataError, match="unknown class mapping 'nope'"):
        generic.load(tmp_path, csv="gt2019.csv", task="task1", mapping="nope")


def test_relabel_maps_diagnosis_codes_and_counts_exclusions():
    from skinbench.data.base import Dataset

    frame = pd.DataFrame({"image_id": list("abcdef"), "image": [f"/x/{i}.jpg" for i in "abcdef"],
                          "label": ["mel", "nv", "bcc", "akiec", "bkl", "vasc"], "lesion_id": list("abcdef"),
                          "split": "test"})
    ds = Dataset("ham10000", Path("/x"), frame, ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"))
    default = crossdata.relabel(ds, "task1")
    assert default.frame["label"].tolist() == ["malignant", "benign", "benign", "benign"]
    assert default.extra["excluded"] == {"bcc": 1, "akiec": 1} and default.positive_class == "malignant"
    rest = crossdata.relabel(ds, "task1", "melanoma-vs-rest")
    assert rest.frame["label"].tolist() == ["malignant"] + ["benign"] * 5 and rest.extra["excluded"] == {}
    assert rest.frame["dx"].tolist() == ["mel", "nv", "bcc", "akiec", "bkl", "vasc"]
    assert rest.manifest_digest != default.manifest_digest != ds.manifest_digest


@pytest.mark.realdata
def test_ham10000_test_split_relabelled_for_task1(shared_data):
    test = crossdata.load_test_set("ham10000", "task1", mapping="melanoma-vs-rest", data_root=shared_data)
    assert test.extra["slug"] == "ham10000-test" and test.extra["split"] == "test"
    assert test.frame["label"].value_counts().to_dict() == {"benign": 1781, "malignant": 223}
    assert test.class_names == ("benign", "malignant") and set(test.frame["split"]) == {"test"}


# ----------------------------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def generic_pair(tmp_path_factory, foreign):
    """A generic training folder, and the ISIC 2017-layout foreign folder holding 3 of its images."""
    train_dir = tmp_path_factory.mktemp("train_generic")
    train = load_dataset("synthetic", **TINY)
    (train_dir / "images").mkdir()
    lines = ["image_id,label,lesion_id,split"]
    for _, r in train.frame.iterrows():
        shutil.copy(r.image, train_dir / "images" / Path(r.image).name)
        lines.append(f"{r.image_id},{r.label},{r.lesion_id},{r.split}")
    (train_dir / "labels.csv").write_text("\n".join(lines) + "\n")
    return train_dir, foreign


def test_cli_cross_dataset_run_writes_its_own_record_and_table(generic_pair, tmp_path):
    from skinbench.cli import main
    from skinbench.results.records import load_records

    train_dir, foreign_dir = generic_pair
    out = tmp_path / "r"
    common = ["--dataset", "generic", "--data-root", str(train_dir), "--n-boot", "50", "--results", str(out)]
    assert main(["run", "task1", "-a", "majority", *common]) == 0  # an in-dataset row, for contrast
    assert main(["run", "task1", "-a", "stratified", *common, "--test-dataset", "generic",
                 "--test-root", str(foreign_dir)]) == 0
    records = load_records(out, task="task1")
    cross = [r for r in records if "__on__" in r.dataset]
    assert sorted(r.approach for r in cross) == ["majority", "stratified"]  # the baselines come along
    r = cross[0]
    train_slug, test_slug = r.dataset.split("__on__")
    assert train_slug.startswith("generic-train-generic") and test_slug.startswith("generic-isic2017")
    assert r.extras["train_dataset"] == train_slug and r.extras["test_dataset"] == test_slug
    assert r.extras["overlap"]["excluded"] == 3 and r.split["n_test"] == 24
    assert r.extras["mapping"]["name"] == "task1 default" and r.extras["test_split"] == "all"
    assert (out / "runs" / "task1" / r.dataset / "stratified.json").is_file()
    in_dataset = [x for x in records if "__on__" not in x.dataset]
    assert {x.dataset for x in in_dataset} == {train_slug}  # a distinct path from the in-dataset record
    md = (out / "tables" / f"task1__{r.dataset}.md").read_text()
    assert f"cross-dataset: trained on {train_slug}, tested on {test_slug}" in md
    assert "excluded: 3 of 27" in md and "malignant: mel;" in md
    assert "Label mapping `task1 default`: benign: bkl, df" in md
    assert "Input geometry, train: 128x96 px" in md
    assert "bovw" not in md.split("|---")[-1]  # rows only for the approaches run on this pair
    in_md = (out / "tables" / f"task1__{train_slug}.md").read_text()
    assert "Cross-dataset" not in in_md and "| bovw" in in_md  # the in-dataset table keeps its usual rows
    from skinbench.results.tables import build_tables

    titles = [t.title for t in build_tables(records, "task1")]
    assert titles == [f"task1 / {train_slug}", f"task1 / cross-dataset: trained on {train_slug}, tested on {test_slug}"]


def test_table_renders_a_cross_dataset_header_without_the_cross_dataset_runner(generic_pair, tmp_path):
    """`skinbench table` writes a cross-dataset table's header from the results layer alone (issue 29: results
    imported crossdata for it, one edge of an import circle)."""
    import subprocess
    import sys

    train_dir, foreign_dir = generic_pair
    out = tmp_path / "r"
    assert _cross(train_dir, out, "--test-dataset", "generic", "--test-root", str(foreign_dir)) == 0
    code = ("import sys; from skinbench.cli import main; rc = main(['table', 'task1', '--results', sys.argv[1]]); "
            "print(rc, 'skinbench.crossdata' in sys.modules, 'skinbench.runner' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 False False"
    md = next((out / "tables").glob("task1__*__on__*.md")).read_text()
    assert "**Cross-dataset**: fitted on the train split of" in md and "Input geometry, train:" in md


def test_cli_cross_dataset_errors_are_one_line(generic_pair, tmp_path, capsys):
    from skinbench.cli import main

    train_dir, _ = generic_pair
    rc = main(["run", "task1", "-a", "stratified", "--dataset", "generic", "--data-root", str(train_dir),
               "--test-dataset", "generic", "--results", str(tmp_path)])
    assert rc == 2 and "needs its folder" in capsys.readouterr().err
    rc = main(["run", "task4", "-a", "ellipse", "--dataset", "synthetic", "--test-dataset", "generic",
               "--test-root", str(tmp_path / "nowhere"), "--results", str(tmp_path)])
    assert rc == 2 and "test data folder does not exist" in capsys.readouterr().err


# ------------------------------------------------- segmentation across datasets (issue 29: one scorer)

@pytest.fixture(scope="module")
def isic_task1_release(tmp_path_factory):
    """A lesion-segmentation test set as an ISIC 2018 Task 1 download unzips (no CSV): 20 new synthetic
    images in ``ISIC2018_Task1-2_Test_Input/``, their masks as ``<id>_segmentation.png`` in
    ``ISIC2018_Task1_Test_GroundTruth/``; plus two images of the training split (default synthetic set),
    one under a new id (same content) and one under its own id; a superpixels file and a ``__MACOSX``
    folder that are not test images."""
    train = load_dataset("synthetic").split("train")
    src = tmp_path_factory.mktemp("seg_src")
    synthetic.generate(src, n_images=20, seed=11)
    folder = tmp_path_factory.mktemp("isic2018_task1")
    images, masks = folder / "ISIC2018_Task1-2_Test_Input", folder / "ISIC2018_Task1_Test_GroundTruth"
    images.mkdir()
    masks.mkdir()
    pairs = [(src / "images" / f"syn_{i:05d}.png", src / "masks" / f"syn_{i:05d}_lesion.png", f"ISIC_{9200000 + i}")
             for i in range(20)]
    pairs += [(Path(train.paths[k]), Path(train.masks("lesion")[k]), new_id)
              for k, new_id in ((0, "ISIC_dup0"), (1, train.ids[1]))]
    for image, mask, new_id in pairs:
        shutil.copy(image, images / f"{new_id}.png")
        shutil.copy(mask, masks / f"{new_id}_segmentation.png")
    shutil.copy(pairs[0][0], images / f"{pairs[0][2]}_superpixels.png")  # ISIC 2017 ships these beside images
    (folder / "__MACOSX").mkdir()
    shutil.copy(pairs[0][0], folder / "__MACOSX" / "x.png")  # a zip made on a Mac
    return folder


def test_load_mask_folder_pairs_isic_masks_with_their_images(isic_task1_release, tmp_path):
    test = crossdata.load_test_set("generic", "task4", isic_task1_release)
    assert len(test) == 22 and set(test.frame["split"]) == {"test"} and test.targets == ("lesion",)
    assert all(Path(m).name == f"{i}_segmentation.png" for i, m in zip(test.ids, test.masks("lesion")))
    folder = tmp_path / "one_mask_less"
    shutil.copytree(isic_task1_release, folder)
    next((folder / "ISIC2018_Task1_Test_GroundTruth").glob("ISIC_92*_segmentation.png")).unlink()
    from skinbench.cli import main

    assert main(["run", "task4", "-a", "ellipse", "--dataset", "synthetic", "--test-dataset", "generic",
                 "--test-root", str(folder), "--n-boot", "20", "--results", str(tmp_path / "r")]) == 2


def test_cli_task4_cross_dataset_run_scores_masks_like_a_run(isic_task1_release, tmp_path, capsys):
    """`run task4 --test-dataset generic --test-root DIR` (refused before issue 29): trained on the synthetic
    set, scored on an ISIC-layout mask folder with the overlap excluded and the geometry recorded; its
    record carries the fields of an in-dataset run's record, surface distances included."""
    from skinbench.cli import main
    from skinbench.results.records import load_records

    out = tmp_path / "r"
    common = ["run", "task4", "-a", "ellipse", "--dataset", "synthetic", "--n-boot", "20", "--results", str(out)]
    assert main(common) == 0
    assert main([*common, "--test-dataset", "generic", "--test-root", str(isic_task1_release)]) == 0
    records = load_records(out, task="task4")
    cross = {r.approach: r for r in records if "__on__" in r.dataset}
    assert set(cross) == {"ellipse", "all-background", "all-foreground"}  # the baselines come along
    r = cross["ellipse"]
    assert r.target == "lesion" and r.dataset.startswith("synthetic__on__generic-isic2018-task1")
    assert r.extras["overlap"]["excluded"] == 2 and r.split["n_test"] == 20
    assert r.extras["geometry"]["test"]["n"] == 20 and "mapping" not in r.extras  # masks, not labels
    assert len(r.predictions["counts"]) == len(r.predictions["surface"]) == 20
    assert r.run_key and r.key_inputs["target"] == "lesion" and r.command.endswith(str(isic_task1_release))
    own = next(x for x in records if x.approach == "ellipse" and "__on__" not in x.dataset)
    assert set(r.metrics) == set(own.metrics) and set(r.predictions) == set(own.predictions)
    assert set(r.timings) == set(own.timings) and set(r.params) == set(own.params)
    assert 0.0 < r.value("jaccard_mean") < 1.0
    md = (out / "tables" / f"task4__{r.dataset}__lesion.md").read_text()
    assert "**Cross-dataset**" in md and "excluded: 2 of 22" in md and "Test labels" not in md
    assert "hd95_mean" in md


# ------------------------------------------------- official releases as they unzip (issue 30, cross-dataset)

#: ISIC 2017 Part 3: the three ground truths of one release side by side, the test images in their own folder
ISIC2017_CSVS = ("ISIC-2017_Training_Part3_GroundTruth.csv", "ISIC-2017_Validation_Part3_GroundTruth.csv",
                 "ISIC-2017_Test_v2_Part3_GroundTruth.csv")
RELEASE_IDS = [f"ISIC_{9100000 + i}" for i in range(12)]
RELEASE_MEL = set(RELEASE_IDS[::3])  # 4 melanomas, 8 naevi


def _noise_images(folder: Path, ids, size=(128, 96), seed=0) -> None:
    """Distinct tiny images (random pixels), PNG, ``size`` = (width, height)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{image_id}.png")


def _release_rows(fmt: str) -> list[str]:
    """Header (none for 2016) and rows of an official ground truth of ``RELEASE_IDS``."""
    mel = [i in RELEASE_MEL for i in RELEASE_IDS]
    if fmt == "2016":
        return [f"{i},{1.0 if m else 0.0}" for i, m in zip(RELEASE_IDS, mel)]
    if fmt == "2017":
        return ["image_id,melanoma,seborrheic_keratosis"] + [f"{i},{float(m)},0.0" for i, m in zip(RELEASE_IDS, mel)]
    if fmt == "2018":
        return ["image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"] + [f"{i},{float(m)},{float(not m)},0.0,0.0,0.0,0.0,0.0"
                                                         for i, m in zip(RELEASE_IDS, mel)]
    if fmt == "2019":
        return ["image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"] + [
            f"{i},{float(m)},{float(not m)},0.0,0.0,0.0,0.0,0.0,0.0,0.0" for i, m in zip(RELEASE_IDS, mel)]
    return ["image_name,patient_id,lesion_id,sex,age_approx,anatom_site_general_challenge,diagnosis,"
            "benign_malignant,target"] + [f"{i},IP_1,IL_{k},male,45.0,torso,{'melanoma' if m else 'nevus'},"
                                          f"{'malignant' if m else 'benign'},{int(m)}"
                                          for k, (i, m) in enumerate(zip(RELEASE_IDS, mel))]


def _release(folder: Path, fmt: str, csv: str, images: str, others: tuple[str, ...] = ()) -> Path:
    """``folder`` laid out as the release unzips: ``csv`` (may sit in a sub-folder), ``images`` (may be
    nested), and ``others`` (files of the release that are not this ground truth)."""
    (folder / csv).parent.mkdir(parents=True, exist_ok=True)
    (folder / csv).write_text("\n".join(_release_rows(fmt)) + "\n")
    _noise_images(folder / images, RELEASE_IDS, seed=int(fmt))
    for name in others:
        (folder / name).write_text("image,age_approx\nISIC_0,45\n")
    return folder


def _cross(train_dir: Path, out: Path, *extra: str, approach: str = "majority") -> int:
    from skinbench.cli import main

    return main(["run", "task1", "-a", approach, "--dataset", "generic", "--data-root", str(train_dir),
                 "--n-boot", "20", "--results", str(out), *extra])


def _cross_records(out: Path) -> list[RunRecord]:
    from skinbench.results.records import load_records

    return [r for r in load_records(out, task="task1") if "__on__" in r.dataset]


@pytest.mark.parametrize("fmt, csv, images, others, mapping", [
    ("2016", "ISBI2016_ISIC_Part3_Test_GroundTruth.csv", "ISBI2016_ISIC_Part3_Test_Data", (), "ISIC 2016 labels"),
    ("2018", "ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv", "ISIC2018_Task3_Test_Input",
     ("ISIC2018_Task3_Training_LesionGroupings.csv",), "task1 default"),
    ("2019", "ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Input/ISIC_2019_Training_Input",
     ("ISIC_2019_Training_Metadata.csv",), "task1 default"),
    ("2020", "ISIC_2020_Training_GroundTruth.csv", "train", ("ISIC_2020_Training_Duplicates.csv",), "task1 default"),
])
def test_cli_scores_an_official_release_as_it_unzips(generic_pair, tmp_path, fmt, csv, images, others, mapping):
    """The ground truth is found by its official name (also in the folder a 2018 zip makes) and the
    images in the release's own folder (also nested as a zip unzips into a folder of its name)."""
    train_dir, _ = generic_pair
    folder = _release(tmp_path / "download", fmt, csv, images, others)
    assert _cross(train_dir, tmp_path / "r", "--test-dataset", "generic", "--test-root", str(folder)) == 0
    r = next(x for x in _cross_records(tmp_path / "r") if x.approach == "majority")
    assert r.split["n_test"] == 12 and r.extras["test_class_counts"] == {"benign": 8, "malignant": 4}
    assert r.extras["mapping"]["name"] == mapping and r.extras["overlap"]["excluded"] == 0


def test_cli_several_ground_truths_are_listed_and_one_is_picked_with_test_labels(generic_pair, tmp_path, capsys):
    train_dir, _ = generic_pair
    folder = tmp_path / "ISIC-2017"
    for name in ISIC2017_CSVS[:2]:
        (folder / name.replace("Part3_GroundTruth.csv", "Data")).mkdir(parents=True)
        (folder / name).write_text("image_id,melanoma,seborrheic_keratosis\nISIC_0000000,0.0,0.0\n")
    _release(folder, "2017", ISIC2017_CSVS[2], "ISIC-2017_Test_v2_Data")
    assert _cross(train_dir, tmp_path / "r", "--test-dataset", "generic", "--test-root", str(folder)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "labels CSV is missing" not in err
    assert "found 3 ground-truth CSVs and cannot choose" in err and all(name in err for name in ISIC2017_CSVS)
    assert "--test-labels" in err
    # picked by name (relative to --test-root), images found in ISIC-2017_Test_v2_Data/ beside it
    assert _cross(train_dir, tmp_path / "r", "--test-root", str(folder), "--test-labels", ISIC2017_CSVS[2]) == 0
    r = next(x for x in _cross_records(tmp_path / "r") if x.approach == "majority")
    assert r.split["n_test"] == 12  # the test file's rows (the training and validation files hold one each)
    # --test-labels alone: its folder is the test folder
    assert _cross(train_dir, tmp_path / "r2", "--test-labels", str(folder / ISIC2017_CSVS[2])) == 0
    assert _cross_records(tmp_path / "r2")[0].split["n_test"] == 12


def test_cli_absent_images_of_an_official_release_never_advise_editing_it(generic_pair, tmp_path, capsys):
    train_dir, _ = generic_pair
    folder = _release(tmp_path / "ISIC-2017", "2017", ISIC2017_CSVS[2], "ISIC-2017_Test_v2_Data")
    (folder / "ISIC-2017_Test_v2_Data" / f"{RELEASE_IDS[5]}.png").unlink()
    assert _cross(train_dir, tmp_path / "r", "--test-root", str(folder)) == 2
    err = capsys.readouterr().err
    assert f"1 image(s) listed but absent from {folder / 'ISIC-2017_Test_v2_Data'}" in err
    assert "unzip the release's image archive ISIC-2017_Test_v2_Data.zip" in err
    assert "remove those rows" not in err and "--test-labels" in err


@pytest.mark.parametrize("extra, message", [
    (("--test-labels", "nope.csv"), "test labels CSV not found"),
    (("--test-dataset", "ham10000", "--test-labels", "x.csv"), "--test-labels names the ground truth of a folder"),
    (("--test-dataset", "generic"), "--test-root DIR or --test-labels FILE"),
])
def test_cli_test_labels_errors_are_one_line(generic_pair, tmp_path, capsys, extra, message):
    train_dir, _ = generic_pair
    assert _cross(train_dir, tmp_path / "r", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_isic2016_ground_truth_is_task1_only(tmp_path):
    folder = _release(tmp_path, "2016", "ISBI2016_ISIC_Part3_Test_GroundTruth.csv", "ISBI2016_ISIC_Part3_Test_Data")
    with pytest.raises(DataError, match="no diagnoses to map to task2"):
        crossdata.load_test_set("generic", "task2", folder)
    with pytest.raises(DataError, match="a diagnosis mapping does not apply"):
        crossdata.load_test_set("generic", "task1", folder, mapping="melanoma-vs-rest")
    rows, excluded = isic_csv.read_for_task(folder / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv", "task1")
    assert len(rows) == 12 and excluded == {} and set(rows["label"]) == {"benign", "malignant"}
    test = crossdata.load_foreign(folder, "task1")
    assert len(test) == 12 and test.extra["mapping"]["name"] == "ISIC 2016 labels"


# ------------------------------------------------- a registered test set beside generic training data

def _fake_isic2016(root: Path) -> Path:
    """``root/isic2016_task3`` with every id and label of the manifest (one tiny image copied for all)."""
    from skinbench.data import isic2016
    from skinbench.paths import MANIFEST_DIR

    manifest = pd.read_csv(MANIFEST_DIR / "isic2016_task3.csv", dtype=str)
    folder = root / "isic2016_task3"
    _noise_images(tmp := root / "one", ["x"], size=(96, 64))
    for split, csv, dirs in (("train", isic2016.TRAIN_CSV, isic2016.TRAIN_DIRS),
                             ("test", isic2016.TEST_CSV, isic2016.TEST_DIRS)):
        part = manifest[manifest["split"] == split]
        (folder / dirs[1]).mkdir(parents=True)
        for image_id in part["image_id"]:
            shutil.copyfile(tmp / "x.png", folder / dirs[1] / f"{image_id}.png")
        (folder / csv).write_text("".join(f"{i},{lab}\n" for i, lab in zip(part["image_id"], part["label"])))
    return root


def test_cli_registered_test_set_is_found_under_skinbench_data_not_the_generic_folder(
        generic_pair, tmp_path, monkeypatch, capsys):
    train_dir, _ = generic_pair
    monkeypatch.setenv("SKINBENCH_DATA", str(tmp_path / "empty"))
    assert _cross(train_dir, tmp_path / "r", "--test-dataset", "isic2016_task3") == 2
    err = capsys.readouterr().err
    assert f"not found under {tmp_path / 'empty'} (from $SKINBENCH_DATA)" in err and str(train_dir) not in err
    assert "--test-root DIR, or set $SKINBENCH_DATA" in err and "--data-root" not in err
    monkeypatch.setenv("SKINBENCH_DATA", str(_fake_isic2016(tmp_path / "data")))
    assert _cross(train_dir, tmp_path / "r", "--test-dataset", "isic2016_task3") == 0
    r = _cross_records(tmp_path / "r")[0]
    assert r.dataset.endswith("__on__isic2016_task3-test") and r.split["n_test"] == 379


# ------------------------------------------------- geometry warning, sensitivity and specificity

def test_cli_warns_once_about_a_squashed_test_set_and_shows_sens_and_spec(generic_pair, tmp_path, capsys):
    train_dir, _ = generic_pair  # 128x96 training images (4:3)
    folder = tmp_path / "squashed"
    _noise_images(folder / "images", RELEASE_IDS, size=(64, 64))
    (folder / "labels.csv").write_text("image_id,label\n" + "".join(
        f"{i},{'malignant' if i in RELEASE_MEL else 'benign'}\n" for i in RELEASE_IDS))
    assert _cross(train_dir, tmp_path / "r", "--test-root", str(folder), approach="stratified") == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, err  # stratified and the majority baseline: said once
    assert "test images differ in geometry" in warnings[0] and "aspect 1.00 vs 1.33" in warnings[0]
    assert "scale" not in warnings[0]  # 64x64 vs 128x96 is under one octave: only the aspect is marked
    title = next(line for line in out.splitlines() if "cross-dataset" in line)
    assert "sens/spec at p > 0.5" in title
    header = out.split(title)[1].splitlines()[1]
    assert header.split()[:4] == ["approach", "ap*", "sens", "spec"]
    csv_path = next((tmp_path / "r" / "tables").glob("task1__*__on__*[!l].csv"))
    assert "specificity" in csv_path.read_text().splitlines()[0]
    # test images like the training ones: no warning
    _noise_images(folder / "images", RELEASE_IDS, size=(128, 96))
    assert _cross(train_dir, tmp_path / "r2", "--test-root", str(folder)) == 0
    assert "warning" not in capsys.readouterr().err


def test_geometry_mismatch_marks_aspect_and_scale():
    def geo(w: float, h: float) -> dict:
        return {"n": 5, "width_p5_50_95": [w, w, w], "height_p5_50_95": [h, h, h], "aspect_p5_50_95": [w / h] * 3}

    assert crossdata.geometry_mismatch(geo(512, 384), geo(576, 384)) is None  # 4:3 vs 3:2 within one release
    assert "aspect 1.00 vs 1.33" in crossdata.geometry_mismatch(geo(512, 384), geo(256, 256))
    line = crossdata.geometry_mismatch(geo(512, 384), geo(200, 150))
    assert "scale x2.6" in line and "aspect" not in line.split("px,")[1]
    assert crossdata.geometry_mismatch(geo(512, 384), {"n": 0}) is None
# ------------------------------------------------------------------------- the model store

_FT_TOP_SMOKE = ["-p", "weights=none", "-p", "input_size=32", "-p", "n_views=1", "-p", "batch_size=16",
                 "-p", 'stages=[["head", 0.001, 2], ["top", 0.001, 1]]']


@pytest.mark.slow
def test_cli_second_test_set_reuses_the_stored_fine_tuned_model(generic_pair, tmp_path, capsys, monkeypatch):
    """The ft-top model (a Keras model with the backbone's preprocessing) is stored and loaded back: the
    second test set costs prediction only, with no warning."""
    from skinbench.cli import main
    from skinbench.results.records import load_records

    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    train_dir, foreign_dir = generic_pair
    common = ["run", "task1", "-a", "transfer-mobilenetv2-ft-top", "--dataset", "generic", "--data-root",
              str(train_dir), "--n-boot", "20", *_FT_TOP_SMOKE, "--test-dataset", "generic"]
    assert main([*common, "--test-root", str(foreign_dir), "--results", str(tmp_path / "a")]) == 0
    second = tmp_path / "second"
    shutil.copytree(foreign_dir, second)
    (second / "images" / "ISIC_dup0.png").unlink()
    gt = second / "ISIC-2017_Test_v2_Part3_GroundTruth.csv"
    gt.write_text("\n".join(x for x in gt.read_text().splitlines() if not x.startswith("ISIC_dup0")) + "\n")
    capsys.readouterr()
    assert main([*common, "--test-root", str(second), "--results", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err
    (first,) = [r for r in load_records(tmp_path / "a", task="task1") if r.approach == "transfer-mobilenetv2-ft-top"]
    (again,) = [r for r in load_records(tmp_path / "b", task="task1") if r.approach == "transfer-mobilenetv2-ft-top"]
    assert first.extras["model"]["stored"] is True and first.extras["model"]["reused"] is False
    assert again.extras["model"]["reused"] is True and again.timings["fit_s"] == 0.0
    assert "store_error" not in again.extras["model"]


def test_an_unloadable_stored_model_is_a_warning_and_a_note_in_the_record(foreign, tmp_path, capsys):
    test = crossdata.load_foreign(foreign, "task1")
    spec = RunSpec("task1", "stratified", "synthetic", 0, {}, None, None, 20)
    store = crossdata.ModelStore(tmp_path / "models")
    first = RunRecord.from_file(crossdata.cross_evaluate(spec, test, results_root=tmp_path / "r", dataset_kwargs=TINY,
                                                         store=store))
    path = store.path(first.extras["model"]["run_key"])
    path.write_bytes(b"not a joblib file")
    capsys.readouterr()
    again = RunRecord.from_file(crossdata.cross_evaluate(spec, test, results_root=tmp_path / "r2",
                                                         dataset_kwargs=TINY, store=store))
    err = capsys.readouterr().err.strip().splitlines()
    warnings = [line for line in err if "warning" in line]
    assert len(warnings) == 1 and str(path) in warnings[0] and "cannot load the stored model" in warnings[0]
    model = again.extras["model"]
    assert model["reused"] is False and model["stored"] is True and str(path) in model["store_error"]
    assert crossdata.ModelStore(tmp_path / "models").get(model["run_key"]) is not None  # refitted and stored again
    assert again.metrics == first.metrics
