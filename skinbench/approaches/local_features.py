"""Local descriptors for bag-of-visual-words: SIFT keypoints, dense SIFT, per-patch colour.

Extraction is the expensive part of BoVW, so each image's descriptors are cached on disk by content
(``make_key(file_digest(path), params, CODE_VERSION)``): a rerun, a vocabulary sweep or a kernel sweep
reads them back; other parameters or other pixels give another key and are never reused. Missing
entries are computed in parallel worker processes (one OpenCV thread each, so ``n_jobs`` cores are used
and not oversubscribed).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Iterator, Sequence

import cv2
import numpy as np

from skinbench.cache import ArrayCache, file_digest, make_key
from skinbench.data.images import read_image
from skinbench.errors import ConfigError
from skinbench.progress import progress as show_progress
from skinbench.testing_hooks import pause_point

#: bump when the extraction algorithm changes: old cache entries then stop matching
CODE_VERSION = "local-features-1"
DETECTORS = ("sift", "dense")
COLORS = ("none", "lab", "opponent")
SIFT_DIM = 128


@dataclass(frozen=True)
class DescriptorParams:
    """Everything a descriptor array depends on (besides the pixels); part of the cache key."""

    #: "sift": difference-of-Gaussians keypoints (the reference recipe); "dense": a regular grid
    detector: str = "sift"
    #: images are resized so the longer side is this many pixels (aspect kept) before extraction
    image_size: int = 384
    #: dense grid spacing in pixels and keypoint diameters (one keypoint per size per grid point)
    dense_step: int = 8
    dense_sizes: tuple[int, ...] = (16,)
    #: keep at most this many strongest DoG keypoints per image (0 = all)
    max_keypoints: int = 0
    #: DoG contrast threshold (OpenCV default 0.04 finds only ~30 keypoints on a 384 px dermoscopy image;
    #: 0.01 finds ~1500)
    contrast_threshold: float = 0.04
    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ConfigError(f"unknown descriptor detector {self.detector!r}", fix=f"use one of {DETECTORS}")
        if self.image_size < 16 or self.dense_step < 1 or not self.dense_sizes:
            raise ConfigError(f"bad descriptor geometry {self}", fix="use image_size >= 16, dense_step >= 1")

    def key_parts(self) -> dict:
        d = asdict(self)
        d["dense_sizes"] = list(self.dense_sizes)
        return d


@dataclass
class ImageDescriptors:
    """One image's local descriptors, stored compactly (SIFT values are integers 0..255 in OpenCV).

    ``sift`` (n, 128) uint8; ``color`` (n, 12) float16: mean and std of L*a*b* then of the opponent
    channels in each keypoint's window; ``xy`` (n, 2) float16 keypoint centres in [0, 1].
    """

    sift: np.ndarray
    color: np.ndarray
    xy: np.ndarray

    def __len__(self) -> int:
        return len(self.sift)

    def sift_features(self, rootsift: bool = False) -> np.ndarray:
        """SIFT as float32; RootSIFT (l1 then sqrt) gives Hellinger geometry under Euclidean k-means."""
        d = self.sift.astype(np.float32)
        if rootsift and len(d):
            d = np.sqrt(d / np.maximum(d.sum(axis=1, keepdims=True), 1e-12))
        return d

    def color_features(self, color: str) -> np.ndarray:
        """(n, 6) float32 colour statistics in the chosen space ("lab" or "opponent")."""
        if color not in ("lab", "opponent"):
            raise ConfigError(f"unknown colour descriptor {color!r}", fix=f"use one of {COLORS}")
        block = slice(0, 6) if color == "lab" else slice(6, 12)
        return self.color[:, block].astype(np.float32)


def _working_image(path: str, size: int) -> np.ndarray:
    img = read_image(path)
    h, w = img.shape[:2]
    scale = size / max(h, w)
    if scale != 1.0:
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (nw, nh), interpolation=interp)
    return img


def _dense_keypoints(h: int, w: int, step: int, sizes: Sequence[int]) -> list[cv2.KeyPoint]:
    half = max(sizes) / 2
    ys = np.arange(half, h - half + 1e-6, step)
    xs = np.arange(half, w - half + 1e-6, step)
    return [cv2.KeyPoint(float(x), float(y), float(s)) for s in sizes for y in ys for x in xs]


def _colour_space(img: np.ndarray, color: str) -> np.ndarray:
    """Float32 3-channel image in which per-patch colour statistics are taken (roughly unit scaled)."""
    if color == "lab":
        lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)  # L 0..100, a/b about -128..127
        return lab / np.array([100.0, 128.0, 128.0], np.float32)
    rgb = img.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    o1 = (r - g) / np.sqrt(2)
    o2 = (r + g - 2 * b) / np.sqrt(6)
    o3 = (r + g + b) / np.sqrt(3)
    return np.stack([o1, o2, o3], axis=-1)


def _patch_colour(img: np.ndarray, keypoints: Sequence[cv2.KeyPoint], color: str) -> np.ndarray:
    """Mean and standard deviation of each colour channel in a square window of each keypoint's size."""
    if not keypoints:
        return np.zeros((0, 6), np.float32)
    space = _colour_space(img, color).astype(np.float64)
    # integral images give every window's sum and sum of squares in O(1)
    s1 = cv2.integral(space)
    s2 = cv2.integral(space * space)
    h, w = img.shape[:2]
    pts = np.array([(k.pt[0], k.pt[1], k.size) for k in keypoints])
    r = np.maximum(pts[:, 2] / 2, 1.0)
    x0 = np.clip(np.round(pts[:, 0] - r), 0, w - 1).astype(int)
    x1 = np.clip(np.round(pts[:, 0] + r), x0 + 1, w).astype(int)
    y0 = np.clip(np.round(pts[:, 1] - r), 0, h - 1).astype(int)
    y1 = np.clip(np.round(pts[:, 1] + r), y0 + 1, h).astype(int)
    area = ((x1 - x0) * (y1 - y0))[:, None]

    def box(s: np.ndarray) -> np.ndarray:
        return s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]

    mean = box(s1) / area
    var = np.maximum(box(s2) / area - mean * mean, 0.0)
    return np.concatenate([mean, np.sqrt(var)], axis=1).astype(np.float32)


def compute_descriptors(path: str, params: DescriptorParams) -> ImageDescriptors:
    """Descriptors of one image (no cache). An image without keypoints gives empty (0, d) arrays.

    Both colour spaces are always stored (cheap, via integral images) so that every colour / RootSIFT
    variant of one keypoint geometry shares a single cache entry.
    """
    img = _working_image(path, params.image_size)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    sift = cv2.SIFT_create(nfeatures=params.max_keypoints if params.detector == "sift" else 0,
                           contrastThreshold=params.contrast_threshold)
    if params.detector == "sift":
        keypoints, desc = sift.detectAndCompute(gray, None)
    else:
        keypoints = _dense_keypoints(h, w, params.dense_step, params.dense_sizes)
        keypoints, desc = sift.compute(gray, keypoints) if keypoints else ((), None)
    keypoints = list(keypoints or ())
    if desc is None or len(keypoints) == 0:
        desc, keypoints = np.zeros((0, SIFT_DIM), np.float32), []
    desc = np.clip(np.round(desc), 0, 255).astype(np.uint8)
    color = np.concatenate([_patch_colour(img, keypoints, "lab"), _patch_colour(img, keypoints, "opponent")], axis=1)
    xy = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2) / np.array([w, h], np.float32)
    return ImageDescriptors(desc, color.astype(np.float16), xy.astype(np.float16))


def _worker(path: str, params: DescriptorParams, cache_root: str | None, key: str | None) -> ImageDescriptors:
    cv2.setNumThreads(1)
    out = compute_descriptors(path, params)
    if key is not None:
        ArrayCache("local_features", cache_root).put(key, sift=out.sift, color=out.color, xy=out.xy)
    return out


def descriptor_key(path: str, params: DescriptorParams) -> str:
    return make_key(file_digest(path), params.key_parts(), CODE_VERSION)


def extract_all(paths: Sequence[str], params: DescriptorParams, *, n_jobs: int = 2,
                cache_root: str | os.PathLike | None = None, use_cache: bool = True,
                progress: bool = True) -> list[ImageDescriptors]:
    """Descriptors for every path, in order: cached entries are read, the rest computed in parallel."""
    cache = ArrayCache("local_features", cache_root) if use_cache else None
    root = None if cache_root is None else os.fspath(cache_root)
    results: list[ImageDescriptors | None] = [None] * len(paths)
    keys: list[str | None] = [None] * len(paths)
    todo: list[int] = []
    for i, p in enumerate(paths):
        if cache is not None:
            keys[i] = descriptor_key(str(p), params)
            hit = cache.get(keys[i])
            if hit is not None:
                results[i] = ImageDescriptors(hit["sift"], hit["color"], hit["xy"])
                continue
        todo.append(i)
    if todo:
        computed = _map(todo, paths, params, root, keys, n_jobs, progress)
        try:
            for out, i in zip(computed, todo):  # computed first: it runs to its end (the display's last count)
                results[i] = out
                pause_point("descriptors")  # tests interrupt a run here (skinbench.testing_hooks)
        finally:
            computed.close()  # an interrupt ends the worker processes now, not at garbage collection
    return results  # type: ignore[return-value]


def _map(todo, paths, params, root, keys, n_jobs, progress) -> Iterator[ImageDescriptors]:
    bar = dict(total=len(todo), desc=f"{params.detector} descriptors", unit="image", disable=not progress)
    if n_jobs == 1 or len(todo) < 4:
        prev = cv2.getNumThreads()
        try:
            for i in show_progress(todo, **bar):
                yield _worker(str(paths[i]), params, root, keys[i])
        finally:
            cv2.setNumThreads(prev)
        return
    from joblib import Parallel, delayed

    jobs = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=8)(
        delayed(_worker)(str(paths[i]), params, root, keys[i]) for i in todo)
    yield from show_progress(jobs, **bar)
