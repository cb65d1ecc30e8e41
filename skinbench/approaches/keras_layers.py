"""Keras layers of skinbench's own that saved models name, registered so that a saved model loads back.

A ``keras.layers.Lambda`` around a function is saved by the function's bare name and cannot be found
again when the model is loaded: a fitted estimator holding such a model pickled, but did not unpickle,
and the cross-dataset model store refitted it (a 458 s retrain for a prediction). The layers here are
saved by their registered name (``skinbench>...``) and their arguments instead.

Importing this module imports Keras (model-building code imports it lazily). A pickled estimator holding
Keras models (:class:`skinbench.approaches.base.KerasPickleMixin`) keeps them uncompiled
(:func:`picklable_state`: a compiled model is saved with its loss, which for the segmenters is a closure
that Keras cannot find again, and its optimizer state, which prediction does not need) and unpickles
through :func:`rebuild`: a pickle names the rebuilding function, and so imports this module and registers
the layers, before the state holding the models is read.
"""

from __future__ import annotations

from typing import Any

import keras

from skinbench.approaches import backbones


@keras.saving.register_keras_serializable(package="skinbench")
class BackbonePreprocess(keras.layers.Layer):
    """The backbone's own ``preprocess_input`` (float RGB 0..255 in, the scaling its weights expect out).

    The very function the former ``Lambda`` layer called, on the same tensor (bit-identical outputs: no
    re-derived ``x * (1 / 127.5) - 1``), but saved as the backbone's name."""

    def __init__(self, backbone: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.backbone = backbone
        self._fn = backbones.preprocess_fn(backbone)  # ConfigError for an unknown backbone

    def call(self, inputs: Any) -> Any:
        return self._fn(inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "backbone": self.backbone}


def uncompiled(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with the same layers' configuration and weights, not compiled: what predicts."""
    # from_config builds the architecture alone (clone_model would also compile it, with the same loss)
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def picklable_state(state: dict[str, Any]) -> dict[str, Any]:
    """An estimator's ``__getstate__`` with each compiled Keras model replaced by :func:`uncompiled`."""
    return {k: uncompiled(v) if isinstance(v, keras.Model) and getattr(v, "compiled", False) else v
            for k, v in state.items()}


def rebuild(cls: type, state: dict[str, Any]) -> Any:
    """An estimator of ``cls`` with ``state`` (its ``__getstate__``): the unpickling side of
    :class:`KerasPickleMixin`, reached after this module registered its layers."""
    obj = cls.__new__(cls)
    obj.__setstate__(state)
    return obj
