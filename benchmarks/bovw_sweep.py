"""Reproduce the ISIC 2016 study's BoVW sweep: vocabulary size K x SVM kernel, on ISIC 2016 Part 3.

For each (K, kernel): the vocabulary is fitted on the training images, C (and gamma) are chosen on
lesion-aware validation splits of the training images, the final model is refitted on all training
images and scored once on the test set. Descriptors come from the content cache, so only the first
configuration pays for SIFT. Writes results/sweeps/bovw_task1.{csv,md,png,json}.

    python benchmarks/bovw_sweep.py [--ks 30 100 200 300 400 500] [--kernels rbf intersection chi2 linear]
                                    [--params '{"detector": "dense"}'] [--name bovw_task1] [--limit N]
    python benchmarks/bovw_sweep.py --variants    # every registered bovw* row -> bovw_variants_task1.*
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from skinbench import info
from skinbench.approaches.bovw import BoVWClassifier
from skinbench.cache import atomic_write_bytes
from skinbench.data import load_dataset
from skinbench.metrics.classification import classification_scores
from skinbench.paths import results_dir

METRICS = ("accuracy", "precision", "recall", "f1", "auc", "ap")


def _one(train, test, params: dict, seed: int, **label) -> dict:
    """Fit one configuration on train (selection on validation splits), score validation and test."""
    t0 = time.perf_counter()
    clf = BoVWClassifier(random_state=seed, progress=False, **params)
    clf.fit(train.paths, train.y, train.groups)
    val = classification_scores(clf.validation_["y"], clf.validation_["proba"])
    tst = classification_scores(test.y, clf.predict_proba(test.paths))
    C, g = clf.best_params_
    row = {**label, "C": C, "gamma": g, "val_selection_ap": clf.validation_["best_score"],
           **{f"val_{m}": val[m] for m in METRICS}, **{f"test_{m}": tst[m] for m in METRICS},
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return row


def _data(seed: int, limit: int | None):
    ds = load_dataset("isic2016_task3")
    train, test = ds.split("train"), ds.split("test")
    if limit:
        train = train.subset(np.random.default_rng(seed).choice(len(train), limit, replace=False))
    return ds, train, test


def variants(seed: int, limit: int | None) -> tuple[pd.DataFrame, dict]:
    """Every classical BoVW row of the registry, with the same selection protocol (best on validation)."""
    ds, train, test = _data(seed, limit)
    rows = [_one(train, test, dict(a.params), seed, approach=a.name) for a in info.APPROACHES.values()
            if a.estimator.endswith("bovw:BoVWClassifier")]
    meta = {"seed": seed, "dataset": "isic2016_task3", "manifest_digest": ds.manifest_digest,
            "n_train": len(train), "n_test": len(test), "limit": limit,
            "params": {a.name: a.params for a in info.APPROACHES.values() if a.estimator.endswith("bovw:BoVWClassifier")},
            "selection": "C/gamma by mean validation AP over lesion-aware validation splits of the training set; "
                         "val_* metrics are on the first validation split, test_* on the official test set",
            "reference": info.task("task1").reference}
    return pd.DataFrame(rows), meta


def sweep(ks: list[int], kernels: list[str], params: dict, seed: int, limit: int | None) -> tuple[pd.DataFrame, dict]:
    ds, train, test = _data(seed, limit)
    rows = [_one(train, test, {**params, "n_words": k, "kernel": kernel}, seed, kernel=kernel, K=k)
            for kernel in kernels for k in ks]
    meta = {"seed": seed, "params": params, "dataset": "isic2016_task3", "manifest_digest": ds.manifest_digest,
            "n_train": len(train), "n_test": len(test), "limit": limit,
            "selection": "C/gamma by mean validation AP over lesion-aware validation splits of the training set",
            "reference": info.task("task1").reference}
    return pd.DataFrame(rows), meta


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from skinbench.results.plots import save_figure  # sets the Agg backend

    kernels = list(dict.fromkeys(frame["kernel"]))
    fig, axes = plt.subplots(1, len(kernels), figsize=(4.2 * len(kernels), 3.6), sharey=True, squeeze=False)
    for ax, kernel in zip(axes[0], kernels):
        part = frame[frame["kernel"] == kernel].sort_values("K")
        for m in ("accuracy", "precision", "recall", "f1", "auc"):
            ax.plot(part["K"], part[f"test_{m}"], marker="o", label=m)
        ax.axhline(0.370, color="grey", ls=":", lw=1)
        ax.set_title(f"{kernel} kernel (test set)")
        ax.set_xlabel("vocabulary size K")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("score")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("BoVW + SVM on ISIC 2016 Part 3 (dotted: reference F1 0.370)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[30, 100, 200, 300, 400, 500])
    ap.add_argument("--kernels", nargs="+", default=["rbf", "intersection", "chi2", "linear"])
    ap.add_argument("--params", default="{}", help="extra BoVWClassifier parameters as JSON")
    ap.add_argument("--name", default="bovw_task1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="subsample the training set (smoke runs)")
    ap.add_argument("--variants", action="store_true",
                    help="instead of the K x kernel grid, run every registered bovw* approach (-> bovw_variants_task1)")
    args = ap.parse_args(argv)
    if args.variants:
        frame, meta = variants(args.seed, args.limit)
        args.name = "bovw_variants_task1" if args.name == "bovw_task1" else args.name
    else:
        frame, meta = sweep(args.ks, args.kernels, json.loads(args.params), args.seed, args.limit)
    from skinbench.results.records import environment

    out = results_dir() / "sweeps"
    atomic_write_bytes(out / f"{args.name}.csv", frame.to_csv(index=False, float_format="%.4f").encode())
    atomic_write_bytes(out / f"{args.name}.md", frame.to_markdown(index=False, floatfmt=".3f").encode())
    best = frame.loc[frame["val_selection_ap"].idxmax()]
    if args.variants:
        best_on_val = {"approach": best["approach"]}
    else:
        plot(frame, out / f"{args.name}.png")
        best_on_val = {"kernel": best["kernel"], "K": int(best["K"])}
    meta.update(environment(), best_on_validation=best_on_val,
                command="python benchmarks/bovw_sweep.py " + " ".join(argv or []))
    atomic_write_bytes(out / f"{args.name}.json", json.dumps(meta, indent=1, default=str).encode())
    print(f"wrote {out / args.name}.{{csv,md,png,json}}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
