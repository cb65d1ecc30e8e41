"""Sweep throughput on this machine: points per minute with 1 and 2 Dask workers, and the engine's
overhead over running the same points one after another in one process (issue 16).

    python benchmarks/sweep_overhead.py [--results DIR] [--seeds 0 1] [--n-images 48] [--workers 1 2]

The points: every trivial baseline of task1..task4 plus BoVW (its seconds-long smoke parameters) for
task1 and task2, on the synthetic data, for each seed. A warm-up pass first fills the content caches
(synthetic images, SIFT descriptors), so every timed pass does the same work: what differs is the
engine. Each timed pass writes into its own empty results folder (so every point runs). Times include
starting and closing the LocalCluster (worker processes import numpy, OpenCV, scikit-learn on their
first point); the cluster start alone is also timed. Writes ``<results>/perf/sweep.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench import info, sweep  # noqa: E402
from skinbench.cache import atomic_write_bytes  # noqa: E402
from skinbench.paths import committed_results_dir  # noqa: E402

N_BOOT = 200


def points(seeds: list[int]) -> list[sweep.Point]:
    """Baselines (registry params) and BoVW with its smoke params, every task, every seed."""
    baselines = sweep.SweepConfig(["task1", "task2", "task3", "task4"],
                                  sorted({a for t in info.TASKS for a in info.baselines_for(t)}),
                                  seeds=seeds, dataset="synthetic", n_boot=N_BOOT).points()
    bovw = sweep.SweepConfig(["task1", "task2"], ["bovw"], seeds=seeds, dataset="synthetic", n_boot=N_BOOT,
                             params=dict(info.approach("bovw").smoke_params), name="overhead").points()
    return baselines + bovw


def cluster_start_seconds(workers: int) -> float:
    """Seconds to start (and close) a LocalCluster of ``workers`` processes with a client."""
    start = time.perf_counter()
    with sweep._client(workers, None, None, sweep.DEFAULT_RETRIES) as client:
        client.wait_for_workers(workers)
        client.run(lambda: None)
    return time.perf_counter() - start


def timed(todo: list[sweep.Point], kwargs: dict, engine: str, workers: int | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="skinbench-sweep-perf-") as scratch:
        start = time.perf_counter()
        summary = sweep.run_sweep(todo, scratch, engine=engine, workers=workers, dataset_kwargs=kwargs,
                                  progress=False)
        seconds = time.perf_counter() - start
    if not summary.ok:
        raise SystemExit(f"sweep_overhead: points failed:\n{summary}")
    work = sum(summary.point_seconds.values())
    return {"engine": engine, "workers": workers, "points": len(summary.done), "seconds": round(seconds, 2),
            "points_per_min": round(60 * len(summary.done) / seconds, 1),
            "point_seconds_sum": round(work, 2),
            "point_seconds": {pid: round(v, 2) for pid, v in summary.point_seconds.items()}}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", help="results folder (default: the committed results/)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--n-images", type=int, default=48, help="synthetic images")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    root = Path(args.results) if args.results else committed_results_dir()
    todo = points(args.seeds)
    kwargs = {"n_images": args.n_images}
    load = os.getloadavg()
    print(f"sweep_overhead: {len(todo)} points; warm-up pass (fills the caches)", file=sys.stderr)
    warm = timed(todo, kwargs, "local")
    rows = [timed(todo, kwargs, "local")]
    print(f"sweep_overhead: in-process {rows[-1]}", file=sys.stderr)
    starts = {}
    for n in args.workers:
        starts[n] = round(cluster_start_seconds(n), 2)
        rows.append(timed(todo, kwargs, "dask", n))
        rows[-1]["cluster_start_s"] = starts[n]
        print(f"sweep_overhead: dask {rows[-1]}", file=sys.stderr)
    base = rows[0]["seconds"]
    for r in rows[1:]:
        r["overhead_s"] = round(r["seconds"] - base, 2) if r["workers"] == 1 else None
        r["speedup_vs_in_process"] = round(base / r["seconds"], 2)
    one = next((r for r in rows if r["workers"] == 1), None)
    from skinbench.environment import environment

    meta = {"created": datetime.now(timezone.utc).isoformat(), "command": "python benchmarks/sweep_overhead.py "
            + " ".join(argv), "points": [p.id for p in todo], "n_images": args.n_images, "n_boot": N_BOOT,
            "warm_up": warm, "rows": rows, "load_average_at_start": [round(x, 2) for x in load], **environment()}
    if one:
        meta["engine_overhead"] = {"seconds": one["overhead_s"], "per_point_s": round(one["overhead_s"] / len(todo), 3),
                                   "relative": round(one["seconds"] / base - 1, 3)}
    out = root / "perf"
    atomic_write_bytes(out / "sweep.json", json.dumps(meta, indent=1).encode())
    m = meta["machine"]
    lines = ["# Sweep engine throughput", "",
             f"Generated by `{meta['command'].strip()}` on {meta['created']}. Machine: {m['cpu']} ({m['cores']} cores, "
             f"{m['memory_gb']} GB); dask/distributed {_version('distributed')}. Load average at start: "
             f"{meta['load_average_at_start']}.", "",
             f"{len(todo)} points on synthetic data ({args.n_images} images): every trivial baseline of task1..task4 "
             f"and BoVW (smoke parameters) for task1/task2, seeds {args.seeds}, {N_BOOT} bootstrap resamples; caches "
             "warm (a warm-up pass ran first), so every pass does the same work. Dask times include starting and "
             "closing the LocalCluster.", "",
             "| engine | workers | points | wall s | points/min | sum of point s | cluster start s | speed-up vs in-process |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {'in-process' if r['engine'] == 'local' else 'Dask LocalCluster'} | {r['workers'] or '-'} | {r['points']} | {r['seconds']} | {r['points_per_min']} | "
                     f"{r['point_seconds_sum']} | {r.get('cluster_start_s', '-')} | {r.get('speedup_vs_in_process', '-')} |")
    if one:
        o = meta["engine_overhead"]
        lines += ["", f"Engine overhead (1 worker vs in-process, same points): {o['seconds']} s in all, "
                      f"{o['per_point_s']} s per point ({o['relative']:+.0%}); most of it is the cluster start "
                      f"({one['cluster_start_s']} s) and each worker's first imports."]
    atomic_write_bytes(out / "sweep.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
