"""Reproduce the ISIC 2016 study's BoVW sweep: vocabulary size K x SVM kernel, on ISIC 2016 Part 3.

A sweep definition (skinbench.sweep): each (K, kernel) is one point, run through the runner: the
vocabulary is fitted on the training images, C (and gamma) are chosen on lesion-aware validation splits of
the training images, the final model is refitted on all training images and scored once on the test set,
with bootstrap CIs. Each point's record (with what the fit chose, ``extras.fit``) is kept under
results/sweeps/<name>/<kernel>-K<K>/runs/, so a rerun keeps current points and runs only the rest.
Descriptors come from the content cache, so only the first configuration pays for SIFT. Writes
results/sweeps/bovw_task1.{csv,md,png,json}.

    python benchmarks/bovw_sweep.py [--ks 30 100 200 300 400 500] [--kernels rbf intersection chi2 linear]
                                    [--params '{"detector": "dense"}'] [--name bovw_task1] [--workers N]
    python benchmarks/bovw_sweep.py --variants    # every registered bovw* row -> bovw_variants_task1.*
    python benchmarks/bovw_sweep.py --dataset synthetic --limit 24 --ks 10 --kernels rbf --results /tmp/x  # quick
    python benchmarks/bovw_sweep.py --variants --dataset synthetic --limit 24 --params '{"n_words": 20, "image_size": 96}' --results /tmp/x
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench import info, sweep  # noqa: E402
from skinbench.cache import atomic_write_bytes  # noqa: E402
from skinbench.paths import committed_results_dir  # noqa: E402

METRICS = ("accuracy", "precision", "recall", "f1", "auc", "ap")
DATASET = "isic2016_task3"


def bovw_approaches() -> list[str]:
    return [a.name for a in info.APPROACHES.values() if a.estimator.endswith("bovw:BoVWClassifier")]


def grid(ks: list[int], kernels: list[str], params: dict, seed: int, limit: int | None, dataset: str,
         name: str) -> list[sweep.Point]:
    """The K x kernel grid of the registered ``bovw`` row (plus fixed ``params``)."""
    return sweep.SweepConfig(["task1"], ["bovw"], seeds=[seed], grid={"n_words": ks, "kernel": kernels},
                             params=params, dataset=dataset, limit=limit, name=name,
                             out="sweeps/{name}/{kernel}-K{n_words}").points()


def variants(seed: int, limit: int | None, dataset: str, name: str, params: dict) -> list[sweep.Point]:
    """Every classical BoVW row of the registry, with the same selection protocol (best on validation);
    ``params`` (normally none) override every row, e.g. small settings for a quick check."""
    return sweep.SweepConfig(["task1"], bovw_approaches(), seeds=[seed], dataset=dataset, limit=limit,
                             params=params, name=name, out="sweeps/{name}/{approach}").points()


def row(record, **label) -> dict:
    """One table row from a point's record: what validation chose, validation and test scores."""
    fit = record.extras.get("fit") or {}
    C, g = (list(fit.get("best_params") or []) + [None, None])[:2]
    val = fit.get("val_scores") or {}
    return {**label, "C": C, "gamma": g, "val_selection_ap": fit.get("val_selection_score"),
            **{f"val_{m}": val.get(m) for m in METRICS}, **{f"test_{m}": record.value(m) for m in METRICS},
            **{f"test_{m}_ci": _ci(record, m) for m in ("f1", "auc", "ap")},
            "seconds": round(record.total_seconds or 0.0, 1), "cached": record.cache_found()}


def _ci(record, metric: str) -> str:
    lo, hi = record.ci(metric)
    return f"[{lo:.3f}, {hi:.3f}]" if lo is not None else ""


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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[30, 100, 200, 300, 400, 500])
    ap.add_argument("--kernels", nargs="+", default=["rbf", "intersection", "chi2", "linear"])
    ap.add_argument("--params", default="{}", help="extra BoVWClassifier parameters as JSON")
    ap.add_argument("--name", default="bovw_task1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="at most N train and N test images (smoke runs)")
    ap.add_argument("--dataset", default=DATASET, help="a task1 dataset (synthetic: a quick check)")
    ap.add_argument("--results", help="results folder (default: the committed results/)")
    ap.add_argument("--variants", action="store_true",
                    help="instead of the K x kernel grid, run every registered bovw* approach (-> bovw_variants_task1)")
    sweep.add_engine_options(ap)
    args = ap.parse_args(argv)
    root = Path(args.results) if args.results else committed_results_dir()
    if args.variants:
        args.name = "bovw_variants_task1" if args.name == "bovw_task1" else args.name
        points = variants(args.seed, args.limit, args.dataset, args.name, json.loads(args.params))
    else:
        points = grid(args.ks, args.kernels, json.loads(args.params), args.seed, args.limit, args.dataset, args.name)
    command = "python benchmarks/bovw_sweep.py " + " ".join(argv)
    summary = sweep.run_sweep(points, root, command=command, **sweep.engine_options(args))
    print(summary, file=sys.stderr)
    if not summary.ok:
        return 1
    rows = []
    for point, record in sweep.iter_records(summary, points):
        p = dict(point.spec.params)
        label = {"approach": point.spec.approach} if args.variants else {"kernel": p["kernel"], "K": p["n_words"]}
        rows.append(row(record, **label))
    frame = pd.DataFrame(rows)
    from skinbench.environment import environment

    out = root / "sweeps"
    atomic_write_bytes(out / f"{args.name}.csv", frame.to_csv(index=False, float_format="%.4f").encode())
    atomic_write_bytes(out / f"{args.name}.md", frame.to_markdown(index=False, floatfmt=".3f").encode())
    best = frame.loc[frame["val_selection_ap"].astype(float).idxmax()]
    if args.variants:
        best_on_val = {"approach": best["approach"]}
    else:
        plot(frame, out / f"{args.name}.png")
        best_on_val = {"kernel": best["kernel"], "K": int(best["K"])}
    first = next(r for _, r in sweep.iter_records(summary, points))
    meta = {"seed": args.seed, "dataset": args.dataset, "manifest_digest": first.split.get("manifest_digest"),
            "n_train": first.split.get("n_train"), "n_test": first.split.get("n_test"), "limit": args.limit,
            "params": json.loads(args.params) if not args.variants else
            {a: info.approach(a).params for a in bovw_approaches()},
            "selection": "C/gamma by mean validation AP over lesion-aware validation splits of the training set; "
                         "val_* metrics are on the first validation split, test_* on the official test set "
                         "(CIs: 95% bootstrap over test images)",
            "records": f"sweeps/{args.name}/<point>/runs/ (one runner record per point)",
            "reference": info.task("task1").reference, **environment(), "best_on_validation": best_on_val,
            "command": command}
    atomic_write_bytes(out / f"{args.name}.json", json.dumps(meta, indent=1, default=str).encode())
    print(f"wrote {out / args.name}.{{csv,md,json{'' if args.variants else ',png'}}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from skinbench.errors import SkinbenchError

    try:
        raise SystemExit(main())
    except SkinbenchError as err:
        print(f"bovw_sweep: error: {err}", file=sys.stderr)
        raise SystemExit(2)
