"""Table headers: the sentences above each comparison table, in-dataset and cross-dataset alike.

One module for both, so the results layer renders a cross-dataset table without importing
:mod:`skinbench.crossdata` (which runs them) and both kinds end with the same :func:`header_tail`.
"""

from __future__ import annotations

from skinbench import info
from skinbench.data.isic_csv import describe_mapping
from skinbench.results.records import RunRecord, distinct


def positive_class(dataset: str, records: list[RunRecord]) -> str | None:
    """The class a binary table's precision, recall, AUC and AP are about: as the records state it, else
    the registry's (records made before they stated it)."""
    stated = {r.extras.get("positive_class") for r in records if len(r.class_names) == 2} - {None}
    if len(stated) == 1:
        return stated.pop()
    meta = info.DATASETS.get(dataset)
    binary = any(len(r.class_names) == 2 for r in records)
    return meta.positive_class if meta is not None and binary else None


def header_tail(task: str, dataset: str, ok: list[RunRecord], per: str = "split") -> list[str]:
    """The sentences every table header ends with: subset warning, positive class, primary metric, CIs."""
    parts = []
    limits = sorted({r.limit for r in ok if r.limit})
    if limits:
        parts.append(f"**Subset run** (at most {', '.join(map(str, limits))} images per {per}): not comparable "
                     f"with full-data numbers.")
    positive = positive_class(dataset, ok)
    if positive:
        parts.append(f"Positive class: {positive}.")
    parts.append(f"Primary metric: {info.task(task).primary_metric}. Values: estimate [95% bootstrap CI over "
                 f"test images].")
    return parts


def per_image_convention(ok: list[RunRecord], false_alarms: bool) -> str:
    """The sentence every segmentation table states how its columns treat images without the target
    (:func:`skinbench.scoring.mean_over`): per-image means only over the images whose truth holds it, the
    others scored by false alarms, so a baseline that predicts nothing cannot win a column there."""
    with_target = sorted({int(r.extras["images_with_target"]) for r in ok if "images_with_target" in r.extras})
    n_test = sorted({int(r.split["n_test"]) for r in ok if r.split.get("n_test") is not None})
    counted = (f" ({', '.join(map(str, with_target))} of {', '.join(map(str, n_test))} test images)"
               if with_target and n_test else "")
    text = (f"Per-image columns (jaccard_mean, dice_mean, thresholded_jaccard and the boundary distances) are "
            f"means over the test images whose truth holds the target{counted}; the `_set` columns pool every "
            f"test image (precision_set is n/a for a row that predicts no pixel, not 1.0).")
    if false_alarms:
        text += (" On the images without the target: false_alarm_images, the share of them where anything is "
                 "predicted, and false_alarm_area, the mean predicted fraction of the image (both lower is "
                 "better; an empty prediction scores 0).")
    return text


def table_header(task: str, dataset: str, ok: list[RunRecord], all_records: list[RunRecord]) -> str:
    """The header of an in-dataset table: the task, its split and manifest, then :func:`header_tail`."""
    t = info.task(task)
    splits = distinct(ok or all_records, "split")
    parts = [f"{t.title}."]
    if splits:
        s = splits[0]
        parts.append(f"Split: {s.get('name', 'fixed')} train/test, n_train {s.get('n_train', '?')}, "
                     f"n_test {s.get('n_test', '?')}, manifest `{str(s.get('manifest_digest', '?'))[:12]}`.")
        digests = {str(x.get("manifest_digest")) for x in splits}
        if len(digests) > 1:
            parts.append(f"**Warning: records disagree on the data split ({len(digests)} manifest digests); "
                         f"rerun the older ones.**")
    parts += header_tail(task, dataset, ok)
    if t.reference and dataset == t.default_dataset:
        parts.append(f"Published reference: {t.reference}.")
    return " ".join(parts)


CROSS = "__on__"


def is_cross(dataset: str) -> bool:
    """A cross-dataset group (``skinbench.crossdata`` records: dataset ``<train>__on__<test>``)."""
    return CROSS in (dataset or "")


def _geometry(g: dict | None) -> str:
    if not g or not g.get("n"):
        return "?"
    w, h, a = g["width_p5_50_95"], g["height_p5_50_95"], g["aspect_p5_50_95"]
    return (f"{w[1]:.0f}x{h[1]:.0f} px median (width {w[0]:.0f}-{w[2]:.0f}, height {h[0]:.0f}-{h[2]:.0f} at the "
            f"5th-95th percentiles; aspect {a[1]:.2f}; distinct sizes {g.get('distinct_sizes', '?')})")


def cross_table_header(task: str, dataset: str, ok: list[RunRecord], all_records: list[RunRecord]) -> str:
    """The header of a cross-dataset table (``<train>__on__<test>`` groups of :mod:`skinbench.crossdata`
    records): train and test data, overlap excluded, label mapping, input geometry."""
    t = info.task(task)
    train, test = dataset.split(CROSS, 1)
    first = (ok or all_records)[0]
    ex = first.extras
    ov = ex.get("overlap") or {}
    parts = [f"{t.title}. **Cross-dataset**: fitted on the train split of {train} (n_train "
             f"{first.split.get('n_train', '?')}), scored on {test} ({ex.get('test_split', '?')} images; n_test "
             f"{first.split.get('n_test', '?')}): not comparable with the in-dataset tables."]
    parts.append(f"Overlap with the training images, excluded: {ov.get('excluded', '?')} of {ov.get('n_foreign', '?')} "
                 f"(same id {ov.get('same_id', '?')}, same file content {ov.get('same_content', '?')}; re-encoded "
                 f"copies are not found by a file hash).")
    if len({str(r.extras.get("overlap")) for r in ok}) > 1:
        parts.append("**Records differ in their test images (overlap counts above: the first record's).**")
    mapping = ex.get("mapping")
    if mapping:
        dropped = ex.get("excluded_by_mapping") or {}
        parts.append(f"Label mapping `{mapping.get('name')}`: {describe_mapping(mapping.get('codes') or {})}; "
                     f"rows excluded by it: {', '.join(f'{k} {v}' for k, v in sorted(dropped.items())) or 'none'}.")
    elif t.kind == "classification":  # a segmentation test set is scored on its masks, not its labels
        parts.append("Test labels: the task's classes, as given.")
    counts, dx = ex.get("test_class_counts") or {}, ex.get("test_dx_counts") or {}
    if counts:
        parts.append("Scored test images: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                     + (f" (diagnoses: {', '.join(f'{k} {v}' for k, v in sorted(dx.items()))})" if dx else "") + ".")
    geo = ex.get("geometry") or {}
    parts.append(f"Input geometry, train: {_geometry(geo.get('train'))}; test: {_geometry(geo.get('test'))}.")
    return " ".join(parts + header_tail(task, dataset, ok, per="side"))
