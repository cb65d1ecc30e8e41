"""Adapters, splits, synthetic data and manifests: real counts, lesion-aware splits, one code path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinbench.data import generic, load_dataset, synthetic
from skinbench.data.images import read_image, read_mask
from skinbench.data.manifests import manifest_digest, read_manifest
from skinbench.data.splits import validation_split
from skinbench.errors import DataError


def _no_leak(frame: pd.DataFrame) -> None:
    train = set(frame.loc[frame["split"] == "train", "lesion_id"])
    test = set(frame.loc[frame["split"] == "test", "lesion_id"])
    assert not train & test


# --- synthetic ---------------------------------------------------------------------------------------

def test_synthetic_layout_and_masks(synthetic_dataset):
    ds = synthetic_dataset
    assert ds.name == "synthetic" and len(ds) == 48
    assert ds.class_names == ("benign", "malignant") and ds.targets == ("lesion", "globules", "streaks")
    assert set(ds.frame["split"]) == {"train", "test"}
    assert ds.groups.size > len(set(ds.groups)), "some lesions must have two images"
    _no_leak(ds.frame)
    img = read_image(ds.paths[0])
    assert img.shape == (96, 128, 3) and img.dtype == np.uint8
    lesion = np.array([read_mask(p).mean() for p in ds.masks("lesion")])
    assert ((lesion > 0.03) & (lesion < 0.6)).all()
    for target in ("globules", "streaks"):
        has = np.array([read_mask(p, fix_inverted=False).any() for p in ds.masks(target)])
        assert 0 < has.sum() < len(ds), f"{target} should be present in some images only"
    assert set(ds.y) == {0, 1}


def test_synthetic_is_deterministic(tmp_path):
    synthetic.generate(tmp_path / "a", n_images=48, seed=5)
    synthetic.generate(tmp_path / "b", n_images=48, seed=5)
    synthetic.generate(tmp_path / "c", n_images=48, seed=6)
    a, b, c = (synthetic.load(tmp_path / x) for x in "abc")
    assert a.manifest_digest == b.manifest_digest != c.manifest_digest
    assert (read_image(a.paths[3]) == read_image(b.paths[3])).all()
    assert not (read_image(a.paths[3]) == read_image(c.paths[3])).all()


def test_synthetic_dx_labels_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    ds = synthetic.load(n_images=40, seed=1, labels="dx")
    assert ds.class_names == synthetic.DX_CLASSES and set(ds.y) == {0, 1, 2}
    again = load_dataset("synthetic", root=tmp_path / "no-such-root", n_images=40, seed=1, labels="dx")
    assert again.root == ds.root and again.manifest_digest == ds.manifest_digest  # generated once, reused
    assert [p.name for p in (tmp_path / "cache" / "synthetic").iterdir()] == [ds.root.name]  # no temp left


def test_synthetic_classes_are_learnable_not_trivial(tmp_path):
    """Simple colour statistics separate the classes clearly better than chance but not perfectly."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    ds = synthetic.load(tmp_path, n_images=240, seed=2)
    feats = np.array([np.r_[im.mean((0, 1)), im.std((0, 1))]
                      for im in (read_image(p)[24:72, 32:96].astype(float) for p in ds.paths)])
    train = (ds.frame["split"] == "train").to_numpy()
    model = LogisticRegression(max_iter=5000).fit(feats[train] / 255, ds.y[train])
    auc = roc_auc_score(ds.y[~train], model.predict_proba(feats[~train] / 255)[:, 1])
    assert 0.65 < auc < 0.99


# --- splits ------------------------------------------------------------------------------------------

def test_validation_split_is_lesion_aware_stratified_and_seeded():
    y = np.array([0] * 70 + [1] * 30)
    groups = np.repeat(np.arange(50), 2)
    tr, va = validation_split(y, groups, fraction=0.2, seed=3)
    assert not set(groups[tr]) & set(groups[va])
    assert sorted(np.r_[tr, va]) == list(range(100))
    assert 0.15 < len(va) / 100 < 0.25 and 0.2 < y[va].mean() < 0.4
    tr2, va2 = validation_split(y, groups, fraction=0.2, seed=3)
    assert (va == va2).all()
    assert not np.array_equal(va, validation_split(y, groups, fraction=0.2, seed=4)[1])


def test_split_errors_are_clear():
    with pytest.raises(DataError, match="only one class"):
        validation_split(np.zeros(20), None)
    with pytest.raises(DataError, match="too few"):
        validation_split(np.array([0, 1, 0, 1]), np.array(["a", "a", "b", "b"]))


# --- generic -----------------------------------------------------------------------------------------

def test_generic_computes_lesion_split_and_finds_masks(tmp_path, synthetic_dataset):
    src = synthetic_dataset.root
    folder = tmp_path / "mine"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = synthetic_dataset.frame
    for _, r in rows.iterrows():
        (folder / "images" / f"{r.image_id}.png").write_bytes((src / "images" / f"{r.image_id}.png").read_bytes())
    first = rows.image_id.iloc[0]
    (folder / "masks" / f"{first}_lesion.png").write_bytes((src / "masks" / f"{first}_lesion.png").read_bytes())
    rows[["image_id", "label", "lesion_id"]].to_csv(folder / "labels.csv", index=False)
    ds = generic.load(folder, seed=0)
    assert ds.name == "generic" and len(ds) == 48 and ds.targets == ("lesion",)
    masks = ds.masks("lesion", missing="empty")
    assert masks[0].endswith(f"{first}_lesion.png") and masks[1] == ""
    with pytest.raises(DataError, match=r"47 image\(s\) have no lesion mask file"):
        ds.masks("lesion")  # an absent mask file is an error, never an empty lesion
    assert set(ds.frame["split"]) == {"train", "test"}
    _no_leak(ds.frame)
    assert generic.load(folder, seed=0).manifest_digest == ds.manifest_digest


# --- real data (small checks; full runs live in benchmarks/) ------------------------------------------

@pytest.mark.realdata
def test_isic2016_counts(shared_data):
    ds = load_dataset("isic2016_task3", root=shared_data)
    counts = ds.frame.groupby(["split", "label"]).size().to_dict()
    assert counts == {("train", "benign"): 727, ("train", "malignant"): 173,
                      ("test", "benign"): 304, ("test", "malignant"): 75}
    assert ds.class_names == ("benign", "malignant")
    assert ds.manifest_digest == manifest_digest(read_manifest("isic2016_task3"))


@pytest.mark.realdata
def test_ham10000_split_from_manifest_is_lesion_aware(shared_data):
    ds = load_dataset("ham10000", root=shared_data)
    assert len(ds) == 10015 and ds.frame["lesion_id"].nunique() == 7470
    _no_leak(ds.frame)
    test_share = (ds.frame["split"] == "test").mean()
    assert 0.18 < test_share < 0.22
    by_class = ds.frame.groupby("label")["split"].apply(lambda s: (s == "test").mean())
    assert ((by_class > 0.15) & (by_class < 0.25)).all(), "stratified by dx"
    manifest = read_manifest("ham10000")
    assert ds.manifest_digest == manifest_digest(manifest)
    saved = manifest.set_index("image_id")["split"]
    assert (ds.frame["split"].to_numpy() == saved.loc[ds.ids].to_numpy()).all()
    row = ds.frame.set_index("image_id").loc["ISIC_0026042"]
    assert read_mask(row["mask_lesion"]).all(), "full masks stay full"
    small = read_mask(row["mask_lesion"], image_size=read_image(row["image"]).shape[1::-1])
    assert small.shape == (150, 200)


@pytest.mark.realdata
def test_ham10000_manifest_split_matches_recomputation(shared_data):
    """The saved split is what the documented procedure gives (seed 0), so it can be rebuilt."""
    from skinbench.data import ham10000

    table = ham10000.read_metadata(shared_data / "ham10000" / ham10000.METADATA)
    manifest = read_manifest("ham10000").set_index("image_id")
    assert (ham10000.compute_split(table) == manifest.loc[table["image_id"], "split"].to_numpy()).all()


@pytest.mark.realdata
def test_isic2018_attribute_split(shared_data):
    ds = load_dataset("isic2018_task2", root=shared_data)
    assert ds.frame["split"].value_counts().to_dict() == {"train": 806, "test": 339}
    assert "ISIC_0012481" not in set(ds.ids)
    assert (ds.masks("streaks") != "").all() and (ds.masks("globules") != "").all()


@pytest.mark.realdata
def test_isic2018_all_keeps_the_test_split_and_excludes_copies_of_test_images(shared_data):
    full = load_dataset("isic2018_task2_all", root=shared_data)
    old = load_dataset("isic2018_task2", root=shared_data)
    assert full.manifest_digest and full.frame["split"].value_counts().to_dict() == {"train": 2247, "test": 339}
    assert set(full.split("test").ids) == set(old.split("test").ids)
    assert set(old.split("train").ids) <= set(full.split("train").ids)
    dropped = full.extra["dropped"]
    # the two copies the detail rule finds, and the five re-processed ones only the structure rule finds
    assert set(dropped) == {"ISIC_0012481", "ISIC_0014795", "ISIC_0014846", "ISIC_0014657", "ISIC_0014788",
                            "ISIC_0014949", "ISIC_0015023", "ISIC_0015034"}
    assert "copy of test image ISIC_0000164" in dropped["ISIC_0014795"]
    assert "copy of test image ISIC_0000165" in dropped["ISIC_0014788"]


@pytest.mark.realdata
def test_verify_reports(shared_data):
    from skinbench.data.verify import verify

    rep = verify("isic2016_task3", shared_data)
    assert rep.ok and rep.n_found == 1279 and not rep.missing
    ham = verify("ham10000", shared_data)
    assert not ham.ok and ham.reencoded and ham.usable and not ham.missing
    text = ham.summary()
    assert "re-encoded" in text and len(text.splitlines()) < 12
