"""Classical lesion segmentation: hair removal, Otsu threshold in a lesion-dark channel, one component.

Steps per image (at a working size, the map is resized back to the image's own size):
1. hair removal: morphological black-hat of the grey image picks thin dark lines; they are thresholded
   and inpainted (``cv2.inpaint``, Telea);
2. Gaussian smoothing; a channel where the lesion is darker than the skin (``blue``, ``gray``, ``lab_l``
   or ``pca``: the first principal component of the pixels, signed so the lesion side is low);
3. Otsu's threshold, computed inside a central ellipse so dark vignetted corners do not drag it, scaled
   by ``threshold_scale``; pixels outside an ellipse of ``vignette`` times the inscribed one are dropped
   (the black corners of dermoscopy fields);
4. opening/closing, the connected component with the best area-and-centrality score, holes filled.

``fit`` is "lightly learned": it picks the channel and the threshold scale with the best mean Jaccard
on up to ``n_tune`` training images (the training split only; the test split is never seen).
"""

from __future__ import annotations

from itertools import product
from typing import Any, ClassVar, Iterator, Sequence

import cv2
import numpy as np

from skinbench.approaches.base import PathSegmenter, check_allowed
from skinbench.data.images import read_image, read_mask
from skinbench.errors import ConfigError
from skinbench.progress import progress

CHANNELS = ("blue", "gray", "lab_l", "pca")


def remove_hair(img: np.ndarray, kernel: int = 9, threshold: int = 12) -> np.ndarray:
    """Inpaint thin dark structures (hairs) found by a black-hat filter; ``kernel`` in pixels."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    blackhat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, se)
    hair = (blackhat > threshold).astype(np.uint8)
    if not hair.any():
        return img
    hair = cv2.dilate(hair, np.ones((3, 3), np.uint8))
    return cv2.inpaint(img, hair, 3, cv2.INPAINT_TELEA)


def lesion_channel(img: np.ndarray, channel: str) -> np.ndarray:
    """uint8 image in which the lesion is darker than the surrounding skin."""
    if channel == "blue":
        return img[..., 2].copy()
    if channel == "gray":
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if channel == "lab_l":
        return cv2.cvtColor(img, cv2.COLOR_RGB2LAB)[..., 0]
    if channel == "pca":
        X = img.reshape(-1, 3).astype(np.float32)
        mean = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X[:: max(1, len(X) // 5000)] - mean, full_matrices=False)
        v = vt[0] if vt[0].sum() >= 0 else -vt[0]  # brightness direction: lesion (darker) projects low
        p = (X - mean) @ v
        p = (p - p.min()) / max(float(np.ptp(p)), 1e-6) * 255
        return p.reshape(img.shape[:2]).astype(np.uint8)
    raise ConfigError(f"unknown channel {channel!r}", fix=f"use one of {CHANNELS}")


def _ellipse(h: int, w: int, scale: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (((xx - (w - 1) / 2) / (scale * w / 2)) ** 2 + ((yy - (h - 1) / 2) / (scale * h / 2)) ** 2) <= 1.0


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the image border."""
    m = mask.astype(np.uint8)
    padded = np.pad(m, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return mask | holes


def best_component(mask: np.ndarray) -> np.ndarray:
    """The component with the largest area discounted by its centroid's distance from the centre."""
    n, labels, stats, cents = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    h, w = mask.shape
    d = np.hypot((cents[1:, 0] - w / 2) / w, (cents[1:, 1] - h / 2) / h)
    score = stats[1:, cv2.CC_STAT_AREA] / (1.0 + (d / 0.25) ** 2)
    return labels == (1 + int(np.argmax(score)))


class ClassicalSegmenter(PathSegmenter):
    """Hair removal + Otsu in a lesion-dark channel + best central component (see module docstring)."""

    _allowed: ClassVar[dict[str, Any]] = {"channel": ("auto",) + CHANNELS}

    def __init__(self, channel: str = "auto", threshold_scale: float | None = None, working_size: int = 256,
                 hair_kernel: float = 0.035, hair_threshold: int = 12, blur: float = 0.012, vignette: float = 1.05,
                 morph: float = 0.02, channels_grid: Sequence[str] = ("blue", "gray", "pca"),
                 scales_grid: Sequence[float] = (1.0, 1.1, 1.2, 1.3), n_tune: int = 150, threshold: float = 0.5,
                 random_state: int = 0, progress: bool = True):
        self.channel = channel
        self.threshold_scale = threshold_scale
        self.working_size = working_size
        self.hair_kernel = hair_kernel
        self.hair_threshold = hair_threshold
        self.blur = blur
        self.vignette = vignette
        self.morph = morph
        self.channels_grid = channels_grid
        self.scales_grid = scales_grid
        self.n_tune = n_tune
        self.threshold = threshold
        self.random_state = random_state
        self.progress = progress

    # ---------------------------------------------------------------------------------- pipeline
    def _prepare(self, path: str) -> tuple[np.ndarray, tuple[int, int]]:
        img = read_image(path)
        h, w = img.shape[:2]
        s = min(1.0, self.working_size / max(h, w))
        if s < 1.0:
            img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        side = max(img.shape[:2])
        k = max(3, int(round(self.hair_kernel * side)) | 1)
        img = remove_hair(img, k, int(self.hair_threshold))
        b = max(3, int(round(self.blur * side)) | 1)
        return cv2.GaussianBlur(img, (b, b), 0), (w, h)

    def _segment(self, img: np.ndarray, channel: str, scale: float) -> np.ndarray:
        ch = lesion_channel(img, channel)
        h, w = ch.shape
        central = _ellipse(h, w, 0.8)
        t, _ = cv2.threshold(ch[central].reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        fg = (ch < t * scale) & _ellipse(h, w, self.vignette)
        r = max(1, int(round(self.morph * max(h, w))))
        se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        m = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, se)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, se)
        if not m.any():
            return _ellipse(h, w, 0.5)  # nothing darker than the skin: fall back to "a centred lesion"
        return fill_holes(best_component(m))

    def _params(self) -> tuple[str, float]:
        channel = self.chosen_[0] if self.channel == "auto" else self.channel
        scale = self.chosen_[1] if self.threshold_scale is None else float(self.threshold_scale)
        return channel, scale

    # ------------------------------------------------------------------------------- estimator API
    def fit(self, X: np.ndarray, masks: np.ndarray, y: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> "ClassicalSegmenter":
        """Choose channel and threshold scale on a sample of the training images; nothing is held out
        (the choice is the whole fit), so ``groups`` has no split to keep lesions apart in."""
        check_allowed(self)
        channels = list(self.channels_grid) if self.channel == "auto" else [self.channel]
        scales = list(self.scales_grid) if self.threshold_scale is None else [float(self.threshold_scale)]
        self.chosen_ = (channels[0], scales[len(scales) // 2])
        self.tuning_ = {}
        have = [i for i, m in enumerate(masks) if m]
        if len(channels) * len(scales) == 1 or not have:
            return self
        rng = np.random.default_rng(self.random_state)
        pick = rng.choice(have, size=min(len(have), int(self.n_tune)), replace=False)
        sums = np.zeros((len(channels), len(scales)))
        for i in progress(pick, desc="tuning classical segmenter", unit="image", disable=not self.progress):
            img, _ = self._prepare(str(X[i]))
            truth = read_mask(str(masks[i]), size=(img.shape[1], img.shape[0]))
            for (a, c), (b, s) in product(enumerate(channels), enumerate(scales)):
                pred = self._segment(img, c, s)
                inter, union = np.count_nonzero(pred & truth), np.count_nonzero(pred | truth)
                sums[a, b] += inter / union if union else 1.0
        mean = sums / len(pick)
        a, b = np.unravel_index(int(np.argmax(mean)), mean.shape)
        self.chosen_ = (channels[a], scales[b])
        self.tuning_ = {f"{c}@{s}": float(mean[i, j]) for (i, c), (j, s) in
                        product(enumerate(channels), enumerate(scales))}
        return self

    @property
    def best_params_(self) -> dict[str, Any]:
        """What the fit chose (a record's ``extras.fit``): ``chosen_`` by name; AttributeError before fit."""
        channel, scale = self.chosen_
        return {"channel": channel, "threshold_scale": scale}

    def predict_proba(self, X: np.ndarray) -> Iterator[np.ndarray]:
        if not hasattr(self, "chosen_"):
            self.chosen_ = ("blue" if self.channel == "auto" else self.channel,
                            1.0 if self.threshold_scale is None else float(self.threshold_scale))
        channel, scale = self._params()
        for path in X:
            img, (w, h) = self._prepare(str(path))
            m = self._segment(img, channel, scale).astype(np.uint8)
            if m.shape != (h, w):
                m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
            yield m.astype(np.float32)
