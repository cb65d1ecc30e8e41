"""What every Keras segmenter shares: image+mask loading, paired augmentation, batches, checkpoints.

The pipeline is a ``keras.utils.PyDataset`` over in-memory uint8 arrays with OpenCV warps rather than
``tf.data``: it runs unchanged on every Keras backend, so the same code trains on a CPU with TensorFlow
and on a GPU machine that only has JAX or PyTorch. Image and mask get the *same* affine matrix (and
flips); brightness changes the image only.

Training writes ``last`` and ``best`` weights plus a small JSON state into a folder keyed by a hash of
the data and the hyper-parameters; files are replaced atomically, so an interrupted run resumes from the
last finished epoch, and a finished run is reused instead of retrained.
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import keras
import numpy as np
from tqdm.auto import tqdm

from skinbench.approaches.base import PathSegmenter
from skinbench.cache import ArrayCache, atomic_write_bytes, file_digest, make_key
from skinbench.data.images import image_size, read_image, read_mask
from skinbench.errors import ConfigError, WeightsError
from skinbench.paths import cache_dir

CODE_VERSION = "seg-training-1"
#: hyper-parameters of the optional second stage (pretrained encoder unfrozen, see KerasSegmenter.fit)
FINETUNE_PARAMS = ("finetune_epochs", "finetune_learning_rate")


# --------------------------------------------------------------------------- data
def load_pairs(X: Sequence[str], masks: Sequence[str] | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, size, size, 3) uint8 and masks (n, size, size) uint8 {0, 1}, cached by file content.

    A mask path "" means "no annotation": all background. Masks go through ``read_mask`` (inverted,
    non-binary and differently sized masks are fixed there) and are resized with nearest neighbour.
    """
    masks = [""] * len(X) if masks is None else list(masks)
    key = make_key("pairs", [file_digest(p) for p in X], [file_digest(m) if m else "" for m in masks],
                   size, CODE_VERSION)
    cache = ArrayCache("seg_pairs")

    def compute() -> dict[str, np.ndarray]:
        imgs = np.zeros((len(X), size, size, 3), np.uint8)
        ms = np.zeros((len(X), size, size), np.uint8)
        for i, (p, m) in enumerate(tqdm(list(zip(X, masks)), desc=f"reading images {size}px",
                                        disable=not sys.stderr.isatty())):
            imgs[i] = read_image(p, (size, size))
            if m:
                ms[i] = read_mask(m, (size, size))
        return {"images": imgs, "masks": ms}

    hit = cache.get_or_compute(key, compute)
    return hit["images"], hit["masks"]


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


class PairBatches(keras.utils.PyDataset):
    """Batches of (float32 image 0..255, float32 mask (H, W, 1)), optionally with one-hot labels.

    ``positive_fraction`` > 0 oversamples images whose mask is not empty so each epoch holds at least
    that share of them: rare attributes (streaks) otherwise barely reach the gradient.
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, batch_size: int, *, augment: PairAugment | None,
                 labels: np.ndarray | None = None, n_classes: int = 0, shuffle: bool = True,
                 positive_fraction: float = 0.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.images, self.masks, self.labels = images, masks, labels
        self.batch_size, self.augment, self.shuffle, self.n_classes = batch_size, augment, shuffle, n_classes
        self.positive_fraction = positive_fraction
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self.order = self._draw()

    def _draw(self) -> np.ndarray:
        n = len(self.images)
        if not self.shuffle:
            return np.arange(n)
        order = self.rng.permutation(n)
        if self.positive_fraction > 0:
            pos = np.flatnonzero(self.masks.reshape(n, -1).any(axis=1))
            neg = np.setdiff1d(np.arange(n), pos)
            if 0 < len(pos) and len(pos) / n < self.positive_fraction:
                n_pos = int(round(self.positive_fraction * n))
                order = self.rng.permutation(np.concatenate(
                    [self.rng.choice(pos, n_pos, replace=True), self.rng.choice(neg, n - n_pos, replace=False)]))
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
            xs.append(np.asarray(img, np.float32))
            ms.append(np.asarray(m, np.float32)[..., None])
        x, m = np.stack(xs), np.stack(ms)
        if self.labels is None:
            return x, m
        onehot = np.eye(self.n_classes, dtype=np.float32)[self.labels[ids]]
        return x, {"seg": m, "cls": onehot}

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._draw()


def validation_split(n: int, fraction: float, groups: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation indices from the training data only; lesion-aware when ``groups`` is given."""
    from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit

    if not 0.0 < fraction < 1.0 or n < 4:
        raise ConfigError(f"validation_fraction={fraction} with {n} training images leaves no validation set",
                          fix="use 0 < validation_fraction < 1 and at least 4 training images")
    splitter = (GroupShuffleSplit if groups is not None else ShuffleSplit)(n_splits=1, test_size=fraction,
                                                                            random_state=seed)
    tr, va = next(splitter.split(np.zeros(n), groups=groups))
    return np.sort(tr), np.sort(va)


# --------------------------------------------------------------------------- checkpoints
class Checkpointer(keras.callbacks.Callback):
    """Each epoch: save ``last`` weights and state; save ``best`` when ``monitor`` improves; stop early."""

    def __init__(self, run_dir: Path, monitor: str, mode: str, patience: int, state: dict):
        super().__init__()
        self.run_dir, self.monitor, self.mode, self.patience, self.state = run_dir, monitor, mode, patience, state

    def _save(self, name: str) -> None:
        tmp = self.run_dir / f".tmp-{os.getpid()}-{name}"
        self.model.save_weights(str(tmp))
        os.replace(tmp, self.run_dir / name)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float((logs or {}).get(self.monitor, np.nan))
        best = self.state.get("best")
        improved = np.isfinite(value) and (best is None or (value < best if self.mode == "min" else value > best))
        if improved:
            self._save("best.weights.h5")
            self.state.update(best=value, best_epoch=epoch, wait=0)
        else:
            self.state["wait"] = self.state.get("wait", 0) + 1
        self._save("last.weights.h5")
        self.state.update(epoch=epoch, history=self.state.get("history", []) + [
            {k: float(v) for k, v in (logs or {}).items()}])
        if self.patience and self.state["wait"] >= self.patience:
            self.model.stop_training = True
            self.state["stopped_early"] = True
        write_state(self.run_dir, self.state)


def read_state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_state(run_dir: Path, state: dict) -> None:
    atomic_write_bytes(run_dir / "state.json", json.dumps(state, indent=1).encode())


def fit_resumable(model: keras.Model, train: PairBatches, val: PairBatches, *, epochs: int, run_dir: Path,
                  monitor: str = "val_loss", mode: str = "min", patience: int = 0, verbose: int | None = None) -> dict:
    """Train ``model`` with best/last checkpoints in ``run_dir``; resume or reuse what is already there.

    Returns the state dict (best value and epoch, history). The best weights are loaded on return.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(run_dir)
    if state and (run_dir / "last.weights.h5").exists():
        model.load_weights(str(run_dir / "last.weights.h5"))
    else:
        state = {}
    start = state.get("epoch", -1) + 1
    if not state.get("stopped_early") and start < epochs:
        train.epoch = start
        model.fit(train, validation_data=val, epochs=epochs, initial_epoch=start,
                  verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
                  callbacks=[Checkpointer(run_dir, monitor, mode, patience, state)])
    state["done"] = True
    write_state(run_dir, state)
    if (run_dir / "best.weights.h5").exists():
        model.load_weights(str(run_dir / "best.weights.h5"))
    return state


# --------------------------------------------------------------------------- estimator base
def best_threshold(truth: np.ndarray, prob: np.ndarray,
                   grid: Sequence[float] = tuple(np.arange(0.05, 0.96, 0.05))) -> tuple[float, float]:
    """(threshold, Jaccard) maximising Jaccard pooled over the validation images (rare features need < 0.5)."""
    t = truth.astype(bool).ravel()
    p = prob.ravel()
    scores = []
    for th in grid:
        pred = p >= th
        inter, union = np.sum(pred & t), np.sum(pred | t)
        scores.append(inter / union if union else 1.0)
    best = int(np.argmax(scores))
    return float(grid[best]), float(scores[best])


def recalibrate(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Monotone remap putting ``threshold`` at 0.5, so any caller thresholding at 0.5 gets the tuned cut."""
    if abs(threshold - 0.5) < 1e-9:
        return prob
    return np.where(prob < threshold, 0.5 * prob / threshold,
                    0.5 + 0.5 * (prob - threshold) / (1.0 - threshold)).astype(np.float32)


class KerasSegmenter(PathSegmenter):
    """fit/predict_proba around a Keras model; subclasses define ``_build`` and ``_losses``.

    Expected hyper-parameters on the subclass: input_size, epochs, batch_size, learning_rate,
    validation_fraction, patience, augment, positive_fraction, tune_threshold, checkpoint,
    random_state, verbose; optionally finetune_epochs and finetune_learning_rate (see ``_unfreeze``).
    """

    #: the model has a classification head and fit needs ``y``
    joint: bool = False

    # subclass hooks -----------------------------------------------------------
    def _build(self, n_classes: int) -> keras.Model:
        raise NotImplementedError

    def _compile(self, model: keras.Model, y: np.ndarray | None, n_classes: int, learning_rate: float) -> None:
        raise NotImplementedError

    def _unfreeze(self, model: keras.Model) -> None:
        """Make the pretrained encoder trainable for the fine-tuning stage."""
        raise ConfigError(f"{type(self).__name__} has no pretrained encoder to fine-tune",
                          fix="leave finetune_epochs at 0 for this approach")

    # shared -------------------------------------------------------------------
    def _run_dir(self, X: np.ndarray, masks: np.ndarray, y: np.ndarray | None) -> Path:
        skip = ("verbose", "checkpoint", "tune_threshold") + FINETUNE_PARAMS  # stage 2 keys its own sub-folder
        params = {k: v for k, v in self.get_params().items() if k not in skip}
        key = make_key(type(self).__name__, params, [file_digest(p) for p in X],
                       [file_digest(m) if m else "" for m in masks], None if y is None else np.asarray(y).tolist(),
                       CODE_VERSION)
        return cache_dir() / "segmenters" / f"{type(self).__name__}-{key[:16]}"

    def fit(self, X, masks, y=None, groups=None) -> "KerasSegmenter":
        X = np.asarray(X, dtype=str)
        masks = np.asarray(masks, dtype=str)
        if len(X) != len(masks):
            raise ConfigError(f"{len(X)} images but {len(masks)} masks", fix="pass one mask path per image")
        if self.joint and y is None:
            raise ConfigError(f"{type(self).__name__} trains a classification head and needs y",
                              fix="call fit(X, masks, y) with class indices")
        keras.utils.set_random_seed(self.random_state)
        y = None if y is None else np.asarray(y, dtype=np.int64)
        n_classes = int(getattr(self, "n_classes", 0) or (0 if y is None else y.max() + 1))
        if self.joint:
            self.n_classes_ = n_classes
            self.classes_ = np.arange(n_classes)
        images, ms = load_pairs(list(X), list(masks), self.input_size)
        tr, va = validation_split(len(X), self.validation_fraction, groups, self.random_state)
        model = self._build(n_classes)
        y_tr = None if y is None else y[tr]
        self._compile(model, y_tr, n_classes, self.learning_rate)
        y = y if self.joint else None  # a segmenter ignores labels (the runner passes them to everyone)
        finetune_epochs = getattr(self, "finetune_epochs", 0)
        if self.checkpoint:
            load_weights(model, self.checkpoint)
            self.train_state_ = {"checkpoint": os.fspath(self.checkpoint)}
        else:
            def batches(seed: int) -> PairBatches:
                return PairBatches(images[tr], ms[tr], self.batch_size, n_classes=n_classes,
                                   augment=PairAugment() if self.augment else None, seed=seed,
                                   positive_fraction=self.positive_fraction, labels=None if y is None else y[tr],
                                   workers=min(4, os.cpu_count() or 1), max_queue_size=16)

            val = PairBatches(images[va], ms[va], self.batch_size, augment=None, shuffle=False, n_classes=n_classes,
                              labels=None if y is None else y[va])
            self.run_dir_ = self._run_dir(X, masks, y)
            self.train_state_ = fit_resumable(model, batches(self.random_state), val, epochs=self.epochs,
                                              run_dir=self.run_dir_, patience=self.patience, verbose=self.verbose)
            if finetune_epochs:
                # Stage 2 (the transfer-learning recipe): decoder trained first, then the whole network at a
                # lower rate. Stage 1's folder does not depend on these parameters, so it is reused.
                self._unfreeze(model)
                self._compile(model, y_tr, n_classes, self.finetune_learning_rate)
                stage2 = self.run_dir_ / f"finetune-{make_key(finetune_epochs, self.finetune_learning_rate)[:12]}"
                self.train_state_ = {**fit_resumable(model, batches(self.random_state + 1), val,
                                                     epochs=finetune_epochs, run_dir=stage2, patience=self.patience,
                                                     verbose=self.verbose), "head": self.train_state_}
        self.model_ = model
        prob = self._predict_arrays(images[va].astype(np.float32))[0]
        grid = tuple(np.arange(0.05, 0.96, 0.05)) if self.tune_threshold else (0.5,)
        self.threshold_, self.validation_jaccard_ = best_threshold(ms[va], prob, grid)
        return self

    def _predict_arrays(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.model_.predict(x, batch_size=self.batch_size, verbose=0)
        if isinstance(out, dict):
            return out["seg"][..., 0], out["cls"]
        return out[..., 0], None

    def _batches(self, X) -> Iterator[tuple[list[str], np.ndarray]]:
        X = [str(p) for p in X]
        size = (self.input_size, self.input_size)
        for start in range(0, len(X), 64):
            paths = X[start:start + 64]
            yield paths, np.stack([read_image(p, size) for p in paths]).astype(np.float32)

    def predict_proba(self, X) -> Iterator[np.ndarray]:
        """Foreground probability per pixel at each image's own size (threshold tuned to sit at 0.5)."""
        for paths, x in self._batches(X):
            prob, _ = self._predict_arrays(x)
            for p, pm in zip(paths, prob):
                w, h = image_size(p)
                pm = cv2.resize(pm.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                yield recalibrate(np.clip(pm, 0.0, 1.0), self.threshold_)

    def export_weights(self, path: str | os.PathLike) -> None:
        """Write the trained weights as float16 ``.npz`` (half the bytes; to move them between machines)."""
        buf = io.BytesIO()
        np.savez_compressed(buf, *[np.asarray(w).astype(np.float16) for w in self.model_.get_weights()])
        atomic_write_bytes(Path(path), buf.getvalue())


def load_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Load ``*.weights.h5`` (Keras) or ``*.npz`` (:meth:`KerasSegmenter.export_weights`) into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("checkpoint file not found", path=path,
                           fix="pass the path of weights trained with the same parameters")
    try:
        if path.suffix == ".npz":
            with np.load(path) as npz:
                arrays = [npz[f"arr_{i}"] for i in range(len(npz.files))]
            model.set_weights([a.astype(np.asarray(w).dtype) for a, w in zip(arrays, model.get_weights(), strict=True)])
        else:
            model.load_weights(str(path))
    except ValueError as err:
        raise WeightsError(f"checkpoint does not fit this model ({str(err).splitlines()[0][:160]})", path=path,
                           fix="use the same architecture parameters (input_size, base_filters, depth, ...) "
                               "as the run that saved it") from err
