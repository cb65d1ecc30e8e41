"""Transfer learning from ImageNet backbones: the studies' VGG16 recipe with a pluggable backbone.

Three ways to train the same head (Flatten/GAP -> Dense(512, relu) -> Dropout(0.5) -> Dense):
- ``mode="features"`` (CPU default): the frozen backbone's features are computed once per image and per
  augmented view (a fixed number of views), cached by content, and the head trains on them in seconds.
- ``mode="partial"`` (fine-tuning on 2 cores, :mod:`finetune`): the backbone below a cut point runs once
  per image and view (activations cached by content, :mod:`activations`); the head, then the blocks above
  the cut, train on those; optionally the whole network then trains end to end at a reduced size.
- ``mode="finetune"`` (GPU-ready): end-to-end training through a tf.data pipeline with staged unfreezing
  (head -> last block -> all), mixed precision and ``tf.distribute.MirroredStrategy`` when GPUs exist.
All use the output bias initialised to the log class priors, class weights total/(k * n_class), a 15%
stratified (lesion-aware with ``groups``) validation split of the training data, early stopping on
validation loss and the best epoch kept by a validation metric.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Sequence

import numpy as np

from skinbench import progress as show
from skinbench.approaches import backbones, finetune, tfdata
from skinbench.approaches.base import KerasPickleMixin, PathClassifier, check_allowed
from skinbench.cache import ArrayCache, file_digest, make_key
from skinbench.errors import ConfigError

view_seeds = tfdata.view_seeds  # where tests and notebooks found it first

#: bump when feature extraction changes (decode, resize, augmentation, pooling)
CODE_VERSION = "transfer-features-1"

#: how the backbone's feature map becomes a vector (``pooling``)
POOLINGS = ("avg", "flatten")
#: validation scores that pick the best epoch (``select_metric``; "auto": AUC for two classes, else
#: balanced accuracy; an undefined metric falls back to minus log loss)
SELECT_METRICS = ("auto", "auc", "balanced_accuracy", "log_loss")

Stage = tuple[str, float, int]  # (what is trainable: head | last_block | all, learning rate, epochs)


# ---------------------------------------------------------------------------------------------- features

def _pool_layer(pooling: str):
    import keras

    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="pool")
    if pooling == "flatten":
        return keras.layers.Flatten(name="pool")
    raise ConfigError(f"unknown pooling {pooling!r}", fix=f"use one of: {', '.join(POOLINGS)}")


def feature_model(backbone: str, weights: Any, size: int, pooling: str = "avg"):
    """Frozen backbone with its own preprocessing and pooling: float RGB 0..255 in, vector out."""
    import keras

    base = backbones.build(backbone, (size, size, 3), weights=weights)
    inputs = keras.Input((size, size, 3))
    x = backbones.preprocess_layer(backbone)(inputs)
    x = base(x, training=False)
    return keras.Model(inputs, _pool_layer(pooling)(x), name=f"{backbone}_features")


def extract_features(paths: Sequence[str], *, backbone: str = "mobilenet_v2", weights: Any = "imagenet",
                     size: int | None = None, pooling: str = "avg", views: Sequence[int] = (0,),
                     augment: tfdata.Augment | None = None, seed: int = 0, batch_size: int = 32,
                     cache_dir: str | os.PathLike | None = None, progress: bool = True,
                     model: Any | None = None) -> np.ndarray:
    """Backbone features (len(views), n, d) float32; view 0 is the image itself, view v > 0 an augmented view.

    Cached per image and view by (file digest, backbone, weights id, size, pooling, augmentation, view,
    CODE_VERSION). Random weights (``weights=None``) are never cached: each build differs.
    ``model``: an already built :func:`feature_model` with the same settings, to reuse across calls.
    """
    import tensorflow as tf

    paths = [os.fspath(p) for p in paths]
    size = size or backbones.default_size(backbone)
    if any(v > 0 for v in views) and augment is None:
        raise ConfigError("augmented views need an augmentation", fix="pass augment=tfdata.Augment(...)")
    tfdata.check_paths(paths)
    digests = [file_digest(p) for p in paths]
    wid = backbones.weights_id(backbone, weights, size)
    cache = ArrayCache("transfer_features", cache_dir) if weights is not None else None
    aug_key = augment.as_dict() if augment is not None else None

    def key(i: int, v: int) -> str:
        return make_key(digests[i], backbone, wid, size, pooling, aug_key if v else None, v, seed if v else 0,
                        CODE_VERSION)

    out: np.ndarray | None = None
    todo: dict[int, list[int]] = {}
    for vi, v in enumerate(views):
        for i in range(len(paths)):
            hit = cache.get(key(i, v)) if cache else None
            if hit is None:
                todo.setdefault(vi, []).append(i)
                continue
            if out is None:
                out = np.zeros((len(views), len(paths), hit["f"].shape[-1]), np.float32)
            out[vi, i] = hit["f"]
    if todo:
        model = model or feature_model(backbone, weights, size, pooling)
        infer = tfdata.compiled(model)
        total = sum(len(ix) for ix in todo.values())
        bar = show.Progress(total, desc=f"{backbone} features", unit="image", disable=not progress)
        for vi, idx in todo.items():
            v = views[vi]
            ds = tfdata.image_dataset([paths[i] for i in idx], (size, size),
                                      seeds=view_seeds([digests[i] for i in idx], v, seed),
                                      augment=augment if v else None, batch_size=batch_size)
            pos = 0
            try:
                for batch in ds:
                    feats = np.asarray(infer(batch), dtype=np.float32)
                    if out is None:
                        out = np.zeros((len(views), len(paths), feats.shape[-1]), np.float32)
                    for f in feats:
                        i = idx[pos]
                        out[vi, i] = f
                        if cache:
                            cache.put(key(i, v), f=f)
                        pos += 1
                    bar.update(len(feats))
            except tf.errors.InvalidArgumentError:
                tfdata.find_unreadable([paths[i] for i in idx])
                raise
        bar.close()
    assert out is not None
    return out


# ---------------------------------------------------------------------------------------------- models

def output_bias(y: np.ndarray, n_classes: int) -> np.ndarray:
    """log(pos/neg) for a sigmoid output, log class priors for softmax: the first epoch starts calibrated."""
    counts = np.bincount(y, minlength=n_classes).astype(float) + 1e-3
    if n_classes == 2:
        return np.array([np.log(counts[1] / counts[0])])
    return np.log(counts / counts.sum())


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """total / (k * n_class): every class contributes equally to the loss."""
    counts = np.bincount(y, minlength=n_classes)
    return {c: float(len(y) / (n_classes * counts[c])) for c in range(n_classes) if counts[c]}


def head_layers(n_classes: int, bias: np.ndarray, units: int = 512, dropout: float = 0.5):
    """Dense(units, relu) -> Dropout -> Dense(1, sigmoid) or Dense(k, softmax), the studies' head, as one
    function applying the same layers wherever it is called (models that share the head)."""
    import keras

    dense = keras.layers.Dense(units, activation="relu", name="head_dense")
    drop = keras.layers.Dropout(dropout, name="head_dropout")
    binary = n_classes == 2
    out = keras.layers.Dense(1 if binary else n_classes, activation="sigmoid" if binary else "softmax",
                             bias_initializer=keras.initializers.Constant(bias), dtype="float32", name="head_out")
    return lambda x: out(drop(dense(x)))


def add_head(x, n_classes: int, bias: np.ndarray, units: int = 512, dropout: float = 0.5):
    return head_layers(n_classes, bias, units, dropout)(x)


def head_model(n_features: int, n_classes: int, bias: np.ndarray, units: int = 512, dropout: float = 0.5):
    """The head alone, on cached backbone features."""
    import keras

    inputs = keras.Input((n_features,))
    return keras.Model(inputs, add_head(inputs, n_classes, bias, units, dropout), name="head")


def full_model(backbone: str, weights: Any, size: int, n_classes: int, bias: np.ndarray,
               pooling: str = "avg", units: int = 512, dropout: float = 0.5):
    """Image -> preprocessing -> backbone -> pooling -> head; returns (model, backbone)."""
    import keras

    base = backbones.build(backbone, (size, size, 3), weights=weights)
    inputs = keras.Input((size, size, 3))
    x = backbones.preprocess_layer(backbone)(inputs)
    x = base(x, training=False)  # BatchNorm stays in inference mode even when unfrozen (keras-io guide)
    x = _pool_layer(pooling)(x)
    return keras.Model(inputs, add_head(x, n_classes, bias, units, dropout), name=f"{backbone}_transfer"), base


def set_stage(base, stage: str, backbone: str) -> None:
    """Make ``head`` (backbone frozen), ``last_block`` or ``all`` of the backbone trainable (BatchNorm layers
    stay frozen)."""
    if stage not in ("head", "last_block", "all"):
        raise ConfigError(f"unknown fine-tuning stage {stage!r}", fix="use head, last_block or all")
    import keras

    base.trainable = stage != "head"
    if stage == "last_block":
        prefixes = backbones.last_block_prefixes(backbone)
        for layer in base.layers:
            layer.trainable = layer.name.startswith(prefixes)
    # BatchNorm keeps its ImageNet statistics (keras-io fine-tuning guide). Calling the backbone with
    # training=False is not enough in Keras 3: a trainable BatchNormalization still updates its moving
    # statistics in fit, so it must be frozen itself (measured: the moving means changed).
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


class BestByMetric:
    """Keras callback: keep the weights of the epoch with the best validation metric (restored at the end)."""

    def __new__(cls, *args, **kwargs):  # defined lazily so importing this module needs no TensorFlow
        import keras

        class _Best(keras.callbacks.Callback):
            def __init__(self, score_fn, start: float | None = None):
                """``start``: the score of the weights the model has now (a previous stage's best): an
                epoch must beat it, else those weights stay."""
                super().__init__()
                self.score_fn, self.best, self.best_weights, self.history = score_fn, -np.inf, None, []
                self.start = start

            def on_train_begin(self, logs=None):
                if self.start is not None:
                    self.best, self.best_weights = self.start, self.model.get_weights()

            def on_epoch_end(self, epoch, logs=None):
                score = self.score_fn(self.model)
                self.history.append(score)
                if score > self.best:
                    self.best, self.best_weights = score, self.model.get_weights()

            def on_train_end(self, logs=None):
                if self.best_weights is not None:
                    self.model.set_weights(self.best_weights)

        return _Best(*args, **kwargs)


def selection_score(metric: str, y: np.ndarray, proba: np.ndarray) -> float:
    """Validation score to maximise; falls back to minus log loss where the metric is undefined."""
    from sklearn.metrics import log_loss, roc_auc_score

    from skinbench.metrics.classification import balanced_accuracy

    if metric == "auc" and len(np.unique(y)) == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    if metric == "balanced_accuracy":
        return balanced_accuracy(y, proba.argmax(1))
    return -float(log_loss(y, np.clip(proba, 1e-7, 1), labels=np.arange(proba.shape[1])))


def _as_proba(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 1 or out.shape[1] == 1:
        p = out.reshape(-1)
        return np.column_stack([1 - p, p])
    return out / out.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------- estimator

class TransferClassifier(KerasPickleMixin, PathClassifier):
    """ImageNet backbone + the studies' head; see the module docstring for the two modes.

    ``stages``: list of (trainable part, learning rate, epochs), trainable part in head | last_block |
    all; ``mode="features"`` allows only a head stage. ``augment``: "auto" (binary: rotation 10, shifts
    0.1, h-flip; multiclass adds zoom 0.1 and v-flip), a dict of :class:`tfdata.Augment` fields, or None.
    ``n_views`` augmented views per training image in features mode (plus the image itself).
    ``head_solver="logreg"`` replaces the keras head by a class-balanced logistic regression on the
    standardised features. ``val_size=0`` trains for the stage's epochs without validation (no early
    stopping; the last weights are kept).
    ``cut`` (partial mode): the backbone block where training starts (``backbones.cut_points``; None: the
    backbone's default). ``finetune_size``: input side of the end-to-end ("all") stage of partial mode
    (None: ``input_size``). ``tta``: "none", "flips" (mean over the four flips) or "auto" (flips only if they
    raise the validation score, measured after training; partial and finetune modes).
    ``verbose``: progress through :mod:`skinbench.progress`: feature extraction and fine-tuning epochs
    from 0 (the default), also the epochs of the head on cached features (well under a second each) from 1;
    -1 shows nothing. Keras' own progress bars are never used.
    """

    _allowed: ClassVar[dict[str, Any]] = {
        "mode": ("features", "partial", "finetune"), "tta": tfdata.TTA_MODES, "pooling": POOLINGS,
        "head_solver": ("keras", "logreg"), "select_metric": SELECT_METRICS}

    def __init__(self, backbone: str = "mobilenet_v2", weights: Any = "imagenet", input_size: int | None = None,
                 mode: str = "features", pooling: str = "avg", head_units: int = 512, dropout: float = 0.5,
                 stages: Sequence[Stage] | None = None, batch_size: int = 32, patience: int = 10,
                 augment: Any = "auto", n_views: int = 4, view_seed: int = 0, val_size: float = 0.15,
                 select_metric: str = "auto", class_weight: str | None = "balanced", bias_init: bool = True,
                 head_solver: str = "keras", C: float = 1.0, cut: str | None = None,
                 finetune_size: int | None = None, tta: str = "none", random_state: int = 0,
                 cache_dir: str | os.PathLike | None = None, verbose: int = 0):
        self.backbone, self.weights, self.input_size, self.mode = backbone, weights, input_size, mode
        self.pooling, self.head_units, self.dropout, self.stages = pooling, head_units, dropout, stages
        self.batch_size, self.patience, self.augment, self.n_views = batch_size, patience, augment, n_views
        self.view_seed, self.val_size, self.select_metric = view_seed, val_size, select_metric
        self.class_weight, self.bias_init, self.head_solver, self.C = class_weight, bias_init, head_solver, C
        self.cut, self.finetune_size, self.tta = cut, finetune_size, tta
        self.random_state, self.cache_dir, self.verbose = random_state, cache_dir, verbose

    # -- configuration -------------------------------------------------------------------------------
    def _size(self) -> int:
        return int(self.input_size or backbones.default_size(self.backbone))

    def _augment(self) -> tfdata.Augment | None:
        if self.augment is None or self.augment is False:
            return None
        if self.augment == "auto":
            return tfdata.AUGMENT_BINARY if len(self.classes_) == 2 else tfdata.AUGMENT_MULTICLASS
        return tfdata.Augment(**dict(self.augment))

    def _stages(self) -> list[Stage]:
        if self.stages is None:
            return {"features": [("head", 3e-4, 100)], "partial": [("head", 3e-4, 100), ("top", 1e-4, 20)]}.get(
                self.mode, [("head", 1e-4, 10), ("last_block", 1e-5, 10), ("all", 1e-6, 5)])
        stages = [(str(s), float(lr), int(ep)) for s, lr, ep in self.stages]
        if self.mode == "partial":
            finetune.check_stages(stages, self.pooling, self._size(), self.finetune_size)
        if self.mode == "features" and any(s != "head" for s, _, _ in stages):
            raise ConfigError("mode='features' trains only the head on frozen, cached features",
                              fix="use mode='finetune' to unfreeze backbone layers")
        return stages

    def _metric(self) -> str:
        if self.select_metric != "auto":
            return self.select_metric
        return "auc" if len(self.classes_) == 2 else "balanced_accuracy"

    def _features(self, paths: Sequence[str], views: Sequence[int]) -> np.ndarray:
        return extract_features(paths, backbone=self.backbone, weights=self.weights, size=self._size(),
                                pooling=self.pooling, views=views, augment=self._augment(), seed=self.view_seed,
                                batch_size=self.batch_size, cache_dir=self.cache_dir, progress=self.verbose >= 0)

    def _split(self, y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        from skinbench.data.splits import validation_split
        from skinbench.errors import DataError

        if not self.val_size:
            return np.arange(len(y)), np.array([], dtype=int)
        try:
            return validation_split(y, groups, self.val_size, self.random_state)
        except (DataError, ValueError) as err:  # ValueError: sklearn, fewer members per class than folds
            raise ConfigError(f"cannot hold out a {self.val_size:.0%} validation split: {err}",
                              fix="provide more images per class, or val_size=0 to train fixed epochs "
                                  "without validation") from None

    # -- fit / predict -------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "TransferClassifier":
        import keras

        X, y = np.asarray(X).astype(str), np.asarray(y).astype(np.int64)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ConfigError(f"the training labels hold a single class ({self.classes_.tolist()}) among "
                              f"{len(y)} images", fix="train on images of at least two classes")
        if not np.array_equal(self.classes_, np.arange(len(self.classes_))):
            raise ConfigError(f"labels must be 0..k-1 indices, got {self.classes_.tolist()}",
                              fix="pass Dataset.y (indices into class_names)")
        check_allowed(self)
        if self.tta != "none" and self.mode == "features":
            raise ConfigError("test-time augmentation needs the image model; mode='features' predicts from "
                              "cached features of the image alone", fix="use tta='none', or mode='partial'")
        if self.mode == "partial":
            backbones.resolve_cut(self.backbone, self.cut)
        self._stages()  # validates the configuration before any work
        keras.utils.set_random_seed(self.random_state)
        tr, va = self._split(y, groups)
        self.history_: list[dict] = []
        self.tta_ = False
        if self.mode == "features":
            self._fit_features(X, y, tr, va)
        elif self.mode == "partial":
            self._fit_partial(X, y, tr, va)
        else:
            self._fit_finetune(X, y, tr, va)
            self.predict_size_ = self._size()
            self._choose_tta(X[va], y[va])
        return self

    def _fit_kwargs(self, k: int, y_tr: np.ndarray) -> dict:
        return {"class_weight": class_weights(y_tr, k) if self.class_weight == "balanced" else None, "verbose": 0}

    def _epoch_lines(self, stage: str, epochs: int, show_from: int) -> list:
        """The progress display's per-epoch callback (Keras' own bars stay off) when ``verbose >= show_from``."""
        if self.verbose < show_from:
            return []
        return [show.keras_callback(f"{self.backbone} {stage} ({self.mode})", epochs)]

    def _fit_features(self, X, y, tr, va) -> None:
        import keras

        k = len(self.classes_)
        views = list(range(self.n_views + 1)) if self._augment() is not None else [0]
        feats = self._features(X[tr], views)  # (views, n_tr, d)
        f_tr, y_tr = feats.reshape(-1, feats.shape[-1]), np.tile(y[tr], len(views))
        f_va = self._features(X[va], [0])[0] if len(va) else None
        if self.head_solver == "logreg":
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            self.head_ = make_pipeline(StandardScaler(), LogisticRegression(
                C=self.C, class_weight="balanced" if self.class_weight else None, max_iter=2000))
            self.head_.fit(f_tr, y_tr)
            if f_va is not None:
                self.val_score_ = selection_score(self._metric(), y[va], self.head_.predict_proba(f_va))
            return
        bias = output_bias(y_tr, k) if self.bias_init else np.zeros(1 if k == 2 else k)
        # Computing features draws random numbers and a cache hit draws none: seed again, so a warm cache
        # and a cold one train the same head.
        keras.utils.set_random_seed(self.random_state)
        self.head_ = head_model(f_tr.shape[1], k, bias, self.head_units, self.dropout)
        best = BestByMetric(lambda m: selection_score(self._metric(), y[va], _as_proba(m.predict(f_va, verbose=0))))
        for stage, lr, epochs in self._stages():
            self.head_.compile(keras.optimizers.Adam(lr), self._loss())
            hist = self.head_.fit(f_tr, y_tr, batch_size=self.batch_size, epochs=epochs, shuffle=True,
                                  validation_data=(f_va, y[va]) if f_va is not None else None,
                                  callbacks=([keras.callbacks.EarlyStopping("val_loss", patience=self.patience), best]
                                             if f_va is not None else []) + self._epoch_lines(stage, epochs, 1),
                                  **self._fit_kwargs(k, y_tr))
            self.history_.append({"stage": stage, "epochs": len(hist.history["loss"]), **hist.history})
        self.val_score_ = best.best if f_va is not None else None

    def _loss(self) -> str:
        return "binary_crossentropy" if len(self.classes_) == 2 else "sparse_categorical_crossentropy"

    def _fit_finetune(self, X, y, tr, va) -> None:
        import keras
        import tensorflow as tf

        k, size = len(self.classes_), self._size()
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.MirroredStrategy() if gpus else tf.distribute.get_strategy()
        batch = self.batch_size * strategy.num_replicas_in_sync
        train_ds = tfdata.image_dataset(X[tr], (size, size), labels=y[tr], augment=self._augment(), batch_size=batch,
                                        shuffle=True, repeat_augment=True, seed=self.random_state)
        val_xy = tfdata.image_dataset(X[va], (size, size), labels=y[va], batch_size=batch) if len(va) else None
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16" if gpus else "float32")
        try:
            with strategy.scope():
                bias = output_bias(y[tr], k) if self.bias_init else np.zeros(1 if k == 2 else k)
                self.model_, base = full_model(self.backbone, self.weights, size, k, bias, self.pooling,
                                               self.head_units, self.dropout)
            val_x = val_xy.map(lambda im, _: im) if val_xy is not None else None
            best = BestByMetric(lambda m: selection_score(self._metric(), y[va], _as_proba(m.predict(val_x, verbose=0))))
            callbacks = [keras.callbacks.EarlyStopping("val_loss", patience=self.patience), best] if len(va) else []
            for stage, lr, epochs in self._stages():
                set_stage(base, stage, self.backbone)
                with strategy.scope():
                    self.model_.compile(keras.optimizers.Adam(lr), self._loss())
                # shuffle=False: train_ds shuffles itself (seeded); Keras would only warn that it ignores it
                hist = self.model_.fit(train_ds, epochs=epochs, validation_data=val_xy, shuffle=False,
                                       callbacks=callbacks + self._epoch_lines(stage, epochs, 0),
                                       **self._fit_kwargs(k, y[tr]))
                self.history_.append({"stage": stage, "epochs": len(hist.history["loss"]), **hist.history})
        finally:
            keras.config.set_dtype_policy(previous)
        self.val_score_ = best.best if len(va) else None

    # -- partial fine-tuning --------------------------------------------------------------------------
    def _fit_partial(self, X, y, tr, va) -> None:
        """head on pooled features -> top blocks on cached activations -> optionally all, end to end."""
        import shutil
        import tempfile

        import keras

        from skinbench.cache import file_digest

        k, size, aug = len(self.classes_), self._size(), self._augment()
        stages = self._stages()
        if not len(va):
            raise ConfigError("partial fine-tuning selects each stage's best epoch on a validation split",
                              fix="use val_size > 0 (e.g. 0.15)")
        views = list(range(self.n_views + 1)) if aug is not None else [0]
        bias = output_bias(y[tr], k) if self.bias_init else np.zeros(1 if k == 2 else k)
        keras.utils.set_random_seed(self.random_state)
        models = finetune.build_partial(self.backbone, self.weights, size, self.cut,
                                        head_layers(k, bias, self.head_units, self.dropout), _pool_layer(self.pooling))
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

        from skinbench.approaches import activations

        k = len(self.classes_)
        stage_store = finetune.StageStore(root)
        prev = finetune.StageStore.key(
            "root", backbone=self.backbone, weights=backbones.weights_id(self.backbone, self.weights, size), size=size,
            cut=backbones.resolve_cut(self.backbone, self.cut), pooling=self.pooling, units=self.head_units,
            dropout=self.dropout, augment=aug.as_dict() if aug else None, views=views, view_seed=self.view_seed,
            train=d_tr, y_train=y[tr].tolist(), val=d_va, y_val=y[va].tolist(), class_weight=self.class_weight,
            bias_init=self.bias_init, batch_size=self.batch_size, patience=self.patience, metric=self._metric(),
            random_state=self.random_state)
        self.history_, self.stage_log_ = [], []
        cached: dict[str, Any] = {}

        def data() -> dict[str, Any]:  # activations, made on the first stage that trains
            if not cached:
                sw = finetune.Stopwatch()
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
            key = finetune.StageStore.key(prev, part=part, lr=lr, epochs=epochs, **extra)
            if part == "all":
                keras.utils.set_random_seed(self.random_state)
                model_all, base_all = full_model(self.backbone, None, extra["finetune_size"], k, bias, self.pooling,
                                                 self.head_units, self.dropout)
                finetune.copy_weights(models.base, models.full, base_all, model_all)
                predictor, pred_size = model_all, extra["finetune_size"]
            summary = stage_store.load(key, predictor)
            if summary is None:
                if part != "all":
                    data()  # activations first, so the stage's clock counts its training alone
                sw = finetune.Stopwatch()
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
        from skinbench.approaches import activations

        pooled = tfdata.compiled(models.pooled)
        f_tr = np.concatenate([tfdata.run_compiled(pooled, activations.iter_rows(d["store"], w)) for w in d["where_tr"]])
        f_va = tfdata.run_compiled(pooled, [d["act_va"][i:i + 256] for i in range(0, len(va), 256)])
        y_tr = np.tile(y[tr], len(views))
        hist, score = self._fit_stage(
            models.head, f_tr, lr, epochs, "head",
            lambda m: selection_score(self._metric(), y[va], _as_proba(m.predict(f_va, verbose=0))), None, 1,
            y=y_tr, batch_size=self.batch_size, validation_data=(f_va, y[va]),
            class_weight=self._fit_kwargs(len(self.classes_), y_tr)["class_weight"])
        return hist, score, len(hist.get("loss", [])) * len(f_tr)

    def _stage_top(self, models, d, y, tr, va, lr, epochs, start) -> tuple[dict, float, int]:
        from skinbench.approaches import activations

        finetune.set_top_trainable(models)
        cw = class_weights(y[tr], len(self.classes_)) if self.class_weight == "balanced" else None
        weights = np.array([cw[c] for c in y[tr]]) if cw else np.ones(len(tr))
        batches = activations.ViewBatches(d["store"], d["where_tr"], y[tr], weights, self.batch_size, self.random_state)
        hist, score = self._fit_stage(
            models.top, batches, lr, epochs, "top blocks",
            lambda m: selection_score(self._metric(), y[va], _as_proba(m.predict(d["act_va"], batch_size=256, verbose=0))),
            start, 0, validation_data=(d["act_va"], y[va]))
        return hist, score, len(hist.get("loss", [])) * len(tr)

    def _stage_all(self, model, base, X, y, tr, va, lr, epochs, size) -> tuple[dict, float, int]:
        set_stage(base, "all", self.backbone)
        train_ds = tfdata.image_dataset(X[tr], (size, size), labels=y[tr], augment=self._augment(),
                                        batch_size=self.batch_size, shuffle=True, repeat_augment=True,
                                        seed=self.random_state)
        val_ds = tfdata.image_dataset(X[va], (size, size), labels=y[va], batch_size=self.batch_size)

        def score_fn(m) -> float:
            return selection_score(self._metric(), y[va], _as_proba(m.predict(val_ds.map(lambda im, _: im), verbose=0)))

        hist, score = self._fit_stage(model, train_ds, lr, epochs, f"all ({size} px)", score_fn, score_fn(model), 0,
                                      validation_data=val_ds, class_weight=self._fit_kwargs(len(self.classes_), y[tr])["class_weight"])
        return hist, score, len(hist.get("loss", [])) * len(tr)

    # -- prediction ----------------------------------------------------------------------------------
    def _choose_tta(self, X_va: np.ndarray, y_va: np.ndarray) -> None:
        """Score the validation split with and without flips; ``tta="auto"`` keeps flips only if they help."""
        self.tta_scores_ = None
        if not len(y_va):
            self.tta_ = self.tta == "flips"
            return
        plain = self._image_proba(X_va, tta=False)
        scores = {"none": selection_score(self._metric(), y_va, plain)}
        proba = plain
        if self.tta != "none":
            flips = self._image_proba(X_va, tta=True)
            scores["flips"] = selection_score(self._metric(), y_va, flips)
            if self.tta == "flips" or scores["flips"] > scores["none"]:
                proba = flips
        self.tta_ = proba is not plain
        self.tta_scores_ = scores
        self.validation_ = {"best_score": scores["flips" if self.tta_ else "none"], "y": y_va, "proba": proba}

    def _image_proba(self, X: np.ndarray, tta: bool) -> np.ndarray:
        size = self.predict_size_
        fn = tfdata.compiled(self.model_, tta=tta)
        return _as_proba(tfdata.run_compiled(fn, tfdata.image_dataset(X, (size, size), batch_size=self.batch_size)))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X).astype(str)
        if self.mode == "features":
            f = self._features(X, [0])[0]
            if self.head_solver == "logreg":
                return self.head_.predict_proba(f)
            return _as_proba(self.head_.predict(f, batch_size=256, verbose=0))
        return self._image_proba(X, tta=self.tta_)
