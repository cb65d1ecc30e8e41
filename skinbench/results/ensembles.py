"""Rows derived from stored predictions without retraining (late fusion, seed ensembles), and what the two
families get right together (complementarity, hard cases): issue 32, and issue 33's seed ensembles.

* A **late-fusion** row per classification task: the mean (weight :data:`FUSION_WEIGHT`, fixed in advance)
  of the stored probabilities of the best classical and the best deep row, each chosen without test data
  (:func:`skinbench.results.selection.choose`).
* A **seed-ensemble** row wherever a classical or deep row has :data:`SEED_ENSEMBLE` seeds: the mean of
  those seeds' probabilities (baselines are left out: averaging a constant or a coin adds nothing).

Both are scored by the one :class:`skinbench.scoring.Scorer`, with the parents' bootstrap resamples and seed,
and written as ordinary :class:`RunRecord`\\ s under ``<root>/ensembles/runs/`` (not ``runs/``: they are not
registered approaches and must not enter the tables, the derived reports that read ``runs/``, or
``regenerate.py``'s list of points). A derived record names its parents and their run keys, and its run key
is built from theirs (:func:`key_inputs`). ``results/derived.py`` keys the artefact on the parent records
it reads, so ``regenerate.py --status`` lists it and it goes stale when a parent is rerun or when the
choice of parent changes; ``benchmarks/fusion.py`` rebuilds it.

Segmentation records store per-image confusion counts, not probability maps, so neither fusion nor seed
ensembles exist for task3/task4. For task4 (:data:`SEG_TASKS`) the same artefact holds the agreement of the
chosen classical and deep segmenters (right = per-image Jaccard >= :data:`HARD_JACCARD`) and the hard cases,
ranked from per-image Jaccard; their gallery draws each image with its true lesion outline (the records
keep no predicted masks, so no prediction can be drawn from them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.data.base import Dataset
from skinbench.data.images import read_image, read_mask
from skinbench.metrics.classification import predict_labels
from skinbench.metrics.segmentation import per_image_scores
from skinbench.provenance import run_key
from skinbench.results.currency import explain
from skinbench.results.plots import plt, save_figure
from skinbench.results.records import RunRecord, build_record, dumps, load_records, path_of, write_record
from skinbench.results.selection import Choice, by_approach, choose
from skinbench.scoring import SCORING_VERSION, Scorer

__all__ = ["ENSEMBLE_VERSION", "FUSION_WEIGHT", "SEED_ENSEMBLE", "TASKS", "SEG_TASKS", "REPORT_TASKS", "FOLDER", "task_records", "choices",
           "key_reading", "Planned", "plan", "make", "derived_records", "stale_reasons", "write_ensembles", "complementarity_sections",
           "load_ensembles", "agreement", "hard_cases", "hard_segmentation_cases", "HARD_JACCARD"]

#: declared version of how derived rows are made (bump when the same parents would give other numbers)
ENSEMBLE_VERSION = 1
#: the classical row's weight in the late fusion (the deep row gets 1 - it); fixed, never tuned on test
FUSION_WEIGHT = 0.5
#: seeds a seed ensemble averages (the first ones, by seed)
SEED_ENSEMBLE = 3
#: classification tasks: their records store probabilities (fusion and seed-ensemble rows)
TASKS = ("task1", "task2")
#: segmentation tasks with an agreement table and hard cases (no derived rows: records keep no maps)
SEG_TASKS = ("task4",)
#: every task :func:`write_ensembles` reports on (``benchmarks/fusion.py --tasks``)
REPORT_TASKS = (*TASKS, *SEG_TASKS)
#: where derived records and their report live, under the results root
FOLDER = "ensembles"
#: per-image Jaccard under which a segmentation counts as wrong (the ISIC 2018 thresholded-Jaccard cut)
HARD_JACCARD = 0.65


def task_records(root: str | os.PathLike, task: str, dataset: str | None = None) -> list[RunRecord]:
    """Every ok full-data record (all seeds) of ``task`` on its default dataset under ``<root>/runs``."""
    dataset = dataset or info.task(task).default_dataset
    return [r for r in load_records(root, task=task, dataset=dataset) if r.ok and not r.limit]


def choices(records: Iterable[RunRecord], task: str) -> tuple[Choice, Choice]:
    """The classical and the deep row a comparison, fusion or agreement table uses (chosen without test data)."""
    records = list(records)
    return choose(records, task, "classical"), choose(records, task, "deep")


def _seed_groups(records: Iterable[RunRecord]) -> dict[str, list[RunRecord]]:
    """Classical and deep rows with at least :data:`SEED_ENSEMBLE` ok seeds: their first ones."""
    out = {}
    for name, rs in by_approach(records).items():
        family = info.APPROACHES[name].family if name in info.APPROACHES else rs[0].family
        if family in ("classical", "deep") and len(rs) >= SEED_ENSEMBLE and not rs[0].origin:
            out[name] = rs[:SEED_ENSEMBLE]
    return out


def key_reading(root: str | os.PathLike, task: str) -> tuple[list[RunRecord], list[str]]:
    """What the artefact of ``task`` reads and which record plays which part, from one read of the
    records (the key of ``results/derived.py``: a rerun record or a changed choice makes it stale).

    Read: every parent of :func:`plan`, the two rows the agreement table compares and the first seed of
    every row the hard cases rank. Roles: the derived rows' parents and the agreement's two rows, since
    another choice among the same records changes the report."""
    records = task_records(root, task)
    planned, _ = plan(records, task)
    chosen = [c for c in choices(records, task) if c.record is not None]
    read = {id(r): r for r in [*(r for p in planned for r in p.parents), *(c.record for c in chosen),
                               *_rows(records)]}
    roles = [f"{p.approach}: " + ", ".join(f"{r.approach} seed {r.seed}" for r in p.parents) for p in planned]
    # with how each was chosen: the report prints it, and it reads records the key does not list (other
    # seeds' validation scores, a runner-up's CI), so a new seed that only moves a mean still makes it stale
    roles += [f"agreement {c.family}: {c.record.approach} seed {c.record.seed} ({c.how})" for c in chosen]
    return list(read.values()), sorted(roles)


def _mean_scores(parents: Sequence[RunRecord], weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, y, weighted mean scores) over the test images every parent predicted, in the first's order."""
    arrays = [p.prediction_arrays() for p in parents]
    ids0, y0, _ = arrays[0]
    common = set(ids0)
    for ids, _, _ in arrays[1:]:
        common &= set(ids)
    keep = np.array([i in common for i in ids0])
    ids = ids0[keep]
    total = np.zeros((len(ids), arrays[0][2].shape[1]))
    for (pids, py, scores), w, parent in zip(arrays, weights, parents):
        pos = {i: k for k, i in enumerate(pids)}
        index = np.array([pos[i] for i in ids], dtype=int)
        if not np.array_equal(py[index], y0[keep]):
            raise ValueError(f"{parent.approach} (seed {parent.seed}) disagrees with {parents[0].approach} on the "
                             "true labels of shared test images")
        if scores.shape[1] != total.shape[1]:
            raise ValueError(f"{parent.approach} scores {scores.shape[1]} classes, {parents[0].approach} "
                             f"{total.shape[1]}")
        total += w * scores[index]
    return ids, y0[keep], total


def _parent_entry(r: RunRecord, root: str | os.PathLike | None = None) -> dict[str, Any]:
    entry = {"approach": r.approach, "seed": r.seed, "run_key": r.run_key}
    if root is not None:
        entry["record"] = path_of(r, root).relative_to(Path(root)).as_posix()
    return entry


def key_inputs(kind: str, parents: Sequence[RunRecord], weights: Sequence[float]) -> dict[str, Any]:
    """What a derived record's run key hashes: its kind, this module's and the scorer's declared versions,
    the weights, and each parent's approach, seed and run key (a parent rerun under a new key changes it)."""
    first = parents[0]
    return {"derived": kind, "version": ENSEMBLE_VERSION, "scoring": SCORING_VERSION, "task": first.task,
            "dataset": first.dataset, "weights": [float(w) for w in weights], "n_boot": first.n_boot,
            "seed": first.seed or 0, "parents": [_parent_entry(p) for p in parents]}


def _derive(kind: str, approach: str, title: str, parents: Sequence[RunRecord], weights: Sequence[float],
            command: str, extras: dict[str, Any]) -> RunRecord:
    """Average the parents' stored probabilities, score them with the one Scorer, stamp a record."""
    first = parents[0]
    ids, y, scores = _mean_scores(parents, weights)
    names = first.class_names
    positive = first.extras.get("positive_class")
    frame = pd.DataFrame({"image_id": ids, "image": "", "label": [names[k] for k in y], "lesion_id": ids,
                          "split": "test"})
    test = Dataset(first.dataset, Path(FOLDER), frame, class_names=tuple(names),
                   manifest_digest=first.split.get("manifest_digest", ""), positive_class=positive)
    inputs = key_inputs(kind, parents, weights)
    scored = Scorer(test, inputs["n_boot"], inputs["seed"]).classification(scores)
    base = RunRecord(task=first.task, dataset=first.dataset, approach=approach, family="ensemble", title=title,
                     seed=first.seed or 0, params={"weights": list(inputs["weights"]),
                                                   "parents": [p.approach for p in parents]},
                     split={"n_train": first.split.get("n_train"), "n_test": len(ids),
                            "manifest_digest": first.split.get("manifest_digest")})
    return build_record(base, scored, key_inputs=inputs, command=command,
                        extras={"derived": kind, "parents": [_parent_entry(p) for p in parents], **extras})


@dataclass(frozen=True)
class Planned:
    """A derived row today's records call for: its kind, name, title, parents and weights."""

    kind: str
    approach: str
    title: str
    parents: tuple[RunRecord, ...]
    weights: tuple[float, ...]
    extras: dict[str, Any]

    def key_inputs(self) -> dict[str, Any]:
        return key_inputs(self.kind, self.parents, self.weights)


def plan(records: Sequence[RunRecord], task: str) -> tuple[list[Planned], list[str]]:
    """The derived rows of ``task`` its records call for (late fusion of the chosen rows, each seed group),
    and a note per row that cannot be made."""
    out, notes = [], []
    if info.task(task).kind != "classification":
        return [], []  # records keep per-image counts, not probability maps: nothing to average
    classical, deep = choices(records, task)
    if classical.record is None or deep.record is None:
        missing = [c for c in (classical, deep) if c.record is None]
        notes.append("no late fusion: " + "; ".join(f"{c.family}: {c.how}" for c in missing))
    else:
        a, b = classical.record, deep.record
        out.append(Planned("late-fusion", "late-fusion", f"late fusion: {a.approach} + {b.approach}", (a, b),
                           (FUSION_WEIGHT, 1.0 - FUSION_WEIGHT), {"chosen": {"classical": classical.how,
                                                                              "deep": deep.how}}))
    for name, seeds in sorted(_seed_groups(records).items()):
        out.append(Planned("seed-ensemble", f"{name}+seeds", f"{name}: mean of {len(seeds)} seeds", tuple(seeds),
                           tuple(1.0 / len(seeds) for _ in seeds), {}))
    return out, notes


def make(p: Planned, command: str = "") -> RunRecord:
    """The derived record of ``p``, scored."""
    return _derive(p.kind, p.approach, p.title, p.parents, p.weights, command, p.extras)


def derived_records(records: Sequence[RunRecord], task: str, command: str = "") -> tuple[list[RunRecord], list[str]]:
    """Every derived row of ``task`` from its records, and a note per row that could not be made."""
    planned, notes = plan(records, task)
    return [make(p, command) for p in planned], notes


def _changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What differs between a stored derived record's key inputs and today's: parents by name and run key,
    the rest as :func:`skinbench.results.currency.explain` says it."""
    old = dict(old or {})
    before, now = old.pop("parents", []), dict(new).pop("parents", [])
    rest = {k: v for k, v in new.items() if k != "parents"}
    out = []
    names = lambda ps: [f"{p['approach']} seed {p['seed']}" for p in ps]  # noqa: E731
    if names(before) != names(now):
        out.append(f"parents now {', '.join(names(now))} (were {', '.join(names(before)) or 'none'})")
    else:
        out += [f"parent {n} rerun (run key {str(a['run_key'])[:10]} -> {str(b['run_key'])[:10]})"
                for n, a, b in zip(names(now), before, now) if a.get("run_key") != b.get("run_key")]
    if old != rest:
        out += explain(old, rest)
    return out or ["run key differs"]


def stale_reasons(root: str | os.PathLike, task: str) -> list[str]:
    """Why ``task``'s stored derived records are not what today's records give (empty: current): a row not
    made, a row no longer called for, or a key that differs (a parent rerun, another parent chosen, a
    version bumped), each change named."""
    root = Path(root)
    planned, _ = plan(task_records(root, task), task)
    stored = {r.approach: r for r in load_ensembles(root, task)}
    reasons = []
    for p in planned:
        r = stored.pop(p.approach, None)
        inputs = p.key_inputs()
        if r is None:
            reasons.append(f"{p.approach}: not made yet")
        elif r.run_key != run_key(inputs):
            reasons += [f"{p.approach}: {why}" for why in _changes(r.key_inputs, inputs)]
    reasons += [f"{name}: no longer called for by today's records" for name in sorted(stored)]
    return reasons


def load_ensembles(root: str | os.PathLike, task: str | None = None) -> list[RunRecord]:
    """The derived records under ``<root>/ensembles/runs`` (empty when none were made)."""
    return load_records(Path(root) / FOLDER, task=task)


# ------------------------------------------------------------------ complementarity and hard cases

@dataclass(frozen=True)
class Agreement:
    """Per-image right/wrong of two rows on the test images both predicted."""

    a: str
    b: str
    both_right: int
    a_only: int
    b_only: int
    both_wrong: int
    #: what "right" measures: accuracy (the tables' decision rule) or, for segmentation, a Jaccard cut
    measure: str = "accuracy"

    @property
    def n(self) -> int:
        return self.both_right + self.a_only + self.b_only + self.both_wrong

    def table(self) -> str:
        """The 2x2 table (markdown) and each row's share alone."""
        rows = [[f"{self.a} right", str(self.both_right), str(self.a_only)],
                [f"{self.a} wrong", str(self.b_only), str(self.both_wrong)]]
        return tabulate(rows, headers=["", f"{self.b} right", f"{self.b} wrong"], tablefmt="github",
                        disable_numparse=True)

    def sentence(self) -> str:
        n = max(self.n, 1)
        either = self.both_right + self.a_only + self.b_only
        return (f"{self.a} alone gets {self.a_only} of {self.n} test images right ({self.a_only / n:.1%}), "
                f"{self.b} alone {self.b_only} ({self.b_only / n:.1%}); both are wrong on {self.both_wrong} "
                f"({self.both_wrong / n:.1%}); an oracle picking the right one of the two would reach {self.measure} "
                f"{either / n:.3f} against {(self.both_right + self.a_only) / n:.3f} and "
                f"{(self.both_right + self.b_only) / n:.3f}.")


def _segmentation(r: RunRecord) -> bool:
    return r.task in info.TASKS and info.task(r.task).kind == "segmentation"


def _correct(r: RunRecord) -> dict[str, bool]:
    """Image id -> right: the predicted class is the true one; for a segmenter, Jaccard >= HARD_JACCARD."""
    if _segmentation(r):
        ids = np.asarray(r.predictions["image_id"], dtype=str)
        return dict(zip(ids, per_image_scores(r.counts())["jaccard"] >= HARD_JACCARD))
    ids, y, scores = r.prediction_arrays()
    return dict(zip(ids, predict_labels(scores) == y))


def agreement(a: RunRecord, b: RunRecord) -> Agreement:
    """The 2x2 right/wrong counts of ``a`` and ``b`` (the tables' decision rule: binary p > 0.5, else argmax;
    segmenters: per-image Jaccard >= :data:`HARD_JACCARD`, the ISIC 2018 thresholded-Jaccard cut)."""
    ca, cb = _correct(a), _correct(b)
    shared = [i for i in ca if i in cb]
    pairs = [(ca[i], cb[i]) for i in shared]
    measure = f"a share with Jaccard >= {HARD_JACCARD} of" if _segmentation(a) else "accuracy"
    return Agreement(a.approach, b.approach, sum(x and y for x, y in pairs), sum(x and not y for x, y in pairs),
                     sum(y and not x for x, y in pairs), sum(not x and not y for x, y in pairs), measure)


def _rows(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The first seed of every classical and deep suite row."""
    out = []
    for name, rs in by_approach(records).items():
        family = info.APPROACHES[name].family if name in info.APPROACHES else rs[0].family
        if family in ("classical", "deep") and not rs[0].origin:
            out.append(rs[0])
    return out


def _hardest(per_image: dict[str, dict[str, Any]], score: str, k: int) -> list[dict[str, Any]]:
    """The ``k`` entries most rows got wrong (ties: the lower mean ``score`` first), each family's list of
    ``score`` values replaced by its mean (None where the family has no row): one ranking for both kinds."""
    out = []
    for entry in per_image.values():
        means = {f: (float(np.mean(v)) if v else None) for f, v in entry[score].items()}
        known = [v for v in means.values() if v is not None]
        out.append({**entry, score: means, "order": (-entry["wrong"] / entry["rows"], float(np.mean(known)))})
    out.sort(key=lambda e: e["order"])
    return [{k2: v for k2, v in e.items() if k2 != "order"} for e in out[:k]]


def hard_cases(records: Iterable[RunRecord], task: str, k: int = 12) -> list[dict[str, Any]]:
    """The ``k`` test images most classical and deep rows get wrong (ties: the lower mean probability of the
    true class first), each with its true label and each family's mean probability of the true class. A
    segmentation task's are :func:`hard_segmentation_cases`."""
    if info.task(task).kind != "classification":
        return hard_segmentation_cases(records, k=k)
    rows = _rows(records)
    if not rows:
        return []
    per_image: dict[str, dict[str, Any]] = {}
    for r in rows:
        ids, y, scores = r.prediction_arrays()
        wrong = predict_labels(scores) != y
        names = r.class_names
        family = r.registered_family
        for i, yi, w, p in zip(ids, y, wrong, scores[np.arange(len(y)), y]):
            entry = per_image.setdefault(i, {"image_id": str(i), "label": names[yi] if yi < len(names) else str(yi),
                                             "wrong": 0, "rows": 0, "p_true": {"classical": [], "deep": []}})
            entry["wrong"] += int(w)
            entry["rows"] += 1
            entry["p_true"][family].append(float(p))
    return _hardest(per_image, "p_true", k)


def hard_segmentation_cases(records: Iterable[RunRecord], k: int = 12) -> list[dict[str, Any]]:
    """The ``k`` test images most classical and deep segmenters get wrong (per-image Jaccard under
    :data:`HARD_JACCARD`; ties: the lower mean Jaccard first), with each family's mean Jaccard."""
    per_image: dict[str, dict[str, Any]] = {}
    for r in _rows(records):
        ids = np.asarray(r.predictions["image_id"], dtype=str)
        jac = per_image_scores(r.counts())["jaccard"]
        family = r.registered_family
        for i, j in zip(ids, jac):
            entry = per_image.setdefault(i, {"image_id": str(i), "wrong": 0, "rows": 0,
                                             "jaccard": {"classical": [], "deep": []}})
            entry["wrong"] += int(j < HARD_JACCARD)
            entry["rows"] += 1
            entry["jaccard"][family].append(float(j))
    return _hardest(per_image, "jaccard", k)


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def hard_case_table(cases: Sequence[dict[str, Any]], segmentation: bool = False) -> str:
    """Markdown of :func:`hard_cases` / :func:`hard_segmentation_cases`."""
    if not cases:
        return ""
    if segmentation:
        rows = [[c["image_id"], f"{c['wrong']}/{c['rows']}", _p(c["jaccard"]["classical"]), _p(c["jaccard"]["deep"])]
                for c in cases]
        headers = ["image", f"rows with Jaccard < {HARD_JACCARD}", "classical mean Jaccard", "deep mean Jaccard"]
    else:
        rows = [[c["image_id"], c["label"], f"{c['wrong']}/{c['rows']}", _p(c["p_true"]["classical"]),
                 _p(c["p_true"]["deep"])] for c in cases]
        headers = ["image", "true label", "rows wrong", "classical mean p(true)", "deep mean p(true)"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"


def plot_hard_cases(cases: Sequence[dict[str, Any]], images: dict[str, str], path: str | os.PathLike,
                    title: str = "", masks: dict[str, str] | None = None) -> Path | None:
    """A gallery of the hard cases (``images``: image id -> file), each titled with its true label, the rows
    wrong and each family's mean probability of the true class; None when no image is found. Segmentation
    cases (``masks``: image id -> true mask file) show the true outline and each family's mean Jaccard."""
    shown = [c for c in cases if c["image_id"] in images]
    if not shown:
        return None
    cols = min(4, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, c in zip(axes.ravel(), shown):
        ax.imshow(read_image(images[c["image_id"]], size=(192, 144)))
        if "jaccard" in c:
            if masks and masks.get(c["image_id"]):
                ax.contour(read_mask(masks[c["image_id"]], size=(192, 144)).astype(float), levels=[0.5], colors=["lime"],
                           linewidths=1.2)
            ax.set_title(f"{c['image_id']}: Jaccard < {HARD_JACCARD} in {c['wrong']}/{c['rows']} rows\nmean "
                         f"classical {_p(c['jaccard']['classical'])}, deep {_p(c['jaccard']['deep'])}", fontsize=7)
        else:
            ax.set_title(f"{c['image_id']}: {c['label']}\nwrong {c['wrong']}/{c['rows']}; p(true) classical "
                         f"{_p(c['p_true']['classical'])}, deep {_p(c['p_true']['deep'])}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, Path(path))


def complementarity_sections(task: str, records: Sequence[RunRecord], heading: str = "##", k: int = 12,
                             gallery: str = "") -> list[str]:
    """Markdown: the agreement of the classical and deep rows chosen without test data, and the hard cases
    (``gallery``: what follows their table, an embedded figure or a link). The one renderer of these
    sections: the report of :func:`write_ensembles` and the dashboard both call it."""
    seg = info.task(task).kind != "classification"
    classical, deep = choices(records, task)
    out = []
    if classical.record is not None and deep.record is not None:
        a = agreement(classical.record, deep.record)
        where = "" if seg else ", on the test images both predicted"
        out.append(f"{heading} Agreement of {a.a} (classical) and {a.b} (deep)\n\nChosen without test data "
                   f"(first seeds{where}): classical: {classical.how}; deep: {deep.how}.\n\n{a.table()}\n\n"
                   f"{a.sentence()}\n")
    else:
        out.append("No agreement table: " + "; ".join(f"{c.family}: {c.how}" for c in (classical, deep)
                                                     if c.record is None) + ".\n")
    cases = hard_cases(records, task, k=k)
    if cases:
        what = (f"segmenters (first seed each) get wrong (per-image Jaccard < {HARD_JACCARD}), with each family's "
                "mean Jaccard" if seg else "rows (first seed each) get wrong, with each family's mean probability "
                "of the true class")
        out.append(f"{heading} Hard cases\n\nThe test images most classical and deep {what}.\n\n"
                   + hard_case_table(cases, segmentation=seg) + (f"\n{gallery}" if gallery else ""))
    return out


def _gallery_markdown(task: str, gallery: Path | None) -> str:
    if gallery is None:
        return ""
    seg = info.task(task).kind != "classification"
    return f"![hard cases]({gallery.name})\n" + (
        "\nGreen: the true lesion outline (records keep no predicted masks, so no prediction is drawn).\n"
        if seg else "")


def report_markdown(task: str, derived: Sequence[RunRecord], notes: Sequence[str], records: Sequence[RunRecord],
                    command: str, gallery: Path | None) -> str:
    """The artefact's markdown (``<root>/ensembles/<task>.md``): the derived rows and their parents
    (classification), then :func:`complementarity_sections`."""
    metric = info.task(task).primary_metric
    out = [f"<!-- generated by `{command}`; do not edit -->"]
    if info.task(task).kind != "classification":
        out += [f"# {task}: complementarity and hard cases\n",
                "Segmentation records keep per-image confusion counts, not probability maps: no fusion or "
                "seed-ensemble row can be made from them. A segmentation is counted right when its per-image "
                f"Jaccard is at least {HARD_JACCARD} (the ISIC 2018 thresholded-Jaccard cut).\n"]
    else:
        out += [f"# {task}: late fusion, seed ensembles, complementarity\n",
                f"Derived rows from the stored test probabilities of the records they name (no retraining), scored "
                f"by the one scorer with their parents' bootstrap resamples. Late fusion: {FUSION_WEIGHT} x the "
                f"classical row + {1 - FUSION_WEIGHT} x the deep row (weight fixed in advance), each row chosen "
                f"without test data. Seed ensembles: the mean of the first {SEED_ENSEMBLE} seeds.\n"]
        rows = []
        for r in derived:
            lo, hi = r.ci(metric)
            parents = ", ".join(f"{p['approach']} seed {p['seed']} ({str(p['run_key'])[:10]})"
                                for p in r.extras["parents"])
            rows.append([r.approach, f"{r.value(metric):.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""),
                         str(r.split.get("n_test")), parents, str(r.run_key)[:12]])
        if rows:
            out.append(tabulate(rows, headers=["derived row", metric, "n_test", "parents (run key)", "run key"],
                                tablefmt="github", disable_numparse=True) + "\n")
        for r in derived:
            if r.extras.get("derived") == "late-fusion":
                out.append("How the parents were chosen: "
                           + "; ".join(f"{k}: {v}" for k, v in r.extras["chosen"].items()) + ".\n")
        out += [f"- {n}" for n in notes]
        out.append("")
    out += complementarity_sections(task, records, gallery=_gallery_markdown(task, gallery))
    return "\n".join(out).rstrip() + "\n"


def _unchanged(record: RunRecord, path: Path) -> bool:
    """Is the derived record at ``path`` already this one (same run key: same parents, weights and version;
    same numbers)? Then it is kept as made, so a rerun of fusion.py only rewrites what moved."""
    try:
        old = RunRecord.from_file(path)
    except (OSError, ValueError, TypeError, KeyError):
        return False
    stored = RunRecord.from_dict(json.loads(dumps(record)))  # as write_record would store it (rounded floats)
    return old.run_key == stored.run_key and old.metrics == stored.metrics and old.predictions == stored.predictions


def write_ensembles(root: str | os.PathLike, task: str, command: str = "",
                    images: dict[str, str] | None = None, masks: dict[str, str] | None = None) -> list[Path]:
    """Make ``task``'s derived rows from the records under ``root`` and write them with the report
    (``<root>/ensembles/<task>.md``, first, the artefact's key file goes beside it) and, when ``images``
    maps test ids to files, the hard-case gallery (segmentation: ``masks`` maps ids to true masks, drawn as
    outlines). Derived records of rows no longer made are removed."""
    root = Path(root)
    records = task_records(root, task)
    derived, notes = derived_records(records, task, command)
    out_root = root / FOLDER
    kept = {path_of(r, out_root) for r in derived}
    for old in (out_root / "runs" / task).glob("*/*.json") if (out_root / "runs" / task).is_dir() else ():
        if old not in kept:
            old.unlink()
    written = [path if _unchanged(r, path) else write_record(r, path)
               for r, path in ((r, path_of(r, out_root)) for r in derived)]
    gallery = None
    if images:
        gallery = plot_hard_cases(hard_cases(records, task), images, out_root / f"{task}_hard_cases.png",
                                  f"{task}: test images most rows get wrong", masks=masks)
    report = out_root / f"{task}.md"
    atomic_write_bytes(report, report_markdown(task, derived, notes, records, command, gallery).encode())
    return [report, *written, *([gallery] if gallery is not None else [])]
