"""Staged fine-tuning that fits 2 CPU cores: head on pooled features, top blocks on cached activations,
then optionally the whole network end to end at a reduced input size.

The three models of :func:`build_partial` share their layers, so training one trains the others: ``top``
(cut activation -> upper blocks -> pooling -> head) is what stage "top" fits on cached activations, and
``full`` (image -> everything) is what predicts. Each finished stage's weights are cached by a key that
chains every earlier stage's key (:class:`StageStore`), so a rerun or a longer schedule never retrains a
stage it already has.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from skinbench.approaches import backbones
from skinbench.cache import atomic_write_bytes, make_key, note_cache
from skinbench.errors import ConfigError
from skinbench.paths import cache_dir

#: bump when stage training changes for every stage (schedule semantics, batches)
CODE_VERSION = "finetune-stages-1"
#: per stage part, bumped when only that part changes (its key and every later stage's change, earlier
#: stages stay cached); all 2: BatchNorm frozen in the end-to-end stage
PART_VERSIONS = {"head": 1, "top": 1, "all": 2}


@dataclass
class PartialModels:
    full: Any       # image -> head output
    top: Any        # cut activation -> head output
    head: Any       # pooled features -> head output
    extract: Any    # image -> cut activation (frozen)
    pooled: Any     # cut activation -> pooled features
    upper: Any      # the trainable blocks (a sub-model of the backbone)
    base: Any       # the whole backbone
    activation_shape: tuple[int, ...]


def build_partial(backbone: str, weights: Any, size: int, cut: str | None, head: Callable[[Any], Any],
                  pool: Any) -> PartialModels:
    """One backbone split at ``cut``; ``head`` maps pooled features to the output (shared layers)."""
    import keras

    base = backbones.build(backbone, (size, size, 3), weights=weights)
    cut_t = backbones.cut_tensor(base, backbone, cut)
    lower = keras.Model(base.inputs, cut_t, name="lower")
    upper = keras.Model(cut_t, base.output, name="upper")
    image = keras.Input((size, size, 3))
    x = backbones.preprocess_layer(backbone)(image)
    act = lower(x, training=False)
    full = keras.Model(image, head(pool(upper(act, training=False))), name=f"{backbone}_partial")
    act_in = keras.Input(tuple(cut_t.shape[1:]))
    pooled_t = pool(upper(act_in, training=False))  # BatchNorm stays in inference mode (keras-io guide)
    feat_in = keras.Input(tuple(pooled_t.shape[1:]))
    return PartialModels(full=full, top=keras.Model(act_in, head(pooled_t), name="top"),
                         head=keras.Model(feat_in, head(feat_in), name="head"),
                         extract=keras.Model(image, act, name="extract"),
                         pooled=keras.Model(act_in, pooled_t, name="pooled"), upper=upper, base=base,
                         activation_shape=tuple(int(s) for s in cut_t.shape[1:]))


def set_top_trainable(models: PartialModels) -> None:
    """Upper blocks and head train; BatchNorm layers stay frozen (their statistics come from ImageNet)."""
    import keras

    models.upper.trainable = True
    for layer in models.upper.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def copy_weights(src_base: Any, src_model: Any, dst_base: Any, dst_model: Any) -> None:
    """Backbone layers and head layers by name from one input size to another (convolutions do not
    depend on it)."""
    for layer in dst_base.layers:
        if layer.weights:
            layer.set_weights(src_base.get_layer(layer.name).get_weights())
    for name in ("head_dense", "head_out"):
        dst_model.get_layer(name).set_weights(src_model.get_layer(name).get_weights())


class StageStore:
    """Weights of finished stages, ``<cache>/transfer_stages/<key>.weights.h5`` with a JSON summary."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.dir = Path(root or cache_dir()) / "transfer_stages"

    @staticmethod
    def key(previous: str, **stage: Any) -> str:
        version = PART_VERSIONS.get(stage.get("part", ""), 1)
        return make_key(previous, stage, CODE_VERSION, *([version] if version > 1 else []))[:32]

    def load(self, key: str, model: Any) -> dict | None:
        """The stage's summary after loading its weights into ``model``; None (and nothing loaded) if absent
        or unreadable."""
        weights, meta = self.dir / f"{key}.weights.h5", self.dir / f"{key}.json"
        if not (weights.is_file() and meta.is_file()):
            note_cache("transfer_stages", False)
            return None
        try:
            summary = json.loads(meta.read_text())
            model.load_weights(str(weights))
        except Exception:  # noqa: BLE001 - a damaged file of any kind: train the stage again
            weights.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            note_cache("transfer_stages", False)
            return None
        note_cache("transfer_stages", True)
        return summary

    def save(self, key: str, model: Any, summary: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{key}.{os.getpid()}.weights.h5"
        try:
            model.save_weights(str(tmp))
            os.replace(tmp, self.dir / f"{key}.weights.h5")
        finally:
            tmp.unlink(missing_ok=True)
        atomic_write_bytes(self.dir / f"{key}.json", json.dumps(summary, default=float).encode())


class Stopwatch:
    """Seconds and images/s of one stage (for ``stage_log_``, which benchmarks/perf_finetune.py reads)."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def summary(self, images: int) -> dict[str, float]:
        s = time.perf_counter() - self.t0
        return {"seconds": round(s, 2), "images_per_s": round(images / s, 1) if s > 0 else None}


def check_stages(stages: list[tuple[str, float, int]], pooling: str, size: int, finetune_size: int | None) -> None:
    """The partial schedule's shape: head first, then top, then at most one end-to-end stage, last."""
    parts = [s for s, _, _ in stages]
    allowed = ("head", "top", "all")
    if any(p not in allowed for p in parts) or parts != sorted(parts, key=allowed.index) or len(set(parts)) != len(parts):
        raise ConfigError(f"partial fine-tuning stages must be head, top, all in that order (each at most once), "
                          f"got {parts}", fix='e.g. stages=[["head", 3e-4, 100], ["top", 1e-4, 20]]')
    if "all" in parts and pooling == "flatten" and finetune_size not in (None, size):
        raise ConfigError("with pooling='flatten' the head's size depends on the input size",
                          fix=f"use pooling='avg' or finetune_size={size}")
