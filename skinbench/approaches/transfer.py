"""Transfer learning from ImageNet backbones: the studies' VGG16 recipe with a pluggable backbone.

Three estimators train the same head (Flatten/GAP -> Dense(512, relu) -> Dropout(0.5) -> Dense), each
its own algorithm (they were one class with a ``mode`` parameter; ``provenance.ESTIMATOR_RENAMES`` keeps
the committed records' run keys):
- :class:`FeatureTransferClassifier` (CPU default): the frozen backbone's features are computed once per
  image and per augmented view (a fixed number of views), cached by content, and the head trains on them
  in seconds.
- :class:`skinbench.approaches.finetune.PartialFinetuneClassifier` (fine-tuning on 2 cores): the backbone
  below a cut point runs once per image and view (activations cached by content, :mod:`activations`);
  the head, then the blocks above the cut, train on those; optionally the whole network then trains end
  to end at a reduced size.
- :class:`EndToEndTransferClassifier` (GPU-ready): end-to-end training through a tf.data pipeline with
  staged unfreezing (head -> last block -> all), mixed precision and ``tf.distribute.MirroredStrategy``
  when GPUs exist.
All use the output bias initialised to the log class priors, class weights total/(k * n_class), a 15%
stratified (lesion-aware with ``groups``) validation split of the training data, early stopping on
validation loss and the best epoch kept by a validation metric.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Sequence

import numpy as np

from skinbench import progress as show
from skinbench.approaches import backbones, engines, tfdata
from skinbench.approaches.base import (TF_TOLERANCE, KerasPickleMixin, PathClassifier, check_allowed, holdout_split,
                                      training_classes)
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

Stage = tuple[str, float, int]
#: what an end-to-end stage makes trainable (:func:`set_stage`)
STAGE_PARTS = ("head", "last_block", "all")  # (what is trainable: head | last_block | all, learning rate, epochs)


# ---------------------------------------------------------------------------------------------- features

def pool_layer(pooling: str):
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
    return keras.Model(inputs, pool_layer(pooling)(x), name=f"{backbone}_features")


def extract_features(paths: Sequence[str], *, backbone: str = "mobilenet_v2", weights: Any = "imagenet",
                     size: int | None = None, pooling: str = "avg", views: Sequence[int] = (0,),
                     augment: tfdata.Augment | None = None, seed: int = 0, batch_size: int = 32,
                     cache_dir: str | os.PathLike | None = None, progress: bool = True,
                     model: Any | None = None) -> np.ndarray:
    """Backbone features (len(views), n, d) float32; view 0 is the image itself, view v > 0 an augmented view.

    Cached per image and view by (file digest, backbone, weights id, size, pooling, augmentation, view,
    CODE_VERSION, and the inference engine unless it is TensorFlow: ``engines.cache_tag``). Random weights (``weights=None``) are never cached: each build differs.
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

    tag = engines.cache_tag()

    def key(i: int, v: int) -> str:
        return make_key(digests[i], backbone, wid, size, pooling, aug_key if v else None, v, seed if v else 0,
                        CODE_VERSION, *tag)

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
        infer = engines.compiled(model)
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
    x = pool_layer(pooling)(x)
    return keras.Model(inputs, add_head(x, n_classes, bias, units, dropout), name=f"{backbone}_transfer"), base


def set_stage(base, stage: str, backbone: str) -> None:
    """Make ``head`` (backbone frozen), ``last_block`` or ``all`` of the backbone trainable (BatchNorm layers
    stay frozen)."""
    if stage not in STAGE_PARTS:
        raise ConfigError(f"unknown fine-tuning stage {stage!r}", fix=f"use {', '.join(STAGE_PARTS)}")
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


def as_proba(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 1 or out.shape[1] == 1:
        p = out.reshape(-1)
        return np.column_stack([1 - p, p])
    return out / out.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------- estimator


class TransferBase(KerasPickleMixin, PathClassifier):
    """What the three transfer estimators share: the labels' checks, the validation split, the head's
    loss, class weights and epoch display, and (for those that predict from images) flip TTA chosen on
    validation. Each subclass spells out its own parameters (scikit-learn reads them from ``__init__``),
    its default ``stages`` and its ``_fit``.

    Shared parameters: ``stages``: list of (trainable part, learning rate, epochs). ``augment``: "auto"
    (binary: rotation 10, shifts 0.1, h-flip; multiclass adds zoom 0.1 and v-flip), a dict of
    :class:`tfdata.Augment` fields, or None. ``val_size=0`` trains for the stage's epochs without
    validation (no early stopping; the last weights are kept). ``select_metric``: the validation score
    that keeps the best epoch. ``verbose``: progress through :mod:`skinbench.progress`: feature
    extraction and fine-tuning epochs from 0 (the default), also the epochs of a head on cached features
    (well under a second each) from 1; -1 shows nothing. Keras' own progress bars are never used.
    """

    #: TensorFlow computes (features or training): identical on the same CPU and instruction set only
    reproducibility: ClassVar[str] = "bitwise-same-cpu"
    reproducibility_tolerance: ClassVar[float] = TF_TOLERANCE

    _allowed: ClassVar[dict[str, Any]] = {"pooling": POOLINGS, "select_metric": SELECT_METRICS}
    #: the algorithm's name in progress lines (what ``mode`` said before each had its own class)
    label: ClassVar[str] = ""
    #: the schedule when ``stages`` is None
    default_stages: ClassVar[tuple[Stage, ...]] = ()

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
            return list(self.default_stages)
        stages = [(str(s), float(lr), int(ep)) for s, lr, ep in self.stages]
        self._check_stages(stages)
        return stages

    def _check_stages(self, stages: list[Stage]) -> None:
        """A schedule this algorithm can train (ConfigError otherwise): checked in fit before any work."""

    def _metric(self) -> str:
        if self.select_metric != "auto":
            return self.select_metric
        return "auc" if len(self.classes_) == 2 else "balanced_accuracy"


    def _split(self, y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return holdout_split(y, groups, self.val_size, self.random_state)

    # -- fit -----------------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "TransferBase":
        import keras

        X, y = np.asarray(X).astype(str), np.asarray(y).astype(np.int64)
        self.classes_ = training_classes(y)
        check_allowed(self)
        self._check()
        self._stages()  # validates the configuration before any work
        keras.utils.set_random_seed(self.random_state)
        tr, va = self._split(y, groups)
        self.history_: list[dict] = []
        self.tta_ = False
        self._fit(X, y, tr, va)
        return self

    def _check(self) -> None:
        """Further configuration checks of a subclass, before any work."""

    def _fit(self, X: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray) -> None:
        raise NotImplementedError

    def _fit_kwargs(self, k: int, y_tr: np.ndarray) -> dict:
        return {"class_weight": class_weights(y_tr, k) if self.class_weight == "balanced" else None, "verbose": 0}


    def _epoch_lines(self, stage: str, epochs: int, show_from: int) -> list:
        """The progress display's per-epoch callback (Keras' own bars stay off) when ``verbose >= show_from``."""
        if self.verbose < show_from:
            return []
        return [show.keras_callback(f"{self.backbone} {stage} ({self.label})", epochs)]


    def _loss(self) -> str:
        return "binary_crossentropy" if len(self.classes_) == 2 else "sparse_categorical_crossentropy"


    # -- prediction from images (partial and end-to-end fine-tuning) --------------------------------
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
        fn = engines.compiled(self.model_, tta=tta)
        return as_proba(tfdata.run_compiled(fn, tfdata.image_dataset(X, (size, size), batch_size=self.batch_size)))


    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._image_proba(np.asarray(X).astype(str), tta=self.tta_)


class FeatureTransferClassifier(TransferBase):
    """The head alone on the frozen backbone's features, computed once per image and per augmented view
    (``n_views`` views per training image plus the image itself), cached by content: trains in seconds
    on a CPU. ``head_solver="logreg"`` replaces the keras head by a class-balanced logistic regression
    (inverse regularisation ``C``) on the standardised features. Stages train the head only."""

    _allowed: ClassVar[dict[str, Any]] = {"head_solver": ("keras", "logreg")}
    label: ClassVar[str] = "features"
    default_stages: ClassVar[tuple[Stage, ...]] = (("head", 3e-4, 100),)

    def __init__(self, backbone: str = "mobilenet_v2", weights: Any = "imagenet", input_size: int | None = None,
                 pooling: str = "avg", head_units: int = 512, dropout: float = 0.5,
                 stages: Sequence[Stage] | None = None, batch_size: int = 32, patience: int = 10,
                 augment: Any = "auto", n_views: int = 4, view_seed: int = 0, val_size: float = 0.15,
                 select_metric: str = "auto", class_weight: str | None = "balanced", bias_init: bool = True,
                 head_solver: str = "keras", C: float = 1.0, random_state: int = 0,
                 cache_dir: str | os.PathLike | None = None, verbose: int = 0):
        self.backbone, self.weights, self.input_size = backbone, weights, input_size
        self.pooling, self.head_units, self.dropout, self.stages = pooling, head_units, dropout, stages
        self.batch_size, self.patience, self.augment, self.n_views = batch_size, patience, augment, n_views
        self.view_seed, self.val_size, self.select_metric = view_seed, val_size, select_metric
        self.class_weight, self.bias_init, self.head_solver, self.C = class_weight, bias_init, head_solver, C
        self.random_state, self.cache_dir, self.verbose = random_state, cache_dir, verbose

    def _check_stages(self, stages: list[Stage]) -> None:
        if any(s != "head" for s, _, _ in stages):
            raise ConfigError("FeatureTransferClassifier trains only the head on frozen, cached features",
                              fix="to unfreeze backbone layers use PartialFinetuneClassifier (an ft-top / ft-all "
                                  "approach) or EndToEndTransferClassifier (transfer-mobilenetv2-finetune)")

    def _features(self, paths: Sequence[str], views: Sequence[int]) -> np.ndarray:
        return extract_features(paths, backbone=self.backbone, weights=self.weights, size=self._size(),
                                pooling=self.pooling, views=views, augment=self._augment(), seed=self.view_seed,
                                batch_size=self.batch_size, cache_dir=self.cache_dir, progress=self.verbose >= 0)


    def _fit(self, X, y, tr, va) -> None:
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
        best = BestByMetric(lambda m: selection_score(self._metric(), y[va], as_proba(m.predict(f_va, verbose=0))))
        for stage, lr, epochs in self._stages():
            self.head_.compile(keras.optimizers.Adam(lr), self._loss())
            hist = self.head_.fit(f_tr, y_tr, batch_size=self.batch_size, epochs=epochs, shuffle=True,
                                  validation_data=(f_va, y[va]) if f_va is not None else None,
                                  callbacks=([keras.callbacks.EarlyStopping("val_loss", patience=self.patience), best]
                                             if f_va is not None else []) + self._epoch_lines(stage, epochs, 1),
                                  **self._fit_kwargs(k, y_tr))
            self.history_.append({"stage": stage, "epochs": len(hist.history["loss"]), **hist.history})
        self.val_score_ = best.best if f_va is not None else None


    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        f = self._features(np.asarray(X).astype(str), [0])[0]
        if self.head_solver == "logreg":
            return self.head_.predict_proba(f)
        return as_proba(self.head_.predict(f, batch_size=256, verbose=0))


class EndToEndTransferClassifier(TransferBase):
    """The whole network trained end to end through a tf.data pipeline with staged unfreezing (head ->
    last block -> all), mixed precision and ``tf.distribute.MirroredStrategy`` when GPUs exist (GPU-ready).
    ``tta``: "none", "flips" (mean over the four flips) or "auto" (flips only if they raise the
    validation score, measured after training)."""

    _allowed: ClassVar[dict[str, Any]] = {"tta": tfdata.TTA_MODES}
    label: ClassVar[str] = "finetune"
    default_stages: ClassVar[tuple[Stage, ...]] = (("head", 1e-4, 10), ("last_block", 1e-5, 10), ("all", 1e-6, 5))

    def __init__(self, backbone: str = "mobilenet_v2", weights: Any = "imagenet", input_size: int | None = None,
                 pooling: str = "avg", head_units: int = 512, dropout: float = 0.5,
                 stages: Sequence[Stage] | None = None, batch_size: int = 32, patience: int = 10,
                 augment: Any = "auto", val_size: float = 0.15, select_metric: str = "auto",
                 class_weight: str | None = "balanced", bias_init: bool = True, tta: str = "none",
                 random_state: int = 0, cache_dir: str | os.PathLike | None = None, verbose: int = 0):
        self.backbone, self.weights, self.input_size = backbone, weights, input_size
        self.pooling, self.head_units, self.dropout, self.stages = pooling, head_units, dropout, stages
        self.batch_size, self.patience, self.augment = batch_size, patience, augment
        self.val_size, self.select_metric = val_size, select_metric
        self.class_weight, self.bias_init, self.tta = class_weight, bias_init, tta
        self.random_state, self.cache_dir, self.verbose = random_state, cache_dir, verbose

    def _check_stages(self, stages: list[Stage]) -> None:
        parts = sorted({part for part, _, _ in stages} - set(STAGE_PARTS))
        if parts:
            raise ConfigError(f"unknown fine-tuning stage(s) {', '.join(parts)}",
                              fix=f"use {', '.join(STAGE_PARTS)} (e.g. stages=[[\"head\", 1e-4, 10], [\"all\", 1e-6, 5]])")

    def _fit(self, X, y, tr, va) -> None:
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
            best = BestByMetric(lambda m: selection_score(self._metric(), y[va], as_proba(m.predict(val_x, verbose=0))))
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
        self.predict_size_ = self._size()
        self._choose_tta(X[va], y[va])
