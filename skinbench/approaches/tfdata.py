"""tf.data input pipelines from image paths: decode + resize in parallel, batch, prefetch.

Why tf.data: decoding JPEGs in parallel threads while the model runs keeps the model fed, and only a
few batches are ever decoded at once, so 10,000 images stream in constant memory.
Images come out as float32 RGB in 0..255 at ``size``; any channel count (grayscale, RGBA) becomes
RGB and any size is resized, so odd inputs need no special casing. Augmentation is *stateless*:
the same (seed, view) always gives the same augmented view, which is what caching features of a
fixed number of augmented views needs.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from skinbench.errors import DataError


@dataclass(frozen=True)
class Augment:
    """Random geometric augmentation (keras ImageDataGenerator-style ranges)."""

    rotation: float = 10.0  # degrees, uniform in [-rotation, rotation]
    shift: float = 0.1      # fraction of width/height
    zoom: float = 0.0       # scale uniform in [1 - zoom, 1 + zoom]
    hflip: bool = True
    vflip: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


#: the reference recipes: task1 (binary) and task2 (seven classes, adds zoom and vertical flips)
AUGMENT_BINARY = Augment(rotation=10.0, shift=0.1, zoom=0.0, hflip=True, vflip=False)
AUGMENT_MULTICLASS = Augment(rotation=10.0, shift=0.1, zoom=0.1, hflip=True, vflip=True)


def view_seeds(digests: Sequence[str], view: int, seed: int) -> np.ndarray:
    """Augmentation seed of each image's view ``view``, from its content (order-independent)."""
    return np.array([[int(d[:12], 16), view * 100_003 + seed] for d in digests], dtype=np.int64)


#: test-time augmentation views: the image, mirrored left-right, up-down, and both (lesions have no up)
TTA_FLIPS = ((False, False), (True, False), (False, True), (True, True))
#: what a ``tta`` parameter takes: no flips, always the flips, or flips only if they help on validation
TTA_MODES = ("none", "flips", "auto")


def compiled(model, tta: bool = False):
    """``model`` as one traced ``tf.function`` over float batches (inference mode).

    Faster than ``predict_on_batch`` here. It is the TensorFlow engine of :func:`engines.compiled`, which the
    package calls (ONNX Runtime by default, measured faster: ``backbone_engines`` in results/perf/pipeline.md).
    ``tta``: the mean over :data:`TTA_FLIPS` of the model's outputs, the flips run one after another (one
    graph holding all four would hold four sets of activations).
    """
    import tensorflow as tf

    # one trace for every batch size: the batch dimension is left open
    spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    if not tta:
        return forward

    def mean_over_flips(x):
        x = tf.convert_to_tensor(x, tf.float32)
        total = None
        for lr, ud in TTA_FLIPS:
            view = tf.reverse(x, axis=[2]) if lr else x
            out = forward(tf.reverse(view, axis=[1]) if ud else view)
            total = out if total is None else total + out
        return total / len(TTA_FLIPS)

    return mean_over_flips


def run_compiled(fn, batches) -> np.ndarray:
    """Concatenated float32 outputs of a :func:`compiled` function over an iterable of batches."""
    return np.concatenate([np.asarray(fn(b), dtype=np.float32) for b in batches], axis=0)


def check_paths(paths: Sequence[str]) -> None:
    """Fail before the pipeline starts, naming the first missing file."""
    for p in paths:
        if not os.path.isfile(p):
            raise DataError("image file is missing", path=p, fix="download the dataset again or fix the CSV")


def load_image(path, size: tuple[int, int]):
    """tf: file path -> float32 (h, w, 3) in 0..255; ``size`` = (height, width)."""
    import tensorflow as tf

    raw = tf.io.read_file(path)
    img = tf.io.decode_image(raw, channels=3, expand_animations=False, dtype=tf.uint8)
    img = tf.image.resize(tf.cast(img, tf.float32), size, method="bilinear", antialias=True)
    img.set_shape((size[0], size[1], 3))
    return img


def augment_image(img, seed, aug: Augment):
    """tf: one stateless random view of ``img`` (h, w, 3); ``seed`` int32/int64 tensor of shape (2,)."""
    import tensorflow as tf

    h, w = float(img.shape[0]), float(img.shape[1])
    u = tf.random.stateless_uniform((6,), seed=seed, minval=-1.0, maxval=1.0)
    angle = u[0] * (aug.rotation * math.pi / 180.0)
    tx, ty = u[1] * aug.shift * w, u[2] * aug.shift * h
    scale = 1.0 + u[3] * aug.zoom
    # output pixel (x, y) samples input at A @ (x - c) + c + t: rotation and zoom about the centre
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    a0, a1, b0, b1 = cos, -sin, sin, cos
    transform = tf.stack([a0, a1, cx - a0 * cx - a1 * cy + tx,
                          b0, b1, cy - b0 * cx - b1 * cy + ty, 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=img[None], transforms=transform[None], output_shape=tf.constant([int(h), int(w)]),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")[0]
    if aug.hflip:
        out = tf.where(u[4] > 0, tf.reverse(out, axis=[1]), out)
    if aug.vflip:
        out = tf.where(u[5] > 0, tf.reverse(out, axis=[0]), out)
    return out


def image_dataset(paths: Sequence[str], size: tuple[int, int], *, labels: np.ndarray | None = None,
                  seeds: np.ndarray | None = None, augment: Augment | None = None, batch_size: int = 32,
                  shuffle: bool = False, repeat_augment: bool = False, seed: int = 0,
                  num_parallel_calls: int | None = None):
    """Batched ``(images[, labels])`` dataset.

    ``seeds`` (n, 2) ints fix each element's augmentation (feature views); with ``repeat_augment``
    each pass draws fresh views instead (training). ``size`` = (height, width).
    """
    import tensorflow as tf

    paths = [os.fspath(p) for p in paths]
    check_paths(paths)
    calls = num_parallel_calls or tf.data.AUTOTUNE
    n = len(paths)
    if seeds is None:
        seeds = np.stack([np.arange(n), np.full(n, seed)], axis=1)
    parts = [tf.constant(paths), tf.constant(np.asarray(seeds, dtype=np.int64))]
    if labels is not None:
        parts.append(tf.constant(np.asarray(labels)))
    ds = tf.data.Dataset.from_tensor_slices(tuple(parts))
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if repeat_augment and augment is not None:
        # a fresh seed per element per pass: (element seed, pass counter)
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed))).map(
            lambda el, r: (el[0], tf.stack([el[1][0], r]),) + tuple(el[2:]))

    def load(path, s, *rest):
        img = load_image(path, size)
        if augment is not None:
            img = augment_image(img, s, augment)
        return (img,) + tuple(rest) if rest else img

    ds = ds.map(load, num_parallel_calls=calls, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def find_unreadable(paths: Sequence[str]) -> None:
    """After a decode failure inside tf.data: raise a DataError naming the file TensorFlow could not read."""
    import tensorflow as tf

    for p in paths:
        try:
            tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
            raise DataError("not a readable image (truncated or not an image)", path=p,
                            fix="download this file again") from None
