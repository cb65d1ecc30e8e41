"""Seeded synthetic dermoscopy: every task and approach runs in seconds with no download.

Each image is a skin-tone background with vignetting and texture, one lesion (a polar blob with a
known mask), sometimes globules (small dark dots) and streaks (thin radial lines at the border), each
with its own mask, and sometimes hairs. Three diagnoses drive the appearance:

* nevus (benign): lighter brown, round, smooth border, even colour, globules common;
* keratosis (benign): tan/yellowish, moderately irregular, light "milia" dots;
* melanoma (malignant): darker, irregular border, several colours (blue-grey, black), streaks common.

The class-conditional distributions overlap and 15% of lesions look like another diagnosis, so
colour/shape features and CNNs both learn the classes without a perfect score. About a fifth of the
lesions have two images (rotated, shifted, re-lit), which exercises the lesion-aware split.

The written layout is the generic one (:mod:`skinbench.data.generic`), so synthetic data is read
through the same code path as a user's own folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from skinbench.cache import atomic_write_bytes, make_key
from skinbench.data import generic
from skinbench.data.base import Dataset
from skinbench.data.splits import lesion_split
from skinbench.paths import cache_dir

#: bump when the generator changes, so cached folders are regenerated
GENERATOR_VERSION = 1
BINARY_CLASSES = ("benign", "malignant")
DX_CLASSES = ("nevus", "melanoma", "keratosis")
DX_TO_BINARY = {"nevus": "benign", "keratosis": "benign", "melanoma": "malignant"}
DX_PRIOR = (0.5, 0.3, 0.2)
TARGETS = ("lesion", "globules", "streaks")
TEST_SIZE = 0.25  # a larger held-out part than real data: synthetic sets are small
LOOK_ALIKE = 0.15  # fraction of lesions drawn with another diagnosis' appearance


@dataclass
class _Lesion:
    dx: str
    look: str  # diagnosis whose appearance is drawn
    radius: float  # fraction of min(w, h)
    aspect: float
    harmonics: np.ndarray  # (k, 2) amplitude, phase
    colour: np.ndarray  # RGB base colour
    patches: list  # [(rgb, strength)] extra colours (melanoma)
    globules: np.ndarray  # (n, 3) angle, radial position, radius px
    streaks: np.ndarray  # (n, 2) angle, length factor
    milia: int
    blur: float


def _draw_lesion(rng: np.random.Generator, dx: str) -> _Lesion:
    look = dx if rng.random() > LOOK_ALIKE else rng.choice([d for d in DX_CLASSES if d != dx])
    k = np.arange(2, 8)
    if look == "nevus":
        amp_scale, radius = rng.uniform(0.01, 0.06), rng.uniform(0.18, 0.34)
        colour = np.array([150, 100, 72]) * rng.uniform(0.8, 1.15)
        patches = []
        p_glob, p_streak, milia, blur = 0.45, 0.08, 0, rng.uniform(1.0, 2.0)
    elif look == "melanoma":
        amp_scale, radius = rng.uniform(0.04, 0.14), rng.uniform(0.22, 0.40)
        colour = np.array([105, 65, 48]) * rng.uniform(0.7, 1.15)
        patches = [(np.array([95, 100, 125]) * rng.uniform(0.8, 1.1), rng.uniform(0.2, 0.8))
                   for _ in range(rng.integers(0, 3))]
        if rng.random() < 0.5:
            patches.append((np.array([40, 30, 30]), rng.uniform(0.2, 0.6)))
        p_glob, p_streak, milia, blur = 0.35, 0.55, 0, rng.uniform(0.5, 1.5)
    else:  # keratosis
        amp_scale, radius = rng.uniform(0.03, 0.10), rng.uniform(0.20, 0.36)
        colour = np.array([165, 125, 88]) * rng.uniform(0.8, 1.1)
        patches = [(np.array([120, 90, 60]), rng.uniform(0.1, 0.4))]
        p_glob, p_streak, milia, blur = 0.10, 0.05, int(rng.integers(2, 9)), rng.uniform(0.8, 1.8)
    harmonics = np.stack([rng.uniform(0, amp_scale, len(k)) / np.sqrt(k - 1), rng.uniform(0, 2 * np.pi, len(k))], 1)
    n_glob = int(rng.integers(5, 18)) if rng.random() < p_glob else 0
    spread = (0.3, 0.9) if look == "nevus" else (0.1, 0.95)
    globules = np.stack([rng.uniform(0, 2 * np.pi, n_glob), rng.uniform(*spread, n_glob),
                         rng.uniform(1.0, 2.6, n_glob)], 1)
    n_streak = int(rng.integers(5, 16)) if rng.random() < p_streak else 0
    start = rng.uniform(0, 2 * np.pi)
    arc = rng.uniform(np.pi / 2, 2 * np.pi)  # streaks often cover only part of the border
    streaks = np.stack([start + rng.uniform(0, arc, n_streak), rng.uniform(0.15, 0.35, n_streak)], 1)
    return _Lesion(dx, str(look), radius, rng.uniform(0.7, 1.0), harmonics, colour, patches, globules,
                   streaks, milia, blur)


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int = 6) -> np.ndarray:
    """Low-frequency noise in [-1, 1] (random grid upsampled with bicubic interpolation)."""
    grid = rng.uniform(-1, 1, (max(2, cells * h // w), cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), -1, 1)


def _render(rng: np.random.Generator, lesion: _Lesion, w: int, h: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One RGB uint8 image and its boolean masks for a lesion (pose, light and hair drawn fresh)."""
    s = min(w, h)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # skin background with texture and vignetting
    tone = np.array([228, 172, 150]) * rng.uniform(0.85, 1.05) + rng.normal(0, 6, 3)
    img = np.broadcast_to(tone, (h, w, 3)).astype(np.float32).copy()
    img *= (1 + 0.06 * _smooth_noise(rng, w, h, 5))[..., None]
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    img *= (1 - rng.uniform(0.15, 0.45) * np.clip(r2 / 2, 0, 1) ** 1.5)[..., None]
    # lesion outline in polar form, rotated and shifted per image
    cx = w / 2 + rng.uniform(-0.08, 0.08) * w
    cy = h / 2 + rng.uniform(-0.08, 0.08) * h
    rot = rng.uniform(0, 2 * np.pi)
    theta = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    k = np.arange(2, 2 + len(lesion.harmonics))[:, None]
    rad = 1 + (lesion.harmonics[:, :1] * np.cos(k * theta + lesion.harmonics[:, 1:])).sum(0)
    r0 = lesion.radius * s * rng.uniform(0.93, 1.07)
    px = cx + r0 * rad * np.cos(theta + rot)
    py = cy + r0 * lesion.aspect * rad * np.sin(theta + rot)
    poly = np.stack([px, py], 1).round().astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [poly], 1)
    # lesion colour: base colour modulated by smooth noise plus patches of other colours
    col = np.broadcast_to(lesion.colour, (h, w, 3)).astype(np.float32).copy()
    col *= (1 + 0.12 * _smooth_noise(rng, w, h, 8))[..., None]
    for rgb, strength in lesion.patches:
        weight = np.clip(_smooth_noise(rng, w, h, 4) * 1.5 - 0.3, 0, 1) * strength
        col = col * (1 - weight[..., None]) + rgb * weight[..., None]
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), lesion.blur)[..., None] * rng.uniform(0.8, 0.95)
    img = img * (1 - alpha) + col * alpha
    # globules: small dark dots inside the lesion
    glob = np.zeros((h, w), np.uint8)
    dark = lesion.colour * 0.45
    for ang, pos, rr in lesion.globules:
        gx = cx + pos * r0 * np.cos(ang + rot)
        gy = cy + pos * r0 * lesion.aspect * np.sin(ang + rot)
        centre, radius = (int(round(gx)), int(round(gy))), max(1, int(round(rr * s / 96)))
        cv2.circle(glob, centre, radius, 1, -1)
    img[glob.astype(bool)] = img[glob.astype(bool)] * 0.35 + dark * 0.65
    # streaks: thin radial lines crossing the border
    streak = np.zeros((h, w), np.uint8)
    for ang, length in lesion.streaks:
        idx = int(((ang % (2 * np.pi)) / (2 * np.pi)) * len(theta)) % len(theta)
        bx, by = px[idx] - cx, py[idx] - cy
        p0 = (int(round(cx + bx * 0.85)), int(round(cy + by * 0.85)))
        p1 = (int(round(cx + bx * (1 + length))), int(round(cy + by * (1 + length))))
        cv2.line(streak, p0, p1, 1, 1)
    img[streak.astype(bool)] = img[streak.astype(bool)] * 0.3 + dark * 0.7
    # keratosis milia: light dots (no mask: they are not a target)
    for _ in range(lesion.milia):
        a, p = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.8)
        c = (int(cx + p * r0 * np.cos(a)), int(cy + p * r0 * lesion.aspect * np.sin(a)))
        cv2.circle(img, c, 1, (235, 225, 200), -1)
    # hair: dark curved lines over everything
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 7))):
            pts = rng.uniform([0, 0], [w, h], (3, 2))
            t = np.linspace(0, 1, 30)[:, None]
            curve = (1 - t) ** 2 * pts[0] + 2 * t * (1 - t) * pts[1] + t ** 2 * pts[2]
            cv2.polylines(img, [curve.round().astype(np.int32)], False, (45, 30, 25), 1, cv2.LINE_AA)
    img += rng.normal(0, 4, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, {"lesion": mask.astype(bool), "globules": glob.astype(bool),
                 "streaks": streak.astype(bool)}


def _png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def generate(folder: str | os.PathLike, n_images: int = 120, seed: int = 0,
             size: tuple[int, int] = (128, 96)) -> Path:
    """Write ``n_images`` synthetic images of ``size`` (width, height) in the generic layout into ``folder``.

    Deterministic for given arguments. ``labels.csv`` is written last (atomically): its presence marks
    a complete folder.
    """
    if n_images < 8:
        raise ValueError("n_images must be at least 8 (a stratified lesion-aware split needs several lesions)")
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(seed)
    rows = []
    n_lesion = 0
    while len(rows) < n_images:
        dx = str(rng.choice(DX_CLASSES, p=DX_PRIOR))
        lesion = _draw_lesion(rng, dx)
        copies = 2 if rng.random() < 0.12 and len(rows) + 2 <= n_images else 1
        for _ in range(copies):
            image_id = f"syn_{len(rows):05d}"
            img, masks = _render(rng, lesion, w, h)
            (folder / "images" / f"{image_id}.png").write_bytes(_png(cv2.cvtColor(img, cv2.COLOR_RGB2BGR)))
            for target in TARGETS:
                (folder / "masks" / f"{image_id}_{target}.png").write_bytes(_png(masks[target].astype(np.uint8) * 255))
            rows.append({"image_id": image_id, "label": DX_TO_BINARY[dx], "dx": dx,
                         "lesion_id": f"lesion_{n_lesion:05d}"})
        n_lesion += 1
    table = pd.DataFrame(rows)
    dx_index = table["dx"].map({d: i for i, d in enumerate(DX_CLASSES)}).to_numpy()
    table["split"] = lesion_split(dx_index, table["lesion_id"].to_numpy(), test_size=TEST_SIZE, seed=seed)
    params = {"n_images": n_images, "seed": seed, "size": list(size), "version": GENERATOR_VERSION}
    atomic_write_bytes(folder / "synthetic.json", json.dumps(params, indent=1).encode())
    atomic_write_bytes(folder / "labels.csv", table.to_csv(index=False).encode())
    return folder


def cached_folder(n_images: int = 120, seed: int = 0, size: tuple[int, int] = (128, 96)) -> Path:
    """The cache folder for these parameters, generated once (into a temp folder, then renamed)."""
    key = make_key("synthetic", n_images, seed, list(size), GENERATOR_VERSION)[:16]
    final = cache_dir() / "synthetic" / f"n{n_images}_s{seed}_{size[0]}x{size[1]}_{key}"
    if (final / "labels.csv").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        generate(tmp, n_images, seed, size)
        try:
            os.rename(tmp, final)
        except OSError:  # another process won the race (or a stale incomplete folder is there)
            if not (final / "labels.csv").is_file():
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def load(folder: str | os.PathLike | None = None, n_images: int = 120, seed: int = 0,
         size: tuple[int, int] = (128, 96), labels: str = "binary") -> Dataset:
    """The synthetic Dataset; ``labels`` "binary" (benign/malignant) or "dx" (nevus/melanoma/keratosis).

    ``folder=None`` generates into the cache once and reuses it. A ``folder`` that already holds a
    generated set is read as it is (the generation arguments are then ignored); an empty or new
    ``folder`` is generated into.
    """
    if labels not in ("binary", "dx"):
        raise ValueError(f"labels must be 'binary' or 'dx', got {labels!r}")
    if folder is None:
        folder = cached_folder(n_images, seed, tuple(size))
    elif not (Path(folder) / "labels.csv").is_file():
        generate(folder, n_images, seed, tuple(size))
    column, classes = ("label", BINARY_CLASSES) if labels == "binary" else ("dx", DX_CLASSES)
    return generic.load(folder, label_column=column, class_names=classes, targets=TARGETS, seed=seed,
                        name="synthetic")
