"""Backbones: offline ImageNet weights load for real, missing or wrong weights fail clearly and fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from skinbench.approaches import backbones
from skinbench.errors import ConfigError, WeightsError

MOBILENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
    """No weights anywhere: $KERAS_HOME, the shared data root and ~ all point at empty folders."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("SKINBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SKINBENCH_OFFLINE", "1")
    return tmp_path / "keras"


def test_unknown_backbone_is_config_error():
    with pytest.raises(ConfigError, match="mobilenet_v2"):
        backbones.build("alexnet")


def test_vgg16_imagenet_offline_raises_weights_error_fast(empty_keras_home):
    start = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        backbones.build("vgg16", (32, 32, 3), weights="imagenet")
    msg = str(err.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in msg
    assert "$KERAS_HOME/models, ~/.keras/models" in msg and "-p weights=PATH" in msg
    assert str(empty_keras_home.parent) not in msg  # records keep this message: no machine paths
    assert time.perf_counter() - start < 5


def test_failed_download_becomes_weights_error(empty_keras_home, monkeypatch):
    """Online mode: whatever Keras raises while downloading surfaces as a WeightsError, never random weights."""
    import keras

    monkeypatch.delenv("SKINBENCH_OFFLINE")

    def no_network(**kwargs):
        assert kwargs["weights"] == "imagenet"
        raise OSError("no network")

    monkeypatch.setattr(keras.applications, "ResNet50", no_network)
    with pytest.raises(WeightsError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        backbones.build("resnet50", (32, 32, 3))


def test_vgg16_random_init_forward_one_batch():
    model = backbones.build("vgg16", (32, 32, 3), weights=None)
    x = backbones.preprocess_fn("vgg16")(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32"))
    assert model(x).shape == (2, 1, 1, 512)
    assert not model.trainable


def test_wrong_architecture_weights_file(tmp_path):
    small = backbones.build("mobilenet_v2", (32, 32, 3), weights=None)
    path = tmp_path / "mnet.weights.h5"
    small.save_weights(str(path))
    with pytest.raises(WeightsError, match="cannot load these weights into vgg16"):
        backbones.build("vgg16", (32, 32, 3), weights=path)
    with pytest.raises(WeightsError, match="not found"):
        backbones.build("vgg16", (32, 32, 3), weights=tmp_path / "missing.h5")
    # the right architecture loads from a path, at another input size too
    loaded = backbones.build("mobilenet_v2", (64, 64, 3), weights=path)
    np.testing.assert_array_equal(loaded.get_weights()[0], small.get_weights()[0])


@pytest.mark.realdata
def test_mobilenet_imagenet_loads_offline_at_any_size(shared_data, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(shared_data / "weights" / "keras"))
    found = backbones.find_imagenet_weights("mobilenet_v2", 96)
    assert found is not None and found.name.endswith("_96_no_top.h5") or found.name == MOBILENET_FILE
    a = backbones.build("mobilenet_v2", (96, 96, 3))
    b = backbones.build("mobilenet_v2", (224, 224, 3))
    random = backbones.build("mobilenet_v2", (96, 96, 3), weights=None)
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
    assert not np.allclose(a.get_weights()[0], random.get_weights()[0])
    assert backbones.weights_id("mobilenet_v2", "imagenet") != "random"


def test_mobilenet_v2_owns_its_unet_layer_names():
    """The U-Net taps are the backbone's facts: they exist in the model at strides 32 (bottleneck), 16..2."""
    pytest.importorskip("keras")
    from skinbench.approaches import ynet

    bottleneck, skips = backbones.unet_layers("mobilenet_v2")
    assert (ynet.BOTTLENECK, ynet.SKIPS) == (bottleneck, skips)  # the Y-Net reads them, keeps no copy
    model = backbones.build("mobilenet_v2", (64, 64, 3), weights=None)
    sides = [model.get_layer(name).output.shape[1] for name in (bottleneck, *skips)]
    assert sides == [2, 4, 8, 16, 32]
    # the stride a crop-trained U-Net's sizes must divide by is read from the same spec
    assert 64 // backbones.spec("mobilenet_v2").stride == sides[0]
    assert ynet.MobileNetUNetSegmenter.input_multiple == backbones.spec("mobilenet_v2").stride
    with pytest.raises(ConfigError, match="mobilenet_v2"):
        backbones.unet_layers("vgg16")


def test_segmenters_take_encoder_and_preprocessing_from_the_backbone_factory(monkeypatch):
    """U-Net, Y-Net and FPN build their encoder through backbones.encoder_taps, preprocessing included:
    the scaling is the spec's (a Rescaling x * (1/127.5) - 1, the arithmetic the committed segmenter
    records were trained with, which differs in float32 from preprocess_input's x / 127.5 - 1)."""
    keras = pytest.importorskip("keras")
    from skinbench.approaches import fpn, ynet

    x = np.linspace(0, 255, 64 * 64 * 3, dtype=np.float32).reshape(1, 64, 64, 3)
    layer = backbones.encoder_preprocess("mobilenet_v2")
    np.testing.assert_array_equal(np.asarray(layer(x)), x * np.float32(1 / 127.5) + np.float32(-1.0))
    assert not np.array_equal(np.asarray(layer(x)), np.asarray(backbones.preprocess_layer("mobilenet_v2")(x)))

    made = []

    def spy(name):
        made.append(name)
        return keras.layers.Identity(name=f"spy{len(made)}")

    monkeypatch.setattr(backbones, "encoder_preprocess", spy)
    for model in (ynet.build_mobilenet_unet(64, None), ynet.build_mobilenet_unet(64, None, n_classes=3),
                  ynet.build_mobilenet_unet(64, None, crop_size=32), fpn.build_mobilenet_fpn(64, None)):
        kinds = [type(lay).__name__ for lay in model.layers]
        assert "Rescaling" not in kinds, f"{model.name} scales its input by hand"
        assert [lay.name for lay in model.layers if lay.name == "encoder"] == ["encoder"]
    assert made == ["mobilenet_v2"] * 4
