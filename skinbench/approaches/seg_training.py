"""The Keras segmenter estimator: fit (validation split, resumable training, optional fine-tuning,
threshold tuning) and predict at each image's own size.

Its parts live beside it: :mod:`seg_data` (image+mask loading, paired augmentation, batches),
:mod:`seg_checkpoints` (resumable training with best/last weights) and :mod:`seg_threshold`.
Training writes into a folder keyed by a hash of the data and the hyper-parameters, so an interrupted
run resumes from the last finished epoch and a finished run is reused instead of retrained.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Iterator

import cv2
import keras
import numpy as np

from skinbench.approaches import engines
from skinbench.approaches.base import TF_TOLERANCE, KerasPickleMixin, PathSegmenter, check_allowed
from skinbench.approaches.seg_checkpoints import (ValidationJaccard, fit_resumable, load_weights, signature,
                                                   training_summary)
from skinbench.approaches.seg_data import (PairAugment, PairBatches, load_pairs, positive_outputs, unpack_masks,
                                          validation_split)
from skinbench.approaches.seg_threshold import best_threshold, recalibrate, tuned_threshold
from skinbench.approaches.tfdata import TTA_FLIPS, TTA_MODES
from skinbench.cache import atomic_write_bytes, file_digest, make_key
from skinbench.data.images import image_size, read_image
from skinbench.errors import ConfigError, DataError
from skinbench.paths import cache_dir

#: part of each training folder's key: bump when training on the same inputs would give other weights
CODE_VERSION = "seg-training-2"
#: hyper-parameters of the optional second stage (pretrained encoder unfrozen, see KerasSegmenter.fit)
FINETUNE_PARAMS = ("finetune_epochs", "finetune_learning_rate")
#: parameters added after trainings were cached, with the default that trains as before them: keyed
#: only when set to something else, so the folders trained before they existed stay found
LATE_PARAMS = {"select_by": "val_loss", "crop_size": None}
#: how each ``select_by`` judges an epoch: (log key, better when "min" or "max")
SELECTION = {"val_loss": ("val_loss", "min"), "val_jaccard": ("val_jaccard", "max")}
_UNSET = object()


class KerasSegmenter(KerasPickleMixin, PathSegmenter):
    """fit/predict_proba around a Keras model; subclasses define ``_build`` and ``_losses``.

    Expected hyper-parameters on the subclass: input_size, epochs, batch_size, learning_rate,
    validation_fraction, patience, augment, positive_fraction, tune_threshold, tta, select_by, checkpoint,
    random_state, verbose; optionally finetune_epochs and finetune_learning_rate (see ``_unfreeze``).
    ``tta`` ("none", "flips", "auto": flips only if they raise the validation Jaccard) is applied at
    prediction only, so it never changes which training folder is used. ``select_by`` ("val_loss" or
    "val_jaccard", see ``SELECTION``) judges epochs for the best checkpoint and early stopping.
    """

    #: 2: lesion-aware validation split stratified by mask presence (or class); batches drawn per (seed,
    #: epoch) in PairBatches' order, never reshuffled by Keras (so a resumed fit equals an uninterrupted one)
    algorithm_version: ClassVar[int] = 2
    #: TensorFlow computes (features or training): identical on the same CPU and instruction set only
    reproducibility: ClassVar[str] = "bitwise-same-cpu"
    reproducibility_tolerance: ClassVar[float] = TF_TOLERANCE
    _allowed: ClassVar[dict[str, Any]] = {"tta": TTA_MODES, "select_by": SELECTION}
    #: the model has a classification head and fit needs ``y``
    joint: bool = False
    #: which output channel ``predict_proba`` returns (a multi-output subclass makes it a parameter)
    output: int = 0
    #: a crop-trained model's crop and whole-image sizes divide by this (its encoder's total stride)
    input_multiple: ClassVar[int] = 1

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
    def _run_dir(self, X: np.ndarray, masks: np.ndarray, y: np.ndarray | None, val_index: np.ndarray) -> Path:
        """Training folder keyed by everything the weights depend on, the validation images included."""
        # stage 2 keys its own sub-folder; every output of a multi-output model shares one training
        skip = ("verbose", "checkpoint", "tune_threshold", "tta", "output") + FINETUNE_PARAMS
        params = {k: v for k, v in self.get_params().items()
                  if k not in skip and LATE_PARAMS.get(k, _UNSET) != v}
        mask_key = [file_digest(m) if m else "" for m in masks.ravel()]
        if masks.ndim == 2:
            mask_key = [mask_key, masks.shape[1]]
        key = make_key(type(self).__name__, params, [file_digest(p) for p in X],
                       mask_key, None if y is None else np.asarray(y).tolist(),
                       np.asarray(val_index).tolist(), CODE_VERSION)
        return cache_dir() / "segmenters" / f"{type(self).__name__}-{key[:16]}"

    def fit(self, X, masks, y=None, groups=None) -> "KerasSegmenter":
        """``masks``: one mask path per image, or an (n_images, n_outputs) table for a multi-output model."""
        X = np.asarray(X, dtype=str)
        masks = np.asarray(masks, dtype=str)
        if len(X) != len(masks):
            raise ConfigError(f"{len(X)} images but {len(masks)} masks", fix="pass one mask path per image")
        self.n_outputs_ = masks.shape[1] if masks.ndim == 2 else 1
        if not 0 <= self.output < self.n_outputs_:
            raise ConfigError(f"output={self.output} but the model has {self.n_outputs_} output(s)",
                              fix=f"use 0 <= output < {self.n_outputs_}")
        check_allowed(self)
        crop, step = getattr(self, "crop_size", None) or 0, self.input_multiple
        if crop and not (crop <= self.input_size and crop % step == 0 == self.input_size % step):
            raise ConfigError(f"crop_size={crop} with input_size={self.input_size}: training crops must fit in the "
                              f"image and both sizes divide by {step} (the encoder's total stride)",
                              fix=f"use multiples of {step} with crop_size <= input_size, or crop_size=None")
        if self.joint and y is None:
            raise ConfigError(f"{type(self).__name__} trains a classification head and needs y",
                              fix="call fit(X, masks, y) with class indices")
        keras.utils.set_random_seed(self.random_state)
        y = None if y is None else np.asarray(y, dtype=np.int64)
        n_classes = int(getattr(self, "n_classes", 0) or (0 if y is None else y.max() + 1))
        if self.joint:
            self.n_classes_ = n_classes
            self.classes_ = np.arange(n_classes)
        images, ms = load_pairs(list(X), masks, self.input_size)
        columns = masks if masks.ndim == 2 else masks[:, None]
        for j in np.flatnonzero(~positive_outputs(ms, self.n_outputs_).any(axis=0)):
            folders = sorted({os.path.dirname(m) for m in columns[:, j] if m}) or ["(no mask files)"]
            which = f"of output {j} " if self.n_outputs_ > 1 else ""
            raise DataError(f"none of the {len(X)} training masks {which}has a foreground pixel at "
                            f"{self.input_size} px, so this model could only learn to predict all background",
                            path=folders[0],
                            fix="check that this target's masks are the right files; an attribute absent from "
                                "every training image cannot be learned (the all-background row already shows "
                                "it)")
        tr, va = validation_split(ms, self.validation_fraction, groups, self.random_state,
                                  y=y if self.joint else None)
        self.validation_index_ = va
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
                                   # >= 2 workers: Keras's enqueuer asks for a batch only once its epoch
                                   # began (tf.data prefetch with 1 worker could run ahead of EpochSync)
                                   workers=max(2, min(4, os.cpu_count() or 1)), max_queue_size=16,
                                   n_outputs=self.n_outputs_, crop=crop)

            val = PairBatches(images[va], ms[va], self.batch_size, augment=None, shuffle=False, n_classes=n_classes,
                              labels=None if y is None else y[va], n_outputs=self.n_outputs_)
            self.run_dir_ = self._run_dir(X, masks, y, va)
            monitor, mode = SELECTION[self.select_by]
            judge = dict(monitor=monitor, mode=mode, patience=self.patience, verbose=self.verbose,
                         callbacks=(ValidationJaccard(images[va], unpack_masks(ms[va], self.n_outputs_),
                                                      self.batch_size),) if monitor == "val_jaccard" else ())
            self.train_state_ = fit_resumable(model, batches(self.random_state), val, epochs=self.epochs,
                                              run_dir=self.run_dir_, **judge)
            if finetune_epochs:
                # Stage 2 (the transfer-learning recipe): decoder trained first, then the whole network at a
                # lower rate. Stage 1's folder does not depend on these parameters, so it is reused.
                self._unfreeze(model)
                self._compile(model, y_tr, n_classes, self.finetune_learning_rate)
                stage2 = self.run_dir_ / f"finetune-{make_key(finetune_epochs, self.finetune_learning_rate)[:12]}"
                self.train_state_ = {**fit_resumable(model, batches(self.random_state + 1), val,
                                                     epochs=finetune_epochs, run_dir=stage2, previous=self.run_dir_,
                                                     **judge),
                                     "head": self.train_state_}
            self.training_ = training_summary(self.train_state_, len(tr))
        self.model_ = model
        truth = unpack_masks(ms[va], self.n_outputs_)[..., self.output]
        prob = self._choose_tta(images[va].astype(np.float32), truth)
        self.threshold_, self.validation_jaccard_ = self._cut(truth, prob)
        return self

    def _cut(self, truth: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
        """(threshold, pooled validation Jaccard): tuned, or 0.5 when ``tune_threshold`` is off."""
        return tuned_threshold(truth, prob) if self.tune_threshold else best_threshold(truth, prob, (0.5,))

    def _choose_tta(self, x_va: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """The validation maps the threshold is tuned on: plain, or the mean over flips when ``tta`` is
        "flips", or is "auto" and the flips score a higher pooled Jaccard on these images. The plain maps
        are the flips' first view, predicted once."""
        self.tta_, self.tta_scores_ = False, None
        views = self._view_maps(x_va, TTA_FLIPS if self.tta != "none" else TTA_FLIPS[:1])
        plain = next(views)[0]
        if self.tta == "none":
            return plain
        flips = plain
        for seg, _ in views:
            flips = flips + seg
        flips = flips / len(TTA_FLIPS)
        self.tta_scores_ = {"none": self._cut(truth, plain)[1], "flips": self._cut(truth, flips)[1]}
        self.tta_ = self.tta == "flips" or self.tta_scores_["flips"] > self.tta_scores_["none"]
        return flips if self.tta_ else plain

    def _view_maps(self, x: np.ndarray, views) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Per view (flips of :data:`tfdata.TTA_FLIPS`): maps of output ``output``, flipped back, and the
        class scores (None without a class head)."""
        for lr, ud in views:
            out = engines.predict(self.model_, _flip(x, lr, ud), self.batch_size)
            seg, cls = (out["seg"], out["cls"]) if isinstance(out, dict) else (out, None)
            yield _flip(seg[..., self.output], lr, ud), cls

    def _predict_arrays(self, x: np.ndarray, tta: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(maps of output ``output``, class scores or None); ``tta`` (default: what fit chose): the mean
        over :data:`tfdata.TTA_FLIPS`."""
        views = TTA_FLIPS if (self.tta_ if tta is None else tta) else TTA_FLIPS[:1]
        seg = cls = None
        for s, c in self._view_maps(x, views):
            seg = s if seg is None else seg + s
            cls = c if cls is None else cls + c
        return seg / len(views), None if cls is None else cls / len(views)

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

        meta = np.frombuffer(json.dumps(signature(self.model_)).encode(), dtype=np.uint8)
        np.savez_compressed(buf, *[np.asarray(w).astype(np.float16) for w in self.model_.get_weights()], signature=meta)
        atomic_write_bytes(Path(path), buf.getvalue())


def _flip(x: np.ndarray, lr: bool, ud: bool) -> np.ndarray:
    """``x`` (n, H, W, ...) mirrored left-right and/or up-down (its own inverse)."""
    if lr:
        x = x[:, :, ::-1]
    if ud:
        x = x[:, ::-1]
    return np.ascontiguousarray(x)
