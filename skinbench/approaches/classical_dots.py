"""Classical detector of dermoscopic dots and lines (globules, streaks) for task3: the classical row.

Globules are brown-to-black dots and streaks dark radial lines, both darker than their surroundings and
small. Per image (at a working size; the map is resized back to the image's own size):
1. the lesion mask of :mod:`classical_seg` (the features lie inside it);
2. morphological black-hat of the grey image with a disk of ``scale`` x the image side: dark structures
   narrower than the disk respond, the lesion body and the skin do not. The image is *not* hair-removed
   first: the hair filter inpaints dots too;
3. the response inside the lesion is smoothed (the ISIC annotations mark whole superpixels around the
   dots, not the dots alone).

``fit`` chooses the disk scale and the response threshold that maximise Jaccard pooled over training
images (the way ISIC scored attributes; the test split is never seen). ``predict_proba`` maps the chosen
threshold to 0.5, so the runner's 0.5 cut is the tuned one.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import cv2
import numpy as np

from skinbench.approaches.base import PathSegmenter
from skinbench.approaches.classical_seg import ClassicalSegmenter
from skinbench.data.images import read_image, read_mask
from skinbench.errors import ConfigError
from skinbench.progress import progress


class DarkDotSegmenter(PathSegmenter):
    """Black-hat dark-dot response inside the classical lesion mask (see module docstring)."""

    def __init__(self, scale: float | None = None, response_threshold: float | None = None,
                 scales_grid: Sequence[float] = (0.03, 0.05, 0.08),
                 thresholds_grid: Sequence[float] = tuple(range(2, 41, 2)), smooth: float = 0.02,
                 working_size: int = 256, n_tune: int = 400, random_state: int = 0, progress: bool = True):
        self.scale = scale
        self.response_threshold = response_threshold
        self.scales_grid = scales_grid
        self.thresholds_grid = thresholds_grid
        self.smooth = smooth
        self.working_size = working_size
        self.n_tune = n_tune
        self.random_state = random_state
        self.progress = progress

    def _lesion(self) -> ClassicalSegmenter:
        return ClassicalSegmenter(channel="gray", threshold_scale=1.1, working_size=self.working_size)

    def _responses(self, path: str, scales: Sequence[float]) -> tuple[list[np.ndarray], tuple[int, int]]:
        """Smoothed black-hat response (float32, 0..255) inside the lesion, one map per disk scale."""
        lesion = self._lesion()
        img, size = lesion._prepare(path)
        inside = lesion._segment(img, lesion.channel, float(lesion.threshold_scale))
        grey = cv2.resize(cv2.cvtColor(read_image(path), cv2.COLOR_RGB2GRAY), (img.shape[1], img.shape[0]),
                          interpolation=cv2.INTER_AREA)
        side = max(grey.shape)
        b = max(3, int(round(self.smooth * side)) | 1)
        maps = []
        for s in scales:
            k = max(3, int(round(s * side)) | 1)
            se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
            response = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, se).astype(np.float32) * inside
            maps.append(cv2.GaussianBlur(response, (b, b), 0))
        return maps, size

    def fit(self, X: np.ndarray, masks: np.ndarray, y: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> "DarkDotSegmenter":
        """Choose disk scale and threshold on a sample of the training images; nothing is held out (the
        choice is the whole fit), so ``groups`` has no split to keep lesions apart in."""
        if len(X) != len(masks):
            raise ConfigError(f"{len(X)} images but {len(masks)} masks", fix="pass one mask path per image")
        scales = list(self.scales_grid) if self.scale is None else [float(self.scale)]
        thresholds = np.asarray(self.thresholds_grid if self.response_threshold is None
                                else [self.response_threshold], dtype=np.float32)
        rng = np.random.default_rng(self.random_state)
        pick = rng.choice(len(X), size=min(len(X), int(self.n_tune)), replace=False)
        # pooled counts per (scale, threshold), each image's counts divided by its pixel count (ISIC 2018)
        tp, fp, fn = (np.zeros((len(scales), len(thresholds))) for _ in range(3))
        for i in progress(pick, desc="tuning dark-dot detector", unit="image", disable=not self.progress):
            maps, _ = self._responses(str(X[i]), scales)
            h, w = maps[0].shape
            truth = read_mask(str(masks[i]), size=(w, h)) if masks[i] else np.zeros((h, w), bool)
            t = truth.ravel()
            for a, m in enumerate(maps):
                pred = m.ravel()[None, :] >= thresholds[:, None]          # (n_thresholds, pixels)
                hit = pred[:, t].sum(axis=1)
                tp[a] += hit / t.size
                fp[a] += (pred.sum(axis=1) - hit) / t.size
                fn[a] += (t.sum() - hit) / t.size
        union = tp + fp + fn
        jaccard = np.where(union > 0, tp / np.maximum(union, 1e-12), 0.0)
        a, b = np.unravel_index(int(np.argmax(jaccard)), jaccard.shape)
        self.scale_, self.threshold_ = float(scales[a]), float(thresholds[b])
        self.train_jaccard_ = float(jaccard[a, b])
        return self

    @property
    def best_params_(self) -> dict[str, float]:
        """What the fit chose (a record's ``extras.fit``); AttributeError before fit."""
        return {"scale": self.scale_, "threshold": self.threshold_}

    def predict_proba(self, X: np.ndarray) -> Iterator[np.ndarray]:
        if not hasattr(self, "threshold_"):
            raise ConfigError("DarkDotSegmenter is not fitted", fix="call fit(X, masks) first")
        for path in X:
            (response,), (w, h) = self._responses(str(path), [self.scale_])
            prob = np.clip(response / (2.0 * self.threshold_), 0.0, 1.0).astype(np.float32)
            yield prob if prob.shape == (h, w) else cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
