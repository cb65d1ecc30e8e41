"""The reference study's loss comparison for globules and streaks (task3), scored the way ISIC scored them.

The study trained one U-Net per feature with Dice, Jaccard, weighted and plain cross-entropy and reported
"Dice 0.86" while the foreground precision was 1.5 %: its metric rewarded predicting background. Here
every loss trains the same model (the registered task3 ``mobilenet-unet``, by default without its
encoder fine-tuning stage: frozen ImageNet MobileNetV2 encoder, positive images oversampled, threshold
tuned on a validation split of the training images) under the same short budget, and each is scored
through the runner on the 2016-style test split:
Jaccard/Dice *over the whole set*, precision and recall of the foreground, next to the all-background
baseline. The budget (input size, epochs) is CPU-sized and recorded; pass larger values on a GPU.

    python benchmarks/task3_losses.py [--losses dice jaccard wbce bce focal tversky bce_dice]
                                      [--features globules streaks] [--epochs 3] [--input-size 128]
                                      [--finetune-epochs 0] [--workers N | --scheduler ADDR]
    python benchmarks/task3_losses.py --dataset synthetic --limit 24 --epochs 1 --input-size 32 \
        --losses dice bce --features globules --results /tmp/x          # a quick check

A sweep definition (skinbench.sweep): loss x feature points, each one runner record under
results/sweeps/task3_losses/runs/<loss>/runs/ (metrics with CIs, per-image counts), and the summary
results/sweeps/task3_losses.{csv,md,png,json}. Current points are kept (rerun = resume); ``--force``
retrains.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench import info, sweep  # noqa: E402
from skinbench.cache import atomic_write_bytes  # noqa: E402
from skinbench.paths import committed_results_dir  # noqa: E402
from skinbench.environment import environment  # noqa: E402
from skinbench.results.records import RunRecord, record_path  # noqa: E402

APPROACH = "mobilenet-unet"
DATASET = "isic2018_task2"
LOSSES = ("dice", "jaccard", "wbce", "bce", "focal", "tversky", "bce_dice")
METRICS = ("jaccard_set", "dice_set", "precision_set", "recall_set", "jaccard_mean")


def summary_row(record: RunRecord, feature: str, loss: str) -> dict:
    """One table row: each metric with its 95% bootstrap interval, from a record."""
    row = {"feature": feature, "loss": loss}
    for m in METRICS:
        lo, hi = record.ci(m)
        row[m] = record.value(m)
        row[f"{m}_ci"] = f"[{lo:.3f}, {hi:.3f}]" if lo is not None else ""
    row["fit_s"] = round(record.fit_seconds or 0.0, 1)
    row["cached"] = record.cache_found()  # a small fit_s may be found work, not cheap work
    return row


def points(losses: list[str], features: list[str], params: dict, seed: int, dataset: str, limit: int | None,
           name: str) -> list[sweep.Point]:
    """One point per (loss, feature): the registered task3 approach with ``params`` and that loss."""
    return sweep.SweepConfig(["task3"], [APPROACH], seeds=[seed], grid={"loss": losses}, params=params,
                             targets=features, dataset=dataset, limit=limit, name=name,
                             out="sweeps/{name}/runs/{loss}").points()


def feature_records(features: list[str], dataset: str, root: Path, approach: str) -> list[tuple[str, RunRecord]]:
    """``(feature, record)`` of ``approach``'s task3 row for each feature that has one (same test images)."""
    paths = ((feature, record_path("task3", dataset, approach, feature, root=root)) for feature in features)
    return [(feature, RunRecord.from_file(path)) for feature, path in paths if path.is_file()]


def baseline_rows(features: list[str], dataset: str, root: Path, approach: str = "all-background",
                  label: str = "(all-background baseline)") -> list[dict]:
    """Each feature's ``approach`` row from its task3 record, labelled ``label``."""
    return [summary_row(record, feature, label)
            for feature, record in feature_records(features, dataset, root, approach)]


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from skinbench.results.plots import save_figure  # sets the Agg backend

    features = list(dict.fromkeys(frame["feature"]))
    fig, axes = plt.subplots(1, len(features), figsize=(6.0 * len(features), 4.0), squeeze=False)
    for ax, feature in zip(axes[0], features):
        part = frame[(frame["feature"] == feature) & ~frame["loss"].str.startswith("(")]
        x = range(len(part))
        for offset, m in zip((-0.27, 0.0, 0.27), ("jaccard_set", "precision_set", "recall_set")):
            ax.bar([i + offset for i in x], part[m], width=0.27, label=m.replace("_set", " (whole set)"))
        ax.set_xticks(list(x), part["loss"], rotation=30)
        ax.set_ylim(0, 1)
        base = frame[(frame["feature"] == feature) & frame["loss"].str.startswith("(")]
        # per-image means are over the images holding the feature (scoring version 2): all-background scores 0
        # there too; before, its 1.0 on every image without the feature made it look best
        note = (f"\nall-background: pooled {base['jaccard_set'].iloc[0]:.2f}, per-image mean Jaccard over the "
                f"images with the feature {base['jaccard_mean'].iloc[0]:.2f}" if len(base) else "")
        ax.set_title(f"{feature}: test split, one model per loss{note}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Loss comparison, foreground scored over the whole test set (ISIC 2018 Task 2 style)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--losses", nargs="+", default=list(LOSSES))
    ap.add_argument("--features", nargs="+", default=list(info.task("task3").targets))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--finetune-epochs", type=int, default=0,
                    help="encoder fine-tuning epochs after the frozen stage (0: the frozen encoder alone)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--name", default="task3_losses")
    ap.add_argument("--dataset", default=DATASET, help="a task3 dataset (synthetic: a quick check)")
    ap.add_argument("--limit", type=int, help="at most N train and N test images (quick checks)")
    ap.add_argument("--results", help="results folder (default: the committed results/)")
    sweep.add_engine_options(ap)
    args = ap.parse_args(argv)
    bad = sorted(set(args.losses) - set(LOSSES))
    if bad:
        from skinbench.errors import ConfigError

        raise ConfigError(f"unknown loss(es) {bad}", fix=f"use some of: {', '.join(LOSSES)}")
    root = Path(args.results) if args.results else committed_results_dir()
    out = root / "sweeps"
    params = {"epochs": args.epochs, "input_size": args.input_size, "patience": 0,
              "finetune_epochs": args.finetune_epochs}
    start = time.perf_counter()
    command = "python benchmarks/task3_losses.py " + " ".join(argv)
    todo = points(args.losses, args.features, params, args.seed, args.dataset, args.limit, args.name)
    summary = sweep.run_sweep(todo, root, command=command, force=args.force, **sweep.engine_options(args))
    print(summary, file=sys.stderr)
    if not summary.ok:
        return 1
    found = {(p.spec.params["loss"], r.target): r for p, r in sweep.iter_records(summary, todo)}
    rows = [summary_row(found[(loss, feature)], feature, loss) for feature in args.features for loss in args.losses]
    frame = pd.DataFrame(rows + baseline_rows(args.features, args.dataset, root))
    atomic_write_bytes(out / f"{args.name}.csv", frame.to_csv(index=False, float_format="%.4f").encode())
    atomic_write_bytes(out / f"{args.name}.md", frame.to_markdown(index=False, floatfmt=".3f").encode())
    plot(frame, out / f"{args.name}.png")
    meta = {"approach": APPROACH, "dataset": args.dataset, "seed": args.seed, "limit": args.limit,
            "params": {**info.approach(APPROACH).params_for("task3"), **params},
            "varied": "loss", "selection": "none: a comparison table; the task3 rows use the registered loss",
            "metrics": "ISIC 2018 Task 2 style: *_set pooled over the test split; CI = 95% bootstrap over images",
            "fit_s_total": round(float(frame["fit_s"].sum()), 1),
            "seconds_this_invocation": round(time.perf_counter() - start, 1), **environment(),
            "command": command}
    atomic_write_bytes(out / f"{args.name}.json", json.dumps(meta, indent=1, default=str).encode())
    print(f"wrote {out / args.name}.{{csv,md,png,json}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from skinbench.errors import run_script

    run_script(main, "task3_losses")
