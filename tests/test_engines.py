"""Inference engines (issue 33): ONNX Runtime agrees with TensorFlow within the stated tolerance, converts
once per weights, and a missing runtime or a bad setting is one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from skinbench import progress
from skinbench.approaches import engines, tfdata, transfer
from skinbench.cli import main
from skinbench.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")


def test_onnx_features_and_flip_tta_match_tensorflow(synthetic_dataset, mobilenet32_weights, monkeypatch):
    model = transfer.feature_model("mobilenet_v2", mobilenet32_weights, 32)
    batches = [b.numpy() for b in tfdata.image_dataset(synthetic_dataset.paths[:12], (32, 32), batch_size=8,
                                                       seeds=tfdata.view_seeds(["ab" * 32] * 12, 1, 0),
                                                       augment=tfdata.AUGMENT_MULTICLASS)]
    out = {}
    for name in ("tensorflow", "onnxruntime"):
        monkeypatch.setenv(engines.ENGINE_ENV, name)
        out[name] = [tfdata.run_compiled(engines.compiled(model, tta=tta), batches) for tta in (False, True)]
    for tf_out, onnx_out in zip(out["tensorflow"], out["onnxruntime"]):
        assert onnx_out.shape == tf_out.shape == (12, 1280)
        assert engines.difference(onnx_out, tf_out) <= engines.TOLERANCE
    assert engines.difference(out["tensorflow"][1], out["tensorflow"][0]) > 1e-3  # the flips did change the output
    assert len(list((engines.cache_dir() / "onnx_models").glob("*.onnx"))) >= 1


def test_conversion_happens_once_per_weights(mobilenet32_weights, monkeypatch, tmp_path):
    import tf2onnx

    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path))
    model = transfer.feature_model("mobilenet_v2", mobilenet32_weights, 32)
    first = engines.onnx_path(model)

    def no_conversion(*a, **k):
        raise AssertionError("converted again although the same weights were converted before")

    monkeypatch.setattr(tf2onnx.convert, "from_keras", no_conversion)
    assert engines.onnx_path(transfer.feature_model("mobilenet_v2", mobilenet32_weights, 32)) == first
    changed = transfer.feature_model("mobilenet_v2", mobilenet32_weights, 32)
    weights = changed.get_weights()
    changed.set_weights([weights[0] * 1.01, *weights[1:]])
    with pytest.raises(AssertionError, match="converted again"):  # other weights: another file
        engines.onnx_path(changed)


def test_segmenter_prediction_matches_tensorflow_for_one_and_named_outputs(monkeypatch):
    import keras

    from skinbench.approaches.unet import build_unet

    monkeypatch.setenv(engines.ENGINE_ENV, "onnxruntime")
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)
    unet = build_unet(32, 4, 2)
    got = engines.predict(unet, x, batch_size=2)
    assert engines.difference(got, unet.predict(x, batch_size=2, verbose=0)) <= engines.TOLERANCE
    # a Y-Net-like model returning {"seg", "cls"}: the outputs come back under their own names
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(h)
    named = keras.Model(inputs, {"seg": keras.layers.Conv2D(1, 1, activation="sigmoid", name="seg")(h),
                                 "cls": keras.layers.Dense(3, activation="softmax", name="cls")(pooled)})
    got, ref = engines.predict(named, x, batch_size=2), named.predict(x, batch_size=2, verbose=0)
    assert set(got) == {"seg", "cls"} and got["seg"].shape == (5, 32, 32, 1) and got["cls"].shape == (5, 3)
    for key in ("seg", "cls"):
        assert engines.difference(got[key], ref[key]) <= engines.TOLERANCE


def _transfer_run(tmp_path, weights, engine: str, monkeypatch) -> dict:
    """task1 transfer-mobilenetv2-logreg on the synthetic data through the CLI, on ``engine``; every engine
    shares one cache folder."""
    monkeypatch.setenv(engines.ENGINE_ENV, engine)
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    results = tmp_path / f"results-{engine}"
    assert main(["run", "task1", "-a", "transfer-mobilenetv2-logreg", "--dataset", "synthetic", "--limit", "32",
                 "--n-boot", "20", "--results", str(results), "-p", f"weights={weights}", "-p", "input_size=32",
                 "-p", "n_views=1"]) == 0
    return json.loads(next(results.glob("runs/task1/*/transfer-mobilenetv2-logreg.json")).read_text())


def test_cli_runs_on_onnxruntime_with_its_own_cache_and_its_own_key(mobilenet32_weights, tmp_path, monkeypatch):
    on_tf = _transfer_run(tmp_path, mobilenet32_weights, "tensorflow", monkeypatch)
    assert not (tmp_path / "cache" / "onnx_models").exists()
    on_onnx = _transfer_run(tmp_path, mobilenet32_weights, "onnxruntime", monkeypatch)
    assert list((tmp_path / "cache" / "onnx_models").glob("*.onnx"))  # it did run on ONNX Runtime
    # the engines are not declared equivalent: ONNX Runtime never reads TensorFlow's cached features
    assert on_tf["timings"]["cache"]["transfer_features"]["misses"] > 0
    assert on_onnx["timings"]["cache"]["transfer_features"] == on_tf["timings"]["cache"]["transfer_features"]
    # not declared equivalent: an ONNX Runtime record is keyed apart, never current for a TensorFlow one
    assert on_onnx["key_inputs"]["engine"] == "onnxruntime" and "engine" not in on_tf["key_inputs"]
    assert on_onnx["run_key"] != on_tf["run_key"]
    # close, not equal: measured 1.6e-5 here; a refitted head amplifies the forward pass's rounding
    assert 0 < engines.difference(on_onnx["predictions"]["scores"], on_tf["predictions"]["scores"]) <= 1e-3


def test_cli_unknown_engine_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "skinbench", "run", "task1", "-a", "majority", "--dataset",
                           "synthetic"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, engines.ENGINE_ENV: "tensorrt"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "skinbench: error: SKINBENCH_ENGINE='tensorrt' is not an inference engine Fix: set SKINBENCH_ENGINE to "
        "one of: auto, onnxruntime, tensorflow (or leave it unset: tensorflow)"]


def test_missing_runtime_falls_back_to_tensorflow_with_one_line(mobilenet32_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    monkeypatch.setattr(progress, "_noted", set())
    on_tf = _transfer_run(tmp_path, mobilenet32_weights, "auto", monkeypatch)
    assert on_tf["metrics"]
    notes = [line for line in capsys.readouterr().err.splitlines() if "onnxruntime" in line]
    assert notes == ["skinbench: onnxruntime is not installed: inference runs on TensorFlow, slower "
                     "(pip install onnxruntime tf2onnx)"]
    assert not (tmp_path / "cache" / "onnx_models").exists()
    # asked for by name, a missing runtime is an error, not a silent fallback
    monkeypatch.setenv(engines.ENGINE_ENV, "onnxruntime")
    with pytest.raises(ConfigError, match="onnxruntime is not installed"):
        engines.engine()
