"""Bag of visual words + SVM: the classical image classifier of the ISIC 2016 study, made configurable.

Pipeline: local descriptors (:mod:`local_features`, cached per image) -> k-means vocabulary fitted on a
capped random sample of training descriptors -> one histogram of visual words per image (optionally a
second vocabulary of colour patches, concatenated) -> normalisation -> SVM with a precomputed kernel
(linear, RBF, chi-squared or histogram intersection), class-balanced. C and gamma are chosen on
lesion-aware validation splits of the *training* images only; each split builds its vocabulary from its
fitting images, so no validation image shapes the words it is scored with.

Scores: Platt-scaled SVM probabilities are calibrated to the training prior, so an argmax would
almost never pick a rare class. With ``proba="balanced"`` (default) they are divided by the training
class prior and renormalised: the posterior under equal priors, which matches the class-balanced SVM's
decision rule (rankings, so AUC and AP, are unchanged for binary tasks). ``proba="calibrated"`` keeps the
prior-calibrated probabilities.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Sequence

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import average_precision_score
from sklearn.metrics.pairwise import additive_chi2_kernel, euclidean_distances
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from skinbench.approaches.base import PathClassifier, check_allowed
from skinbench.approaches.local_features import DETECTORS, DescriptorParams, ImageDescriptors, extract_all
from skinbench.data.splits import validation_split
from skinbench.errors import ConfigError, DataError
from skinbench.metrics.classification import balanced_accuracy
from skinbench.progress import progress

KERNELS = ("linear", "rbf", "chi2", "intersection")
NORMALIZATIONS = ("l1", "sqrt", "l2")
ENCODINGS = ("hard", "soft")


# ----------------------------------------------------------------------------------------------- kernels
def intersection_kernel(A: np.ndarray, B: np.ndarray, max_cells: int = 20_000_000) -> np.ndarray:
    """Histogram intersection sum_k min(a_k, b_k) (a valid kernel for non-negative histograms).

    Rows of ``A`` are taken in chunks so the (chunk, len(B), dim) temporary stays under ``max_cells``.
    """
    out = np.empty((len(A), len(B)), dtype=np.float64)
    chunk = max(1, max_cells // max(1, len(B) * A.shape[1]))
    for i in range(0, len(A), chunk):
        out[i:i + chunk] = np.minimum(A[i:i + chunk, None, :], B[None, :, :]).sum(axis=2)
    return out


def kernel_distance(A: np.ndarray, B: np.ndarray, kernel: str) -> np.ndarray:
    """The distance inside an exponential kernel: squared Euclidean (rbf) or chi-squared (chi2)."""
    if kernel == "rbf":
        return euclidean_distances(A, B, squared=True)
    if kernel == "chi2":
        return -additive_chi2_kernel(A, B)
    raise ValueError(kernel)


def kernel_matrix(A: np.ndarray, B: np.ndarray, kernel: str, gamma: float | None = None) -> np.ndarray:
    """Gram matrix between feature rows; ``gamma`` is the absolute width for rbf/chi2."""
    if kernel == "linear":
        return A @ B.T
    if kernel == "intersection":
        return intersection_kernel(A, B)
    return np.exp(-gamma * kernel_distance(A, B, kernel))


# ---------------------------------------------------------------------------------------------- encoding
def normalize_blocks(H: np.ndarray, blocks: Sequence[int], how: str) -> np.ndarray:
    """Normalise each vocabulary's block of the histogram, then weight blocks equally.

    l1: each block sums to 1/n_blocks; sqrt (Hellinger): square root of that; l2: unit total norm.
    An all-zero block (an image with no keypoints) stays all zero.
    """
    out = np.zeros_like(H, dtype=np.float64)
    start, nb = 0, len(blocks)
    for size in blocks:
        b = H[:, start:start + size].astype(np.float64)
        if how in ("l1", "sqrt"):
            b = b / np.maximum(b.sum(axis=1, keepdims=True), 1e-12) / nb
            if how == "sqrt":
                b = np.sqrt(b)
        elif how == "l2":
            b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12) / np.sqrt(nb)
        else:
            raise ConfigError(f"unknown normalization {how!r}", fix=f"use one of {NORMALIZATIONS}")
        out[:, start:start + size] = b
        start += size
    return out


def _assign(kmeans: MiniBatchKMeans, D: np.ndarray, encoding: str, n_neighbors: int = 5) -> np.ndarray:
    """Per-descriptor word weights (n_desc, K): hard one-hot, or soft (Gaussian over the nearest words)."""
    K = kmeans.n_clusters
    W = np.zeros((len(D), K), dtype=np.float32)
    if len(D) == 0:
        return W
    if encoding == "hard":
        W[np.arange(len(D)), kmeans.predict(D)] = 1.0
        return W
    d2 = euclidean_distances(D, kmeans.cluster_centers_, squared=True)
    nn = np.argpartition(d2, min(n_neighbors, K - 1), axis=1)[:, :n_neighbors]
    dn = np.take_along_axis(d2, nn, axis=1)
    sigma2 = np.maximum(np.median(dn[:, 0]), 1e-12)  # width from the typical nearest-word distance
    w = np.exp(-(dn - dn[:, :1]) / (2 * sigma2))
    np.put_along_axis(W, nn, (w / w.sum(axis=1, keepdims=True)).astype(np.float32), axis=1)
    return W


# -------------------------------------------------------------------------------------------- estimator
class BoVWClassifier(PathClassifier):
    """SIFT (or dense SIFT, optionally + colour) bag of visual words with an SVM.

    The defaults are the reference recipe of the ISIC 2016 study: DoG SIFT keypoints on the grey image,
    K = 300 words, hard assignment, RBF SVM. See the module docstring for the scores.
    """

    #: 2: each validation split's vocabulary is fitted without that split's validation images
    algorithm_version: ClassVar[int] = 2
    #: k-means and the SVM run on float BLAS kernels that differ per CPU: the task1 rows regenerated on an
    #: Intel Xeon (AVX-512) against AMD EPYC records moved probabilities by up to 3.6e-4 (bovw-color,
    #: bovw-dense) and AUC/AP by up to 5.4e-5; the other three variants came out identical
    reproducibility: ClassVar[str] = "bitwise-same-cpu"
    reproducibility_tolerance: ClassVar[float] = 1e-3
    _allowed: ClassVar[dict[str, Any]] = {
        "detector": DETECTORS, "kernel": KERNELS, "normalization": NORMALIZATIONS, "encoding": ENCODINGS,
        "color": ("none", "lab", "opponent"), "proba": ("balanced", "calibrated")}
    #: images per chunk in ``transform``: descriptors of one chunk only are held at a time
    transform_chunk: ClassVar[int] = 256

    def __init__(self, detector: str = "sift", image_size: int = 384, dense_step: int = 8,
                 dense_sizes: Sequence[int] = (16,), contrast_threshold: float = 0.04, max_keypoints: int = 0,
                 rootsift: bool = False, color: str = "none", n_words: int = 300, n_color_words: int = 64,
                 spatial: bool = False, encoding: str = "hard", normalization: str = "l1",
                 kernel: str = "rbf", C: float | None = None, gamma: float | None = None,
                 C_grid: Sequence[float] = (0.1, 1.0, 10.0, 100.0), gamma_grid: Sequence[float] = (0.1, 0.3, 1.0, 3.0, 10.0),
                 val_fraction: float = 0.2, val_repeats: int = 5, proba: str = "balanced",
                 max_train_descriptors: int = 200_000, n_jobs: int = 2, cache_dir: str | None = None,
                 random_state: int = 0, progress: bool = True):
        self.detector = detector
        self.image_size = image_size
        self.dense_step = dense_step
        self.dense_sizes = dense_sizes
        self.contrast_threshold = contrast_threshold
        self.max_keypoints = max_keypoints
        self.rootsift = rootsift
        self.color = color
        self.n_words = n_words
        self.n_color_words = n_color_words
        self.spatial = spatial
        self.encoding = encoding
        self.normalization = normalization
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.C_grid = C_grid
        self.gamma_grid = gamma_grid
        self.val_fraction = val_fraction
        self.val_repeats = val_repeats
        self.proba = proba
        self.max_train_descriptors = max_train_descriptors
        self.n_jobs = n_jobs
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ descriptors and vocabularies
    def descriptor_params(self) -> DescriptorParams:
        return DescriptorParams(detector=self.detector, image_size=int(self.image_size),
                                dense_step=int(self.dense_step), dense_sizes=tuple(int(s) for s in self.dense_sizes),
                                max_keypoints=int(self.max_keypoints),
                                contrast_threshold=float(self.contrast_threshold))

    def _check_params(self) -> None:
        check_allowed(self)
        if int(self.n_words) < 2:
            raise ConfigError(f"BoVWClassifier: n_words={self.n_words} is too small", fix="use n_words >= 2")

    def _descriptors(self, X: Sequence[str]) -> list[ImageDescriptors]:
        return extract_all([str(p) for p in X], self.descriptor_params(), n_jobs=int(self.n_jobs),
                           cache_root=self.cache_dir, progress=self.progress)

    def _channels(self, d: ImageDescriptors) -> list[np.ndarray]:
        chans = [d.sift_features(self.rootsift)]
        if self.color != "none":
            chans.append(d.color_features(self.color))
        return chans

    def _fit_vocabulary(self, descs: list[ImageDescriptors], rng: np.random.Generator) -> None:
        counts = np.array([len(d) for d in descs])
        total = int(counts.sum())
        sizes = [int(self.n_words)] + ([int(self.n_color_words)] if self.color != "none" else [])
        if total < max(sizes):
            raise ConfigError(f"vocabulary of {max(sizes)} words but only {total} descriptors in {len(descs)} "
                              f"training images", fix="use a smaller n_words (or n_color_words), more images, "
                              "or a denser detector (detector='dense' or a lower contrast_threshold)")
        # a uniform random sample of all training descriptors, capped so k-means stays fast
        n_take = min(total, int(self.max_train_descriptors))
        picked = np.sort(rng.choice(total, size=n_take, replace=False))
        owner = np.repeat(np.arange(len(descs)), counts)[picked]
        offset = picked - np.concatenate([[0], np.cumsum(counts)[:-1]])[owner]
        self.vocabularies_, self.scalers_ = [], []
        for c, size in enumerate(sizes):
            sample = np.concatenate([self._channels(descs[i])[c][offset[owner == i]] for i in np.unique(owner)])
            scaler = StandardScaler().fit(sample) if c > 0 else None  # colour channels have unlike scales
            if scaler is not None:
                sample = scaler.transform(sample)
            km = MiniBatchKMeans(n_clusters=size, random_state=self.random_state, n_init=1,
                                 batch_size=max(2048, 4 * size), max_iter=100)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                km.fit(sample)
            self.vocabularies_.append(km)
            self.scalers_.append(scaler)

    def _encode(self, descs: list[ImageDescriptors]) -> np.ndarray:
        """(n_images, n_features) normalised word histograms; images without keypoints are all zero."""
        n_regions = 2 if self.spatial else 1
        blocks = [km.n_clusters for km in self.vocabularies_ for _ in range(n_regions)]
        H = np.zeros((len(descs), sum(blocks)), dtype=np.float64)
        for i, d in enumerate(progress(descs, desc="encoding", unit="image", disable=not self.progress)):
            if len(d) == 0:
                continue
            cols = []
            if self.spatial:  # centre vs periphery: the lesion is usually centred, the skin around it
                r = np.hypot(d.xy[:, 0].astype(np.float32) - 0.5, d.xy[:, 1].astype(np.float32) - 0.5)
                inner = r < 0.3
            for c, (km, sc) in enumerate(zip(self.vocabularies_, self.scalers_)):
                D = self._channels(d)[c]
                if sc is not None:
                    D = sc.transform(D)
                W = _assign(km, D.astype(np.float32), self.encoding)
                if self.spatial:
                    cols += [W[inner].sum(axis=0), W[~inner].sum(axis=0)]
                else:
                    cols.append(W.sum(axis=0))
            H[i] = np.concatenate(cols)
        return normalize_blocks(H, blocks, self.normalization)

    # ---------------------------------------------------------------------------- kernel + selection
    def _gram(self, A: np.ndarray, B: np.ndarray, gamma: float | None) -> np.ndarray:
        return kernel_matrix(A, B, self.kernel, gamma)

    def _grid(self) -> list[tuple[float, float | None]]:
        Cs = [float(self.C)] if self.C is not None else [float(c) for c in self.C_grid]
        if self.kernel in ("linear", "intersection"):
            return [(c, None) for c in Cs]
        gs = [float(self.gamma)] if self.gamma is not None else [float(g) for g in self.gamma_grid]
        return [(c, g) for c in Cs for g in gs]

    def _score(self, y: np.ndarray, svc: SVC, Kva: np.ndarray) -> float:
        if len(self.classes_) == 2:  # the ranking metric the ISIC 2016 challenge used
            return float(average_precision_score(y == self.classes_[1], svc.decision_function(Kva)))
        return balanced_accuracy(y, svc.predict(Kva))

    def _splits(self, y: np.ndarray, groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        repeats = int(self.val_repeats) if len(y) <= 3000 else 1  # libsvm is quadratic: one split on big sets
        out = []
        for r in range(max(1, repeats)):
            try:
                out.append(validation_split(y, groups, fraction=float(self.val_fraction), seed=self.random_state + r))
            except DataError:
                return []  # too few images to validate: fall back to the grid's middle point
        return out

    def _gamma_base(self, F: np.ndarray) -> float | None:
        """gamma is relative to the mean distance between (up to 2000) fitting images' histograms."""
        if self.kernel not in ("rbf", "chi2"):
            return None
        return 1.0 / max(float(kernel_distance(F[:2000], F[:2000], self.kernel).mean()), 1e-12)

    def _select(self, descs: list[ImageDescriptors], y: np.ndarray, groups: np.ndarray | None) -> None:
        """Grid over (C, gamma) scored on validation splits of the training data; sets best_params_.

        Each split fits its own vocabulary (and gamma scale) on its fitting images only, then encodes all
        training images with it: the validation images are scored, never learned from.
        """
        grid = self._grid()
        splits = self._splits(y, groups)
        self.validation_ = {"splits": len(splits), "scores": []}
        if not splits or len(grid) == 1:
            self.best_params_ = grid[0] if len(grid) == 1 else self._middle(grid)
            return
        scores = np.zeros((len(splits), len(grid)))
        first = None
        for r, (tr, va) in enumerate(progress(splits, desc=f"{self.kernel} C/gamma grid per validation split",
                                              unit="split", disable=not self.progress)):
            self._fit_vocabulary([descs[i] for i in tr], np.random.default_rng([self.random_state, r]))
            F = self._encode(descs)
            base = self._gamma_base(F[tr])
            D = kernel_distance(F, F, self.kernel) if self.kernel in ("rbf", "chi2") else None
            Kfix = None if D is not None else self._gram(F, F, None)
            for j, (C, g) in enumerate(grid):
                K = Kfix if D is None else np.exp(-(g * base) * D)
                svc = SVC(kernel="precomputed", C=C, class_weight="balanced")
                svc.fit(K[np.ix_(tr, tr)], y[tr])
                scores[r, j] = self._score(y[va], svc, K[np.ix_(va, tr)])
            if r == 0:
                first = (D, Kfix, base)
        best, best_score = grid[0], -np.inf
        for (C, g), mean in zip(grid, scores.mean(axis=0)):
            self.validation_["scores"].append({"C": C, "gamma": g, "score": float(mean)})
            if mean > best_score + 1e-12:
                best, best_score = (C, g), float(mean)
        self.best_params_ = best
        self.validation_["best_score"] = best_score
        # validation predictions of the chosen setting on the first split, for reporting val metrics
        D, Kfix, base = first
        tr, va = splits[0]
        K = Kfix if D is None else np.exp(-(best[1] * base) * D)
        svc = self._svc(best[0], y[tr]).fit(K[np.ix_(tr, tr)], y[tr])
        self.validation_["index"] = va
        self.validation_["y"] = y[va]
        self.validation_["proba"] = self._posterior(svc.predict_proba(K[np.ix_(va, tr)]), y[tr], svc.classes_)

    @staticmethod
    def _middle(grid: list[tuple[float, float | None]]) -> tuple[float, float | None]:
        Cs = sorted({c for c, _ in grid})
        gs = sorted({g for _, g in grid if g is not None})
        return (Cs[len(Cs) // 2], gs[len(gs) // 2] if gs else None)

    def _svc(self, C: float, y: np.ndarray) -> CalibratedClassifierCV:
        """Class-balanced SVM whose decision values are Platt-scaled on (up to) 5-fold out-of-fold predictions."""
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest < 2:
            raise DataError(f"a class has only {smallest} training image(s); calibrating scores needs two",
                            fix="provide at least two training images per class")
        svc = SVC(kernel="precomputed", C=C, class_weight="balanced")
        return CalibratedClassifierCV(svc, method="sigmoid", ensemble=False,
                                      cv=StratifiedKFold(min(5, smallest), shuffle=True, random_state=self.random_state))

    def _posterior(self, P: np.ndarray, y_train: np.ndarray, classes: np.ndarray) -> np.ndarray:
        if self.proba == "calibrated":
            return P
        prior = np.array([np.mean(y_train == c) for c in classes])
        Q = P / np.maximum(prior, 1e-12)
        return Q / Q.sum(axis=1, keepdims=True)

    # ------------------------------------------------------------------------------------- sklearn API
    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "BoVWClassifier":
        self._check_params()
        y = np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} images but y has {len(y)} labels")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise DataError(f"BoVWClassifier needs at least two classes, got {self.classes_.tolist()}",
                            fix="train on images of at least two classes")
        descs = self._descriptors(X)
        self.n_descriptors_ = np.array([len(d) for d in descs])
        self._select(descs, y, groups)
        # the final vocabulary: every training image (none is held out any more)
        self._fit_vocabulary(descs, np.random.default_rng(self.random_state))
        F = self._encode(descs)
        self.gamma_base_ = self._gamma_base(F)
        C, g = self.best_params_
        self.gamma_abs_ = None if g is None else g * self.gamma_base_
        self.svc_ = self._svc(C, y).fit(self._gram(F, F, self.gamma_abs_), y)
        self.train_features_ = F
        self.train_y_ = y
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Normalised word histograms of images (after fit), ``transform_chunk`` images at a time (rows are
        normalised one by one, so chunking changes no number)."""
        X = [str(p) for p in X]
        step = int(self.transform_chunk)
        parts = [self._encode(self._descriptors(X[i:i + step])) for i in range(0, len(X), step)]
        return np.concatenate(parts) if parts else self._encode([])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        F = self.transform(X)
        P = self.svc_.predict_proba(self._gram(F, self.train_features_, self.gamma_abs_))
        out = np.zeros((len(X), len(self.classes_)))
        cols = np.searchsorted(self.classes_, self.svc_.classes_)
        out[:, cols] = self._posterior(P, self.train_y_, self.svc_.classes_)
        return out
