"""Staged fine-tuning that fits 2 CPU cores: head on pooled features, top blocks on cached activations,
then optionally the whole network end to end at a reduced input size.

The three models of :func:`build_partial` share their layers, so training one trains the others: ``top``
(cut activation -> upper blocks -> pooling -> head) is what stage "top" fits on cached activations, and
``full`` (image -> everything) is what predicts. Each finished stage's weights are cached by a key that
chains every earlier stage's key (:class:`StageStore`), so a rerun or a longer schedule never retrains a
stage it already has. :class:`PartialFinetuneClassifier` is the estimator that runs this schedule
(the ft-top / ft-all approaches); it shares the head and its checks with the other transfer estimators
(:class:`skinbench.approaches.transfer.TransferBase`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from skinbench.approaches import activations, backbones, engines, tfdata
from skinbench.approaches.transfer import (BestByMetric, Stage, TransferBase, as_proba, pool_layer, class_weights,
                                           full_model, head_layers, output_bias, selection_score, set_stage)
from skinbench.cache import atomic_write_bytes, file_digest, make_key, note_cache
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


class PartialFinetuneClassifier(TransferBase):
    """Fine-tuning that fits 2 CPU cores (see the module docstring): head on pooled features, the blocks
    above ``cut`` on cached activations, optionally everything end to end at ``finetune_size``.

    ``stages``: head, top, all in that order (each at most once). ``cut``: the backbone block where
    training starts (``backbones.cut_points``; None: the backbone's default). ``finetune_size``: input
    side of the end-to-end ("all") stage (None: ``input_size``). ``n_views`` augmented views per training
    image (plus the image itself) for the cached activations. ``tta``: "none", "flips" or "auto" (flips
    only if they raise the validation score). ``sampling``: how the head and top stages draw training
    images each epoch: "shuffle" (each once) or "balanced" (each class equally likely, with replacement;
    combine with ``class_weight=None`` for sampling instead of weighting, or keep both); the end-to-end
    stage always shuffles. Shared parameters: :class:`TransferBase`.
    """

    _allowed: ClassVar[dict[str, Any]] = {"tta": tfdata.TTA_MODES, "sampling": activations.SAMPLINGS}
    label: ClassVar[str] = "partial"
    default_stages: ClassVar[tuple[Stage, ...]] = (("head", 3e-4, 100), ("top", 1e-4, 20))

    def __init__(self, backbone: str = "mobilenet_v2", weights: Any = "imagenet", input_size: int | None = None,
                 pooling: str = "avg", head_units: int = 512, dropout: float = 0.5,
                 stages: Sequence[Stage] | None = None, batch_size: int = 32, patience: int = 10,
                 augment: Any = "auto", n_views: int = 4, view_seed: int = 0, val_size: float = 0.15,
                 select_metric: str = "auto", class_weight: str | None = "balanced", bias_init: bool = True,
                 cut: str | None = None, finetune_size: int | None = None, tta: str = "none",
                 sampling: str = "shuffle", random_state: int = 0, cache_dir: str | os.PathLike | None = None,
                 verbose: int = 0):
        self.backbone, self.weights, self.input_size = backbone, weights, input_size
        self.pooling, self.head_units, self.dropout, self.stages = pooling, head_units, dropout, stages
        self.batch_size, self.patience, self.augment, self.n_views = batch_size, patience, augment, n_views
        self.view_seed, self.val_size, self.select_metric = view_seed, val_size, select_metric
        self.class_weight, self.bias_init = class_weight, bias_init
        self.cut, self.finetune_size, self.tta, self.sampling = cut, finetune_size, tta, sampling
        self.random_state, self.cache_dir, self.verbose = random_state, cache_dir, verbose

    def _check(self) -> None:
        backbones.resolve_cut(self.backbone, self.cut)

    def _check_stages(self, stages: list[Stage]) -> None:
        check_stages(stages, self.pooling, self._size(), self.finetune_size)

    def _fit(self, X, y, tr, va) -> None:
        """head on pooled features -> top blocks on cached activations -> optionally all, end to end."""
        import keras

        k, size, aug = len(self.classes_), self._size(), self._augment()
        stages = self._stages()
        if not len(va):
            raise ConfigError("partial fine-tuning selects each stage's best epoch on a validation split",
                              fix="use val_size > 0 (e.g. 0.15)")
        views = list(range(self.n_views + 1)) if aug is not None else [0]
        bias = output_bias(y[tr], k) if self.bias_init else np.zeros(1 if k == 2 else k)
        keras.utils.set_random_seed(self.random_state)
        models = build_partial(self.backbone, self.weights, size, self.cut,
                                        head_layers(k, bias, self.head_units, self.dropout), pool_layer(self.pooling))
        digests = [file_digest(p) for p in X]
        d_tr, d_va = [digests[i] for i in tr], [digests[i] for i in va]
        # random weights (tests, smoke) differ per build: their activations and stages go to a scratch folder
        scratch = tempfile.mkdtemp(prefix="skinbench-partial-") if self.weights is None else None
        try:
            self._run_stages(models, stages, X, y, tr, va, d_tr, d_va, views, size, aug, bias, scratch or self.cache_dir)
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)


    def _run_stages(self, models, stages, X, y, tr, va, d_tr, d_va, views, size, aug, bias, root) -> None:
        import keras

        k = len(self.classes_)
        stage_store = StageStore(root)
        prev = StageStore.key(
            "root", backbone=self.backbone, weights=backbones.weights_id(self.backbone, self.weights, size), size=size,
            cut=backbones.resolve_cut(self.backbone, self.cut), pooling=self.pooling, units=self.head_units,
            dropout=self.dropout, augment=aug.as_dict() if aug else None, views=views, view_seed=self.view_seed,
            train=d_tr, y_train=y[tr].tolist(), val=d_va, y_val=y[va].tolist(), class_weight=self.class_weight,
            bias_init=self.bias_init, batch_size=self.batch_size, patience=self.patience, metric=self._metric(),
            random_state=self.random_state, **{"engine": tag for tag in engines.cache_tag()},
            # only when not the default: every stage cached before the option existed keeps its key
            **({"sampling": self.sampling} if self.sampling != "shuffle" else {}))
        self.history_, self.stage_log_ = [], []
        cached: dict[str, Any] = {}

        def data() -> dict[str, Any]:  # activations, made on the first stage that trains
            if not cached:
                sw = Stopwatch()
                store = activations.open_store(backbone=self.backbone, weights=self.weights, size=size, cut=self.cut,
                                               augment=aug, seed=self.view_seed, shape=models.activation_shape,
                                               cache_dir=root)
                todo = len(store.missing([(d, v) for v in views for d in d_tr] + [(d, 0) for d in d_va]))
                for paths, digs, vs in ((X[tr], d_tr, views), (X[va], d_va, [0])):
                    activations.fill(store, paths, digs, vs, model=models.extract, size=size, augment=aug,
                                     seed=self.view_seed, batch_size=self.batch_size, progress=self.verbose >= 0)
                timing = sw.summary(todo) if todo else {"seconds": None, "images_per_s": None}
                self.stage_log_.append({"stage": "activations", "images": todo, "cached": not todo,
                                        "dropped_shards": len(store.dropped),
                                        "stored_mb": round(store.nbytes() / 2**20, 1), **timing})
                cached["store"] = store
                cached["where_tr"] = np.stack([store.locate([(d, v) for d in d_tr]) for v in views])
                cached["act_va"] = store.gather(store.locate([(d, 0) for d in d_va]))
            return cached

        score = None
        predictor, pred_size = models.full, size
        for part, lr, epochs in stages:
            extra = {"finetune_size": int(self.finetune_size or size)} if part == "all" else {}
            key = StageStore.key(prev, part=part, lr=lr, epochs=epochs, **extra)
            if part == "all":
                keras.utils.set_random_seed(self.random_state)
                model_all, base_all = full_model(self.backbone, None, extra["finetune_size"], k, bias, self.pooling,
                                                 self.head_units, self.dropout)
                copy_weights(models.base, models.full, base_all, model_all)
                predictor, pred_size = model_all, extra["finetune_size"]
            summary = stage_store.load(key, predictor)
            if summary is None:
                if part != "all":
                    data()  # activations first, so the stage's clock counts its training alone
                sw = Stopwatch()
                keras.utils.set_random_seed(self.random_state)
                if part == "head":
                    hist, stage_score, n_seen = self._stage_head(models, data(), y, tr, va, views, lr, epochs)
                elif part == "top":
                    hist, stage_score, n_seen = self._stage_top(models, data(), y, tr, va, lr, epochs, score)
                else:
                    hist, stage_score, n_seen = self._stage_all(model_all, base_all, X, y, tr, va, lr, epochs,
                                                                pred_size)
                summary = {"stage": part, "epochs": len(hist.get("loss", [])), "val_score": stage_score,
                           "history": hist, **sw.summary(n_seen)}
                stage_store.save(key, predictor, summary)
                summary["cached"] = False
            else:
                summary["cached"] = True
            if part == "all":
                # the end-to-end model sees fewer pixels: it predicts only if validation says it is better
                summary["used"] = score is None or summary["val_score"] > score
                if not summary["used"]:
                    predictor, pred_size = models.full, size
            score = max(summary["val_score"], score if score is not None else -np.inf)
            self.history_.append({"stage": part, "epochs": summary["epochs"], **summary["history"]})
            self.stage_log_.append({**{k_: v for k_, v in summary.items() if k_ != "history"},
                                    # the validation curve per epoch: where a stage stopped improving
                                    "val_curve": [round(float(v), 4) for v in summary["history"].get("val_score", [])]})
            prev = key
        self.model_, self.predict_size_ = predictor, pred_size
        self._choose_tta(X[va], y[va])


    def _fit_stage(self, model, fit_data, lr: float, epochs: int, stage: str, score_fn, start: float | None,
                   show_from: int, **fit_kwargs) -> tuple[dict, float]:
        """Compile with Adam(lr), fit with early stopping on validation loss, keep the best epoch by the
        validation metric (starting from ``start``, the previous stage's); returns (history, best score)."""
        import keras

        model.compile(keras.optimizers.Adam(lr), self._loss())
        best = BestByMetric(score_fn, start=start)
        # arrays are shuffled by Keras each epoch; a PyDataset or tf.data pipeline shuffles itself (seeded)
        hist = model.fit(fit_data, epochs=epochs, shuffle=isinstance(fit_data, np.ndarray), verbose=0,
                         callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=self.patience), best]
                         + self._epoch_lines(stage, epochs, show_from), **fit_kwargs)
        history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        history["val_score"] = [float(v) for v in best.history]
        return history, float(best.best)


    def _stage_head(self, models, d, y, tr, va, views, lr, epochs) -> tuple[dict, float, int]:
        pooled = engines.compiled(models.pooled)
        f_tr = np.concatenate([tfdata.run_compiled(pooled, activations.iter_rows(d["store"], w)) for w in d["where_tr"]])
        f_va = tfdata.run_compiled(pooled, [d["act_va"][i:i + 256] for i in range(0, len(va), 256)])
        y_tr = np.tile(y[tr], len(views))
        cw = self._fit_kwargs(len(self.classes_), y_tr)["class_weight"]
        if self.sampling == "shuffle":
            fit_data, kwargs = f_tr, {"y": y_tr, "batch_size": self.batch_size, "class_weight": cw}
        else:  # balanced draws each epoch; class weights, if kept, as sample weights
            weights = np.array([cw[c] for c in y_tr]) if cw else None
            fit_data, kwargs = activations.array_batches(f_tr, y_tr, self.batch_size, self.random_state,
                                                         self.sampling, weights), {}
        hist, score = self._fit_stage(
            models.head, fit_data, lr, epochs, "head",
            lambda m: selection_score(self._metric(), y[va], as_proba(m.predict(f_va, verbose=0))), None, 1,
            validation_data=(f_va, y[va]), **kwargs)
        return hist, score, len(hist.get("loss", [])) * len(f_tr)


    def _stage_top(self, models, d, y, tr, va, lr, epochs, start) -> tuple[dict, float, int]:
        set_top_trainable(models)
        cw = class_weights(y[tr], len(self.classes_)) if self.class_weight == "balanced" else None
        weights = np.array([cw[c] for c in y[tr]]) if cw else np.ones(len(tr))
        batches = activations.ViewBatches(d["store"], d["where_tr"], y[tr], weights, self.batch_size, self.random_state,
                                          self.sampling)
        hist, score = self._fit_stage(
            models.top, batches, lr, epochs, "top blocks",
            lambda m: selection_score(self._metric(), y[va], as_proba(m.predict(d["act_va"], batch_size=256, verbose=0))),
            start, 0, validation_data=(d["act_va"], y[va]))
        return hist, score, len(hist.get("loss", [])) * len(tr)


    def _stage_all(self, model, base, X, y, tr, va, lr, epochs, size) -> tuple[dict, float, int]:
        set_stage(base, "all", self.backbone)
        train_ds = tfdata.image_dataset(X[tr], (size, size), labels=y[tr], augment=self._augment(),
                                        batch_size=self.batch_size, shuffle=True, repeat_augment=True,
                                        seed=self.random_state)
        val_ds = tfdata.image_dataset(X[va], (size, size), labels=y[va], batch_size=self.batch_size)

        def score_fn(m) -> float:
            return selection_score(self._metric(), y[va], as_proba(m.predict(val_ds.map(lambda im, _: im), verbose=0)))

        hist, score = self._fit_stage(model, train_ds, lr, epochs, f"all ({size} px)", score_fn, score_fn(model), 0,
                                      validation_data=val_ds, class_weight=self._fit_kwargs(len(self.classes_), y[tr])["class_weight"])
        return hist, score, len(hist.get("loss", [])) * len(tr)
