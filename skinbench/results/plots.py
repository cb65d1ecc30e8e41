"""Figures rendered from result records only (matplotlib, Agg backend: no display needed).

Per record: a confusion matrix. Per table: ROC and precision-recall curves of all approaches on one
figure, per-class recall bars (multiclass), a reliability diagram of all approaches (classification;
keyed ``<slug>__clinical``, it belongs to the calibration table), per-image Jaccard distributions
(segmentation).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve  # noqa: E402
from sklearn.preprocessing import label_binarize  # noqa: E402

from skinbench.cache import atomic_write_bytes  # noqa: E402
from skinbench.data.images import read_image  # noqa: E402
from skinbench.metrics.calibration import DEFAULT_BINS, reliability_curve  # noqa: E402
from skinbench.results.records import RunRecord  # noqa: E402

if TYPE_CHECKING:
    from skinbench.results.tables import Table


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a figure as PNG atomically (a crash never leaves half a plot) and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _class_names(record: RunRecord, n: int) -> list[str]:
    names = record.class_names
    return names if len(names) == n else [str(i) for i in range(n)]


def overlay_name(task: str, dataset: str, approach: str, target: str | None, seed: int | None = 0) -> str:
    """The file name of a segmentation run's overlay figure (the runner writes it, the dashboard links it);
    a seed k > 0 gets ``__seed<k>`` as its record does, so it never replaces the row's own figure."""
    return f"overlay_{task}_{dataset}_{approach}__{target}{f'__seed{seed}' if seed else ''}.png"


def overlay_path(root: str | os.PathLike, record: RunRecord) -> Path:
    return Path(root) / "plots" / overlay_name(record.task, record.dataset, record.approach, record.target,
                                               record.seed)


def plot_confusion(record: RunRecord, path: str | os.PathLike) -> Path | None:
    """Confusion matrix (counts, rows = truth) of one classification record; None if it has none."""
    cm = record.extras.get("confusion_matrix")
    if not cm:
        return None
    cm = np.asarray(cm, dtype=float)
    names = _class_names(record, len(cm))
    size = 2.2 + 0.55 * len(names)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center",
                color="white" if v > cm.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{record.approach} ({record.task}, {record.dataset})", fontsize=9)
    return save_figure(fig, Path(path))


def _curve_inputs(record: RunRecord) -> tuple[np.ndarray, np.ndarray] | None:
    """(binary truth, score) for curves: the positive class, or micro-averaged one-vs-rest."""
    try:
        _, y, scores = record.prediction_arrays()
    except (KeyError, ValueError, TypeError):
        return None
    if scores.shape[1] == 2:
        return (y == 1).astype(int), scores[:, 1]
    truth = label_binarize(y, classes=list(range(scores.shape[1])))
    return truth.ravel(), scores.ravel()


def plot_curves(records: Sequence[RunRecord], path: str | os.PathLike, title: str = "") -> Path | None:
    """ROC and precision-recall curves of several approaches on one figure (two panels)."""
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(10, 4.5))
    drawn = 0
    prevalence, multiclass = None, False
    for r in records:
        inputs = _curve_inputs(r)
        if inputs is None or len(np.unique(inputs[0])) < 2:
            continue
        truth, score = inputs
        multiclass = len(truth) != len(r.predictions["image_id"])
        fpr, tpr, _ = roc_curve(truth, score)
        prec, rec, _ = precision_recall_curve(truth, score)
        ax_roc.plot(fpr, tpr, label=f"{r.approach} (AUC {auc(fpr, tpr):.3f})")
        ax_pr.plot(rec, prec, drawstyle="steps-post",
                   label=f"{r.approach} (AP {average_precision_score(truth, score):.3f})")
        prevalence = truth.mean()
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax_roc.plot([0, 1], [0, 1], ls=":", c="grey")
    ax_pr.axhline(prevalence, ls=":", c="grey")
    micro = " (one-vs-rest, micro)" if multiclass else ""
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC{micro}")
    ax_pr.set(xlabel="recall", ylabel="precision", title=f"Precision-recall{micro}", ylim=(0, 1.02))
    for ax in (ax_roc, ax_pr):
        ax.legend(fontsize=7, loc="lower right" if ax is ax_roc else "upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))


def plot_reliability(records: Sequence[RunRecord], path: str | os.PathLike, title: str = "",
                     n_bins: int | None = None) -> Path | None:
    """Reliability diagram of several approaches on one figure: per equal-mass bin, the mean predicted
    probability against the observed frequency (binary: of the positive class; multiclass: top-class
    confidence against accuracy), ECE in the legend (``metrics.calibration.reliability_curve``)."""
    n_bins = n_bins or DEFAULT_BINS
    fig, ax = plt.subplots(figsize=(5.5, 5))
    drawn, target = 0, ""
    for r in records:
        try:
            _, y, scores = r.prediction_arrays()
            curve = reliability_curve(y, scores, n_bins)
        except (KeyError, ValueError, TypeError, IndexError):
            continue
        if not curve["count"]:
            continue
        ece = "n/a" if curve["ece"] is None else f"{curve['ece']:.3f}"
        ax.plot(curve["mean_predicted"], curve["observed"], marker="o", ms=3.5, lw=1.2,
                label=f"{r.approach} (ECE {ece})")
        target = curve["target"]
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.plot([0, 1], [0, 1], ls=":", c="grey", label="perfectly calibrated")
    observed = "observed frequency of the positive class" if target.startswith("positive") else "accuracy"
    ax.set(xlabel=f"mean predicted {target} (per bin)", ylabel=observed, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
           title=f"Reliability ({n_bins} equal-mass bins)")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))


def plot_per_class_recall(records: Sequence[RunRecord], path: str | os.PathLike, title: str = "") -> Path | None:
    """Grouped bars: recall of each class per approach (from the confusion matrices)."""
    series = []
    for r in records:
        cm = r.extras.get("confusion_matrix")
        if cm:
            cm = np.asarray(cm, dtype=float)
            support = cm.sum(axis=1)
            series.append((r.approach, np.divide(np.diag(cm), support, out=np.zeros(len(cm)),
                                                    where=support > 0), _class_names(r, len(cm))))
    if not series:
        return None
    names = series[0][2]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4))
    for k, (approach, recall, _) in enumerate(series):
        ax.bar(np.arange(len(names)) + (k - (len(series) - 1) / 2) * width, recall, width, label=approach)
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="recall (sensitivity)", ylim=(0, 1.05), title=title or "Per-class recall")
    ax.legend(fontsize=7, ncols=2)
    return save_figure(fig, Path(path))


def plot_jaccard_distribution(records: Sequence[RunRecord], path: str | os.PathLike, title: str = "") -> Path | None:
    """Per-image Jaccard of each approach: violins with a box inside, means marked."""
    data, labels = [], []
    for r in records:
        try:
            _, jac = r.per_image_jaccard()
        except (KeyError, ValueError, TypeError):
            continue
        if len(jac):
            data.append(jac)
            labels.append(r.approach)
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(data) + 2), 4))
    pos = np.arange(1, len(data) + 1)
    ax.violinplot(data, positions=pos, showextrema=False)
    ax.boxplot(data, positions=pos, widths=0.15, showfliers=False)
    ax.scatter(pos, [d.mean() for d in data], marker="D", c="red", s=18, zorder=3, label="mean")
    ax.axhline(0.65, ls=":", c="grey", label="ISIC threshold 0.65")
    ax.set_xticks(pos, labels, rotation=20, ha="right")
    ax.set(ylabel="per-image Jaccard", ylim=(-0.02, 1.02), title=title or "Per-image Jaccard")
    ax.legend(fontsize=7)
    return save_figure(fig, Path(path))


#: long side (pixels) at which overlay panels are drawn: a panel is about 3 inches at 110 dpi (~330 px),
#: so more pixels only cost time and memory (issue 30: one 10000x7500 test image took 730 s and 14.3 GB
#: when its overlay was drawn at full size; the metrics keep the truth mask's own grid)
OVERLAY_SIDE = 512


def display_size(width: int, height: int, side: int = OVERLAY_SIDE) -> tuple[int, int]:
    """(width, height) with the long side at most ``side``, aspect kept; never enlarged."""
    scale = min(1.0, side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def display_mask(mask: np.ndarray, side: int = OVERLAY_SIDE) -> np.ndarray:
    """A mask at display size as float32 coverage (0..1, area-averaged), so its 0.5 contour follows the
    full-resolution border and a structure smaller than a display pixel still shows (see plot_overlays)."""
    m = np.asarray(mask, dtype=np.float32)
    size = display_size(m.shape[1], m.shape[0], side)
    return m if size == (m.shape[1], m.shape[0]) else cv2.resize(m, size, interpolation=cv2.INTER_AREA)


def overlay_panel(image_path: str | os.PathLike, truth: np.ndarray, pred: np.ndarray,
                  side: int = OVERLAY_SIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One overlay row's inputs at display size: the image read reduced (``read_image(draft=True)``) at the
    truth grid's aspect, truth and prediction as coverage. What the runner keeps per overlay image, so a
    huge test image costs a few hundred KB here instead of its full-size copies until the figure is drawn."""
    size = display_size(truth.shape[1], truth.shape[0], side)
    return read_image(image_path, size=size, draft=True), display_mask(truth, side), display_mask(pred, side)


def plot_overlays(images: Sequence[np.ndarray], truths: Sequence[np.ndarray], preds: Sequence[np.ndarray],
                  titles: Sequence[str], path: str | os.PathLike, side: int = OVERLAY_SIDE) -> Path:
    """One row per image: image | truth contour (green) | prediction contour (red).

    Everything is drawn at most ``side`` pixels on the long side (:func:`display_size`): images are
    resized, masks become coverage fractions (:func:`display_mask`) whose contour is drawn at 0.5, or at
    half the peak when a structure is thinner than a display pixel. "(empty)" / "(all)" read the coverage:
    no pixel covered at all / every pixel fully covered."""
    n = len(images)
    aspect = max(np.shape(images[0])[0] / max(np.shape(images[0])[1], 1), 0.2) if n else 1.0
    fig, axes = plt.subplots(n, 3, figsize=(9, (3 * aspect + 0.35) * n), squeeze=False)
    for i, (img, truth, pred, title) in enumerate(zip(images, truths, preds, titles)):
        img = np.asarray(img)
        size = display_size(img.shape[1], img.shape[0], side)
        if size != (img.shape[1], img.shape[0]):
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        for j, (mask, colour, label) in enumerate(((None, None, title), (truth, "lime", "truth"),
                                                   (pred, "red", "prediction"))):
            ax = axes[i, j]
            ax.imshow(img)
            if mask is not None:
                cover = display_mask(mask, side)
                if cover.shape != img.shape[:2]:  # a mask grid other than the image's: drawn over the image
                    cover = cv2.resize(cover, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
                peak = float(cover.max()) if cover.size else 0.0
                if peak > 0 and float(cover.min()) < 1:
                    ax.contour(cover, levels=[min(0.5, peak / 2)], colors=colour, linewidths=1.2)
                else:
                    label += " (all)" if peak > 0 else " (empty)"
            ax.set_title(label, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, Path(path))


def render_plots(tables: Sequence["Table"], root: str | os.PathLike) -> dict[str, list[Path]]:
    """All plots of the given tables under ``<root>/plots``; returns ``{table slug: [png, ...]}``
    (a classification table's reliability diagram under its calibration table's slug,
    ``<slug>__clinical``, so the main table's files and links stay as they were)."""
    out_dir = Path(root) / "plots"
    written: dict[str, list[Path]] = {}
    for table in tables:
        ok = [r for r in table.records.values() if r.ok]
        order = [row["approach"] for row in table.rows]
        ok.sort(key=lambda r: order.index(r.approach) if r.approach in order else len(order))
        files: list[Path | None] = []
        if table.kind == "segmentation":
            files.append(plot_jaccard_distribution(ok, out_dir / f"{table.slug}__jaccard.png", table.title))
        else:
            files.append(plot_curves(ok, out_dir / f"{table.slug}__curves.png", table.title))
            if table.kind == "multiclass":
                files.append(plot_per_class_recall(ok, out_dir / f"{table.slug}__per_class_recall.png",
                                                   table.title))
            for r in ok:
                files.append(plot_confusion(r, out_dir / f"{table.slug}__{r.approach}__confusion.png"))
            reliability = plot_reliability(ok, out_dir / f"{table.slug}__reliability.png", table.title)
            if reliability is not None:
                written[f"{table.slug}__clinical"] = [reliability]
        written[table.slug] = [f for f in files if f is not None]
    return written
