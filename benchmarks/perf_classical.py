"""Speed and memory of the classical pipeline on real ISIC 2016 Part 3 images.

Measures images/second for SIFT extraction (1 and 2 worker processes, cache bypassed), k-means
vocabulary building, histogram encoding, and the classical segmenter; peak memory from
``resource.getrusage`` (whole process, including children) and ``tracemalloc`` (Python allocations of
the encoding step). Writes results/perf/classical.{json,md} with the machine description and the load
average (the machine may be shared, which slows every number).

    python benchmarks/perf_classical.py [--n-images 200] [--detector sift]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import tracemalloc

import numpy as np

from skinbench.approaches.bovw import BoVWClassifier
from skinbench.approaches.local_features import extract_all
from skinbench.cache import atomic_write_bytes
from skinbench.data import load_dataset
from skinbench.paths import committed_results_dir


def _rss_mb() -> dict[str, float]:
    kb = 1024.0  # ru_maxrss is in kilobytes on Linux
    return {"self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kb,
            "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kb}


def measure(n_images: int, detector: str, seed: int) -> dict:
    ds = load_dataset("isic2016_task3").split("train")
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), min(n_images, len(ds)), replace=False))
    paths = ds.paths[idx]
    clf = BoVWClassifier(detector=detector, n_words=300, random_state=seed, progress=False)
    params = clf.descriptor_params()
    out: dict = {"n_images": len(paths), "detector": detector, "descriptor_params": params.key_parts(),
                 "load_average_before": os.getloadavg()}
    for n_jobs in (1, 2):
        t = time.perf_counter()
        descs = extract_all(paths, params, n_jobs=n_jobs, use_cache=False, progress=False)
        dt = time.perf_counter() - t
        out[f"extract_{n_jobs}_workers_images_per_s"] = len(paths) / dt
    out["descriptors_per_image_mean"] = float(np.mean([len(d) for d in descs]))
    t = time.perf_counter()
    extract_all(paths, params, n_jobs=2, progress=False)  # fill the cache
    t = time.perf_counter()
    extract_all(paths, params, n_jobs=2, progress=False)
    out["cached_read_images_per_s"] = len(paths) / (time.perf_counter() - t)
    t = time.perf_counter()
    clf._fit_vocabulary(descs, np.random.default_rng(seed))
    out["vocabulary_seconds_K300"] = time.perf_counter() - t
    out["vocabulary_descriptors"] = int(min(sum(len(d) for d in descs), clf.max_train_descriptors))
    tracemalloc.start()
    t = time.perf_counter()
    clf._encode(descs)
    out["encode_images_per_s"] = len(paths) / (time.perf_counter() - t)
    out["encode_tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    from skinbench.approaches.classical_seg import ClassicalSegmenter

    seg = ClassicalSegmenter(channel="blue", threshold_scale=1.1, progress=False).fit(paths[:1], np.array([""]))
    t = time.perf_counter()
    for _ in seg.predict_proba(paths[:50]):
        pass
    out["classical_seg_images_per_s"] = 50 / (time.perf_counter() - t)
    out.update(_rss_mb())
    out["load_average_after"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=200)
    ap.add_argument("--detector", default="sift", choices=["sift", "dense"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from skinbench.environment import environment

    numbers = measure(args.n_images, args.detector, args.seed)
    record = {"benchmark": "perf_classical", "numbers": numbers, **environment(),
              "command": "python benchmarks/perf_classical.py " + " ".join(argv or [])}
    out = committed_results_dir() / "perf"
    atomic_write_bytes(out / "classical.json", json.dumps(record, indent=1, default=str).encode())
    lines = ["# Classical pipeline speed and memory (ISIC 2016 Part 3 training images)", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in numbers.items()]
    lines += ["", f"machine: {json.dumps(record.get('machine', {}))}", ""]
    atomic_write_bytes(out / "classical.md", "\n".join(lines).encode())
    print("\n".join(lines))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
