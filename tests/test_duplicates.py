"""Duplicate images: exact copies, re-encoded / resized copies, distinct look-alikes not flagged, verify hook."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from skinbench.data.duplicates import (
    DETAIL_THRESHOLD,
    NEAR_THRESHOLD,
    PAIR_COLUMNS,
    STRUCTURE_THRESHOLD,
    DuplicatePair,
    detail_vector,
    find_duplicates,
    fingerprint,
    fingerprints,
    hamming,
    pairs_frame,
    phash,
    structure_map,
    structure_similarity,
)


def _image(seed: int, layout: int | None = None, size=(150, 200)) -> np.ndarray:
    """A dermoscopy-like RGB image: textured skin and a textured dark blob; ``layout`` fixes colour,
    blob position and shape, ``seed`` the texture (same layout + other seed = a distinct look-alike)."""
    rng = np.random.default_rng(seed)
    lay = np.random.default_rng(seed if layout is None else layout)
    h, w = size
    skin = np.array([220, 180, 160], float) + lay.normal(0, 8, 3)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 2.0)
    tex /= tex.std()
    img = skin[None, None, :] + 12 * tex[..., None]
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = lay.integers(h // 3, 2 * h // 3), lay.integers(w // 3, 2 * w // 3), lay.integers(20, 40)
    radius = r * (1 + 0.2 * np.sin(3 * np.arctan2(yy - cy, xx - cx) + lay.random() * 6))
    blob = np.hypot(yy - cy, xx - cx) <= radius
    lesion = np.array([110, 70, 50], float) + 25 * tex[..., None] * np.array([1, 0.8, 0.6])
    return np.clip(np.where(blob[..., None], lesion, img), 0, 255).astype(np.uint8)


def _write(path, rgb: np.ndarray, *params) -> str:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params))
    return str(path)


@pytest.fixture()
def images(tmp_path):
    """ids -> paths: a, its exact copy, a re-encoded and a half-size copy; b and a re-compressed PNG of
    it (same pixels, other bytes); c distinct; d a look-alike of a (same blob, other texture)."""
    a, b = _image(1), _image(2)
    paths = {"a": _write(tmp_path / "a.png", a), "b": _write(tmp_path / "b.png", b, cv2.IMWRITE_PNG_COMPRESSION, 1)}
    paths["a_copy"] = shutil.copy(paths["a"], tmp_path / "a_copy.png")
    paths["a_jpeg"] = _write(tmp_path / "a_jpeg.jpg", a, cv2.IMWRITE_JPEG_QUALITY, 80)
    small = cv2.resize(a, (100, 75), interpolation=cv2.INTER_AREA)
    paths["a_small"] = _write(tmp_path / "a_small.jpg", small, cv2.IMWRITE_JPEG_QUALITY, 85)
    paths["b_png9"] = _write(tmp_path / "b_png9.png", b, cv2.IMWRITE_PNG_COMPRESSION, 9)
    paths["c"] = _write(tmp_path / "c.png", _image(3))
    paths["d"] = _write(tmp_path / "d.png", _image(4, layout=1))
    return {k: str(v) for k, v in paths.items()}


def test_phash_and_hamming_basics():
    img = _image(5)
    h = phash(img)
    assert bin(h).count("1") == 32  # bits = coefficient > median of 64: exactly half
    assert hamming(h, h) == 0 and hamming(h, phash(_image(6))) == hamming(phash(_image(6)), h)
    assert hamming(0, 2**64 - 1) == 64
    assert phash(img) == phash(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))  # grey input = same hash
    v = detail_vector(img)
    assert v.shape == (1024,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert not detail_vector(np.full((50, 60, 3), 128, np.uint8)).any()  # flat image: no detail


def test_finds_exact_and_near_copies_and_not_distinct_images(images):
    ids = list(images)
    prints = fingerprints([images[i] for i in ids])
    pairs = find_duplicates(ids, prints)
    found = {(p.id_a, p.id_b): p for p in pairs}
    assert found[("a", "a_copy")].kind == "exact-file"
    assert found[("b", "b_png9")].kind == "exact-pixels"
    assert _bytes_differ(images["b"], images["b_png9"])
    for copy in ("a_jpeg", "a_small"):
        for orig in ("a", "a_copy"):
            p = found[tuple(sorted((orig, copy)))]
            assert p.kind == "near" and p.distance <= NEAR_THRESHOLD and p.similarity >= DETAIL_THRESHOLD
    assert found[("a_jpeg", "a_small")].kind == "near"
    assert set(found) == {("a", "a_copy"), ("b", "b_png9"), ("a", "a_jpeg"), ("a", "a_small"),
                          ("a_copy", "a_jpeg"), ("a_copy", "a_small"), ("a_jpeg", "a_small")}
    assert [p.kind for p in pairs][:2] == ["exact-file", "exact-pixels"]  # exact first
    # the look-alike d passes the pHash gate alone; the detail correlation is what keeps it out
    loose = find_duplicates(ids, prints, min_similarity=-1.0)
    assert ("a", "d") in {(p.id_a, p.id_b) for p in loose}
    assert find_duplicates(ids, prints, threshold=-1) == [p for p in pairs if p.kind != "near"]


def _bytes_differ(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() != fb.read()


def test_split_and_lesion_fields(images):
    ids = ["a", "a_jpeg", "c"]
    prints = [fingerprint(images[i]) for i in ids]
    pairs = find_duplicates(ids, prints, splits=["train", "test", "test"], lesions=["L1", "L1", "L3"])
    assert len(pairs) == 1
    p = pairs[0]
    assert (p.id_a, p.id_b, p.split_a, p.split_b) == ("a", "a_jpeg", "train", "test")
    assert p.crosses_split and p.same_lesion
    assert not DuplicatePair("x", "y", "near", 2, 0.9, "train", "train", "L1", "L2").crosses_split
    assert not DuplicatePair("x", "y", "near", 2, 0.9).same_lesion  # unknown lesions are not "the same"
    frame = pairs_frame(pairs, "toy")
    assert list(frame.columns) == list(PAIR_COLUMNS) and frame.loc[0, "crosses_split"]
    assert pairs_frame([], "toy").empty
    with pytest.raises(ValueError, match="fingerprints"):
        find_duplicates(ids, prints[:2])


def test_verify_lists_duplicates(tmp_path, images):
    from skinbench.data.verify import verify

    folder = tmp_path / "data" / "isic2016_task3"
    folder.mkdir(parents=True)
    names = {"a": "ISIC_0000001", "a_jpeg": "ISIC_0000002", "c": "ISIC_0000003", "b": "ISIC_0000004",
             "b_png9": "ISIC_0000005"}
    for key, image_id in names.items():
        suffix = ".jpg" if images[key].endswith(".jpg") else ".png"
        shutil.copy(images[key], folder / f"{image_id}{suffix}")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "isic2016_task3.csv").write_text(
        "image_id,label,lesion_id,split\n"
        "ISIC_0000001,benign,ISIC_0000001,train\nISIC_0000002,benign,ISIC_0000002,test\n"
        "ISIC_0000003,malignant,ISIC_0000003,test\nISIC_0000004,benign,ISIC_0000004,train\n"
        "ISIC_0000005,benign,ISIC_0000005,train\n")
    plain = verify("isic2016_task3", tmp_path / "data", manifest_dir=manifests)
    assert plain.duplicates is None and "duplicate pairs" not in plain.summary()
    rep = verify("isic2016_task3", tmp_path / "data", manifest_dir=manifests, duplicates=True)
    assert rep.ok
    assert {(p.id_a, p.id_b, p.kind) for p in rep.duplicates} == {
        ("ISIC_0000001", "ISIC_0000002", "near"), ("ISIC_0000004", "ISIC_0000005", "exact-pixels")}
    assert "duplicate pairs: 2 (1 exact, 1 near); crossing train/test: 1 (ISIC_0000001/ISIC_0000002)" \
        in rep.summary()


@pytest.mark.realdata
def test_isic2016_duplicates_on_real_data(shared_data):
    from skinbench.data.verify import verify

    rep = verify("isic2016_task3", shared_data, duplicates=True)
    crossing = {(p.id_a, p.id_b) for p in rep.duplicates if p.crosses_split}
    assert crossing == {("ISIC_0000279", "ISIC_0000280"), ("ISIC_0001184", "ISIC_0001484"),
                        ("ISIC_0001385", "ISIC_0001685")}
    assert len(rep.duplicates) == 5


def _reprocess(rgb: np.ndarray) -> np.ndarray:
    """An ISIC-style re-processed copy: gamma, colour balance and contrast changed, a few pixels of the
    frame cropped and the rest scaled back, softened (as the task3 training copies of test images are)."""
    x = rgb.astype(np.float32) / 255
    x = np.clip(x ** 1.4 * np.array([0.92, 0.8, 0.72]) * 1.1 - 0.03, 0, 1)
    h, w = x.shape[:2]
    x = cv2.GaussianBlur(cv2.resize(x[6:, 4:w - 2], (w, h), interpolation=cv2.INTER_AREA), (0, 0), 0.8)
    return (x * 255).round().astype(np.uint8)


def test_colour_and_contrast_reprocessed_copy_is_found_and_look_alikes_are_not(tmp_path):
    """The detail correlation alone (the old rule) misses a re-processed copy; the structure test finds
    it, while same-layout look-alikes of other texture stay far below its threshold."""
    ids, paths = [], []
    for seed in range(1, 5):
        a = _image(seed)
        for name, img in ((f"o{seed}", a), (f"r{seed}", _reprocess(a)), (f"l{seed}", _image(seed + 100, layout=seed))):
            ids.append(name)
            paths.append(_write(tmp_path / f"{name}.png", img))
    prints = fingerprints(paths)
    found = {(p.id_a, p.id_b): p for p in find_duplicates(ids, prints)}
    old_rule = {(p.id_a, p.id_b) for p in find_duplicates(ids, prints, min_structure=2.0)}
    for seed in range(1, 5):
        p = found[(f"o{seed}", f"r{seed}")]
        assert p.kind == "near" and p.similarity < DETAIL_THRESHOLD <= 1 and p.structure >= STRUCTURE_THRESHOLD
        assert (f"o{seed}", f"r{seed}") not in old_rule
    assert not [k for k in found if k[0].startswith("l") or k[1].startswith("l")]  # no look-alike flagged
    m = structure_map(_image(1))
    assert m.shape == (32, 32) and structure_similarity(m[None], m[None])[0] == pytest.approx(1.0, abs=1e-5)
    flat = structure_map(np.full((60, 80, 3), 90, np.uint8))
    assert structure_similarity(flat[None], m[None])[0] <= 0.0  # a flat image correlates with nothing


def test_cli_verify_lists_a_reprocessed_copy_across_the_split(tmp_path, capsys):
    """Where a user meets it: `data verify generic --duplicates` names the re-processed training copy of a
    test image as a pair crossing the split."""
    from skinbench import cli

    folder = tmp_path / "mine"
    (folder / "images").mkdir(parents=True)
    rows = ["image_id,label,lesion_id,split"]
    for k, seed in enumerate(range(11, 19)):
        split = "test" if k % 2 else "train"
        _write(folder / "images" / f"img{k}.png", _image(seed))
        rows.append(f"img{k},{'mel' if k % 4 < 2 else 'nv'},L{k},{split}")
    _write(folder / "images" / "copy.png", _reprocess(_image(12)))  # img1 is a test image
    rows.append("copy,mel,L99,train")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    assert cli.main(["data", "verify", "generic", "--data-root", str(folder), "--duplicates"]) == 0
    out = capsys.readouterr().out
    assert "crossing train/test: 1 (copy/img1)" in out
