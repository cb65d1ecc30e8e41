"""Reading images and masks with clear errors; the only place pixels enter skinbench."""

from __future__ import annotations

import os

import cv2
import numpy as np

from skinbench.errors import DataError

Size = tuple[int, int]  # (width, height), as cv2.resize takes it


def read_image(path: str | os.PathLike, size: Size | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3); grayscale and RGBA inputs are converted; ``size`` = (width, height)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError("image file is missing", path=path, fix="download the dataset again or fix the CSV")
    if os.path.getsize(path) == 0:
        raise DataError("image file is empty (0 bytes)", path=path, fix="download this file again")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise DataError("not a readable image (truncated or not an image)", path=path,
                        fix="download this file again")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if size is not None and (img.shape[1], img.shape[0]) != tuple(size):
        img = cv2.resize(img, tuple(size), interpolation=cv2.INTER_AREA)
    return img


def read_mask(path: str | os.PathLike, size: Size | None = None, *, fix_inverted: bool = True) -> np.ndarray:
    """Binary mask as bool (H, W); "" means no mask (returns None). Inverted masks are detected and fixed."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError("mask file is missing", path=path, fix="download the masks again or fix the CSV")
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError("not a readable mask image", path=path, fix="download this file again")
    if raw.ndim == 3:
        raw = raw[..., :3].max(axis=2)
    mask = raw > (raw.max() / 2 if raw.max() > 0 else 0)
    if fix_inverted and looks_inverted(mask):
        mask = ~mask
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        mask = cv2.resize(mask.astype(np.uint8), tuple(size), interpolation=cv2.INTER_NEAREST).astype(bool)
    return mask


def looks_inverted(mask: np.ndarray) -> bool:
    """A lesion mask coded 0-for-lesion: the whole border is foreground but the mask is not full."""
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    return bool(border.all()) and not bool(mask.all())


def image_size(path: str | os.PathLike) -> Size:
    """(width, height) from the file header only, without decoding pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise DataError("image file is missing", path=path, fix="download the dataset again or fix the CSV") from None
    except Exception:
        raise DataError("not a readable image (truncated or not an image)", path=path,
                        fix="download this file again") from None
