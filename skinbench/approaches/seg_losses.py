"""Segmentation losses, written with ``keras.ops`` so they run on any Keras backend.

Overlap losses (Dice, Jaccard, Tversky) are pooled over the whole batch, not averaged per image:
an image without any globule has no defined per-image Dice, and pooling is how the challenges scored
rare attributes. Cross-entropy variants exist because rare features (streaks < 1 % of pixels) make an
unweighted BCE happy with all-background; ``wbce``, ``focal`` and ``tversky`` push recall up.
"""

from __future__ import annotations

from typing import Callable

from keras import ops

from skinbench.errors import ConfigError

Loss = Callable[[object, object], object]
_EPS = 1e-7


def _flat(y_true, y_pred):
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    return y_true, ops.clip(y_pred, _EPS, 1.0 - _EPS)


def dice_loss(smooth: float = 1.0) -> Loss:
    """1 - soft Dice; 0 for a perfect prediction."""
    def dice(y_true, y_pred):
        t, p = _flat(y_true, y_pred)
        inter = ops.sum(t * p)
        return 1.0 - (2.0 * inter + smooth) / (ops.sum(t) + ops.sum(p) + smooth)
    return dice


def jaccard_loss(smooth: float = 1.0) -> Loss:
    """1 - soft Jaccard (IoU)."""
    def jaccard(y_true, y_pred):
        t, p = _flat(y_true, y_pred)
        inter = ops.sum(t * p)
        return 1.0 - (inter + smooth) / (ops.sum(t) + ops.sum(p) - inter + smooth)
    return jaccard


def tversky_loss(alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0) -> Loss:
    """1 - Tversky index; ``beta`` > ``alpha`` penalises missed foreground more than false alarms."""
    def tversky(y_true, y_pred):
        t, p = _flat(y_true, y_pred)
        tp = ops.sum(t * p)
        fp = ops.sum((1.0 - t) * p)
        fn = ops.sum(t * (1.0 - p))
        return 1.0 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    return tversky


def bce_loss() -> Loss:
    def bce(y_true, y_pred):
        t, p = _flat(y_true, y_pred)
        return -ops.mean(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
    return bce


def weighted_bce_loss(pos_weight: float = 10.0) -> Loss:
    """BCE with foreground pixels weighted ``pos_weight`` times (the reference's weighted cross-entropy)."""
    def wbce(y_true, y_pred):
        t, p = _flat(y_true, y_pred)
        return -ops.mean(pos_weight * t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
    return wbce


def focal_loss(gamma: float = 2.0, alpha: float = 0.75) -> Loss:
    """Binary focal loss (Lin et al. 2017): easy background pixels stop dominating the gradient."""
    def focal(y_true, y_pred):
        t, p = _flat(y_true, y_pred)
        p_t = t * p + (1.0 - t) * (1.0 - p)
        a_t = t * alpha + (1.0 - t) * (1.0 - alpha)
        return ops.mean(-a_t * ops.power(1.0 - p_t, gamma) * ops.log(p_t))
    return focal


def bce_dice_loss(smooth: float = 1.0) -> Loss:
    """BCE + Dice: the usual default for lesion masks (stable gradients and an overlap term)."""
    bce, dice = bce_loss(), dice_loss(smooth)

    def bce_dice(y_true, y_pred):
        return bce(y_true, y_pred) + dice(y_true, y_pred)
    return bce_dice


def focal_tversky_loss(alpha: float = 0.3, beta: float = 0.7, gamma: float = 0.75) -> Loss:
    """Tversky loss raised to ``gamma`` (< 1 boosts the gradient near good solutions)."""
    tv = tversky_loss(alpha, beta)

    def focal_tversky(y_true, y_pred):
        return ops.power(ops.maximum(tv(y_true, y_pred), _EPS), gamma)
    return focal_tversky


def weighted_categorical_crossentropy(class_weights) -> Loss:
    """Categorical cross-entropy with each sample weighted by its true class (Y-Net's classifier head)."""
    w = ops.convert_to_tensor(list(map(float, class_weights)), dtype="float32")

    def weighted_cce(y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        p = ops.clip(ops.cast(y_pred, "float32"), _EPS, 1.0)
        per_sample = -ops.sum(y_true * ops.log(p), axis=-1)
        return ops.mean(per_sample * ops.sum(y_true * w, axis=-1))
    return weighted_cce


LOSSES: dict[str, Callable[..., Loss]] = {
    "dice": dice_loss,
    "jaccard": jaccard_loss,
    "bce": bce_loss,
    "wbce": weighted_bce_loss,
    "focal": focal_loss,
    "tversky": tversky_loss,
    "focal_tversky": focal_tversky_loss,
    "bce_dice": bce_dice_loss,
}


def get_loss(name: str, **kwargs) -> Loss:
    """The loss called ``name`` (see :data:`LOSSES`), built with ``kwargs``."""
    try:
        factory = LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown segmentation loss {name!r}", fix=f"use one of: {', '.join(LOSSES)}") from None
    return factory(**kwargs)


def per_output(loss: Loss) -> Loss:
    """``loss`` on each output channel separately, averaged: a rare attribute's Dice term then weighs as
    much as a common one's (one Dice over all channels would be ruled by pigment network)."""
    def averaged(y_true, y_pred):
        k = y_pred.shape[-1]
        return ops.mean(ops.stack([loss(y_true[..., j:j + 1], y_pred[..., j:j + 1]) for j in range(k)]))
    averaged.__name__ = f"{getattr(loss, '__name__', 'loss')}_per_output"
    return averaged


def soft_jaccard_metric(y_true, y_pred):
    """Hard Jaccard at 0.5 pooled over the batch, as a Keras metric for progress bars."""
    t, p = _flat(y_true, y_pred)
    p = ops.cast(p >= 0.5, "float32")
    t = ops.cast(t >= 0.5, "float32")
    inter = ops.sum(t * p)
    return (inter + 1.0) / (ops.sum(t) + ops.sum(p) - inter + 1.0)


__all__ = ["LOSSES", "get_loss", "per_output", "weighted_categorical_crossentropy", "soft_jaccard_metric"]
