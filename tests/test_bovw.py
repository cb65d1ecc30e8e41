"""BoVW + SVM: learns, handles images without keypoints, refuses impossible vocabularies, caches by content."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from skinbench.approaches import local_features as lf
from skinbench.approaches.bovw import BoVWClassifier, intersection_kernel, normalize_blocks
from skinbench.cache import ArrayCache
from skinbench.errors import ConfigError

FAST = dict(detector="dense", image_size=96, dense_step=12, n_words=16, C_grid=(1.0, 10.0), gamma_grid=(1.0,),
            val_repeats=1, n_jobs=1, progress=False)


def _textures(folder, n_per_class: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two texture classes (fine checkerboard vs smooth blobs) that any SIFT histogram separates."""
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    yy, xx = np.mgrid[0:96, 0:96]
    for i in range(2 * n_per_class):
        c = i % 2
        if c == 0:
            period = rng.integers(6, 9)
            img = (((xx // period + yy // period) % 2) * 200 + 30).astype(np.float64)
        else:
            img = 120 + 60 * np.sin(xx / rng.uniform(14, 20)) * np.cos(yy / rng.uniform(14, 20))
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        path = folder / f"img_{i:03d}.png"
        cv2.imwrite(str(path), np.dstack([img] * 3))
        paths.append(str(path))
        labels.append(c)
    return np.array(paths), np.array(labels)


def test_learns_two_textures_and_scores_are_probabilities(tmp_path):
    X, y = _textures(tmp_path)
    train, test = np.arange(len(y)) < 14, np.arange(len(y)) >= 14
    clf = BoVWClassifier(kernel="chi2", normalization="sqrt", cache_dir=str(tmp_path / "c"), **FAST)
    clf.fit(X[train], y[train])
    P = clf.predict_proba(X[test])
    assert P.shape == (test.sum(), 2)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    assert (clf.predict(X[test]) == y[test]).mean() >= 0.8
    assert clf.best_params_[0] in (1.0, 10.0)


@pytest.mark.parametrize("kernel", ["linear", "rbf", "intersection"])
def test_every_kernel_runs(tmp_path, kernel):
    X, y = _textures(tmp_path, n_per_class=6)
    clf = BoVWClassifier(kernel=kernel, cache_dir=str(tmp_path / "c"), **FAST).fit(X, y)
    assert clf.predict_proba(X).shape == (len(X), 2)


def test_multiclass_with_groups_and_validation(synthetic_dataset, tmp_path):
    ds = synthetic_dataset
    y = np.arange(len(ds)) % 3  # three classes, lesion groups kept together by the validation split
    clf = BoVWClassifier(color="lab", spatial=True, encoding="soft", cache_dir=str(tmp_path / "c"),
                         **{**FAST, "val_repeats": 2})
    clf.fit(ds.paths, y, groups=ds.groups)
    P = clf.predict_proba(ds.paths[:5])
    assert P.shape == (5, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    assert clf.validation_["splits"] == 2 and len(clf.validation_["scores"]) == 2
    val_ids = set(ds.groups[clf.validation_["index"]])
    assert val_ids and not val_ids & set(np.delete(ds.groups, clf.validation_["index"]))


def test_image_without_keypoints_gets_zero_histogram_and_a_prediction(tmp_path):
    X, y = _textures(tmp_path, n_per_class=6)
    blank, tiny = tmp_path / "blank.png", tmp_path / "tiny.png"
    cv2.imwrite(str(blank), np.full((96, 96, 3), 128, np.uint8))
    cv2.imwrite(str(tiny), np.full((4, 5, 3), 90, np.uint8))
    params = lf.DescriptorParams()  # DoG keypoints, as in the reference recipe
    assert len(lf.compute_descriptors(str(blank), params)) == 0
    assert len(lf.compute_descriptors(str(tiny), params)) == 0
    clf = BoVWClassifier(detector="sift", contrast_threshold=0.01, image_size=96, n_words=8, kernel="rbf",
                         C=1.0, gamma=1.0, n_jobs=1, progress=False, cache_dir=str(tmp_path / "c")).fit(X, y)
    F = clf.transform(np.array([str(blank), str(tiny)]))
    assert F.shape == (2, 8) and not F.any()
    P = clf.predict_proba(np.array([str(blank), str(tiny)]))
    assert P.shape == (2, 2) and np.isfinite(P).all()
    assert set(clf.predict(np.array([str(blank)]))) <= {0, 1}


def test_vocabulary_larger_than_descriptors_is_a_config_error(tmp_path):
    X, y = _textures(tmp_path, n_per_class=2)
    clf = BoVWClassifier(**{**FAST, "n_words": 10_000}, cache_dir=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="smaller n_words"):
        clf.fit(X, y)


def test_cache_is_reused_only_for_same_pixels_and_params(tmp_path, monkeypatch):
    X, _ = _textures(tmp_path, n_per_class=2)
    root = tmp_path / "c"
    p1 = lf.DescriptorParams(detector="dense", image_size=96, dense_step=12)
    first = lf.extract_all(X, p1, n_jobs=1, cache_root=root, progress=False)
    calls = []
    real = lf.compute_descriptors
    monkeypatch.setattr(lf, "compute_descriptors", lambda p, q: calls.append(p) or real(p, q))
    again = lf.extract_all(X, p1, n_jobs=1, cache_root=root, progress=False)
    assert calls == [] and all((a.sift == b.sift).all() for a, b in zip(first, again))
    # other parameters: recomputed, not reused
    p2 = lf.DescriptorParams(detector="dense", image_size=96, dense_step=16)
    other = lf.extract_all(X[:1], p2, n_jobs=1, cache_root=root, progress=False)
    assert calls == [X[0]] and len(other[0]) != len(first[0])
    # other pixels under the same file name: recomputed
    cv2.imwrite(X[1], np.full((96, 96, 3), 128, np.uint8))
    changed = lf.extract_all(X[1:2], p1, n_jobs=1, cache_root=root, progress=False)
    assert calls[-1] == X[1] and changed[0].sift.sum() != first[1].sift.sum()
    # a corrupted entry is rebuilt
    key = lf.descriptor_key(X[0], p1)
    path = ArrayCache("local_features", root)._path(key)
    path.write_bytes(path.read_bytes()[:100])
    rebuilt = lf.extract_all(X[:1], p1, n_jobs=1, cache_root=root, progress=False)
    assert calls[-1] == X[0] and (rebuilt[0].sift == first[0].sift).all()


def test_parallel_extraction_matches_serial(tmp_path):
    X, _ = _textures(tmp_path, n_per_class=3)
    p = lf.DescriptorParams(detector="dense", image_size=96, dense_step=12)
    serial = lf.extract_all(X, p, n_jobs=1, use_cache=False, progress=False)
    parallel = lf.extract_all(X, p, n_jobs=2, cache_root=tmp_path / "c", progress=False)
    assert all((a.sift == b.sift).all() and (a.color == b.color).all() for a, b in zip(serial, parallel))


def test_kernels_and_normalisation():
    A = np.array([[0.2, 0.8, 0.0], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(intersection_kernel(A, A), [[1.0, 0.7], [0.7, 1.0]])
    R = np.random.default_rng(0).random((9, 5))
    np.testing.assert_allclose(intersection_kernel(R, R[:4], max_cells=30), np.minimum(R[:, None], R[None, :4]).sum(2))
    H = np.array([[2.0, 2.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(normalize_blocks(H, [2, 2], "l1"), [[0.25, 0.25, 0, 0.5], [0, 0, 0, 0]])
    sq = normalize_blocks(H, [2, 2], "sqrt")
    np.testing.assert_allclose(np.linalg.norm(sq[0]), 1.0)
    with pytest.raises(ConfigError):
        BoVWClassifier(kernel="poly").fit(np.array(["a", "b"]), np.array([0, 1]))


def test_vocabulary_never_learns_from_the_validation_images(synthetic_dataset, tmp_path, monkeypatch):
    """Each validation split's k-means sees exactly its fitting images' descriptors; the final one all of them."""
    import skinbench.approaches.bovw as bovw
    from skinbench.data.splits import validation_split

    ds = synthetic_dataset
    samples: list[np.ndarray] = []
    real_fit = bovw.MiniBatchKMeans.fit
    monkeypatch.setattr(bovw.MiniBatchKMeans, "fit",
                        lambda self, X, *a, **k: samples.append(np.array(X, copy=True)) or real_fit(self, X, *a, **k))
    clf = BoVWClassifier(cache_dir=str(tmp_path / "c"), **{**FAST, "val_repeats": 2})
    clf.fit(ds.paths, ds.y, groups=ds.groups)
    sift = [d.sift_features() for d in clf._descriptors(ds.paths)]
    assert sum(map(len, sift)) <= clf.max_train_descriptors  # every descriptor sampled: exact comparison
    splits = [validation_split(ds.y, ds.groups, clf.val_fraction, clf.random_state + r) for r in range(2)]
    assert len(samples) == len(splits) + 1
    for sample, (fit_idx, val_idx) in zip(samples, splits):
        assert len(val_idx) and sum(len(sift[i]) for i in val_idx) > 0
        np.testing.assert_array_equal(sample, np.concatenate([sift[i] for i in fit_idx]))
    np.testing.assert_array_equal(samples[-1], np.concatenate(sift))  # the final vocabulary: all training images


def test_transform_encodes_in_chunks_and_changes_no_number(tmp_path, monkeypatch):
    X, y = _textures(tmp_path, n_per_class=5)
    clf = BoVWClassifier(color="lab", spatial=True, encoding="soft", cache_dir=str(tmp_path / "c"), **FAST).fit(X, y)
    at_once = clf._encode(clf._descriptors(X))  # every image's descriptors held together
    sizes: list[int] = []
    real = BoVWClassifier._descriptors
    monkeypatch.setattr(BoVWClassifier, "_descriptors", lambda self, paths: sizes.append(len(paths)) or real(self, paths))
    monkeypatch.setattr(BoVWClassifier, "transform_chunk", 3)
    np.testing.assert_array_equal(clf.transform(X), at_once)
    assert sizes == [3, 3, 3, 1]
    assert clf.transform(X[:0]).shape == (0, at_once.shape[1])
