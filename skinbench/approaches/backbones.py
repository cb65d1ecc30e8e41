"""Pretrained convolutional backbones from ``keras.applications``, with honest offline weights.

``build(name, input_shape, weights)`` returns the backbone without its classifier top. ImageNet
weights are looked up as local files first (``$KERAS_HOME/models/``, the shared data's
``weights/keras/models/``, ``~/.keras/models/``) and loaded with ``load_weights``, so any input size
works. When the file is missing we never fall back to random weights: offline (``SKINBENCH_OFFLINE=1``)
we raise :class:`WeightsError` at once; otherwise Keras may download it, and a failure is re-raised as
a :class:`WeightsError` naming the file, the folder and the fix.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from skinbench.cache import file_digest
from skinbench.errors import ConfigError, WeightsError
from skinbench.paths import keras_home, portable


@dataclass(frozen=True)
class BackboneSpec:
    #: attribute of ``keras.applications`` building the model
    constructor: str
    #: module of ``keras.applications`` with ``preprocess_input``
    module: str
    #: Keras's file name for the ImageNet no-top weights ({rows} filled in for MobileNetV2)
    weights_file: str
    #: layer-name prefixes of the last convolutional block (unfrozen by the "last_block" stage)
    last_block: tuple[str, ...]
    default_size: int = 224
    #: U-Net encoder taps: the skip layers, deepest first (strides 16, 8, 4, 2), and the layer the decoder
    #: starts from (stride 32); empty where no U-Net uses this backbone
    skips: tuple[str, ...] = ()
    bottleneck: str = ""
    #: block names in network order where partial fine-tuning may cut the backbone: the frozen part ends
    #: just before the block's first layer, whose input is the cached activation
    cuts: tuple[str, ...] = ()
    #: the default cut: the blocks from here on train on cached activations (the studies' "last blocks")
    default_cut: str = ""
    #: the segmentation encoders' input scaling as a ``Rescaling(scale, offset)`` layer (x * scale + offset),
    #: which the U-Net, Y-Net and FPN records were trained with. It is preprocess_input's scaling, but
    #: float32 x * (1 / 127.5) - 1 and preprocess_input's x / 127.5 - 1 differ in the last bit, so each
    #: model keeps the arithmetic it was trained with: the classifiers :func:`preprocess_layer`, the
    #: encoders this (:func:`encoder_preprocess`). None: the encoders use :func:`preprocess_layer` too.
    encoder_rescaling: tuple[float, float] | None = None

    @property
    def stride(self) -> int:
        """Total stride at the U-Net bottleneck (one halving per skip level and one more): an input whose
        sides do not divide by it cannot be decoded back to its own size."""
        return 2 ** (len(self.skips) + 1)


SPECS: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec("VGG16", "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", ("block5_",),
                          cuts=("block2", "block3", "block4", "block5"), default_cut="block5"),
    "mobilenet_v2": BackboneSpec("MobileNetV2", "mobilenet_v2",
                                 "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
                                 ("block_16_", "Conv_1"),
                                 skips=("block_13_expand_relu", "block_6_expand_relu", "block_3_expand_relu",
                                        "block_1_expand_relu"),
                                 # 320 channels; ``out_relu`` (the reference code's) has 1280 at the same stride
                                 bottleneck="block_16_project",
                                 cuts=tuple(f"block_{i}" for i in range(1, 17)) + ("Conv_1",),
                                 # block_13 is the last stride-2 block: 14x14x96 activations at 224 px
                                 # (37 KB float16 per view), and blocks 13-16 hold 80% of the weights
                                 default_cut="block_13",
                                 encoder_rescaling=(1.0 / 127.5, -1.0)),  # MobileNetV2 expects [-1, 1]
    "resnet50": BackboneSpec("ResNet50", "resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             ("conv5_",)),
    "efficientnetb0": BackboneSpec("EfficientNetB0", "efficientnet", "efficientnetb0_notop.h5",
                                   ("block7", "top_")),
    "densenet121": BackboneSpec("DenseNet121", "densenet", "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                ("conv5_", "bn", "relu")),
}


def spec(name: str) -> BackboneSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}", fix=f"use one of: {', '.join(SPECS)}") from None


def default_size(name: str) -> int:
    """Input side length the ImageNet weights were trained at."""
    return spec(name).default_size


def preprocess_fn(name: str) -> Callable[[Any], Any]:
    """The backbone's own ``preprocess_input`` (float RGB 0..255 in, the scaling its weights expect out)."""
    import keras

    return getattr(keras.applications, spec(name).module).preprocess_input


def preprocess_layer(name: str) -> Any:
    """:func:`preprocess_fn` as a layer named "preprocess" that a saved model can be loaded back with
    (:class:`skinbench.approaches.keras_layers.BackbonePreprocess`; a ``Lambda`` could not be)."""
    from skinbench.approaches.keras_layers import BackbonePreprocess

    return BackbonePreprocess(name, name="preprocess")


def encoder_preprocess(name: str) -> Any:
    """The segmentation encoders' preprocessing layer of backbone ``name`` (see ``encoder_rescaling``)."""
    import keras

    scaling = spec(name).encoder_rescaling
    if scaling is None:
        return preprocess_layer(name)
    return keras.layers.Rescaling(scaling[0], offset=scaling[1])


def encoder_taps(name: str, side: int | None, weights: str | os.PathLike | None = "imagenet",
                 trainable: bool = False, taps: Sequence[str] | None = None) -> tuple[Any, list[Any]]:
    """(image input, tap tensors): the one encoder of the segmenters (U-Net, Y-Net, FPN), preprocessing
    included, as segmentation_models' backbone factory owns taps and preprocessing. The image is float RGB
    0..255 of ``side`` pixels (None: any size); ``taps`` are layer names of the backbone (default: the
    U-Net's, bottleneck first then the skips deepest first), returned in that order by one sub-model
    named "encoder" (what fine-tuning unfreezes).

    The layers are made in the order the segmenters always made them (backbone, encoder, input,
    preprocessing), so their automatic names, and so their saved weights, stay those of the committed
    records' trainings."""
    import keras

    if taps is None:
        bottleneck, skips = unet_layers(name)
        taps = [bottleneck, *skips]
    backbone = build(name, (side, side, 3), weights, trainable=trainable)
    encoder = keras.Model(backbone.input, [backbone.get_layer(n).output for n in taps], name="encoder")
    inputs = keras.Input((side, side, 3))
    outputs = encoder(encoder_preprocess(name)(inputs))
    return inputs, list(outputs)


def last_block_prefixes(name: str) -> tuple[str, ...]:
    return spec(name).last_block


def cut_points(name: str) -> tuple[str, ...]:
    """Valid cut points of ``name`` for partial fine-tuning, in network order."""
    return spec(name).cuts


def resolve_cut(name: str, cut: str | None) -> str:
    """``cut`` checked against the backbone's cut points (``None``: the default); ConfigError otherwise."""
    info = spec(name)
    if not info.cuts:
        raise ConfigError(f"backbone {name!r} has no cut points listed for partial fine-tuning",
                          fix=f"use one of: {', '.join(n for n, s in SPECS.items() if s.cuts)}")
    cut = cut or info.default_cut
    if cut not in info.cuts:
        raise ConfigError(f"{cut!r} is not a cut point of {name}",
                          fix=f"use one of: {', '.join(info.cuts)} (default {info.default_cut})")
    return cut


def cut_tensor(base: Any, name: str, cut: str | None) -> Any:
    """The tensor entering block ``cut`` of a built backbone: what the frozen part hands the trained part."""
    cut = resolve_cut(name, cut)
    for layer in base.layers:
        if layer.name == cut or layer.name.startswith(cut + "_"):
            return layer.input
    raise ConfigError(f"no layer of block {cut!r} in this {name} model", fix="rebuild it with backbones.build")


def unet_layers(name: str) -> tuple[str, tuple[str, ...]]:
    """(bottleneck, skips deepest first): the layer names a U-Net decoder taps in this backbone."""
    info = spec(name)
    if not info.skips:
        raise ConfigError(f"backbone {name!r} has no U-Net encoder layers listed",
                          fix=f"use one of: {', '.join(n for n, s in SPECS.items() if s.skips)}")
    return info.bottleneck, info.skips


def weights_file_names(name: str, rows: int) -> list[str]:
    """Acceptable file names, best first (MobileNetV2's convolutions do not depend on the input size)."""
    pattern = spec(name).weights_file
    if "{rows}" not in pattern:
        return [pattern]
    names = [pattern.format(rows=rows)] if rows in (96, 128, 160, 192, 224) else []
    return names + [pattern.format(rows=224)] * (rows != 224)


def weights_dirs() -> list[Path]:
    """Folders searched for Keras weight files, in order."""
    dirs = []
    if os.environ.get("KERAS_HOME"):
        dirs.append(Path(os.environ["KERAS_HOME"]) / "models")
    home = keras_home()
    if home is not None:
        dirs.append(Path(home) / "models")
    dirs.append(Path.home() / ".keras" / "models")
    return list(dict.fromkeys(dirs))


def find_imagenet_weights(name: str, rows: int = 224) -> Path | None:
    for folder in weights_dirs():
        for fname in weights_file_names(name, rows):
            if (folder / fname).is_file():
                return folder / fname
    return None


def _missing(name: str, rows: int, cause: str = "") -> WeightsError:
    fname = weights_file_names(name, rows)[0]
    where = ", ".join(portable(d) for d in weights_dirs())  # records keep it: no machine paths
    return WeightsError(
        f"ImageNet weights for {name} not found: {fname} is in none of {where}"
        + (f" ({cause})" if cause else ""),
        fix=f"run once with internet access so Keras downloads {fname} into $KERAS_HOME/models/, copy the "
            f"file there, or pass `-p weights=PATH` (a local weights file); random weights are never used silently")


def weights_id(name: str, weights: str | os.PathLike | None, rows: int = 224) -> str:
    """Short identity of the weights a model gets (for cache keys): file digest, or 'random'."""
    if weights is None:
        return "random"
    path = find_imagenet_weights(name, rows) if weights == "imagenet" else Path(weights)
    if path is None:
        return f"imagenet-keras-{name}"  # downloaded by Keras online: its name pins its content (hash-checked)
    return file_digest(path)[:16]


def build(name: str, input_shape: tuple[int, int, int] = (224, 224, 3),
          weights: str | os.PathLike | None = "imagenet", trainable: bool = False) -> Any:
    """Backbone without top: ``weights`` is "imagenet", ``None`` (explicit random init) or a file path."""
    import keras

    info = spec(name)
    constructor = getattr(keras.applications, info.constructor)
    kwargs = {"include_top": False, "input_shape": tuple(input_shape)}
    if name == "mobilenet_v2":
        kwargs["alpha"] = 1.0
    rows = int(input_shape[0] or info.default_size)  # None: any input size (crop-trained U-Nets)
    if weights == "imagenet":
        path = find_imagenet_weights(name, rows)
        if path is None:
            if os.environ.get("SKINBENCH_OFFLINE", "") not in ("", "0"):
                raise _missing(name, rows, "SKINBENCH_OFFLINE is set")
            try:  # online: let Keras download and hash-check its own file
                model = constructor(weights="imagenet", **kwargs)
            except Exception as err:  # noqa: BLE001 - any download failure is the same user problem
                raise _missing(name, rows, f"download failed: {type(err).__name__}") from err
            model.trainable = trainable
            return model
    elif weights is None:
        path = None
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError("weights file not found", path=path,
                               fix="pass the path of an existing Keras weights file (.h5 / .weights.h5)")
    model = constructor(weights=None, **kwargs)
    if path is not None:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.load_weights(str(path))
            partial = [str(w.message) for w in caught if "freshly-initialized" in str(w.message)
                       or "could not be loaded" in str(w.message)]
            if partial:  # a partial load would leave random layers: refuse it
                raise ValueError(partial[0])
        except Exception as err:  # noqa: BLE001 - wrong layers/shapes all mean "not this architecture"
            raise WeightsError(f"cannot load these weights into {name} ({type(err).__name__}: "
                               f"{str(err).splitlines()[0][:200]})", path=path,
                               fix=f"use a no-top weights file saved from keras.applications.{info.constructor}") from err
    model.trainable = trainable
    return model
