"""Exact and near-duplicate images within a dataset and across its train/test split.

Why: a test image that is (nearly) a training image inflates every score; images of one lesion are
kept on one side by lesion ids, but a copy filed under another id is not. This finds both kinds:

* **exact**: same file bytes (sha256 of the file) or, failing that, the same decoded pixels (sha256 of
  the RGB array and its shape: the same picture saved twice as PNG, or re-saved without change).
  Reported with ``distance`` 0, ``similarity`` 1 and ``kind`` "exact-file" / "exact-pixels".
* **near**: the pHash gate (1) and one of the two similarity tests (2) or (3) (``kind`` "near",
  ``distance`` = Hamming bits, ``similarity`` = detail correlation, ``structure`` = structure correlation):

  1. the 64-bit DCT perceptual hashes (pHash) differ in at most ``NEAR_THRESHOLD`` = 10 of 64 bits.
     pHash: grey image resized to 32x32 with area averaging, 2-D DCT-II, the 8x8 lowest frequencies
     (DC included), each bit = coefficient > their median (the ``imagehash.phash`` recipe). Unless
     coefficients tie at the median 32 bits are set, so distances are even.
  2. the *detail correlation* is at least ``DETAIL_THRESHOLD`` = 0.85: Pearson correlation of the
     high-pass grey thumbnails (central 70% of the image, the dermoscope's dark vignette left out;
     32x32 area-averaged; minus a Gaussian blur of sigma 1.5 px).

  Why two: dermoscopy images share one layout (a dark blob centred on skin), so pHash alone matches
  different lesions all the time: in HAM10000, 1673 pairs are within 6 bits and 17720 within 10,
  nearly all of different lesions (a sample checked by eye). The detail test separates them: over all HAM10000
  pairs within 12 bits, different-lesion pairs reach at most 0.81 except one real copy (0.99), while
  re-encoded (JPEG q75), half-size, JPEG q50 + half-size and colour-shifted copies of 150 images per
  dataset score >= 0.95 and stay within 6 bits. A JPEG q30 copy at a third of the size of a 200x150
  image is the limit (98% found). Rotated, flipped and re-framed photos are not matched.
  3. the *structure correlation* is at least ``STRUCTURE_THRESHOLD`` = 0.94: the best Pearson
     correlation, over shifts of up to +-3 px, of band-pass maps (Gaussian sigma 1 minus sigma 4) of the
     histogram-equalised 32x32 grey centre (:func:`structure_map`). Why: the ISIC 2018 release re-issues
     ISIC 2016 images with colour balance, contrast and framing re-processed; their detail correlation
     falls to 0.31-0.83 (the task3 training copies of test images ISIC_0000165, 0000201, 0000226 and
     0000227 were missed), their structure correlation is 0.94-0.99. Measured (``python
     benchmarks/duplicates_report.py``): all four of those pairs found; on ISIC 2018 Task 2 (2594 images)
     it adds 17 pairs, every one a re-processed copy (checked by eye), and misses two more (training /
     training, 0.928 and 0.935); on HAM10000 it adds 69 pairs, 67 of one lesion id and 2 copies filed
     under two lesion ids (same patient, age and site; checked by eye), none crossing the split. The
     margin is thin: the closest different lesions seen score 0.93 (ISIC 2016) and 0.935 (HAM10000).

A pair also records both images' split and lesion id: ``crosses_split`` (one in train, one in test:
a leak) and ``same_lesion`` (expected in HAM10000, where one lesion has several photos and the
lesion-aware split keeps them on one side; re-takes of one lesion seconds apart appear as "near").
Cost: decoding dominates (about 1 ms per 200x150 HAM10000 image, 2-5 ms per ISIC 2016 image of
short side 384); the pair search is a blocked XOR/popcount (under 1 s for 10k images).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd

from skinbench.cache import file_digest
from skinbench.data.images import read_image
from skinbench.progress import progress as progress_bar

__all__ = [
    "NEAR_THRESHOLD",
    "DETAIL_THRESHOLD",
    "Fingerprint",
    "DuplicatePair",
    "phash",
    "detail_vector",
    "STRUCTURE_THRESHOLD",
    "structure_map",
    "structure_similarity",
    "hamming",
    "fingerprint",
    "fingerprints",
    "find_duplicates",
    "dataset_duplicates",
    "pairs_frame",
    "PAIR_COLUMNS",
]

NEAR_THRESHOLD = 10
DETAIL_THRESHOLD = 0.85
STRUCTURE_THRESHOLD = 0.94
#: version of these rules: a report or manifest made with other rules lists other pairs
RULES_VERSION = 2
_DCT_SIZE = 32
_HASH_SIZE = 8
_DETAIL_SIZE = 32
_DETAIL_SIGMA = 1.5
_DETAIL_CROP = 0.15  # fraction cut from each side before the detail thumbnail
_STRUCTURE_SIZE = 32
_STRUCTURE_SIGMAS = (1.0, 4.0)  # band-pass: fine noise and JPEG detail out, lesion shape and texture kept
_STRUCTURE_SHIFT = 3  # +-3 px of 32 (about +-5% of the central crop): re-framed copies
_PAIR_BLOCK = 4096  # candidate pairs scored at once by the shifted structure correlation
_BLOCK = 512  # rows of the pairwise Hamming matrix computed at once (512 x n uint64)


def _grey(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3].astype(np.uint8, copy=False), cv2.COLOR_RGB2GRAY)
    return img.astype(np.float32)


def phash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash of an RGB or grey uint8 image (recipe in the module doc)."""
    small = cv2.resize(_grey(image), (_DCT_SIZE, _DCT_SIZE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:_HASH_SIZE, :_HASH_SIZE]
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def detail_vector(image: np.ndarray) -> np.ndarray:
    """Unit-norm, zero-mean float32 (1024,) high-pass thumbnail; the dot product of two is the detail
    correlation (all zeros for a flat image, which then correlates with nothing)."""
    g = _grey(image)
    h, w = g.shape
    dy, dx = int(round(h * _DETAIL_CROP)), int(round(w * _DETAIL_CROP))
    core = g[dy:h - dy, dx:w - dx] if h - 2 * dy > 0 and w - 2 * dx > 0 else g
    t = cv2.resize(core, (_DETAIL_SIZE, _DETAIL_SIZE), interpolation=cv2.INTER_AREA)
    d = (t - cv2.GaussianBlur(t, (0, 0), _DETAIL_SIGMA)).ravel()
    d -= d.mean()
    norm = float(np.linalg.norm(d))
    return (d / norm if norm > 1e-6 else np.zeros_like(d)).astype(np.float32)


def structure_map(image: np.ndarray) -> np.ndarray:
    """float32 (32, 32) band-pass map of the histogram-equalised grey centre (the detail test's crop).

    Why: ISIC re-releases hold copies whose colour balance, contrast and brightness were re-processed
    (and the frame cropped by a few pixels). Histogram equalisation maps any monotone change of grey
    levels to the same ranks, and the band-pass (Gaussian sigma 1 minus sigma 4 px at 32 px) keeps the
    lesion's shape and coarse texture while dropping the fine detail that re-processing and JPEG change."""
    g = _grey(image)
    h, w = g.shape
    dy, dx = int(round(h * _DETAIL_CROP)), int(round(w * _DETAIL_CROP))
    core = g[dy:h - dy, dx:w - dx] if h - 2 * dy > 0 and w - 2 * dx > 0 else g
    eq = cv2.equalizeHist(np.clip(core, 0, 255).astype(np.uint8)).astype(np.float32)
    t = cv2.resize(eq, (_STRUCTURE_SIZE, _STRUCTURE_SIZE), interpolation=cv2.INTER_AREA)
    lo, hi = _STRUCTURE_SIGMAS
    band = (cv2.GaussianBlur(t, (0, 0), lo) - cv2.GaussianBlur(t, (0, 0), hi)).astype(np.float32)
    return band if float(np.abs(band).max()) > 1e-2 else np.zeros_like(band)  # flat: rounding noise only


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float32)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def structure_similarity(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """Per pair (rows of two (n, 32, 32) stacks): the best Pearson correlation of ``a``'s centre with
    ``b`` shifted by up to +-3 px either way (a flat map correlates with nothing: 0)."""
    maps_a, maps_b = np.asarray(maps_a, np.float32), np.asarray(maps_b, np.float32)
    s, k = _STRUCTURE_SIZE, _STRUCTURE_SHIFT
    best = np.full(len(maps_a), -1.0, dtype=np.float32)
    centre = _unit_rows(maps_a[:, k:s - k, k:s - k])
    for sy in range(-k, k + 1):
        for sx in range(-k, k + 1):
            moved = _unit_rows(maps_b[:, k + sy:s - k + sy, k + sx:s - k + sx])
            best = np.maximum(best, np.einsum("ij,ij->i", centre, moved))
    return best


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (numpy >= 2 has ``bitwise_count``; a byte table otherwise)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.uint8)
    x = np.ascontiguousarray(x, dtype=np.uint64)
    return _POPCOUNT8[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1, dtype=np.uint8)


def hamming(a: int, b: int) -> int:
    """Bits in which two 64-bit hashes differ."""
    return int(_popcount(np.array([np.uint64(a) ^ np.uint64(b)]))[0])


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """What duplicate search needs of one image file (about 4 KB)."""

    file_sha256: str
    pixel_sha256: str
    phash: int
    detail: np.ndarray = field(repr=False)
    width: int = 0
    height: int = 0
    #: :func:`structure_map` (None: not computed, the structure test is skipped for this image)
    structure: np.ndarray | None = field(default=None, repr=False)


def fingerprint(path: str | os.PathLike) -> Fingerprint:
    """Fingerprint of one image file (decoded with ``read_image``, so unreadable files raise DataError)."""
    img = read_image(path)
    pixels = hashlib.sha256(f"{img.shape}".encode() + img.tobytes()).hexdigest()
    return Fingerprint(file_digest(path), pixels, phash(img), detail_vector(img), img.shape[1], img.shape[0],
                       structure=structure_map(img))


def fingerprints(paths: Sequence[str], progress: bool = False, desc: str = "fingerprints") -> list[Fingerprint]:
    """``fingerprint`` of every path, in order (``progress``: the project's progress display)."""
    items = progress_bar(list(paths), desc=desc, unit="image") if progress else paths
    return [fingerprint(p) for p in items]


@dataclass(frozen=True)
class DuplicatePair:
    """Two images found to be copies; ``id_a`` sorts before ``id_b``."""

    id_a: str
    id_b: str
    kind: str  # "exact-file" | "exact-pixels" | "near"
    distance: int  # pHash Hamming distance in bits (0 for exact copies)
    similarity: float  # detail correlation (1.0 for exact copies)
    split_a: str = ""
    split_b: str = ""
    lesion_a: str = ""
    lesion_b: str = ""
    structure: float = 1.0  # shifted structure correlation (1.0 for exact copies)

    @property
    def crosses_split(self) -> bool:
        """One image in train, the other in test."""
        return bool(self.split_a and self.split_b and self.split_a != self.split_b)

    @property
    def same_lesion(self) -> bool:
        return bool(self.lesion_a and self.lesion_a == self.lesion_b)


def _candidates(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs i < j with popcount(hash_i ^ hash_j) <= threshold, and their distances."""
    found_i, found_j, found_d = [], [], []
    for start in range(0, hashes.size, _BLOCK):
        dist = _popcount(hashes[start:start + _BLOCK, None] ^ hashes[None, :])
        ii, jj = np.nonzero(dist <= threshold)
        ii = ii + start
        keep = ii < jj
        found_i.append(ii[keep])
        found_j.append(jj[keep])
        found_d.append(dist[ii[keep] - start, jj[keep]].astype(np.int64))
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)


def _pair_structure(prints: Sequence[Fingerprint], ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
    """:func:`structure_similarity` of the candidate pairs (0 where an image has no structure map)."""
    out = np.zeros(ii.size, dtype=np.float32)
    have = np.array([fp.structure is not None for fp in prints])
    keep = np.nonzero(have[ii] & have[jj])[0]
    if not keep.size:
        return out
    maps = np.stack([fp.structure if fp.structure is not None else np.zeros((_STRUCTURE_SIZE,) * 2, np.float32)
                     for fp in prints])
    for start in range(0, keep.size, _PAIR_BLOCK):
        sel = keep[start:start + _PAIR_BLOCK]
        out[sel] = structure_similarity(maps[ii[sel]], maps[jj[sel]])
    return out


def find_duplicates(
    ids: Sequence[str],
    prints: Sequence[Fingerprint],
    splits: Sequence[str] | None = None,
    lesions: Sequence[str] | None = None,
    *,
    threshold: int = NEAR_THRESHOLD,
    min_similarity: float = DETAIL_THRESHOLD,
    min_structure: float = STRUCTURE_THRESHOLD,
) -> list[DuplicatePair]:
    """Every duplicate pair among the images (one row per pair, the strongest kind wins), sorted by
    kind (exact first), distance, ids. ``threshold`` < 0 turns the near search off; a near pair needs the
    pHash gate and either the detail correlation (``min_similarity``) or the structure correlation
    (``min_structure``; > 1 turns that test off)."""
    ids = [str(i) for i in ids]
    n = len(ids)
    if len(prints) != n:
        raise ValueError(f"{len(prints)} fingerprints for {n} ids")
    splits = [str(s) for s in splits] if splits is not None else [""] * n
    lesions = [str(s) for s in lesions] if lesions is not None else [""] * n
    rank = {"exact-file": 0, "exact-pixels": 1, "near": 2}
    best: dict[tuple[int, int], tuple[str, int, float, float]] = {}
    for attr, kind in (("file_sha256", "exact-file"), ("pixel_sha256", "exact-pixels")):
        by: dict[str, list[int]] = {}
        for i, fp in enumerate(prints):
            by.setdefault(getattr(fp, attr), []).append(i)
        for members in by.values():
            for a, i in enumerate(members):
                for j in members[a + 1:]:
                    best.setdefault((i, j), (kind, 0, 1.0, 1.0))
    if threshold >= 0 and n > 1:
        hashes = np.array([fp.phash for fp in prints], dtype=np.uint64)
        ii, jj, dd = _candidates(hashes, threshold)
        if ii.size:
            details = np.stack([fp.detail for fp in prints])
            sim = np.einsum("ij,ij->i", details[ii], details[jj])
            struct = _pair_structure(prints, ii, jj)
            for i, j, d, s, t in zip(ii.tolist(), jj.tolist(), dd.tolist(), sim.tolist(), struct.tolist()):
                if s >= min_similarity or t >= min_structure:
                    best.setdefault((i, j), ("near", d, round(s, 4), round(t, 4)))
    pairs = []
    for (i, j), (kind, dist, sim, struct) in best.items():
        a, b = (i, j) if ids[i] <= ids[j] else (j, i)
        pairs.append(DuplicatePair(ids[a], ids[b], kind, dist, sim, splits[a], splits[b], lesions[a], lesions[b],
                                   struct))
    return sorted(pairs, key=lambda p: (rank[p.kind], p.distance, p.id_a, p.id_b))


def dataset_duplicates(dataset, *, threshold: int = NEAR_THRESHOLD, min_similarity: float = DETAIL_THRESHOLD,
                       min_structure: float = STRUCTURE_THRESHOLD, progress: bool = False) -> list[DuplicatePair]:
    """``find_duplicates`` over a ``Dataset``'s images with its split and lesion ids."""
    fr = dataset.frame
    prints = fingerprints(fr["image"].tolist(), progress=progress, desc=f"duplicates {dataset.name}")
    return find_duplicates(fr["image_id"].tolist(), prints, fr["split"].tolist(), fr["lesion_id"].tolist(),
                           threshold=threshold, min_similarity=min_similarity, min_structure=min_structure)


PAIR_COLUMNS = ("dataset", "id_a", "id_b", "kind", "distance", "similarity", "structure", "split_a", "split_b",
                "lesion_a", "lesion_b", "crosses_split", "same_lesion")


def pairs_frame(pairs: Sequence[DuplicatePair], dataset: str = "") -> pd.DataFrame:
    """One row per pair, with ``crosses_split`` and ``same_lesion`` columns (for CSV reports)."""
    rows = [{"dataset": dataset, "id_a": p.id_a, "id_b": p.id_b, "kind": p.kind, "distance": p.distance,
             "similarity": p.similarity, "structure": p.structure, "split_a": p.split_a, "split_b": p.split_b,
             "lesion_a": p.lesion_a, "lesion_b": p.lesion_b, "crosses_split": p.crosses_split,
             "same_lesion": p.same_lesion}
            for p in pairs]
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
