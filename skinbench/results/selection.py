"""Which row of a family stands for it in a comparison, chosen without looking at the test set.

Why: picking "the best classical row" by its test score and then testing it against the deep rows on the
same test images is a selection on the test set (issue 31: on task1 bovw-color beat bovw-sift-color by 5e-5
of test AP at seed 0, while over seeds the other row is better). :func:`choose` is the one rule the
dashboard's comparisons, the late-fusion rows and the complementarity tables use; it says how it chose:

1. ``validation``: the task's primary metric on the validation split the fit scored itself
   (``extras.fit.val_scores``; a segmenter's ``extras.fit.validation_jaccard`` for a per-image Jaccard
   primary metric), averaged over the row's seeds that recorded one. Rows without a validation score are
   not ranked against those with one (the two are not the same measurement).
2. ``seed-mean``: no candidate recorded a validation score: the mean of the primary metric over at least
   :data:`MIN_SEEDS` seeds (issue 31's allowed fallback: no single seed's lucky draw decides).
3. ``none``: neither exists for two or more candidates: nothing is crowned and every candidate is tested.

Where the runner-up's test CI of the primary metric overlaps the chosen row's, both are returned as
``contenders`` so a comparison tests both (Holm over the family) rather than crowning one.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from skinbench import info
from skinbench.results.records import RunRecord
from skinbench.results.tables import contributed_by

__all__ = ["MIN_SEEDS", "Choice", "validation_score", "choose", "by_approach"]

#: seeds a row needs before its over-seed mean may rank it (fewer: one lucky seed could decide)
MIN_SEEDS = 3


def validation_score(record: RunRecord, metric: str) -> float | None:
    """The primary ``metric`` on the fit's own validation split (``extras.fit``), or None when not recorded."""
    fit = (record.extras or {}).get("fit") or {}
    scores = fit.get("val_scores") or {}
    value = scores.get(metric)
    if value is None and metric == "jaccard_mean":  # segmenters tune their threshold on per-image Jaccard
        value = fit.get("validation_jaccard")
    return None if value is None else float(value)


def by_approach(records: Iterable[RunRecord]) -> dict[str, list[RunRecord]]:
    """Ok records by approach, seeds in order (the first is the row's shown record)."""
    out: dict[str, list[RunRecord]] = {}
    for r in sorted(records, key=lambda r: (r.approach, r.seed or 0)):
        if r.ok:
            out.setdefault(r.approach, []).append(r)
    return out


@dataclass(frozen=True)
class Choice:
    """A family's row for a comparison: ``record`` (its first seed; None when nothing could be chosen
    without test data), ``basis`` (validation | seed-mean | only | none), ``how`` (a sentence for the
    table), ``contenders`` (the rows to test: the chosen one and a runner-up whose CI overlaps it, or
    every candidate when none was chosen) and ``ranking`` ((approach, score) in rank order)."""

    family: str
    record: RunRecord | None
    basis: str
    how: str
    contenders: tuple[RunRecord, ...] = ()
    ranking: tuple[tuple[str, float], ...] = field(default=())

    @property
    def approach(self) -> str | None:
        return self.record.approach if self.record is not None else None


def _overlap(a: RunRecord, b: RunRecord, metric: str) -> bool:
    (alo, ahi), (blo, bhi) = a.ci(metric), b.ci(metric)
    if None in (alo, ahi, blo, bhi):
        return True  # no interval: it cannot show the two apart
    return alo <= bhi and blo <= ahi


def choose(records: Iterable[RunRecord], task: str, family: str,
           exclude: Sequence[str] = ()) -> Choice:
    """The ``family``'s row among ``records`` (every seed of one table's rows; contributed rows and
    ``exclude`` left out), ranked by validation score, else by the mean over >= :data:`MIN_SEEDS` seeds;
    never by one seed's test metric."""
    metric = info.task(task).primary_metric
    groups = {name: rs for name, rs in by_approach(records).items()
              if name not in exclude and rs[0].registered_family == family and not contributed_by(rs[0])
              and rs[0].value(metric) is not None}
    if not groups:
        return Choice(family, None, "none", f"no {family} row with {metric}")
    validation = {name: [v for v in (validation_score(r, metric) for r in rs) if v is not None]
                  for name, rs in groups.items()}
    validation = {name: vs for name, vs in validation.items() if vs}
    seeds = {name: [r.value(metric) for r in rs if r.value(metric) is not None] for name, rs in groups.items()}
    seeds = {name: vs for name, vs in seeds.items() if len(vs) >= MIN_SEEDS}
    if validation:
        scores = {name: statistics.fmean(vs) for name, vs in validation.items()}
        basis = "validation"
        unranked = sorted(set(groups) - set(validation))

        def why(name: str) -> str:
            n = len(validation[name])
            return (f"{name}: best validation {metric} recorded by the fit ({scores[name]:.3f}"
                    + (f", mean of {n} seeds" if n > 1 else "") + ")")
    elif seeds:
        scores = {name: statistics.fmean(vs) for name, vs in seeds.items()}
        basis = "seed-mean"
        unranked = sorted(set(groups) - set(seeds))

        def why(name: str) -> str:
            return (f"{name}: no validation score recorded; best mean {metric} over {len(seeds[name])} seeds "
                    f"({scores[name]:.3f}), not one seed's test value")
    elif len(groups) == 1:
        (name, rs), = groups.items()
        return Choice(family, rs[0], "only", f"{name}: the only {family} row", (rs[0],))
    else:
        candidates = tuple(rs[0] for _, rs in sorted(groups.items()))
        return Choice(family, None, "none",
                      f"no validation score and fewer than {MIN_SEEDS} seeds: none chosen, every {family} row tested",
                      candidates)
    ranking = tuple(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))
    best = groups[ranking[0][0]][0]
    how = why(ranking[0][0])
    if unranked:
        how += f"; not ranked (no such score): {', '.join(unranked)}"
    contenders = [best]
    if len(ranking) > 1:
        second = groups[ranking[1][0]][0]
        if _overlap(best, second, metric):
            contenders.append(second)
            how += f"; runner-up {second.approach} ({ranking[1][1]:.3f}) has an overlapping test CI: both tested"
    return Choice(family, best, basis, how, tuple(contenders), ranking)
