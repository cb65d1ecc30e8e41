"""What the committed results cost to make: the one sum behind the README's "full rebuild" figure.

Read from the records' own timings (fit, predict, evaluate), so it moves with every regeneration and a
test keeps the README's figure equal to it. A fit that found work in the content cache (``timings.cache``
hits) was cheaper than an empty-cache fit; where another committed record computed that work, the sum
counts it there, and the records reusing work are listed so a reader can see where the sum may be low.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from skinbench.results.records import read_record

@dataclass
class RebuildCost:
    """Seconds of the committed records on the machines that made them, in all and per task."""

    records: int = 0
    seconds: float = 0.0
    by_task: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)  # records whose fit found cached work

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def describe(self) -> str:
        tasks = ", ".join(f"{t} {s / 3600:.1f} h" for t, s in sorted(self.by_task.items()))
        return (f"{self.records} run records took {self.hours:.1f} h of wall time on the 2-core machines that made "
                f"them ({tasks}); {len(self.reused)} of them found part of their work in the content cache (made by "
                "an earlier run, committed or not), so from an empty cache those cost more")


def record_files(root: str | os.PathLike) -> list[Path]:
    """Every run record under ``root``: runs/, cross-dataset runs and the sweeps' own runs/ folders."""
    return sorted(p for p in Path(root).rglob("*.json") if "runs" in p.relative_to(root).parts[:-1])


def rebuild_cost(root: str | os.PathLike) -> RebuildCost:
    """Sum the ``*_s`` timings (RunRecord.total_seconds) of every record under ``root`` (skip records that say why they have no numbers)."""
    cost = RebuildCost()
    for path in record_files(root):
        record = read_record(path)
        if record is None or not record.ok:
            continue
        seconds = record.total_seconds or 0.0
        cost.records += 1
        cost.seconds += seconds
        cost.by_task[record.task] = cost.by_task.get(record.task, 0.0) + seconds
        if record.cache_hit_fraction:
            cost.reused.append(str(path.relative_to(root)))
    return cost
