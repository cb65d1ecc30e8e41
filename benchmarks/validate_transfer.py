"""Choose the transfer head's configuration on a VALIDATION split of the training set (never the test set).

The training images are split once, lesion-aware and stratified (15%, seed 0); each candidate
configuration is fitted on the rest (which makes its own inner validation split for early stopping)
and scored on the held-out part. Backbone features come from the content-keyed cache, so a sweep
costs seconds once the features exist. Writes results/validation/transfer_<task>.json (+ .md).

    python benchmarks/validate_transfer.py task1 [--configs NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time


from skinbench import info
from skinbench.approaches.transfer import TransferClassifier
from skinbench.cache import atomic_write_bytes
from skinbench.data import load_dataset
from skinbench.data.splits import validation_split
from skinbench.metrics.classification import classification_scores
from skinbench.paths import results_dir

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["task1", "task2"])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tinfo = info.task(args.task)
    train = load_dataset(tinfo.default_dataset).split("train")
    X, y, groups = train.paths, train.y, train.groups
    fit_idx, val_idx = validation_split(y, groups, 0.15, args.seed)
    rows = []
    for name in args.configs:
        start = time.perf_counter()
        clf = TransferClassifier(backbone=args.backbone, random_state=args.seed, **CONFIGS[name])
        clf.fit(X[fit_idx], y[fit_idx], groups[fit_idx])
        scores = classification_scores(y[val_idx], clf.predict_proba(X[val_idx]))
        epochs = clf.history_[0]["epochs"] if clf.history_ else None
        row = {"config": name, "params": CONFIGS[name], "epochs": epochs,
               "seconds": round(time.perf_counter() - start, 1),
               **{k: round(float(scores[k]), 4) for k in KEYS[args.task] if scores.get(k) is not None}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = results_dir() / "validation" / f"transfer_{args.task}_{args.backbone}"
    record = {"task": args.task, "dataset": tinfo.default_dataset, "backbone": args.backbone, "seed": args.seed,
              "split": {"n_fit": len(fit_idx), "n_val": len(val_idx), "manifest_digest": train.manifest_digest,
                        "how": "15% lesion-aware stratified validation split of the training set"},
              "rows": rows}
    atomic_write_bytes(out.with_suffix(".json"), json.dumps(record, indent=2).encode())
    cols = ["config", *KEYS[args.task], "epochs", "seconds"]
    md = [f"# {args.task} transfer ({args.backbone}) on the validation split (n={len(val_idx)}), not test", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    atomic_write_bytes(out.with_suffix(".md"), ("\n".join(md) + "\n").encode())


if __name__ == "__main__":
    main()
