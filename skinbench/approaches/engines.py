"""Where a trained or frozen Keras model runs inference: ONNX Runtime on a converted copy, or TensorFlow.

Why: inference over many images (backbone features, partial fine-tuning's activations and pooled
features, classifier prediction with flip TTA, segmenter prediction) is most of a deep row's CPU time,
and the same MobileNetV2 forward pass runs at different speeds in different engines
(``backbone_engines`` in ``benchmarks/perf_pipeline.py``, measured side by side in one process). Training
stays in TensorFlow; only the forward passes of a fixed model go through :func:`compiled`.

Conversion: tf2onnx, once per (architecture, weights): the ``.onnx`` file is cached by content under
``<cache>/onnx_models/`` (key: the model's configuration with its layer names numbered (:func:`architecture`),
a digest of its weights, the input signature, the opset, tf2onnx's version and :data:`CONVERT_VERSION`),
so a rerun, or the next call with the same weights, loads it instead of converting again. A model tf2onnx
cannot convert runs on TensorFlow, said once on stderr (its cached values still carry the engine's tag:
a TensorFlow value in an ONNX Runtime slot, never the reverse).

Engine: ``$SKINBENCH_ENGINE`` = ``tensorflow`` (the default: the traced ``tf.function`` of
:func:`skinbench.approaches.tfdata.compiled`, bit for bit what made the committed deep rows),
``onnxruntime`` (a ConfigError if it is missing) or ``auto`` (ONNX Runtime when it and tf2onnx are
installed, else TensorFlow, said once). A run on ONNX Runtime carries ``engine`` in its run key
(:func:`key_input`), so its records are never taken for the TensorFlow-made ones; the default moves to
ONNX Runtime when the deep rows are regenerated on it.

Not declared equivalent: ONNX Runtime's forward pass agrees with TensorFlow's within :data:`TOLERANCE`,
but a head trained on its features moves further (measured on real images, issue 33: task1
transfer-mobilenetv2-logreg rerun from empty caches, test probabilities differ by up to 1.7e-3 and AP by
7e-5; TensorFlow reruns the committed record exactly). So values that depend on the engine never mix in
a cache: :func:`cache_tag` enters the feature, activation and stage keys of every engine but TensorFlow
(whose keys stay what they were, so existing caches stay valid for it), and whether the records move to
the new engine (algorithm versions bumped, rows regenerated) is decided beside the records, not here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from skinbench import progress as show
from skinbench.approaches import tfdata
from skinbench.cache import atomic_write_bytes, make_key, note_cache
from skinbench.errors import ConfigError
from skinbench.paths import cache_dir

#: the environment variable choosing the engine, and what it takes
ENGINE_ENV = "SKINBENCH_ENGINE"
ENGINES = ("auto", "onnxruntime", "tensorflow")
#: unset means this: the committed deep rows were made on TensorFlow and the engines are not equivalent
DEFAULT = "tensorflow"
#: bump when the conversion changes (its options, the graph handed to tf2onnx): new files are converted
CONVERT_VERSION = "onnx-convert-1"
#: the ONNX opset the models are converted to
OPSET = 17
#: the stated tolerance of an engine's forward pass against TensorFlow's, as :func:`difference` measures it
#: (largest absolute difference relative to the largest absolute TensorFlow output). Measured: 1.4e-5 on
#: MobileNetV2 ImageNet features of 256 HAM10000 images at 224 px, 7e-6 on random inputs (Intel Xeon).
TOLERANCE = 1e-4

Runner = Callable[[Any], Any]
_sessions: dict[str, Any] = {}


def setting() -> str:
    """``$SKINBENCH_ENGINE`` checked, importing no engine: the CLI calls it before any work, so a typo is
    one line at once rather than after the data loaded."""
    asked = os.environ.get(ENGINE_ENV, "").strip().lower() or DEFAULT
    if asked not in ENGINES:
        raise ConfigError(f"{ENGINE_ENV}={asked!r} is not an inference engine",
                          fix=f"set {ENGINE_ENV} to one of: {', '.join(ENGINES)} (or leave it unset: {DEFAULT})")
    return asked


def engine() -> str:
    """The engine inference runs on now: ``onnxruntime`` or ``tensorflow`` (see the module docstring)."""
    asked = setting()
    if asked == "tensorflow":
        return asked
    missing = _missing_runtime()
    if missing is None:
        return "onnxruntime"
    if asked == "onnxruntime":
        raise ConfigError(f"{ENGINE_ENV}=onnxruntime but {missing} is not installed",
                          fix="pip install onnxruntime tf2onnx (both are skinbench dependencies), "
                              f"or set {ENGINE_ENV}=tensorflow")
    show.note(f"{missing} is not installed: inference runs on TensorFlow, slower "
              "(pip install onnxruntime tf2onnx)")
    return "tensorflow"


def key_input() -> str | None:
    """What a deep run's key adds for its engine: None on TensorFlow (every key made before the engines
    stays what it was), the engine's name otherwise. Cheap on the default: no runtime is imported."""
    if setting() == "tensorflow":
        return None
    name = engine()
    return None if name == "tensorflow" else name


def cache_tag() -> list[str]:
    """What a cache key of engine-made values adds: nothing on TensorFlow (the keys that existed before the
    engines), the engine's name otherwise, so one engine's features, activations or trained stages are
    never read as another's (see "Not declared equivalent" above)."""
    name = engine()
    return [] if name == "tensorflow" else [name]


def _missing_runtime() -> str | None:
    """The first package the ONNX engine needs that cannot be imported, or None."""
    import importlib

    for module in ("onnxruntime", "tf2onnx"):
        try:
            importlib.import_module(module)
        except ImportError:
            return module
    return None


def compiled(model: Any, tta: bool = False) -> Runner:
    """``model`` as one function over float batches (inference mode) on :func:`engine`'s engine; outputs
    are numpy arrays (a dict of them for a model with named outputs).

    ``tta``: the mean over :data:`tfdata.TTA_FLIPS` of the model's outputs (each flip one pass)."""
    if engine() == "tensorflow":
        return tfdata.compiled(model, tta=tta)
    run = onnx_runner(model)
    if run is None:
        return tfdata.compiled(model, tta=tta)
    return mean_over_flips(run) if tta else run


def mean_over_flips(run: Runner) -> Runner:
    """The mean of ``run`` over the four flips of :data:`tfdata.TTA_FLIPS` (left-right = axis 2, up-down =
    axis 1 of an NHWC batch), in the order :func:`tfdata.compiled` adds them."""

    def tta(x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        total = None
        for lr, ud in tfdata.TTA_FLIPS:
            view = x[:, :, ::-1] if lr else x
            out = np.asarray(run(np.ascontiguousarray(view[:, ::-1] if ud else view)), dtype=np.float32)
            total = out if total is None else total + out
        return total / np.float32(len(tfdata.TTA_FLIPS))

    return tta


def difference(got: Any, reference: Any) -> float:
    """max |got - reference| / max |reference|: the engines' disagreement that :data:`TOLERANCE` bounds.
    Relative, because float rounding is: a feature map of scale 1e3 and one of scale 1e-3 differ between
    engines in the same significant digit."""
    got, reference = np.asarray(got, np.float64), np.asarray(reference, np.float64)
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    return float(np.abs(got - reference).max()) / scale if scale > 0 else float(np.abs(got).max(initial=0.0))


def weights_digest(model: Any) -> str:
    """sha256 of every weight's shape, dtype and bytes, in the model's order: the converted file's content
    depends on exactly these."""
    h = hashlib.sha256()
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        h.update(f"{w.shape}{w.dtype}".encode())
        h.update(w.tobytes())
    return h.hexdigest()


def architecture(model: Any) -> str:
    """``model``'s configuration as JSON with every layer name replaced by its order of first appearance:
    Keras numbers automatic names per process ("input_layer_3"), so two builds of the same network with
    the same weights must key one converted file."""
    config = model.get_config()
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str):
                names.append(node["name"])
            for k in sorted(node):
                walk(node[k])
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)

    walk(config)
    text = json.dumps(config, sort_keys=True, default=str)
    for i, name in enumerate(dict.fromkeys(names)):
        text = text.replace(json.dumps(name), f'"#{i}"')
    return text


def _input_shape(model: Any) -> tuple[Any, ...]:
    if len(model.inputs) != 1:
        raise ValueError(f"{len(model.inputs)} inputs (one image batch expected)")
    return (None,) + tuple(model.inputs[0].shape[1:])


def onnx_path(model: Any) -> Path:
    """The cached ``.onnx`` file of ``model`` (its configuration and weights), converted on first use."""
    import tf2onnx

    shape = _input_shape(model)
    key = make_key(CONVERT_VERSION, OPSET, tf2onnx.__version__, architecture(model), shape, weights_digest(model))
    path = cache_dir() / "onnx_models" / f"{key[:24]}.onnx"
    if path.is_file():
        note_cache("onnx_models", True)
        return path
    note_cache("onnx_models", False)
    import tensorflow as tf

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    spec = (tf.TensorSpec(shape, tf.float32, name="images"),)
    # optimizers={}: tf2onnx's own graph rewrites took 40% of the conversion time and the session ran no
    # faster for them (measured), as ONNX Runtime optimises the graph itself when it loads it
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, optimizers={})
    atomic_write_bytes(path, proto.SerializeToString())
    return path


def onnx_runner(model: Any) -> Runner | None:
    """An ONNX Runtime session of ``model`` as a batch function, or None (said once) when tf2onnx cannot
    convert it: that model then runs on TensorFlow."""
    import onnxruntime as ort

    try:
        path = onnx_path(model)
    except Exception as err:  # noqa: BLE001 - any conversion failure means the same: run it in TensorFlow
        show.note(f"{model.name} could not be converted to ONNX ({type(err).__name__}: "
                  f"{str(err).splitlines()[0][:160] if str(err) else ''}): it runs on TensorFlow")
        return None
    session = _sessions.get(str(path))
    if session is None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # idle threads sleep instead of spinning: on 2 shared cores (tf.data's decoding threads, other
        # processes, Dask workers) spinning threads took the cores the work needed; measured, MobileNetV2
        # images per CPU-second 110 without spinning against 79 with it (OpenVINO f32: 102)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        _sessions.clear()  # one model at a time: a session holds its weights
        _sessions[str(path)] = session
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    named = _output_names(model)

    if named is not None and sorted(named) != sorted(outputs):
        show.note(f"{model.name}'s ONNX outputs {outputs} are not its outputs {named}: it runs on TensorFlow")
        return None

    def run(x: Any) -> Any:
        out = session.run(None, {name: np.asarray(x, dtype=np.float32)})
        if named is not None:  # tf2onnx names a dict's outputs by its keys, in its own order
            return dict(zip(outputs, out))
        return out[0] if len(out) == 1 else out

    return run


def _output_names(model: Any) -> list[str] | None:
    """The keys of a model whose call returns a dict (the Y-Net's {"seg", "cls"}), in output order; None
    for a model returning one tensor."""
    structure = getattr(model, "_outputs_struct", None)
    if isinstance(structure, dict):
        return list(structure)
    return None


def predict(model: Any, x: np.ndarray, batch_size: int) -> Any:
    """``model.predict(x, batch_size=batch_size)`` on :func:`engine`'s engine: the segmenters' in-memory
    prediction. On TensorFlow it is Keras' own ``predict`` (what ran before); a dict-output model gives a
    dict of concatenated arrays."""
    run = onnx_runner(model) if engine() == "onnxruntime" else None
    if run is None:
        return model.predict(x, batch_size=batch_size, verbose=0)
    parts = [run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)
