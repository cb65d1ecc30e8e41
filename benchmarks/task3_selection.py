"""Does judging epochs by the pooled validation Jaccard, a longer training stage, full-size inputs or another
loss help task3?

The registered task3 ``mobilenet-unet`` keeps the epoch with the lowest validation loss, which for a rare
feature averages batch Dice terms over mostly empty batches. This sweep compares it with
``select_by=val_jaccard`` (the pooled validation Jaccard at the tuned cut judges every epoch) and either 12
fine-tuning epochs instead of 6 or 12 decoder epochs instead of 6 (patience 4; the decoder stage's
validation Jaccard was still rising at its sixth epoch), and with the registered schedule at 256 px instead
of 192 px (the ISIC 2018 attribute masks here have a 256 px long side, so 192 px shrinks small globules
further), and with the registered schedule trained with weighted BCE (``wbce``, foreground x10: the best
globules loss of the 3-epoch screen ``task3_losses.py``) instead of BCE + Dice, and with images seen at
320 px but trained on random 192 px crops (``crop320``: a crop of a positive image holds foreground; the
cost per training step of the registered 192 px model, whole 320 px images predicted), and with the encoder
trained from the first epoch (``encoder12``: 12 epochs at 5e-4, no frozen stage), on the default training
set, one model per feature (globules by default: the feature furthest below its target, and the one the
question was asked on):

    python benchmarks/task3_selection.py [--features globules streaks] [--schedules wbce]
    python benchmarks/task3_selection.py --dataset synthetic --limit 24 --features globules \
        --results /tmp/x --quick                                # a quick check (tiny models)

A sweep definition (skinbench.sweep): one point per (schedule, feature), each a runner record under
results/sweeps/task3_selection/runs/<schedule>/runs/, and the summary
results/sweeps/task3_selection.{csv,md,png,json} with the validation Jaccard the choice would be made on
beside the test numbers, and the plot of where each schedule sits against its target. ``--schedules`` trains
only the named schedules and ``--features`` only the named features; the summary still shows every schedule of
globules and streaks whose record is current (a feature whose registered point was never run shows the suite's
own row, which has the same parameters). The registered schedule's point reuses the committed row's training
folder (same key), so only the other schedules cost training (about 40-50 min each per feature on 2 cores;
size256 1.9x the registered 192 px cost per training step, measured by ``perf_pipeline.py --only
mobilenet_unet_256``). The registry changes only if another schedule wins on validation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling sweep's table helpers

from skinbench import info, sweep  # noqa: E402
from skinbench.cache import atomic_write_bytes  # noqa: E402
from skinbench.metrics.segmentation import segmentation_scores  # noqa: E402
from skinbench.paths import committed_results_dir  # noqa: E402
from skinbench.environment import environment  # noqa: E402
from task3_losses import APPROACH, baseline_rows, feature_records, summary_row  # noqa: E402

#: schedule name -> parameter overrides of the registered task3 approach (``select_by=val_loss`` is its
#: default, named so the point has a label and a folder of its own; the training key ignores it)
SCHEDULES = {
    "registered": {"select_by": "val_loss"},
    "val_jaccard_ft12": {"select_by": "val_jaccard", "finetune_epochs": 12, "patience": 4},
    "val_jaccard_dec12": {"select_by": "val_jaccard", "epochs": 12, "patience": 4},
    "size256": {"input_size": 256},
    "wbce": {"loss": "wbce"},
    "crop320": {"input_size": 320, "crop_size": 192},
    "encoder12": {"train_encoder": True, "epochs": 12, "finetune_epochs": 0, "learning_rate": 5e-4, "patience": 4},
}
#: the features the issue's targets are set on: the summary shows both, whichever ``--features`` trains
SUMMARY_FEATURES = ("globules", "streaks")
#: the pooled test Jaccard the issue that asked for this sweep set as targets (drawn on the plot, not chosen on)
TARGETS = {"globules": 0.30, "streaks": 0.18}
#: the summary's label of a registered row read from the suite's own task3 record
COMMITTED = "registered (committed row)"
QUICK = {"input_size": 32, "epochs": 1, "finetune_epochs": 1, "batch_size": 8, "weights": None}
#: the quick check's sizes for a crop-trained schedule (QUICK's 32 px leaves no room for a crop)
QUICK_CROP = {"input_size": 64, "crop_size": 32}


def points(features: list[str], seed: int, dataset: str, limit: int | None, quick: bool) -> list[sweep.Point]:
    return [p for name, params in SCHEDULES.items()
            for p in sweep.SweepConfig(["task3"], [APPROACH], seeds=[seed], targets=features, dataset=dataset,
                                       params={**params, **(QUICK if quick else {}),
                                               **(QUICK_CROP if quick and "crop_size" in params else {})},
                                       limit=limit,
                                       name="task3_selection", out=f"sweeps/task3_selection/runs/{name}").points()]


def fit_columns(record) -> dict:
    """What the schedule is chosen on (validation) and what it cost, from the record's fit extras; and the
    test Jaccard pooled over the images whose truth holds the feature: the same maps behind a perfect
    image-level presence gate, so the most a presence classifier could add to the row."""
    fit = record.extras.get("fit", {})
    training = fit.get("training", {})
    counts = record.counts()
    present = counts[:, 0] + counts[:, 2] > 0
    return {"jaccard_set_perfect_gate": segmentation_scores(counts[present])["jaccard_set"],
            "validation_jaccard": fit.get("validation_jaccard"), "threshold": fit.get("threshold"),
            "tta": (fit.get("tta") or {}).get("used"), "epochs": training.get("epochs"),
            "train_s": training.get("seconds"), "cached": record.cache_found()}


def committed_registered_rows(features: list[str], have: set[str], dataset: str, root: Path) -> list[dict]:
    """The registered schedule of each feature in ``features`` but not in ``have``, from the suite's own
    task3 row (the same parameters and training folder, so the same numbers: no training to repeat)."""
    missing = [feature for feature in features if feature not in have]
    return [{**summary_row(record, feature, COMMITTED), **fit_columns(record)}
            for feature, record in feature_records(missing, dataset, root, APPROACH)]


def plot(frame: pd.DataFrame, path: Path) -> None:
    """Per feature, each schedule's test Jaccard with its CI, beside the validation Jaccard it is chosen on,
    the same maps behind a perfect presence gate, and the target: where the schedules sit, at a glance."""
    import matplotlib.pyplot as plt

    from skinbench.results.plots import save_figure  # sets the Agg backend

    features = list(dict.fromkeys(frame["feature"]))
    fig, axes = plt.subplots(1, len(features), figsize=(6.0 * len(features), 0.3 * len(frame) + 2.0),
                             squeeze=False)
    for ax, feature in zip(axes[0], features):
        part = frame[(frame["feature"] == feature) & ~frame["schedule"].str.startswith("(")].iloc[::-1]
        y = np.arange(len(part))
        ci = np.array([[float(v) for v in c.strip("[]").split(",")] for c in part["jaccard_set_ci"]]).reshape(-1, 2)
        value = part["jaccard_set"].to_numpy(dtype=float)
        ax.errorbar(value, y, xerr=[value - ci[:, 0], ci[:, 1] - value], fmt="o", capsize=3,
                    label="test (95% CI)")
        ax.plot(part["validation_jaccard"], y, "s", mfc="none", label="validation (chosen on)")
        ax.plot(part["jaccard_set_perfect_gate"], y, "x", label="test, perfect presence gate")
        if feature in TARGETS:
            ax.axvline(TARGETS[feature], ls="--", c="k", lw=1, label=f"target {TARGETS[feature]:.2f}")
        ax.set_yticks(y, part["schedule"])
        ax.set_xlim(0, max(0.4, float(np.nanmax(ci)) + 0.05))
        ax.set_xlabel("Jaccard pooled over the images (ISIC 2018 Task 2)")
        ax.set_title(f"task3 {feature}: one MobileNetV2 U-Net per schedule", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", nargs="+", default=["globules"], choices=info.task("task3").targets)
    ap.add_argument("--schedules", nargs="+", choices=list(SCHEDULES), default=list(SCHEDULES),
                    help="train only these (the others' current records still fill the summary)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--dataset", default=info.task("task3").default_dataset)
    ap.add_argument("--limit", type=int, help="at most N train and N test images (quick checks)")
    ap.add_argument("--quick", action="store_true", help="tiny models (a check of the script, not a result)")
    ap.add_argument("--results", help="results folder (default: the committed results/)")
    sweep.add_engine_options(ap)
    args = ap.parse_args(argv)
    root = Path(args.results) if args.results else committed_results_dir()
    start = time.perf_counter()
    command = "python benchmarks/task3_selection.py " + " ".join(argv)
    features = list(dict.fromkeys([*args.features, *SUMMARY_FEATURES]))
    todo = points(features, args.seed, args.dataset, args.limit, args.quick)
    # out ends in the schedule
    train = [p for p in todo if Path(p.out).name in args.schedules and p.spec.target in args.features]
    summary = sweep.run_sweep(train, root, command=command, force=args.force, **sweep.engine_options(args))
    print(summary, file=sys.stderr)
    if not summary.ok:
        return 1
    others = [p for p in todo if p not in train]
    kept = sweep.run_sweep(others, root, dry_run=True, data_root=args.data_root) if others else sweep.Summary()
    rows = [{**summary_row(r, r.target, Path(p.out).name), **fit_columns(r)}
            for s, pts in ((summary, train), (kept, others)) for p, r in sweep.iter_records(s, pts)]
    have = {row["feature"] for row in rows if row["loss"] == "registered"}
    rows += (committed_registered_rows(features, have, args.dataset, root) + baseline_rows(features, args.dataset, root)
             + baseline_rows(features, args.dataset, root, "classical-dots", "(classical-dots row)"))
    order = ["registered", COMMITTED, *list(SCHEDULES)[1:]]
    rows.sort(key=lambda row: (features.index(row["feature"]),
                               order.index(row["loss"]) if row["loss"] in order else len(order)))
    frame = pd.DataFrame(rows).rename(columns={"loss": "schedule"})
    out = root / "sweeps"
    atomic_write_bytes(out / "task3_selection.csv", frame.to_csv(index=False, float_format="%.4f").encode())
    atomic_write_bytes(out / "task3_selection.md", frame.to_markdown(index=False, floatfmt=".3f").encode())
    plot(frame, out / "task3_selection.png")
    meta = {"approach": APPROACH, "dataset": args.dataset, "seed": args.seed, "limit": args.limit,
            "registered_params": info.approach(APPROACH).params_for("task3"), "schedules": SCHEDULES,
            "quick": args.quick,
            "selection": "by validation_jaccard (pooled, lesion-aware validation split of the training images); "
                         "the test columns are reported, never chosen on",
            "metrics": "ISIC 2018 Task 2 style: *_set pooled over the test split; CI = 95% bootstrap over images; "
                       "jaccard_set_perfect_gate pooled over the test images whose truth holds the feature (the "
                       "row behind a perfect image-level presence gate)",
            "seconds_this_invocation": round(time.perf_counter() - start, 1), **environment(),
            "command": command}
    atomic_write_bytes(out / "task3_selection.json", json.dumps(meta, indent=1, default=str).encode())
    print(frame.to_markdown(index=False, floatfmt=".3f"))
    print(f"wrote {out}/task3_selection.{{csv,md,png,json}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from skinbench.errors import run_script

    run_script(main, "task3_selection")
