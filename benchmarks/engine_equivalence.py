"""Do the inference engines give the same numbers on real images? (issue 33)

    python benchmarks/engine_equivalence.py [--out FILE] [--approach A] [--task T] [--n-features N]

Two checks, each engine in its own process with its own empty cache (``$SKINBENCH_ENGINE``,
``$SKINBENCH_CACHE``), so nothing one engine computed is reused by the other:

1. MobileNetV2 pooled features (224 px, ImageNet weights) of a seeded sample of HAM10000 images: the
   largest absolute difference, and that relative to the largest feature (what
   ``engines.TOLERANCE`` bounds).
2. A committed row rerun end to end on each engine through the CLI (default: task1
   transfer-mobilenetv2-logreg, whose features are all the backbone work): the largest absolute
   difference of the test probabilities and of every metric, next to the committed record (made on
   TensorFlow), so the engines' difference can be read against TensorFlow's own rerun difference.

Prints a JSON summary and writes it to ``--out`` (default: a temporary file; results/ is the lead's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable without `pip install -e .`

ENGINES = ("tensorflow", "onnxruntime")


def features_worker(n: int, out: str) -> None:
    """Features of n seeded HAM10000 images on this process's engine, saved to ``out`` (.npy)."""
    from skinbench.approaches import transfer
    from skinbench.data import load_dataset

    paths = list(load_dataset("ham10000").paths)
    pick = np.sort(np.random.default_rng(0).choice(len(paths), n, replace=False))
    feats = transfer.extract_features([paths[i] for i in pick], backbone="mobilenet_v2", batch_size=32, progress=False)
    np.save(out, feats[0])


def _env(engine: str, cache: Path) -> dict:
    return dict(os.environ, SKINBENCH_ENGINE=engine, SKINBENCH_CACHE=str(cache), TF_CPP_MIN_LOG_LEVEL="3",
                PYTHONPATH=str(REPO))


def _scores(record: dict) -> np.ndarray:
    return np.asarray(record["predictions"]["scores"], dtype=np.float64)


def _metric_diffs(a: dict, b: dict) -> dict[str, float]:
    out = {}
    for name, m in a["metrics"].items():
        va, vb = m.get("value"), (b["metrics"].get(name) or {}).get("value")
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
            out[name] = abs(float(va) - float(vb))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="JSON summary file")
    parser.add_argument("--task", default="task1")
    parser.add_argument("--approach", default="transfer-mobilenetv2-logreg")
    parser.add_argument("--n-features", type=int, default=256, help="HAM10000 images for the feature check")
    parser.add_argument("--skip-run", action="store_true", help="only the feature check")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        features_worker(args.n_features, args.worker)
        return 0

    from skinbench.approaches import engines
    from skinbench.info import task as task_info

    summary: dict = {"engines": ENGINES, "tolerance": engines.TOLERANCE}
    with tempfile.TemporaryDirectory(prefix="skinbench-engines-") as tmp:
        feats = {}
        for engine in ENGINES:
            out = Path(tmp) / f"{engine}.npy"
            subprocess.run([sys.executable, __file__, "--worker", str(out), "--n-features", str(args.n_features)],
                           env=_env(engine, Path(tmp) / f"cache-f-{engine}"), check=True)
            feats[engine] = np.load(out)
        summary["features"] = {"images": args.n_features,
                               "max_abs_diff": float(np.abs(feats["onnxruntime"] - feats["tensorflow"]).max()),
                               "max_abs_feature": float(np.abs(feats["tensorflow"]).max()),
                               "difference": engines.difference(feats["onnxruntime"], feats["tensorflow"])}
        print(json.dumps(summary["features"]), file=sys.stderr)
        if not args.skip_run:
            dataset = task_info(args.task).default_dataset
            rel = Path("runs") / args.task / dataset / f"{args.approach}.json"
            records = {"committed (tensorflow)": json.loads((REPO / "results" / rel).read_text())}
            for engine in ENGINES:
                results = Path(tmp) / f"results-{engine}"
                subprocess.run([sys.executable, "-m", "skinbench", "run", args.task, "-a", args.approach,
                                "--results", str(results)], env=_env(engine, Path(tmp) / f"cache-{engine}"),
                               check=True, cwd=REPO)
                records[engine] = json.loads((results / rel).read_text())
            base = records["tensorflow"]
            summary["run"] = {"task": args.task, "approach": args.approach, "n_test": len(_scores(base)), "vs_tensorflow": {}}
            for name, rec in records.items():
                if name == "tensorflow":
                    continue
                diffs = _metric_diffs(base, rec)
                summary["run"]["vs_tensorflow"][name] = {
                    "max_abs_proba_diff": float(np.abs(_scores(rec) - _scores(base)).max()),
                    "difference": engines.difference(_scores(rec), _scores(base)),
                    "max_abs_metric_diff": max(diffs.values()), "metric_diffs": diffs,
                    "metrics": {k: v["value"] for k, v in rec["metrics"].items()}}
            summary["run"]["tensorflow_metrics"] = {k: v["value"] for k, v in base["metrics"].items()}
    text = json.dumps(summary, indent=1)
    print(text)
    out = Path(args.out) if args.out else Path(tempfile.mkstemp(prefix="engine_equivalence-", suffix=".json")[1])
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
