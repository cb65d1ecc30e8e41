"""Throughput and peak memory of every pipeline stage, on the real data and this machine (issue 7).

    python benchmarks/perf_pipeline.py [--results DIR] [--quick] [--image-dir DIR]

Each measurement runs in its own subprocess (so each peak RSS is its own) with a fresh, empty cache
(so nothing is reused): image decoding + resizing (``read_image`` at 224 and 128 px), SIFT extraction +
BoVW encoding (``BoVWClassifier.transform`` on images the fit never saw, then again from the descriptor
cache = encoding alone), MobileNetV2 features through the tf.data pipeline (``transfer.extract_features``)
next to the same model's raw forward pass on in-memory tensors (the ratio shows how well the pipeline
feeds the model), and U-Net training steps per second (tiny and default width, and the MobileNetV2
U-Net). ``backbone_engines`` runs MobileNetV2 on every inference engine side by side in one process
(TensorFlow's tf.function, predict_on_batch and XLA, ONNX Runtime as the package runs it, OpenVINO f32 where
installed) and the report sets ``extract_features`` end to end against the fastest of them;
``seg_predict`` does the same for segmenter prediction. Devices are detected, so the same script runs
unchanged on a GPU machine.
Writes ``<results>/perf/pipeline.json`` and ``pipeline.md`` with the machine and software versions.

Images are a seeded sample of HAM10000 (200x150 JPEGs, lesion masks) via the dataset adapter;
``--image-dir`` reads a folder of HAM-style ``ISIC_*.jpg`` with ``masks/`` beside it instead (a subset
copied to a machine without the full data).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

SEED = 0
#: (full, quick) number of images / steps per measurement
SIZES = {
    "decode_224": (2000, 200), "decode_128": (2000, 200), "sift_bovw": (300, 40),
    "backbone_pipeline": (1000, 96), "backbone_raw": (1000, 96), "backbone_engines": (256, 64),
    "seg_predict": (256, 64),
    "activations": (640, 96), "top_blocks": (40, 8), "end_to_end_160": (20, 4),
    "unet_tiny": (40, 8), "unet_default": (40, 8), "mobilenet_unet": (40, 8), "ynet": (40, 8),
    "fpn": (40, 8), "mobilenet_unet_finetune": (30, 6), "mobilenet_unet_5attr_192": (30, 6),
    "mobilenet_unet_192": (30, 6), "mobilenet_unet_256": (30, 6),
    "seg_batches": (40, 8),
}
BATCH = 32
UNET_BATCH = 16
UNET_SIZE = 128


# ------------------------------------------------------------------------------------------ image sample

def sample_paths(n: int, image_dir: str | None = None, seed: int = SEED) -> tuple[list[str], list[str]]:
    """A seeded sample of n HAM10000 image paths and their lesion-mask paths ("" when absent)."""
    from skinbench.data import ham10000

    if image_dir:
        images = sorted(str(p) for p in Path(image_dir).glob("*.jpg"))
        masks_dir = Path(image_dir).parent / "masks"
        masks = [str(masks_dir / ham10000.mask_file_name(Path(p).stem)) for p in images]
        masks = [m if os.path.isfile(m) else "" for m in masks]
    else:
        from skinbench.data import load_dataset

        ds = load_dataset("ham10000")
        images, masks = list(ds.paths), list(ds.masks("lesion"))
    if n > len(images):
        raise SystemExit(f"asked for {n} images, only {len(images)} available")
    pick = np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))
    return [images[i] for i in pick], [masks[i] for i in pick]


# ------------------------------------------------------------------------------------------ measurements

def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _devices() -> dict:
    import tensorflow as tf

    return {"tf_gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}


def measure_decode(n: int, image_dir: str | None, size: int) -> dict:
    from skinbench.data.images import read_image

    paths, _ = sample_paths(n, image_dir)
    secs = _timed(lambda: [read_image(p, size=(size, size)) for p in paths])
    return {"images": n, "seconds": secs, "images_per_s": n / secs}


def measure_sift(n: int, image_dir: str | None) -> dict:
    """Fit on 40 other images (small vocabulary: the fit is not measured), then transform n new ones."""
    from skinbench.approaches.bovw import BoVWClassifier

    paths, _ = sample_paths(n + 40, image_dir)
    fit_paths, paths = paths[:40], paths[40:]
    est = BoVWClassifier(n_words=50, C=1.0, gamma=1.0, progress=False, random_state=SEED)
    est.fit(np.array(fit_paths), np.arange(40) % 2)
    first = _timed(lambda: est.transform(np.array(paths)))  # extraction (n_jobs workers) + encoding
    second = _timed(lambda: est.transform(np.array(paths)))  # descriptors from cache: encoding alone
    return {"images": n, "seconds": first, "images_per_s": n / first, "n_jobs": est.n_jobs,
            "encode_only_images_per_s": n / second, "extract_images_per_s": n / max(first - second, 1e-9),
            "descriptors_per_image": float(np.mean(est.n_descriptors_)), "image_size": est.image_size}


def measure_backbone_pipeline(n: int, image_dir: str | None) -> dict:
    """transfer.extract_features end to end (model build, decode, resize, forward, cache writes)."""
    from skinbench.approaches import transfer

    paths, _ = sample_paths(n, image_dir)
    warm, _ = sample_paths(BATCH, image_dir, seed=SEED + 1)
    transfer.extract_features(warm, backbone="mobilenet_v2", batch_size=BATCH, progress=False)  # TF start-up
    secs = _timed(lambda: transfer.extract_features(paths, backbone="mobilenet_v2", batch_size=BATCH,
                                                    progress=False))
    # the same tf.data pipeline feeding an already built and traced model: the feeding ratio proper
    import tensorflow as tf

    from skinbench.approaches import tfdata

    from skinbench.approaches import engines

    model = transfer.feature_model("mobilenet_v2", "imagenet", 224)
    forward = engines.compiled(model)  # the engine extract_features runs on
    for batch in tfdata.image_dataset(warm, (224, 224), batch_size=BATCH):
        np.asarray(forward(batch))
    cpu = time.process_time()
    fed = _timed(lambda: [np.asarray(forward(b)) for b in tfdata.image_dataset(paths, (224, 224), batch_size=BATCH)])
    cpu = time.process_time() - cpu
    return {"images": n, "seconds": secs, "images_per_s": n / secs, "batch_size": BATCH,
            "fed_images_per_s": n / fed, "fed_images_per_cpu_s": n / cpu, "engine": engines.engine(), **_devices()}


def measure_backbone_raw(n: int, image_dir: str | None) -> dict:
    """The same feature model on the package's engine (``engines.compiled``), on in-memory float tensors: no
    decoding, no resizing, no cache."""
    from skinbench.approaches import engines, transfer

    model = transfer.feature_model("mobilenet_v2", "imagenet", 224)
    forward = engines.compiled(model)
    x = np.random.default_rng(SEED).uniform(0, 255, (BATCH, 224, 224, 3)).astype(np.float32)
    np.asarray(forward(x))  # trace / convert + warm-up
    batches = max(1, n // BATCH)
    cpu = time.process_time()
    secs = _timed(lambda: [np.asarray(forward(x)) for _ in range(batches)])
    cpu = time.process_time() - cpu
    return {"images": batches * BATCH, "seconds": secs, "images_per_s": batches * BATCH / secs,
            "images_per_cpu_s": batches * BATCH / cpu, "batch_size": BATCH, "engine": engines.engine(), **_devices()}


def _real_batch(n: int, image_dir: str | None, size: int) -> np.ndarray:
    """n real sample images decoded and resized in memory (float32 NHWC, 0..255)."""
    from skinbench.data.images import read_image

    paths, _ = sample_paths(n, image_dir)
    return np.stack([read_image(p, size=(size, size)) for p in paths]).astype(np.float32)


def _engine_rates(engines_: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray, rounds: int = 3) -> dict:
    """Images/s of each engine over ``x`` in batches of BATCH, best of ``rounds`` rounds taken in turn (a
    shared machine's load hits every engine alike), and each engine's difference from the first one's
    outputs (``engines.difference``)."""
    from skinbench.approaches import engines as eng

    ref = None
    out: dict[str, Any] = {"rates": {}, "difference_from_tensorflow": {}}
    for label, call in engines_.items():
        got = np.concatenate([np.asarray(call(x[i:i + BATCH]), np.float32) for i in range(0, len(x), BATCH)])
        ref = got if ref is None else ref
        out["difference_from_tensorflow"][label] = eng.difference(got, ref)
    best = {label: 0.0 for label in engines_}
    cpu = {label: 0.0 for label in engines_}
    for _ in range(rounds):
        for label, call in engines_.items():
            cpu_start = time.process_time()
            secs = _timed(lambda: [call(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])
            best[label] = max(best[label], len(x) / secs)
            cpu[label] = max(cpu[label], len(x) / max(time.process_time() - cpu_start, 1e-9))
    out["rates"] = {k: round(v, 1) for k, v in best.items()}
    # images per CPU-second of this process (every thread): what a loaded machine's cores pay, less
    # sensitive to other processes than wall time
    out["images_per_cpu_s"] = {k: round(v, 1) for k, v in cpu.items()}
    return out


def measure_backbone_engines(n: int, image_dir: str | None) -> dict:
    """MobileNetV2 features (224 px, ImageNet) on n real images in memory, batch 32, side by side in one
    process: the traced ``tf.function`` (the TensorFlow engine), Keras ``predict_on_batch``, XLA
    (``jit_compile``), ONNX Runtime as the package runs it (``engines.onnx_runner``: tf2onnx file, cached)
    and OpenVINO at float32 where installed (its default on AMX CPUs is bfloat16, which moves features by
    ~1e-1: not the same numbers)."""
    import tensorflow as tf

    from skinbench.approaches import engines as eng
    from skinbench.approaches import tfdata, transfer

    model = transfer.feature_model("mobilenet_v2", "imagenet", 224)
    x = _real_batch(n, image_dir, 224)
    compiled = tfdata.compiled(model)
    spec = tf.TensorSpec((None, 224, 224, 3), tf.float32)
    xla = tf.function(lambda v: model(v, training=False), input_signature=[spec], jit_compile=True)
    calls: dict[str, Callable[[np.ndarray], Any]] = {
        "tensorflow (tf.function)": lambda b: compiled(tf.constant(b)).numpy(),
        "tensorflow predict_on_batch": lambda b: model.predict_on_batch(b),
    }
    # XLA compiles per batch shape and ran at 3-5 img/s here (a 20th of the others): timed once, on two
    # batches, beside the rounds rather than in them
    xla(tf.constant(x[:BATCH])).numpy()
    notes: dict[str, Any] = {"tensorflow XLA (jit_compile)": round(2 * BATCH / _timed(
        lambda: [xla(tf.constant(x[i:i + BATCH])).numpy() for i in (0, BATCH)]), 1)}
    start = time.perf_counter()
    runner = eng.onnx_runner(model)
    notes["onnx_conversion_s"] = round(time.perf_counter() - start, 2)
    if runner is not None:
        calls["onnxruntime"] = runner
    try:
        import openvino as ov

        compiled_ov = ov.Core().compile_model(ov.convert_model(model, input=[-1, 224, 224, 3]), "CPU",
                                              {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
        calls["openvino (f32)"] = lambda b: compiled_ov(b)[0]
    except ImportError:
        notes["openvino"] = "not installed"
    result = _engine_rates(calls, x)
    rates = result["rates"]
    fastest = max(rates, key=rates.get)
    return {"batch_size": BATCH, "images": n, **result, **notes, "fastest": fastest,
            "images_per_s": rates[fastest], "package_engine": eng.engine(), **_devices()}


def measure_seg_predict(n: int, image_dir: str | None) -> dict:
    """Segmenter prediction's forward pass: the MobileNetV2 U-Net (128 px, ImageNet encoder) on n real
    images in memory, Keras ``predict`` (what ran before) against ``engines.predict`` (the package's)."""
    from skinbench.approaches import engines as eng
    from skinbench.approaches.ynet import build_mobilenet_unet

    model = build_mobilenet_unet(UNET_SIZE)
    x = _real_batch(n, image_dir, UNET_SIZE)
    start = time.perf_counter()
    eng.predict(model, x[:BATCH], BATCH)  # conversion (cached by content afterwards)
    first = time.perf_counter() - start
    calls = {"tensorflow (Keras predict)": lambda b: model.predict(b, batch_size=BATCH, verbose=0),
             f"engines.predict ({eng.engine()})": lambda b: eng.predict(model, b, BATCH)}
    result = _engine_rates(calls, x)
    rates = result["rates"]
    fastest = max(rates, key=rates.get)
    return {"batch_size": BATCH, "images": n, "input_size": UNET_SIZE, **result, "first_call_s": round(first, 2),
            "fastest": fastest, "images_per_s": rates[fastest], **_devices()}


def _partial_models(size: int):
    import keras

    from skinbench.approaches import finetune, transfer

    keras.utils.set_random_seed(SEED)
    return finetune.build_partial("mobilenet_v2", "imagenet", size, None,
                                  transfer.head_layers(7, np.zeros(7)), keras.layers.GlobalAveragePooling2D())


def measure_activations(n: int, image_dir: str | None) -> dict:
    """Partial fine-tuning's first stage: MobileNetV2 up to block_13 on real images (224 px, one augmented
    view each), written to an empty activation store (float16 shards)."""
    from skinbench.approaches import activations, tfdata
    from skinbench.cache import file_digest

    paths, _ = sample_paths(n, image_dir)
    models = _partial_models(224)
    store = activations.open_store(backbone="mobilenet_v2", weights="imagenet", size=224, cut=None,
                                   augment=tfdata.AUGMENT_MULTICLASS, seed=0, shape=models.activation_shape)
    digests = [file_digest(p) for p in paths]
    secs = _timed(lambda: activations.fill(store, paths, digests, [1], model=models.extract, size=224,
                                           augment=tfdata.AUGMENT_MULTICLASS, seed=0, batch_size=BATCH, progress=False))
    return {"images": n, "seconds": secs, "images_per_s": n / secs, "cut": "block_13",
            "kb_per_image": store.nbytes() / n / 1024, **_devices()}


def measure_top_blocks(steps: int, image_dir: str | None) -> dict:
    """Partial fine-tuning's second stage: training steps of blocks 13-16 + head on cached activations."""
    import keras

    models = _partial_models(224)
    from skinbench.approaches import finetune

    finetune.set_top_trainable(models)
    x = np.random.default_rng(SEED).normal(size=(BATCH, *models.activation_shape)).astype(np.float32)
    y = np.arange(BATCH) % 7
    models.top.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    models.top.train_on_batch(x, y)  # trace
    secs = _timed(lambda: [models.top.train_on_batch(x, y) for _ in range(steps)])
    return {"steps": steps, "steps_per_s": steps / secs, "images_per_s": steps * BATCH / secs, "batch_size": BATCH}


def measure_end_to_end(steps: int, image_dir: str | None, size: int = 160) -> dict:
    """Partial fine-tuning's optional last stage: the whole MobileNetV2 + head trained at ``size`` px."""
    import keras

    from skinbench.approaches import transfer

    keras.utils.set_random_seed(SEED)
    model, base = transfer.full_model("mobilenet_v2", "imagenet", size, 7, np.zeros(7))
    transfer.set_stage(base, "all", "mobilenet_v2")
    x = np.random.default_rng(SEED).uniform(0, 255, (BATCH, size, size, 3)).astype(np.float32)
    y = np.arange(BATCH) % 7
    model.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    secs = _timed(lambda: [model.train_on_batch(x, y) for _ in range(steps)])
    return {"steps": steps, "steps_per_s": steps / secs, "images_per_s": steps * BATCH / secs, "batch_size": BATCH,
            "input_size": size}


def _train_steps(model, steps: int, image_dir: str | None, n_classes: int = 0, size: int = UNET_SIZE) -> dict:
    """Training steps on real image/mask batches; ``n_classes`` > 0: the Y-Net's joint two-head loss. A model
    with k > 1 output maps trains on k copies of the lesion mask (the cost is the model's, not the data's)."""
    import keras

    from skinbench.approaches.seg_losses import get_loss, per_output, soft_jaccard_metric, weighted_categorical_crossentropy
    from skinbench.approaches.seg_data import load_pairs

    paths, masks = sample_paths(UNET_BATCH * 2, image_dir)
    images, ms = load_pairs(paths, masks, size)
    k = int(model.outputs[0].shape[-1]) if len(model.outputs) == 1 else 1
    x, y = images.astype(np.float32), np.repeat(ms[..., None], k, axis=-1).astype(np.float32)
    if n_classes:
        onehot = np.eye(n_classes, dtype=np.float32)[np.arange(len(x)) % n_classes]
        y = {"seg": y, "cls": onehot}
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss={"seg": get_loss("bce_dice"), "cls": weighted_categorical_crossentropy(np.ones(n_classes))},
                      loss_weights={"seg": 5.0, "cls": 1.0})
    else:
        loss = per_output(get_loss("bce_dice")) if k > 1 else get_loss("bce_dice")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=[soft_jaccard_metric])

    def part(i: int):
        return {k: v[i:i + UNET_BATCH] for k, v in y.items()} if isinstance(y, dict) else y[i:i + UNET_BATCH]

    batches = [(x[i:i + UNET_BATCH], part(i)) for i in range(0, len(x), UNET_BATCH)]
    for b in batches:  # trace + warm-up
        model.train_on_batch(*b)
    secs = _timed(lambda: [model.train_on_batch(*batches[s % len(batches)]) for s in range(steps)])
    return {"steps": steps, "seconds": secs, "steps_per_s": steps / secs,
            "images_per_s": steps * UNET_BATCH / secs, "batch_size": UNET_BATCH, "input_size": size,
            "parameters": int(model.count_params()), **_devices()}


def measure_unet(steps: int, image_dir: str | None, base_filters: int) -> dict:
    import keras

    from skinbench.approaches.unet import build_unet

    keras.utils.set_random_seed(SEED)
    return {"base_filters": base_filters, "depth": 4,
            **_train_steps(build_unet(UNET_SIZE, base_filters, 4), steps, image_dir)}


def measure_mobilenet_unet(steps: int, image_dir: str | None, n_classes: int = 0, size: int = UNET_SIZE) -> dict:
    import keras

    from skinbench.approaches.ynet import build_mobilenet_unet

    keras.utils.set_random_seed(SEED)
    return {"encoder": "MobileNetV2 ImageNet, frozen", "n_classes": n_classes,
            **_train_steps(build_mobilenet_unet(size, n_classes=n_classes), steps, image_dir, n_classes, size=size)}


def measure_fpn(steps: int, image_dir: str | None) -> dict:
    import keras

    from skinbench.approaches.fpn import build_mobilenet_fpn

    keras.utils.set_random_seed(SEED)
    return {"encoder": "MobileNetV2 ImageNet, frozen", **_train_steps(build_mobilenet_fpn(UNET_SIZE), steps, image_dir)}


def measure_mobilenet_unet_finetune(steps: int, image_dir: str | None) -> dict:
    """The fine-tuning stage: encoder trainable (its BatchNorm layers frozen, as ``_unfreeze`` does)."""
    import keras

    from skinbench.approaches.ynet import MobileNetUNetSegmenter, build_mobilenet_unet

    keras.utils.set_random_seed(SEED)
    model = build_mobilenet_unet(UNET_SIZE)
    MobileNetUNetSegmenter()._unfreeze(model)
    return {"encoder": "MobileNetV2 ImageNet, trainable (BatchNorm frozen)", **_train_steps(model, steps, image_dir)}


def measure_mobilenet_unet_5attr(steps: int, image_dir: str | None) -> dict:
    import keras

    from skinbench.approaches.ynet import build_mobilenet_unet

    keras.utils.set_random_seed(SEED)
    return {"encoder": "MobileNetV2 ImageNet, frozen", "outputs": 5,
            **_train_steps(build_mobilenet_unet(192, n_outputs=5), steps, image_dir, size=192)}


def measure_seg_batches(steps: int, image_dir: str | None) -> dict:
    """The segmenters' input pipeline alone (PairBatches: paired affine warp, flips, brightness), one
    process: if it is much faster than a training step, training is never waiting for data."""
    from skinbench.approaches.seg_data import PairAugment, PairBatches, load_pairs

    paths, masks = sample_paths(UNET_BATCH * 4, image_dir)
    images, ms = load_pairs(paths, masks, UNET_SIZE)
    batches = PairBatches(images, ms, UNET_BATCH, augment=PairAugment(), seed=SEED)
    batches[0]
    secs = _timed(lambda: [batches[s % len(batches)] for s in range(steps)])
    return {"steps": steps, "steps_per_s": steps / secs, "images_per_s": steps * UNET_BATCH / secs,
            "batch_size": UNET_BATCH, "input_size": UNET_SIZE}


MEASURES: dict[str, tuple[str, Callable[[int, str | None], dict]]] = {
    "decode_224": ("read_image + resize to 224x224", lambda n, d: measure_decode(n, d, 224)),
    "decode_128": ("read_image + resize to 128x128", lambda n, d: measure_decode(n, d, 128)),
    "sift_bovw": ("SIFT extraction + BoVW encoding (BoVWClassifier.transform)", measure_sift),
    "backbone_pipeline": ("MobileNetV2 features via tf.data (extract_features: build, decode, forward, cache)",
                          measure_backbone_pipeline),
    "backbone_raw": ("MobileNetV2 raw forward, in-memory tensors", measure_backbone_raw),
    "backbone_engines": ("MobileNetV2 forward by engine, real images in memory: TensorFlow (tf.function, "
                         "predict_on_batch, XLA), ONNX Runtime, OpenVINO f32", measure_backbone_engines),
    "seg_predict": ("MobileNetV2 U-Net forward (128 px) for segmenter prediction: Keras predict vs the package's "
                    "engine", measure_seg_predict),
    "activations": ("MobileNetV2 activations below block_13 into the float16 store (partial fine-tuning)",
                    measure_activations),
    "top_blocks": ("MobileNetV2 blocks 13-16 + head training steps on cached activations (224 px)",
                   measure_top_blocks),
    "end_to_end_160": ("MobileNetV2 + head, whole network training steps at 160 px", measure_end_to_end),
    "unet_tiny": ("U-Net base 8 training steps", lambda n, d: measure_unet(n, d, 8)),
    "unet_default": ("U-Net base 16 (default) training steps", lambda n, d: measure_unet(n, d, 16)),
    "mobilenet_unet": ("MobileNetV2 U-Net training steps", measure_mobilenet_unet),
    "ynet": ("Y-Net training steps (segmentation + 7-class head)", lambda n, d: measure_mobilenet_unet(n, d, 7)),
    "fpn": ("FPN (frozen MobileNetV2 encoder) training steps", measure_fpn),
    "mobilenet_unet_finetune": ("MobileNetV2 U-Net training steps, encoder trainable (fine-tuning stage)",
                                measure_mobilenet_unet_finetune),
    "mobilenet_unet_5attr_192": ("MobileNetV2 U-Net with 5 output maps at 192 px (task3 attributes) training steps",
                                 measure_mobilenet_unet_5attr),
    # task3's input size and the attribute masks' full long side: what a 256 px schedule would cost
    "mobilenet_unet_192": ("MobileNetV2 U-Net training steps at 192 px (task3's input size)",
                           lambda n, d: measure_mobilenet_unet(n, d, size=192)),
    "mobilenet_unet_256": ("MobileNetV2 U-Net training steps at 256 px (the ISIC 2018 attribute masks' long side)",
                           lambda n, d: measure_mobilenet_unet(n, d, size=256)),
    "seg_batches": ("segmenters' augmenting input pipeline alone (PairBatches, 1 process)", measure_seg_batches),
}


# ---------------------------------------------------------------------------------- subprocess harness

def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its reaped children (worker pools), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "peak_rss_children_mb": round(children, 1)}


def run_worker(script: Path, args: list[str], label: str) -> dict:
    """Run ``script --worker ...`` in a fresh process with an empty cache; returns its JSON result."""
    with tempfile.TemporaryDirectory(prefix="skinbench-perf-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ, SKINBENCH_CACHE=str(Path(tmp) / "cache"), TF_CPP_MIN_LOG_LEVEL="3")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), "--worker", *args, "--out", str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            print(f"   {label} FAILED:\n{proc.stdout[-3000:]}", file=sys.stderr)
            return {"status": "failed", "error": proc.stdout.strip().splitlines()[-1:] or ["?"], "wall_s": wall}
        result = json.loads(out.read_text())
        result.update(status="ok", wall_s=round(wall, 2))
        return result


def worker_main(name: str, n: int, image_dir: str | None, out: Path) -> None:
    result = MEASURES[name][1](n, image_dir)
    result.update(peak_rss_mb())
    out.write_text(json.dumps(result))


def write_outputs(folder: Path, stem: str, payload: dict, markdown: str) -> list[Path]:
    from skinbench.cache import atomic_write_bytes
    from skinbench.results.records import dumps

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / f"{stem}.json", dumps(payload))
    atomic_write_bytes(folder / f"{stem}.md", markdown.encode())
    return [folder / f"{stem}.json", folder / f"{stem}.md"]


def machine_line(env: dict) -> str:
    m = env.get("machine", {})
    gpus = ", ".join(m.get("gpus") or []) or "none"
    return f"{m.get('cpu')} ({m.get('cores')} cores, {m.get('memory_gb')} GB), GPUs: {gpus}; {m.get('platform')}"


def _markdown(payload: dict) -> str:
    rows = []
    for name, r in payload["measurements"].items():
        if r.get("status") != "ok":
            rows.append(f"| {name} | {MEASURES[name][0]} | failed: {' '.join(r.get('error', []))} | | |")
            continue
        rate = f"{r['steps_per_s']:.2f} steps/s ({r['images_per_s']:.1f} img/s)" if "steps_per_s" in r \
            else f"{r['images_per_s']:.1f} img/s"
        n = r.get("steps", r.get("images"))
        rows.append(f"| {name} | {MEASURES[name][0]} | {rate} | {n} | {r['peak_rss_mb']:.0f} |")
    m = payload["measurements"]
    ratio = payload.get("pipeline_to_raw_ratio")
    lines = ["# Pipeline performance", "",
             f"Generated by `{payload.get('engine_env') or ''}python benchmarks/perf_pipeline.py"
             f"{' --quick' if payload['quick'] else ''}` "
             f"on {payload['created']}. Machine: {machine_line(payload)}. Load average at start: "
             f"{payload['load_average']}.", "",
             "Each row ran in its own process with an empty cache; peak RSS is that process's (MB, imports "
             "included; SIFT worker processes are counted separately in the JSON).", "",
             "| stage | what | throughput | n | peak RSS MB |", "|---|---|---|---|---|", *rows, ""]
    eng = m.get("backbone_engines", {})
    if eng.get("status") == "ok" and "rates" in eng:
        rates = ", ".join(f"{k} {v:.1f} img/s ({eng['images_per_cpu_s'][k]:.1f} per CPU-second; difference "
                          f"{eng['difference_from_tensorflow'][k]:.1e})" for k, v in eng["rates"].items())
        lines += [f"MobileNetV2 forward by engine ({eng['images']} real images in memory, batch {eng['batch_size']}, "
                  f"best of 3 rounds taken in turn): {rates}; TensorFlow XLA (jit_compile) "
                  f"{eng.get('tensorflow XLA (jit_compile)', '?')} img/s. Fastest: **{eng['fastest']}**; the package runs "
                  f"{eng['package_engine']} (ONNX conversion {eng.get('onnx_conversion_s', '?')} s, once per weights).", ""]
    seg = m.get("seg_predict", {})
    if seg.get("status") == "ok":
        lines += ["Segmenter forward (MobileNetV2 U-Net, " + ", ".join(f"{k} {v:.1f} img/s" for k, v in seg["rates"].items())
                  + f"; first call with conversion {seg['first_call_s']} s).", ""]
    if ratio is not None:
        p = m["backbone_pipeline"]
        lines += [f"MobileNetV2 on {p.get('engine', 'tensorflow')}: raw forward {m['backbone_raw']['images_per_s']:.1f} img/s; "
                  f"tf.data pipeline feeding the built model {p['fed_images_per_s']:.1f} img/s, ratio **{ratio:.2f}** "
                  f"(1.0 = the pipeline keeps the model fully fed); `extract_features` end to end (model build and "
                  f"cache writes included) {p['images_per_s']:.1f} img/s, ratio {payload['extract_features_to_raw_ratio']:.2f}."
                  + (f" Per CPU-second (less sensitive to other processes): fed {p['fed_images_per_cpu_s']:.1f}, raw "
                     f"{m['backbone_raw']['images_per_cpu_s']:.1f}, ratio "
                     f"{p['fed_images_per_cpu_s'] / m['backbone_raw']['images_per_cpu_s']:.2f}."
                     if "fed_images_per_cpu_s" in p and "images_per_cpu_s" in m["backbone_raw"] else ""), ""]
    fastest = payload.get("pipeline_to_fastest_engine")
    if fastest is not None:
        lines += [f"`extract_features` end to end against the fastest raw engine ({eng['fastest']}, "
                  f"{eng['images_per_s']:.1f} img/s): **{fastest:.2f}x** (target >= 0.8x; the tf.data feed alone: "
                  f"{payload['fed_to_fastest_engine']:.2f}x).", ""]
    if m.get("sift_bovw", {}).get("status") == "ok":
        s = m["sift_bovw"]
        lines += [f"SIFT: {s['descriptors_per_image']:.0f} descriptors per image at {s['image_size']} px, "
                  f"n_jobs={s['n_jobs']}; extraction alone {s['extract_images_per_s']:.1f} img/s, encoding alone "
                  f"{s['encode_only_images_per_s']:.1f} img/s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", help="results folder (default: results/); writes perf/pipeline.*")
    parser.add_argument("--quick", action="store_true", help="small n (a minute or two)")
    parser.add_argument("--image-dir", help="HAM-style folder of ISIC_*.jpg (masks/ beside it) instead of the adapter")
    parser.add_argument("--only", action="append", choices=list(MEASURES), help="only these measurements")
    parser.add_argument("--worker", choices=list(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.n, args.image_dir, Path(args.out))
        return 0

    from datetime import datetime, timezone

    from skinbench.approaches.engines import ENGINE_ENV
    from skinbench.paths import committed_results_dir
    from skinbench.environment import environment

    root = Path(args.results) if args.results else committed_results_dir()
    measurements: dict[str, dict] = {}
    previous = root / "perf" / "pipeline.json"
    if args.only and previous.exists():  # measure some, keep the rest of the last full run
        measurements = dict(json.loads(previous.read_text()).get("measurements", {}))
    load = os.getloadavg()
    for name, (title, _) in MEASURES.items():
        if args.only and name not in args.only:
            continue
        n = SIZES[name][1 if args.quick else 0]
        print(f"== perf {name}: {title} (n={n})", file=sys.stderr)
        extra = ["--image-dir", args.image_dir] if args.image_dir else []
        measurements[name] = run_worker(Path(__file__).resolve(), [name, "--n", str(n), *extra], name)
        r = measurements[name]
        if r["status"] == "ok":
            rate = r.get("steps_per_s", r.get("images_per_s"))
            print(f"   {rate:.2f} {'steps' if 'steps_per_s' in r else 'img'}/s, peak {r['peak_rss_mb']:.0f} MB",
                  file=sys.stderr)
    payload: dict[str, Any] = {"schema": 1, "benchmark": "pipeline", "quick": args.quick, "seed": SEED,
                               "data": args.image_dir or "ham10000 (seeded sample)",
                               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "load_average": [round(x, 2) for x in load], "measurements": measurements,
                               # the engine chosen for this run, as a reader must type it to get the same rows
                               "engine_env": (f"{ENGINE_ENV}={os.environ[ENGINE_ENV]} "
                                              if os.environ.get(ENGINE_ENV) else ""),
                               **environment()}
    pipe, raw = measurements.get("backbone_pipeline", {}), measurements.get("backbone_raw", {})
    if pipe.get("status") == "ok" and raw.get("status") == "ok":
        payload["pipeline_to_raw_ratio"] = pipe["fed_images_per_s"] / raw["images_per_s"]
        payload["extract_features_to_raw_ratio"] = pipe["images_per_s"] / raw["images_per_s"]
    engines_ = measurements.get("backbone_engines", {})
    if pipe.get("status") == "ok" and engines_.get("status") == "ok" and "rates" in engines_:
        payload["pipeline_to_fastest_engine"] = pipe["images_per_s"] / engines_["images_per_s"]
        payload["fed_to_fastest_engine"] = pipe["fed_images_per_s"] / engines_["images_per_s"]
    for path in write_outputs(root / "perf", "pipeline", payload, _markdown(payload)):
        print(f"wrote {path}", file=sys.stderr)
    return 1 if any(r["status"] != "ok" for r in measurements.values()) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from skinbench.errors import run_script

    run_script(main, "perf_pipeline")
