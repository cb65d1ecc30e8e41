"""Image+mask pairs for the Keras segmenters: cached loading, paired augmentation, batches.

The pipeline is a ``keras.utils.PyDataset`` over in-memory uint8 arrays with OpenCV warps rather than
``tf.data``: it runs unchanged on every Keras backend, so the same code trains on a CPU with TensorFlow
and on a GPU machine that only has JAX or PyTorch. Image and mask get the *same* affine matrix (and
flips); brightness changes the image only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import keras
import numpy as np

from skinbench.cache import ArrayCache, file_digest, make_key
from skinbench.data.images import read_image, read_mask
from skinbench.data.splits import validation_split as lesion_validation_split
from skinbench.errors import ConfigError
from skinbench.progress import progress

#: part of the pairs cache key: bump when what load_pairs returns changes (2: one entry per image, not per set)
PAIRS_VERSION = "seg-training-2"


def load_pairs(X: Sequence[str], masks: Sequence[str] | np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, size, size, 3) uint8 and masks (n, size, size) uint8, cached per image by file content.

    ``masks``: one path per image (mask values {0, 1}), or an (n, k) table of paths, one column per
    output of a multi-output model: then bit j of a mask value is column j (at most 8 columns), so a
    warp with nearest neighbour moves all k masks at once (see :func:`unpack_masks`).
    A mask path "" means "no annotation": all background. Masks go through ``read_mask`` (inverted,
    non-binary and differently sized masks are fixed there) and are resized with nearest neighbour.
    Each (image, masks) pair is its own cache entry, so any subset of a set read before (a learning
    curve's fractions, another validation split) reads nothing again.
    """
    table = np.asarray([""] * len(X) if masks is None else masks, dtype=str)
    packed = table.ndim == 2
    if packed and not 1 <= table.shape[1] <= 8:
        raise ConfigError(f"{table.shape[1]} mask columns: a multi-output model takes 1 to 8",
                          fix="train at most 8 targets in one model")
    columns = table if packed else table[:, None]
    cache = ArrayCache("seg_pairs")
    imgs = np.zeros((len(X), size, size, 3), np.uint8)
    ms = np.zeros((len(X), size, size), np.uint8)
    for i, (p, row) in enumerate(progress(list(zip(X, columns)), desc=f"reading images {size}px", unit="image")):
        digests = [file_digest(m) if m else "" for m in row]
        key = make_key("pair", file_digest(p), digests if packed else digests[0], packed, size, PAIRS_VERSION)

        def compute(p: str = p, row: np.ndarray = row) -> dict[str, np.ndarray]:
            mask = np.zeros((size, size), np.uint8)
            for bit, m in enumerate(row):
                if m:
                    mask |= read_mask(m, (size, size)).astype(np.uint8) << bit
            return {"image": read_image(p, (size, size)), "mask": mask}

        hit = cache.get_or_compute(key, compute)
        imgs[i], ms[i] = hit["image"], hit["mask"]
    return imgs, ms


def unpack_masks(masks: np.ndarray, n_outputs: int) -> np.ndarray:
    """(..., H, W) packed uint8 masks -> (..., H, W, n_outputs) {0, 1} uint8, one channel per bit."""
    return (masks[..., None] >> np.arange(n_outputs, dtype=np.uint8)) & 1


@dataclass
class PairAugment:
    """Random affine (rotation, shift, zoom) + flips applied identically to image and mask.

    Defaults are the reference study's Keras ``ImageDataGenerator`` settings. Brightness scales the
    image only. The mask is warped with nearest neighbour so it stays binary.
    """

    rotation: float = 45.0
    shift: float = 0.2
    zoom: float = 0.2
    flip: bool = True
    brightness: tuple[float, float] = (0.8, 1.2)

    def matrix(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        angle = rng.uniform(-self.rotation, self.rotation)
        scale = rng.uniform(1.0 - self.zoom, 1.0 + self.zoom)
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
        m[0, 2] += rng.uniform(-self.shift, self.shift) * w
        m[1, 2] += rng.uniform(-self.shift, self.shift) * h
        return m

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        h, w = mask.shape[:2]
        m = self.matrix(rng, h, w)
        image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        if self.flip and rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if self.flip and rng.random() < 0.5:
            image, mask = image[::-1], mask[::-1]
        image = image.astype(np.float32)
        lo, hi = self.brightness
        if (lo, hi) != (1.0, 1.0):
            image = np.clip(image * rng.uniform(lo, hi), 0.0, 255.0)
        return image, np.ascontiguousarray(mask)


def random_crop(image: np.ndarray, mask: np.ndarray, size: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` window of image and mask, placed uniformly; when the mask has foreground, among
    the windows holding one of its foreground pixels (drawn at random): oversampled positive images then
    show their feature in the crop, not only somewhere outside it."""
    h, w = mask.shape[:2]
    ys, xs = np.nonzero(mask)
    if len(ys):
        k = rng.integers(len(ys))
        lo_y, hi_y = max(0, ys[k] - size + 1), min(h - size, ys[k])
        lo_x, hi_x = max(0, xs[k] - size + 1), min(w - size, xs[k])
    else:
        lo_y, hi_y, lo_x, hi_x = 0, h - size, 0, w - size
    top, left = int(rng.integers(lo_y, hi_y + 1)), int(rng.integers(lo_x, hi_x + 1))
    return image[top:top + size, left:left + size], mask[top:top + size, left:left + size]


def positive_outputs(masks: np.ndarray, n_outputs: int = 1) -> np.ndarray:
    """(n_images, n_outputs) bool: whether image i shows output k (bit k of bit-packed masks)."""
    flat = np.asarray(masks).reshape(len(masks), -1)
    if n_outputs == 1:
        return flat.any(axis=1)[:, None]
    bits = np.bitwise_or.reduce(flat, axis=1)
    return ((bits[:, None] >> np.arange(n_outputs)) & 1).astype(bool)


def oversample(positives: np.ndarray, fraction: float, rng: np.random.Generator,
               default: np.ndarray) -> np.ndarray:
    """One epoch's image order (as long as ``default``) in which every output that shows in fewer than
    ``fraction`` of the images shows in at least that share of the slots: its positive images are drawn
    with replacement, rarest output first (an image drawn for one output counts for all it shows), the
    remaining slots go to images without any boosted output. ``default`` is returned when nothing is rare."""
    n, _ = positives.shape
    share = positives.mean(axis=0)
    boosted = [int(k) for k in np.argsort(share, kind="stable") if 0 < share[k] < fraction]
    if not boosted:
        return default
    quota = int(round(fraction * n))
    drawn = np.zeros(0, np.int64)
    for k in boosted:
        need = quota - int(positives[drawn, k].sum())
        if need > 0:
            drawn = np.concatenate([drawn, rng.choice(np.flatnonzero(positives[:, k]), need, replace=True)])
    drawn = drawn[:n]
    rest = np.flatnonzero(~positives[:, boosted].any(axis=1))
    n_rest = n - len(drawn)
    if n_rest and not len(rest):
        rest = np.arange(n)
    return rng.permutation(np.concatenate([drawn, rng.choice(rest, n_rest, replace=len(rest) < n_rest)]))


class PairBatches(keras.utils.PyDataset):
    """Batches of (float32 image 0..255, float32 mask (H, W, n_outputs)), optionally with one-hot labels.

    ``positive_fraction`` > 0 oversamples images whose mask is not empty so each epoch holds at least
    that share of them: rare attributes (streaks) otherwise barely reach the gradient. With several
    outputs the share holds per output, rarest first, as far as the epoch's slots allow: one common
    output (pigment network) must not hide that another (streaks) is almost never positive.
    ``crop`` > 0: each (augmented) pair is cut to a ``crop`` window (:func:`random_crop`).
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, batch_size: int, *, augment: PairAugment | None,
                 labels: np.ndarray | None = None, n_classes: int = 0, shuffle: bool = True,
                 positive_fraction: float = 0.0, seed: int = 0, n_outputs: int = 1, crop: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.crop = crop
        self.images, self.masks, self.labels = images, masks, labels
        self.n_outputs = n_outputs  # > 1: masks are bit-packed (load_pairs), unpacked per batch
        self.batch_size, self.augment, self.shuffle, self.n_classes = batch_size, augment, shuffle, n_classes
        self.positive_fraction = positive_fraction
        self.seed = seed
        self.positives = positive_outputs(masks, n_outputs) if positive_fraction > 0 else None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Batches of epoch ``epoch``: order and augmentation depend on (seed, epoch) only, so a resumed
        fit sees the same batches as an uninterrupted one."""
        self.epoch = epoch
        self.order = self._draw()

    def _draw(self) -> np.ndarray:
        n = len(self.images)
        if not self.shuffle:
            return np.arange(n)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        if self.positives is not None:
            order = oversample(self.positives, self.positive_fraction, rng, default=order)
        return order

    def __len__(self) -> int:
        return int(np.ceil(len(self.images) / self.batch_size))

    def __getitem__(self, idx: int):
        ids = self.order[idx * self.batch_size:(idx + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        xs, ms = [], []
        for i in ids:
            img, m = self.images[i], self.masks[i]
            if self.augment is not None:
                img, m = self.augment(img, m, rng)
            if self.crop:
                img, m = random_crop(img, m, self.crop, rng)
            xs.append(np.asarray(img, np.float32))
            ms.append(unpack_masks(np.asarray(m), self.n_outputs) if self.n_outputs > 1 else m[..., None])
        x, m = np.stack(xs), np.stack(ms).astype(np.float32)
        if self.labels is None:
            return x, m
        onehot = np.eye(self.n_classes, dtype=np.float32)[self.labels[ids]]
        return x, {"seg": m, "cls": onehot}

    def on_epoch_end(self) -> None:
        # Keras also calls this once before the first epoch: fit_resumable pins the epoch (EpochSync)
        self.set_epoch(self.epoch + 1)


def validation_split(masks: np.ndarray, fraction: float, groups: np.ndarray | None, seed: int,
                     y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) of the training images, from :mod:`skinbench.data.splits`: whole lesions only
    (``groups``; None: every image its own lesion), stratified by ``y`` when given (the Y-Net's classes),
    else by empty vs non-empty mask, so a rare attribute has positive images to tune a threshold on."""
    n = len(masks)
    if not 0.0 < fraction < 1.0 or n < 4:
        raise ConfigError(f"validation_fraction={fraction} with {n} training images leaves no validation set",
                          fix="use 0 < validation_fraction < 1 and at least 4 training images")
    strata = np.asarray(y) if y is not None else positive_outputs(masks)[:, 0].astype(np.int64)
    return lesion_validation_split(strata, groups, fraction, seed, min_classes=1)
