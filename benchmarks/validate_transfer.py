"""Choose the transfer head's configuration on a VALIDATION split of the training set (never the test set).

A sweep definition (skinbench.sweep, ``work="validation"``): each configuration is one point. The
training images are split once, lesion-aware and stratified (15%, the seed); each configuration is
fitted on the rest (which makes its own inner validation split for early stopping) and scored on the
held-out part. Backbone features come from the content-keyed cache, so a sweep costs seconds once the
features exist. Each point's row is kept under results/validation/transfer_<task>_<backbone>/ (a rerun
keeps current rows); the summary is results/validation/transfer_<task>_<backbone>.json (+ .md).

    python benchmarks/validate_transfer.py task1 [--configs NAME ...] [--workers N]
    python benchmarks/validate_transfer.py task1 --dataset synthetic --limit 24 --configs logreg-v0-C0.1 \\
        --results /tmp/x                                                     # a quick check
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench import info, sweep  # noqa: E402
from skinbench.cache import atomic_write_bytes  # noqa: E402
from skinbench.paths import committed_results_dir  # noqa: E402
from skinbench.provenance import RunSpec  # noqa: E402
from skinbench.results.records import RunRecord  # noqa: E402

APPROACH = "transfer-mobilenetv2"
CONFIGS: dict[str, dict] = {
    "head-v0": {"n_views": 0},
    "head-v4": {"n_views": 4},
    "head-v4-lr3e-4": {"n_views": 4, "stages": [("head", 3e-4, 100)]},
    "head-v2": {"n_views": 2},
    "logreg-v0-C0.1": {"n_views": 0, "head_solver": "logreg", "C": 0.1},
    "logreg-v0-C0.01": {"n_views": 0, "head_solver": "logreg", "C": 0.01},
    "logreg-v4-C0.01": {"n_views": 4, "head_solver": "logreg", "C": 0.01},
    "logreg-v4-C0.1": {"n_views": 4, "head_solver": "logreg", "C": 0.1},
}
KEYS = {"task1": ("auc", "ap", "balanced_accuracy"), "task2": ("balanced_accuracy", "f1_macro", "auc_macro")}


def points(task: str, configs: list[str], backbone: str, seed: int, dataset: str | None,
           limit: int | None) -> list[sweep.Point]:
    """One validation point per configuration (the grid is the named list above, not a product)."""
    out = f"validation/transfer_{task}_{backbone}"
    return [sweep.Point(RunSpec(task, APPROACH, dataset, seed, {**CONFIGS[name], "backbone": backbone}, None, limit),
                        work="validation", out=out, label=name) for name in configs]


def _row(stored: dict) -> tuple[dict, dict, float, dict]:
    """(split, fit, seconds, scores) of a validation point's file: a RunRecord (issue 29), or a row written
    before (same run key, so a rerun keeps it): ``split``, ``fit``, ``seconds``, ``scores`` keys."""
    if "metrics" not in stored:
        return stored["split"], stored["fit"], stored["seconds"], stored["scores"]
    record = RunRecord.from_dict(stored)
    split = {k: record.split[k] for k in ("n_fit", "n_val", "manifest_digest", "how") if k in record.split}
    seconds = round(float(record.timings.get("fit_s", 0.0)) + float(record.timings.get("predict_s", 0.0)), 2)
    return split, record.extras.get("fit", {}), seconds, {k: record.value(k) for k in record.metrics}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["task1", "task2"])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS), metavar="NAME")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", help="a dataset of the task (default: its own; synthetic: a quick check)")
    parser.add_argument("--limit", type=int, help="at most N training images (quick checks)")
    parser.add_argument("--results", help="results folder (default: the committed results/)")
    sweep.add_engine_options(parser)
    args = parser.parse_args(argv)

    root = Path(args.results) if args.results else committed_results_dir()
    todo = points(args.task, args.configs, args.backbone, args.seed, args.dataset, args.limit)
    summary = sweep.run_sweep(todo, root, command="python benchmarks/validate_transfer.py " + " ".join(argv),
                              **sweep.engine_options(args))
    print(summary, file=sys.stderr)
    if not summary.ok:
        return 1
    rows, split = [], {}
    for point in todo:
        split, fit, seconds, scores = _row(json.loads(summary.outputs[point.id][0].read_text()))
        epochs = (fit.get("epochs") or [None])[0]
        rows.append({"config": point.label, "params": CONFIGS[point.label], "epochs": epochs, "seconds": seconds,
                     **{k: round(float(scores[k]), 4) for k in KEYS[args.task] if scores.get(k) is not None}})
        print(json.dumps(rows[-1]), flush=True)
    dataset = args.dataset or info.task(args.task).default_dataset
    out = root / "validation" / f"transfer_{args.task}_{args.backbone}"
    record = {"task": args.task, "dataset": dataset, "backbone": args.backbone, "seed": args.seed,
              "limit": args.limit, "split": split, "rows": rows,
              "points": f"validation/transfer_{args.task}_{args.backbone}/ (one row per configuration)"}
    atomic_write_bytes(out.with_suffix(".json"), json.dumps(record, indent=2).encode())
    cols = ["config", *KEYS[args.task], "epochs", "seconds"]
    md = [f"# {args.task} transfer ({args.backbone}) on the validation split (n={split.get('n_val')}), not test", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    atomic_write_bytes(out.with_suffix(".md"), ("\n".join(md) + "\n").encode())
    print(f"wrote {out}.{{json,md}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from skinbench.errors import run_script

    run_script(main, "validate_transfer")
