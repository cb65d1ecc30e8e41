"""Train the deep segmenters on a lent GPU machine, then score them here through the runner.

Three steps, because the lent GPU machine has JAX but neither TensorFlow nor the shared data:

1. ``export`` (here): writes the training images/masks of every configuration in :func:`configs` (the
   HAM10000 train split resized to the model input; the ISIC 2018 attribute images of the 2016-style
   train split, from the dataset adapter), the MobileNetV2 weights and CSV lists into ``.gpudata/``
   (git-ignored, carried to the GPU machine).
2. ``train`` (GPU machine, ``KERAS_BACKEND=jax``): fits each configuration with the committed
   estimators through the runner's fit path (:func:`fit`: seeded as the runner seeds, and with the
   lesion ids as ``groups``, so the validation split that picks the epoch and the threshold keeps a
   lesion's images together, as in a runner fit) and exports float16 weights to ``--out``.
3. ``evaluate`` (here): ``skinbench.runner.run(task, approach, params={"checkpoint": ...})``: the
   runner scores against the full-resolution truth masks and writes the records; the task4 Y-Net's
   classification head is scored on task2 (``ynet-cls``) from the same checkpoint.

The configurations are the registry's (``info.APPROACHES[...].params_for(task)``): one place for each
fact, so a checkpoint trained here fits the model the runner builds.

``python benchmarks/train_segmenters.py export|train|evaluate --help``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skinbench import info  # noqa: E402

#: (task, approach, target) trained on the GPU machine; parameters come from the registry
RUNS = (("task4", "ynet", "lesion"), ("task4", "mobilenet-unet", "lesion"),
        ("task3", "mobilenet-unet", "globules"), ("task3", "mobilenet-unet", "streaks"))


def configs(tasks: list[str]) -> list[tuple[str, str, str, dict]]:
    """(task, approach, target, registered params) for the requested tasks."""
    return [(t, a, target, info.approach(a).params_for(t)) for t, a, target in RUNS if t in tasks]


def weights_name(task: str, approach: str, target: str) -> str:
    return f"{task}_{approach}_{target}.npz"


# ----------------------------------------------------------------------------- export (here)
def export(args: argparse.Namespace) -> None:
    """Resized copies of each configuration's training split (the GPU machine has no shared data)."""
    import cv2
    from PIL import Image

    from skinbench.data import load_dataset
    from skinbench.data.images import read_image, read_mask
    from skinbench.paths import data_root

    out = Path(args.out)
    root = data_root(args.data_root)
    splits: dict = {}  # each dataset is loaded once, however many configurations use it
    for task, approach, target, params in configs(args.tasks):
        dataset = info.task(task).default_dataset
        if dataset not in splits:
            splits[dataset] = load_dataset(dataset, root).split("train")
        train = splits[dataset]
        size = params["input_size"]
        rows = []
        for k, (image_id, img, m) in enumerate(zip(train.ids, train.paths, train.masks(target))):
            ip = out / dataset / str(size) / f"{image_id}.jpg"
            mp = out / dataset / str(size) / f"{image_id}_{target}.png"
            ip.parent.mkdir(parents=True, exist_ok=True)
            if not ip.exists():
                cv2.imwrite(str(ip), cv2.cvtColor(read_image(img, (size, size)), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not mp.exists():
                mask = read_mask(m, (size, size)) if m else np.zeros((size, size), bool)
                Image.fromarray(mask).save(mp, optimize=True)  # 1-bit PNG
            rows.append((image_id, ip.relative_to(out), mp.relative_to(out),
                         int(train.y[k]) if train.class_names else -1, train.groups[k]))
        table = pd.DataFrame(rows, columns=["image_id", "image", "mask", "y", "lesion_id"])
        table.to_csv(out / f"{task}_{approach}_{target}.csv", index=False)
        print(f"exported {len(table)} {dataset} training images for {task}/{approach}/{target}")
    wsrc = root / "weights" / "keras" / "models"
    (out / "keras" / "models").mkdir(parents=True, exist_ok=True)
    for f in wsrc.glob("mobilenet_v2*.h5"):
        dst = out / "keras" / "models" / f.name
        if not dst.exists():
            dst.write_bytes(f.read_bytes())


# ----------------------------------------------------------------------------- train (GPU)
def fit(task: str, approach: str, table: pd.DataFrame, data: Path, seed: int = 0) -> tuple[object, float]:
    """Build the registered estimator and fit it on an exported list as the runner fits a segmenter
    (``runner.build_estimator``, ``seed_everything``, ``fit(X, masks, y=labels, groups=lesion ids)``);
    returns the estimator and the fit's seconds."""
    from skinbench import runner

    X, M = [str(data / p) for p in table["image"]], [str(data / p) for p in table["mask"]]
    labels = table["y"].to_numpy() if (table["y"] >= 0).all() else None
    groups = table["lesion_id"].fillna("").astype(str).to_numpy()  # Dataset.groups: lesion ids as text
    est = runner.build_estimator(info.approach(approach), seed, {"verbose": 2}, task)
    runner.seed_everything(seed)
    fit_s, _ = runner.timed_fit(est, X, M, y=labels, groups=groups)
    return est, fit_s


def train(args: argparse.Namespace) -> None:
    data, out = Path(args.data).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = {"backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "runs": {}}
    for task, approach, target, params in configs(args.tasks):
        name = weights_name(task, approach, target)
        if name in args.skip:
            continue
        table = pd.read_csv(data / f"{task}_{approach}_{target}.csv", dtype={"image_id": str, "lesion_id": str})
        est, fit_s = fit(task, approach, table, data)
        est.export_weights(out / name)
        log["runs"][name] = {"fit_s": fit_s, "n_train": len(table), "params": params,
                             "threshold": est.threshold_, "best": est.train_state_.get("best"),
                             "best_epoch": est.train_state_.get("best_epoch"),
                             "history": est.train_state_.get("history")}
        (out / "train_log.json").write_text(json.dumps(log, indent=1))


# ----------------------------------------------------------------------------- evaluate (here)
def evaluate(args: argparse.Namespace) -> None:
    from skinbench import runner

    weights = Path(args.weights)
    for task, approach, target, _ in configs(args.tasks):
        checkpoint = weights / weights_name(task, approach, target)
        if not checkpoint.is_file():
            continue
        print(runner.run(task, approach, target=target, params={"checkpoint": str(checkpoint)}, n_boot=args.n_boot))
        if (task, approach) == ("task4", "ynet"):  # the same joint model's diagnosis head, on task2
            print(runner.run("task2", "ynet-cls", params={"checkpoint": str(checkpoint)}, n_boot=args.n_boot))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("export", help="write .gpudata/ for the GPU machine")
    p.add_argument("--out", default=str(REPO / ".gpudata"))
    p.add_argument("--data-root", default=None)
    p.add_argument("--tasks", nargs="+", default=["task4", "task3"])
    p = sub.add_parser("train", help="train every configuration (run on the GPU machine)")
    p.add_argument("--data", default=str(REPO / ".gpudata"))
    p.add_argument("--out", required=True)
    p.add_argument("--tasks", nargs="+", default=["task4", "task3"])
    p.add_argument("--skip", nargs="*", default=[], help="weights files already trained (e.g. task4_ynet_lesion.npz)")
    p = sub.add_parser("evaluate", help="score the trained weights with the runner (full-size truth masks)")
    p.add_argument("--weights", required=True)
    p.add_argument("--tasks", nargs="+", default=["task4", "task3"])
    p.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)
    {"export": export, "train": train, "evaluate": evaluate}[args.step](args)


if __name__ == "__main__":
    from skinbench.errors import run_script

    run_script(main, "train_segmenters")
