"""Reading images and masks with clear errors; the only place pixels enter skinbench.

Mask rule (one place, :func:`read_mask`):

1. Decode with the palette applied (PIL ``convert("L")``): a palette PNG shows what its palette says,
   so HAM10000's palette masks whose raw indices are inverted (index 0 = lesion, drawn white) come out
   right. RGB masks use their luminance.
2. Binarise: masks whose values are all 0/1 use ``> 0``; 8-bit masks use ``>= 128`` (JPEG-ish values
   near 0/255 are thresholded, not taken as foreground); 16-bit masks use half their maximum.
3. Inverted coding (lesion = 0) is detected when the *whole* image border is foreground but the mask
   is not full: then the mask is inverted. A full mask (lesion covering the image, e.g. HAM10000
   ISIC_0026042, ISIC_0029819) stays full; an empty mask stays empty. A lesion that touches part of
   the border is never inverted (real lesions cover up to ~92% of the border in HAM10000).
   Callers reading attribute masks (globules, streaks), where "border all set" is meaningless, pass
   ``fix_inverted=False``.
4. Mask size vs image size (:func:`fit_to`, :func:`check_mask_sizes`): a mask of its image's size is
   used as it is. A mask of another size whose aspect ratio (width / height) agrees with the image's
   within ``ASPECT_TOLERANCE`` (1%) is the official layout of some releases (HAM10000: 600x450 masks for
   the 200x150 images in ../shared/data) and is resized to the image with nearest neighbour. Any other
   size raises :class:`DataError` naming the mask, both sizes and the fix: such a mask cannot belong to
   that image, and scoring it on its own grid would silently score the wrong thing.

:func:`check_readable` checks many files cheaply (size, header, end marker) without decoding pixels:
the runner calls it on every listed image and mask of both splits before any fitting.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from skinbench.errors import DataError

Size = tuple[int, int]  # (width, height), as cv2.resize takes it
#: relative difference of width/height ratios up to which a mask of another size is resized (rule 4)
ASPECT_TOLERANCE = 0.01


def _check_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise DataError(f"{what} file is missing", path=path,
                        fix="put the file back (download the dataset again), or list only files that exist")
    if os.path.getsize(path) == 0:
        raise DataError(f"{what} file is empty (0 bytes)", path=path, fix="download this file again")


def jpeg_truncated(path: str) -> bool:
    """A JPEG without its end-of-image marker: cv2 would decode it silently with grey rows at the bottom."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return False
        fh.seek(max(0, os.path.getsize(path) - 64))
        return b"\xff\xd9" not in fh.read()


#: cv2 flags that decode at 1/2, 1/4, 1/8 of the size (a JPEG's DCT is scaled: far less time and memory)
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def _reduced_flag(path: str, size: Size) -> int:
    """The strongest reduced decode that still gives at least ``size`` pixels each way, else a full decode."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError):
        return cv2.IMREAD_COLOR  # cv2.imread below says what is wrong with the file
    return next((flag for k, flag in _REDUCED if w // k >= size[0] and h // k >= size[1]), cv2.IMREAD_COLOR)


def read_image(path: str | os.PathLike, size: Size | None = None, *, draft: bool = False) -> np.ndarray:
    """RGB uint8 (H, W, 3); grayscale and RGBA inputs are converted; ``size`` = (width, height).

    ``draft=True`` (with ``size``) may decode at 1/2-1/8 scale first: for pictures (overlay figures), never
    for pixels an approach or a metric reads, whose values would change slightly.
    Truncated files (including JPEGs that cv2 would half-decode) raise :class:`DataError`.
    """
    path = os.fspath(path)
    _check_file(path, "image")
    if jpeg_truncated(path):
        raise DataError("JPEG file is truncated (no end-of-image marker)", path=path,
                        fix="download this file again")
    img = cv2.imread(path, _reduced_flag(path, size) if draft and size is not None else cv2.IMREAD_COLOR)
    if img is None:
        raise DataError("not a readable image (truncated or not an image)", path=path,
                        fix="download this file again")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if size is not None and (img.shape[1], img.shape[0]) != tuple(size):
        img = cv2.resize(img, tuple(size), interpolation=cv2.INTER_AREA)
    return img


def image_size(path: str | os.PathLike) -> Size:
    """(width, height) from the file header, without decoding the pixels."""
    path = os.fspath(path)
    _check_file(path, "image")
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError):
        raise DataError("not a readable image (truncated or not an image)", path=path,
                        fix="download this file again") from None


def _decode_mask(path: str) -> np.ndarray:
    """Grey values with any palette applied (uint8, or uint16/int32 for 16-bit masks)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I"):
                return np.asarray(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA").convert("RGB")
            return np.asarray(im.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise DataError("not a readable mask image (truncated or not a PNG)", path=path,
                        fix="download this file again") from None


def binarise(grey: np.ndarray) -> np.ndarray:
    """0/1 masks: > 0; 8-bit: >= 128; wider types: >= half the maximum (rule 2 of the module doc)."""
    top = int(grey.max()) if grey.size else 0
    if top <= 1:
        return grey > 0
    if grey.dtype == np.uint8:
        return grey >= 128
    return grey >= top / 2


def looks_inverted(mask: np.ndarray) -> bool:
    """A lesion mask coded 0-for-lesion: the whole border is foreground but the mask is not full."""
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    return bool(border.all()) and not bool(mask.all())


def same_aspect(a: Size, b: Size, tolerance: float = ASPECT_TOLERANCE) -> bool:
    """Width/height ratios of two (width, height) sizes agree within ``tolerance`` (relative)."""
    ra, rb = a[0] / a[1], b[0] / b[1]
    return abs(ra - rb) <= tolerance * rb


MASK_SIZE_FIX = (f"use the mask made for this image: the same size as the image, or the same aspect ratio "
                 f"(within {ASPECT_TOLERANCE:.0%}), which is then resized to the image")


def read_mask(path: str | os.PathLike, size: Size | None = None, *, fix_inverted: bool = True,
              image_size: Size | None = None) -> np.ndarray:
    """Binary mask as bool (H, W), inverted coding fixed (see the module doc).

    ``image_size`` = (width, height) of the mask's image: a mask of another size with the same aspect
    is resized to it (nearest neighbour), a different aspect raises :class:`DataError`. ``size`` then
    resizes freely (e.g. to a network's square input), as :func:`read_image` does.
    """
    path = os.fspath(path)
    _check_file(path, "mask")
    mask = binarise(_decode_mask(path))
    if fix_inverted and looks_inverted(mask):
        mask = ~mask
    if image_size is not None:
        mask = fit_to(mask, tuple(image_size), path)
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        mask = cv2.resize(mask.astype(np.uint8), tuple(size), interpolation=cv2.INTER_NEAREST).astype(bool)
    return mask


def fit_to(mask: np.ndarray, size: Size, path: str = "mask") -> np.ndarray:
    """``mask`` at ``size`` (width, height): nearest-neighbour resize when the aspect agrees, else DataError."""
    have = (mask.shape[1], mask.shape[0])
    if have == tuple(size):
        return mask
    if not same_aspect(have, size):
        raise DataError(f"mask is {have[0]}x{have[1]} but its image is {size[0]}x{size[1]} (aspect ratios differ "
                        f"by more than {ASPECT_TOLERANCE:.0%}, so it cannot belong to this image)", path=path,
                        fix=MASK_SIZE_FIX)
    return cv2.resize(mask.astype(np.uint8), tuple(size), interpolation=cv2.INTER_NEAREST).astype(bool)


def mask_for_image(mask_path: str | os.PathLike, image_path: str | os.PathLike, *,
                   fix_inverted: bool = True) -> np.ndarray:
    """The truth mask at its image's own size ("" = no annotation: all background)."""
    w, h = image_size(image_path)
    if not os.fspath(mask_path):
        return np.zeros((h, w), dtype=bool)
    return read_mask(mask_path, fix_inverted=fix_inverted, image_size=(w, h))


# ------------------------------------------------------------------------------ cheap up-front checks
#: (path, size in bytes, mtime) -> (width, height) of files already checked in this process
_CHECKED: dict[tuple[str, int, int], Size] = {}
_PNG_END = b"IEND\xaeB`\x82"


def _header_problem(path: str, what: str) -> Size | tuple[str, str]:
    """(width, height) of a readable file, else (message, fix): size, header and end marker only."""
    try:
        st = os.stat(path)
    except OSError:
        return (f"{what} file is missing", "put the file back (download the dataset again), or list only "
                "files that exist")
    key = (path, st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return _CHECKED[key]
    if not os.path.isfile(path):
        return (f"{what} path is not a file", "point the CSV at image files")
    if st.st_size == 0:
        return (f"{what} file is empty (0 bytes)", "download this file again")
    try:
        with Image.open(path) as im:
            size, fmt = im.size, im.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return (f"not a readable {what} (truncated or not an image)", "download this file again")
    if size[0] <= 0 or size[1] <= 0:
        return (f"{what} has no pixels ({size[0]}x{size[1]})", "download this file again")
    if fmt == "JPEG" and jpeg_truncated(path):
        return ("JPEG file is truncated (no end-of-image marker)", "download this file again")
    if fmt == "PNG":
        with open(path, "rb") as fh:
            fh.seek(max(0, st.st_size - 64))
            if _PNG_END not in fh.read():
                return ("PNG file is truncated (no IEND chunk)", "download this file again")
    _CHECKED[key] = size
    return size


def readable_files(paths, what: str = "image", desc: str | None = None
                   ) -> tuple[dict[str, Size], dict[str, tuple[str, str]]]:
    """:func:`check_readable`'s pass without raising: ``({path: (width, height)}`` of the readable files,
    ``{path: (message, fix)}`` of the others), for a report that lists every bad file (``data verify``)."""
    from skinbench.progress import progress

    sizes: dict[str, Size] = {}
    bad: dict[str, tuple[str, str]] = {}
    for p in progress([os.fspath(p) for p in paths], desc=desc or f"checking {what} files", unit="file"):
        got = _header_problem(p, what)
        if isinstance(got, tuple) and isinstance(got[0], str):
            bad[p] = (got[0], str(got[1]))
        else:
            sizes[p] = got  # type: ignore[assignment]
    return sizes, bad


def check_readable(paths, what: str = "image", desc: str | None = None) -> dict[str, Size]:
    """Check every file of ``paths`` cheaply (exists, not empty, a readable header, not truncated) and
    return ``{path: (width, height)}``; raise one :class:`DataError` naming the first bad file and how
    many others are bad. About 0.1-0.3 ms a file (HAM10000's 10015 images: 1-2 s); results are
    remembered per process, so a second check of an unchanged file is free."""
    sizes, bad = readable_files(paths, what, desc)
    if bad:
        (path, (message, fix)), rest = next(iter(bad.items())), list(bad)[1:]
        if rest:
            others = ", ".join(os.path.basename(b) for b in rest[:3])
            message += f" (and {len(rest)} more bad {what} file(s): {others}{', ...' if len(rest) > 3 else ''})"
        raise DataError(message, path=path, fix=fix)
    return sizes


def check_mask_sizes(pairs, sizes: dict[str, Size]) -> None:
    """Rule 4 for ``(image_path, mask_path)`` pairs, from header sizes (``sizes``: :func:`check_readable`'s
    result for both): a mask of another aspect ratio than its image raises :class:`DataError` naming it."""
    bad = []
    for image, mask in pairs:
        have, want = sizes[os.fspath(mask)], sizes[os.fspath(image)]
        if have != want and not same_aspect(have, want):
            bad.append((os.fspath(mask), have, os.fspath(image), want))
    if bad:
        mask, have, image, want = bad[0]
        more = f" ({len(bad) - 1} more mask(s) do not fit their image)" if len(bad) > 1 else ""
        raise DataError(f"mask is {have[0]}x{have[1]} but its image {os.path.basename(image)} is {want[0]}x{want[1]} "
                        f"(aspect ratios differ by more than {ASPECT_TOLERANCE:.0%}, so it cannot belong to this "
                        f"image){more}", path=mask, fix=MASK_SIZE_FIX)
