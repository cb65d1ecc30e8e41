"""Train and evaluate the final deep segmentation configurations (task3 globules/streaks, task4 lesions).

Three steps, because the training ran on a lent GPU machine that has JAX but neither TensorFlow nor
the shared data:

1. ``export`` (here): writes the training images/masks (HAM10000 train split resized to the model
   input; ISIC 2018 attribute images of the 2016-style split), the MobileNetV2 weights and CSV lists
   into ``.gpudata/`` (git-ignored, carried to the GPU machine).
2. ``train`` (GPU machine, ``KERAS_BACKEND=jax``): fits every configuration in :data:`CONFIGS` with the
   committed estimators, exports float16 weights to ``--out``; for task3 it also scores every loss on
   the test split against the full-size truth masks (ISIC masks are the images' size) and keeps, per
   feature, the loss with the best *validation* pooled Jaccard.
3. ``evaluate`` (here): ``skinbench.runner.run(task, approach, params={"checkpoint": ...})`` for the
   final configurations: the runner scores against the full-resolution truth masks and writes records.

``python benchmarks/train_segmenters.py export|train|evaluate --help``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: final configurations; the same parameters are used for training (GPU) and evaluation (here)
TASK4 = {
    "ynet": dict(input_size=128, weights="imagenet", train_encoder=False, epochs=25, batch_size=32,
                 learning_rate=1e-3, patience=5, n_classes=7),
    "mobilenet-unet-ft": dict(input_size=128, weights="imagenet", train_encoder=True, epochs=25, batch_size=32,
                              learning_rate=5e-4, patience=5),
}
TASK3_LOSSES = {"wbce": {"pos_weight": 10.0}, "focal": {}, "tversky": {}, "dice": {}, "bce": {}, "jaccard": {}}
TASK3 = dict(input_size=256, base_filters=16, depth=4, epochs=40, batch_size=16, learning_rate=1e-3,
             patience=8, positive_fraction=0.5)
FEATURES = ("globules", "streaks")
EXCLUDE = {"streaks": {"ISIC_0012481"}}  # mask missing although present (data README)


# ----------------------------------------------------------------------------- export (here)
def isic2016_split(root: Path) -> pd.DataFrame:
    """The ISIC 2018 Task 2 images that were ISIC 2016 train/test images (2016 Part 2B-style split)."""
    folder = root / "isic2018_task2"
    split = pd.read_csv(folder / "split_membership_2016_2017.csv", dtype=str)
    split = split[split["isic2016_split"].isin(["train", "test"])].copy()
    split["image"] = [str(folder / "images" / f"{i}.jpg") for i in split["image_id"]]
    for f in FEATURES:
        split[f"mask_{f}"] = [str(folder / f / f"{i}_attribute_{f}.png") for i in split["image_id"]]
    return split.rename(columns={"isic2016_split": "split"})[["image_id", "image", "split"]
                                                               + [f"mask_{f}" for f in FEATURES]]


def export(args: argparse.Namespace) -> None:
    import cv2
    from PIL import Image

    from skinbench.data import load_dataset
    from skinbench.data.images import read_image, read_mask
    from skinbench.paths import data_root

    out = Path(args.out)
    root = data_root(args.data_root)
    ham = load_dataset("ham10000", root).split("train")
    size = TASK4["ynet"]["input_size"]
    rows = []
    for image_id, img, m, y in zip(ham.ids, ham.paths, ham.masks("lesion"), ham.y):
        ip, mp = out / "ham" / f"{image_id}.jpg", out / "ham" / f"{image_id}_lesion.png"
        ip.parent.mkdir(parents=True, exist_ok=True)
        if not ip.exists():
            cv2.imwrite(str(ip), cv2.cvtColor(read_image(img, (size, size)), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 80])
            Image.fromarray(read_mask(m, (size, size))).save(mp, optimize=True)  # 1-bit PNG
        rows.append((image_id, ip.relative_to(out), mp.relative_to(out), int(y), ham.groups[len(rows)]))
    pd.DataFrame(rows, columns=["image_id", "image", "mask", "y", "lesion_id"]).to_csv(out / "ham_train.csv", index=False)
    isic = isic2016_split(root)
    for col in ["image"] + [f"mask_{f}" for f in FEATURES]:
        new = []
        for src in isic[col]:
            dst = out / "isic" / Path(src).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if Path(src).is_file() and not dst.exists():
                dst.write_bytes(Path(src).read_bytes())
            new.append(str(dst.relative_to(out)) if Path(src).is_file() else "")
        isic[col] = new
    isic.to_csv(out / "isic.csv", index=False)
    wsrc = root / "weights" / "keras" / "models"
    (out / "keras" / "models").mkdir(parents=True, exist_ok=True)
    for f in wsrc.glob("mobilenet_v2*.h5"):
        dst = out / "keras" / "models" / f.name
        if not dst.exists():
            dst.write_bytes(f.read_bytes())
    print(f"exported {len(rows)} HAM10000 train images and {len(isic)} ISIC images to {out}")


# ----------------------------------------------------------------------------- train (GPU)
def train(args: argparse.Namespace) -> None:
    from skinbench.approaches.unet import UNetSegmenter
    from skinbench.approaches.ynet import MobileNetUNetSegmenter, YNetSegmenter
    from skinbench.data.images import read_mask
    from skinbench.metrics.segmentation import confusion_counts, segmentation_scores

    data, out = Path(args.data).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start, log = time.time(), {"backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "runs": {}}

    def save_log() -> None:
        (out / "train_log.json").write_text(json.dumps(log, indent=1))

    if "task4" in args.tasks:
        ham = pd.read_csv(data / "ham_train.csv", dtype={"image_id": str, "lesion_id": str})
        X, M = [str(data / p) for p in ham["image"]], [str(data / p) for p in ham["mask"]]
        for name, params in TASK4.items():
            if name in args.skip:
                continue
            cls = YNetSegmenter if name == "ynet" else MobileNetUNetSegmenter
            t = time.time()
            est = cls(**params, verbose=2).fit(X, M, ham["y"].to_numpy())  # no groups: as the runner
            est.export_weights(out / f"{name}.npz")
            log["runs"][name] = {"fit_s": time.time() - t, "n_train": len(X), "threshold": est.threshold_,
                                 "best": est.train_state_.get("best"), "best_epoch": est.train_state_.get("best_epoch"),
                                 "history": est.train_state_.get("history")}
            save_log()
    if "task3" in args.tasks:
        isic = pd.read_csv(data / "isic.csv", dtype=str, keep_default_na=False)
        for feature in FEATURES:
            part = isic[~isic["image_id"].isin(EXCLUDE.get(feature, set()))]
            tr, te = part[part["split"] == "train"], part[part["split"] == "test"]
            X = [str(data / p) for p in tr["image"]]
            M = [str(data / p) if p else "" for p in tr[f"mask_{feature}"]]
            best = None
            for loss, loss_params in TASK3_LOSSES.items():
                if time.time() - start > args.budget_s:
                    log["runs"][f"unet-{loss}__{feature}"] = {"skipped": "time budget"}
                    continue
                t = time.time()
                est = UNetSegmenter(**TASK3, loss=loss, loss_params=loss_params or None, verbose=2).fit(X, M)
                fit_s = time.time() - t
                val_jaccard = est.validation_jaccard_
                counts = [confusion_counts(read_mask(str(data / m)) if m else np.zeros(p.shape, bool), p >= 0.5)
                          for m, p in zip(te[f"mask_{feature}"], est.predict_proba([str(data / p) for p in te["image"]]))]
                scores = segmentation_scores(np.asarray(counts))
                log["runs"][f"unet-{loss}__{feature}"] = {"fit_s": fit_s, "threshold": est.threshold_,
                                                           "val_jaccard_set": val_jaccard, "test": scores,
                                                           "n_train": len(X), "n_test": len(te),
                                                           "best_epoch": est.train_state_.get("best_epoch")}
                print(feature, loss, f"val {val_jaccard:.3f}", {k: scores[k] for k in ("jaccard_set", "precision_set", "recall_set")}, flush=True)
                if best is None or val_jaccard > best[0]:
                    best = (val_jaccard, loss)
                    est.export_weights(out / f"unet_{feature}.npz")
                    log[f"best_{feature}"] = loss
                save_log()
    log["total_s"] = time.time() - start
    save_log()


# ----------------------------------------------------------------------------- evaluate (here)
def evaluate(args: argparse.Namespace) -> None:
    from skinbench import runner

    weights = Path(args.weights)
    log = json.loads((weights / "train_log.json").read_text())
    if "task4" in args.tasks:
        for name, params in TASK4.items():
            approach = "ynet" if name == "ynet" else "mobilenet-unet"
            print(runner.run("task4", approach, params={**params, "checkpoint": str(weights / f"{name}.npz")},
                             n_boot=args.n_boot))
    if "task3" in args.tasks:
        for feature in FEATURES:
            loss = log.get(f"best_{feature}")
            if loss:
                params = {**TASK3, "loss": loss, "loss_params": TASK3_LOSSES[loss] or None,
                          "checkpoint": str(weights / f"unet_{feature}.npz")}
                print(runner.run("task3", "unet", target=feature, params=params, n_boot=args.n_boot))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("export", help="write .gpudata/ for the GPU machine")
    p.add_argument("--out", default=str(REPO / ".gpudata"))
    p.add_argument("--data-root", default=None)
    p = sub.add_parser("train", help="train every configuration (run on the GPU machine)")
    p.add_argument("--data", default=str(REPO / ".gpudata"))
    p.add_argument("--out", required=True)
    p.add_argument("--tasks", nargs="+", default=["task4", "task3"])
    p.add_argument("--skip", nargs="*", default=[], help="task4 configurations already trained")
    p.add_argument("--budget-s", type=float, default=480.0, help="skip remaining task3 losses after this")
    p = sub.add_parser("evaluate", help="score the trained weights with the runner (full-size truth masks)")
    p.add_argument("--weights", required=True)
    p.add_argument("--tasks", nargs="+", default=["task4", "task3"])
    p.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)
    {"export": export, "train": train, "evaluate": evaluate}[args.step](args)


if __name__ == "__main__":
    main()
