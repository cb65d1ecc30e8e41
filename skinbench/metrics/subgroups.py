"""Per-subgroup scores (sex, age band, body site, diagnosis confirmation) with bootstrap CIs.

Why: a model can be good on average and poor for one group (older patients, acral sites, lesions
confirmed by follow-up rather than histology). Small subgroups give noise, not findings, so any
subgroup with fewer than ``min_size`` images (default ``MIN_SIZE`` = 30) is reported as "too few"
with value None instead of a number. The gap is between the best and the worst *reported* subgroup.

A metric is given the same way ``bootstrap.bootstrap_ci_batch`` takes one: ``batch_fn(weights (B, n))
-> {name: (B,) array}`` over *all* n images (e.g. ``partial(classification_scores_batch, y, proba)``);
a subgroup is scored by giving its images weight 1 (or their bootstrap counts) and the rest 0, so
one metric definition serves the whole set and every subgroup. A plain ``score_fn(indices) -> dict``
(``bootstrap_ci`` style) works too, slower. CIs resample images within the subgroup; with the same
seed every subgroup's resamples are those ``bootstrap_ci`` would draw for a set of its size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from skinbench.errors import DataError
from skinbench.metrics.bootstrap import bootstrap_ci, bootstrap_ci_batch

__all__ = [
    "MIN_SIZE",
    "UNKNOWN",
    "AGE_BANDS",
    "HAM10000_FIELDS",
    "age_band",
    "age_bands",
    "group_labels",
    "subgroup_scores",
    "load_ham10000_metadata",
]

MIN_SIZE = 30
UNKNOWN = "unknown"
#: (label, lowest age, highest age exclusive); HAM10000 ages are multiples of 5 from 0 to 85
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<30", -math.inf, 30), ("30-44", 30, 45), ("45-59", 45, 60), ("60-74", 60, 75), ("75+", 75, math.inf),
)
AGE_BAND_ORDER = tuple(b[0] for b in AGE_BANDS) + (UNKNOWN,)
HAM10000_FIELDS = ("sex", "age", "localization", "dx_type")


def age_band(age) -> str:
    """The ``AGE_BANDS`` label of one age in years; missing or non-numeric ages are ``"unknown"``.

    Bands are 15 years wide in the middle, where most HAM10000 patients are (median 50), with open
    ends below 30 and from 75 (ages 0..25 and 75..85 are sparse).
    """
    try:
        a = float(age)
    except (TypeError, ValueError):
        return UNKNOWN
    if not math.isfinite(a) or a < 0:
        return UNKNOWN
    return next(label for label, lo, hi in AGE_BANDS if lo <= a < hi)


def age_bands(ages: Sequence) -> np.ndarray:
    """``age_band`` of each age, as a str array."""
    return np.array([age_band(a) for a in ages], dtype=object).astype(str)


def group_labels(values: Sequence) -> np.ndarray:
    """Group labels as str; None, NaN and "" become ``"unknown"`` (its own group, never dropped)."""
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
            out.append(UNKNOWN)
        else:
            out.append(str(v).strip())
    return np.array(out, dtype=object).astype(str)


def _order(labels: Sequence[str]) -> list[str]:
    """Age bands in age order, other labels sorted; "unknown" last."""
    uniq = set(labels)
    if uniq <= set(AGE_BAND_ORDER):
        return [b for b in AGE_BAND_ORDER if b in uniq]
    return sorted(uniq - {UNKNOWN}) + ([UNKNOWN] if UNKNOWN in uniq else [])


def subgroup_scores(
    groups: Sequence,
    metric: str,
    *,
    batch_fn: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None = None,
    score_fn: Callable[[np.ndarray], Mapping[str, float | None]] | None = None,
    min_size: int = MIN_SIZE,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> dict:
    """Score ``metric`` on every subgroup of ``groups`` (one label per image, see ``group_labels``).

    Give exactly one of ``batch_fn`` (weights over all n images -> {name: (B,)}) or ``score_fn``
    (global image indices -> {name: value}). Returns::

        {"metric", "min_size", "n_images",
         "subgroups": [{"group", "n", "value", "ci", "status"}],   # status "ok" | "too few" | "undefined"
         "gap": {"value", "best", "worst"} | None}                 # None with < 2 reported subgroups

    ``value``/``ci`` are None for "too few" (n < min_size) and for "undefined" (the metric has no
    value there, e.g. AUC in a subgroup with one class). ``best``/``worst`` follow
    ``higher_is_better`` (False for ECE, Brier, HD95); ``gap`` is ``|best - worst|`` >= 0.
    """
    if (batch_fn is None) == (score_fn is None):
        raise ValueError("give exactly one of batch_fn or score_fn")
    labels = group_labels(groups)
    n = labels.size
    rows = []
    for g in _order(list(labels)):
        members = np.flatnonzero(labels == g)
        row = {"group": g, "n": int(members.size), "value": None, "ci": None, "status": "too few"}
        rows.append(row)
        if members.size < min_size:
            continue
        value, ci = _score_members(members, n, metric, batch_fn, score_fn, n_boot, seed, alpha)
        row.update(value=value, ci=ci, status="ok" if value is not None else "undefined")
    reported = [r for r in rows if r["status"] == "ok"]
    gap = None
    if len(reported) >= 2:
        pick = max if higher_is_better else min
        other = min if higher_is_better else max
        best, worst = pick(reported, key=lambda r: r["value"]), other(reported, key=lambda r: r["value"])
        gap = {"value": abs(best["value"] - worst["value"]), "best": best["group"], "worst": worst["group"]}
    return {"metric": metric, "min_size": int(min_size), "n_images": int(n), "subgroups": rows, "gap": gap}


def _score_members(members, n, metric, batch_fn, score_fn, n_boot, seed, alpha):
    """(value, ci) of ``metric`` on the images ``members`` (global indices)."""
    if batch_fn is not None:
        def sub_batch(w_sub: np.ndarray) -> dict[str, np.ndarray]:
            w = np.zeros((w_sub.shape[0], n))
            w[:, members] = w_sub
            return {metric: np.asarray(batch_fn(w)[metric], dtype=np.float64)}

        v = float(sub_batch(np.ones((1, members.size)))[metric][0])
        value = v if math.isfinite(v) else None
        cis = (bootstrap_ci_batch(sub_batch, members.size, n_boot, seed, alpha)
               if n_boot > 0 and value is not None else {})
    else:
        raw = score_fn(members)[metric]
        value = None if raw is None or not math.isfinite(raw) else float(raw)
        cis = (bootstrap_ci(lambda idx: {metric: score_fn(members[idx])[metric]}, members.size, n_boot, seed, alpha)
               if n_boot > 0 and value is not None else {})
    ci = cis.get(metric)
    return value, (list(ci) if ci is not None else None)


def load_ham10000_metadata(csv_path: str | os.PathLike, image_ids: Sequence[str],
                           fields: Sequence[str] = HAM10000_FIELDS) -> pd.DataFrame:
    """HAM10000 metadata ``fields`` (+ ``age_band``) for ``image_ids``, in their order, index image_id.

    Reads the official ``HAM10000_metadata.csv`` layout (lesion_id, image_id, dx, dx_type, age, sex,
    localization). Text fields are lower-cased with missing values as "unknown" (the file itself writes
    "unknown" for sex and localization); age stays a float (NaN when missing). An id absent from the
    file raises ``DataError``: a silent "unknown" would hide a wrong file.
    """
    try:
        meta = pd.read_csv(csv_path, dtype={"image_id": str})
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read HAM10000 metadata ({exc.__class__.__name__})", path=csv_path,
                        fix="point to HAM10000_metadata.csv of the official release") from None
    needed = {"image_id", *fields}
    if not needed <= set(meta.columns):
        raise DataError(f"HAM10000 metadata lacks columns {sorted(needed - set(meta.columns))}", path=csv_path,
                        fix="point to HAM10000_metadata.csv of the official release")
    meta = meta.drop_duplicates("image_id").set_index("image_id")
    ids = [str(i) for i in image_ids]
    missing = [i for i in ids if i not in meta.index]
    if missing:
        raise DataError(f"{len(missing)} image ids are not in the HAM10000 metadata (e.g. {missing[0]})",
                        path=csv_path, fix="pass HAM10000 image ids, or the metadata file of this release")
    out = meta.loc[ids, list(fields)].copy()
    for col in out.columns:
        if col == "age":
            out[col] = pd.to_numeric(out[col], errors="coerce")
        else:
            out[col] = [v.lower() for v in group_labels(out[col].tolist())]
    if "age" in out.columns:
        out["age_band"] = age_bands(out["age"].tolist())
    out.index.name = "image_id"
    return out
