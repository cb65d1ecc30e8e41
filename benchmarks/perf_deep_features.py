"""Does the tf.data pipeline keep the backbone fed, and does HAM10000 feature extraction stream?

Measures on this machine, for one backbone (MobileNetV2 by default):
- raw forward throughput: the feature model on an in-memory synthetic batch (no decoding at all);
- pipeline throughput: `transfer.extract_features` on real HAM10000 / ISIC 2016 images (decode, resize,
  forward, cache writes) into a fresh temporary cache, so nothing is reused;
- decode-only throughput: the tf.data pipeline alone, without the model;
- peak resident memory (RSS) sampled during HAM10000 extraction, after the first quarter and at the
  end: a streaming pipeline stays flat, whatever the number of images.
Writes results/perf/deep_features.json and .md.

    python benchmarks/perf_deep_features.py [--n-ham 2000] [--n-isic 300] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from skinbench.approaches import backbones, tfdata, transfer
from skinbench.cache import atomic_write_bytes
from skinbench.data import load_dataset
from skinbench.paths import committed_results_dir
from skinbench.environment import environment


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """Samples RSS every 50 ms in a thread; ``peak`` is the highest seen since the last ``reset``."""

    def __init__(self) -> None:
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def raw_forward(model, size: int, batch_size: int, n_batches: int) -> float:
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch_size, size, size, 3)).astype(np.float32))
    forward(x).numpy()  # trace + warm up
    start = time.perf_counter()
    for _ in range(n_batches):
        forward(x).numpy()
    return n_batches * batch_size / (time.perf_counter() - start)


def decode_only(paths: list[str], size: int, batch_size: int) -> float:
    start = time.perf_counter()
    n = sum(int(b.shape[0]) for b in tfdata.image_dataset(paths, (size, size), batch_size=batch_size))
    return n / (time.perf_counter() - start)


def pipeline(paths: list[str], backbone: str, size: int, batch_size: int, cache: Path, model) -> float:
    """The real extraction path (cache writes included), with a model built beforehand."""
    start = time.perf_counter()
    transfer.extract_features(paths, backbone=backbone, size=size, batch_size=batch_size, cache_dir=cache,
                              progress=True, model=model)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--n-ham", type=int, default=2000, help="HAM10000 images to extract (0 = all 10015)")
    parser.add_argument("--n-isic", type=int, default=300, help="ISIC 2016 Part 3 images to extract")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    size = backbones.default_size(args.backbone)
    ham = list(load_dataset("ham10000").paths)
    ham = ham[: args.n_ham] if args.n_ham else ham
    isic = list(load_dataset("isic2016_task3").paths)[: args.n_isic]
    import tensorflow as tf

    rss_start = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        model = transfer.feature_model(args.backbone, "imagenet", size)
        run = lambda paths, where: pipeline(paths, args.backbone, size, args.batch_size, Path(tmp) / where, model)
        run(isic[:args.batch_size], "warm")  # the first call traces the graph: outside the timings
        raw = raw_forward(model, size, args.batch_size, n_batches=max(5, len(ham) // (4 * args.batch_size)))
        decode_ham = decode_only(ham, size, args.batch_size)
        quarter = len(ham) // 4
        sampler = PeakRss()
        ips_q = run(ham[:quarter], "ham")
        peak_quarter = sampler.peak
        ips_rest = run(ham[quarter:], "ham")
        peak_all = sampler.stop()
        ips_ham = len(ham) / (quarter / ips_q + (len(ham) - quarter) / ips_rest)
        ips_isic = run(isic, "isic")
    rows = {
        "raw_forward_synthetic": round(raw, 1),
        "pipeline_ham10000": round(ips_ham, 1),
        "pipeline_isic2016": round(ips_isic, 1),
        "decode_only_ham10000": round(decode_ham, 1),
    }
    record = {
        "benchmark": "deep_features", "backbone": args.backbone, "weights": "imagenet", "input_size": size,
        "batch_size": args.batch_size, "n_images": {"ham10000": len(ham), "isic2016_task3": len(isic)},
        "images_per_second": rows,
        "ratio_pipeline_to_raw": {"ham10000": round(ips_ham / raw, 3), "isic2016_task3": round(ips_isic / raw, 3)},
        "rss_mb": {"before": round(rss_start, 1), "peak_after_first_quarter": round(peak_quarter, 1),
                   "peak_after_all": round(peak_all, 1),
                   "full_dataset_decoded_would_need": round(10015 * size * size * 3 * 4 / 2**20, 1)},
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(), "cpu_count": os.cpu_count(),
        "note": "the machine is shared with other jobs: absolute rates vary, the ratio and the RSS trend matter",
        "command": "python benchmarks/perf_deep_features.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "maxrss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **environment(),
    }
    out = committed_results_dir() / "perf" / "deep_features"
    atomic_write_bytes(out.with_suffix(".json"), json.dumps(record, indent=2).encode())
    md = [f"# Deep feature extraction throughput ({args.backbone}, {size}x{size}, batch {args.batch_size})", "",
          "| measurement | images/s | ratio to raw forward |", "|---|---|---|"]
    md += [f"| {k} | {v} | {v / raw:.2f} |" for k, v in rows.items()]
    r = record["rss_mb"]
    md += ["", f"Peak RSS during HAM10000 extraction: {r['peak_after_first_quarter']} MB after "
               f"{quarter} images, {r['peak_after_all']} MB after {len(ham)} (process start {r['before']} MB; "
               f"all 10015 decoded float32 images would need {r['full_dataset_decoded_would_need']} MB).",
           "", f"Machine: {record['machine']}; {record['note']}.", "", f"Command: `{record['command']}`"]
    atomic_write_bytes(out.with_suffix(".md"), ("\n".join(md) + "\n").encode())
    print("\n".join(md))


if __name__ == "__main__":
    from skinbench.errors import run_script

    run_script(main, "perf_deep_features")
