"""Currency of the derived reports: artefacts that benchmark scripts compute from committed records.

Why: a report re-scored from records (``results/subgroups/<task>.md``, ``results/data_hygiene/duplicates.md``,
the derived fusion and seed-ensemble rows of ``results/ensembles/``)
silently goes stale when a record it read is regenerated or added, and then contradicts the tables beside
it. Each derived artefact is therefore keyed, as a record is, on what it reads:

* the run key and creation time of each record it reads (by its path under the results root: a new,
  removed or rerun record changes the key; the time too, because a rerun of a schema 1 record keeps the
  run key its migration gives it while its numbers may move),
* its own declared version (``Derived.version``: bump it when the report's content changes for the same
  inputs) and its parameters (e.g. the bootstrap resamples, the datasets scanned),
* the digests of the data manifests it reads (``data_manifests/<dataset>.csv``).

The script that writes an artefact stores the key beside it, in ``<first file>.key.json``
(:func:`write_key`); :func:`check` compares it with the key the committed records give today:
current / stale (with the inputs that changed) / missing. ``benchmarks/regenerate.py --status`` lists
every artefact of :data:`DERIVED`, and a normal regeneration reruns the scripts of the stale or missing
ones only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from skinbench import info
from skinbench.cache import atomic_write_bytes
from skinbench.data.duplicates import RULES_VERSION
from skinbench.results import ensembles
from skinbench.results.records import RunRecord, load_records, path_of

__all__ = ["Reading", "Derived", "DerivedStatus", "DERIVED", "derived", "key_inputs", "key_of", "key_path", "write_key",
           "check", "manifest_digests"]


class Reading(NamedTuple):
    """What an artefact read: its records and, where it chooses among them, which record plays which part
    (None: no choice). One reader gives both, so the records are loaded once per key."""

    records: list[RunRecord]
    roles: list[str] | None = None


Reader = Callable[[Path, Mapping[str, Any]], Reading]


def _subgroup_records(task: str) -> Reader:
    def read(root: Path, params: Mapping[str, Any]) -> Reading:
        from skinbench.results.subgroups_report import first_seed_records

        return Reading(first_seed_records(load_records(root, task=task, dataset="ham10000"), task))
    return read


def _hygiene_records(root: Path, params: Mapping[str, Any]) -> Reading:
    """Every task's and target's first-seed records of each scanned dataset (the effect rows re-score them)."""
    from skinbench.results.subgroups_report import first_seed_per_target

    out: list[RunRecord] = []
    for dataset in params.get("datasets", ()):
        records = load_records(root, dataset=dataset)
        for task in info.TASKS:
            out += first_seed_per_target(records, task, dataset)
    return Reading(out)


def _curve_records(task: str) -> Reader:
    """Every point of ``task``'s learning curve: its fraction records and the 100 % records they join."""
    def read(root: Path, params: Mapping[str, Any]) -> Reading:
        from skinbench.results.learning_curves import curve_points

        return Reading([p.record for p in curve_points(root, task)])
    return read


def record_id(record: RunRecord, root: Path) -> str:
    """A record's place under ``root`` as a key: its path, and for a learning-curve point its fraction
    (fraction records of one row and seed share the ordinary path name under their own folder)."""
    fraction = (record.split or {}).get("fraction")
    relative = path_of(record, root).relative_to(root).as_posix()
    return relative if fraction is None else f"fraction={fraction}:{relative}"


def _ensemble_parents(task: str) -> Reader:
    """The records the derived rows of ``task`` average and which plays which part (so a rerun parent, or
    a rerun candidate that changes which row is chosen, makes them stale): :func:`ensembles.key_reading`."""
    def read(root: Path, params: Mapping[str, Any]) -> Reading:
        return Reading(*ensembles.key_reading(root, task))
    return read


@dataclass(frozen=True)
class Derived:
    """One derived artefact: its files (relative to the results root), the script that writes it and how
    to rebuild just it, what it reads, and its declared version."""

    name: str
    files: tuple[str, ...]
    script: str  # under benchmarks/
    args: tuple[str, ...]  # the script's arguments that rebuild this artefact alone
    read: Reader = field(repr=False)  # the records it reads (and the roles it gives them, where it chooses)
    datasets: tuple[str, ...]  # data manifests it reads
    version: int
    params: Mapping[str, Any] = field(default_factory=dict)  # the script's defaults, part of the key

    @property
    def command(self) -> str:
        return " ".join(["python", f"benchmarks/{self.script}", *self.args])


#: the hygiene report's datasets (``benchmarks/duplicates_report.py`` scans these by default)
HYGIENE_DATASETS = ("isic2016_task3", "ham10000", "isic2018_task2", "isic2018_task2_all")

#: every derived artefact regenerate.py keeps current (versions: bump when the content changes for the
#: same records and data; the hygiene report also carries the duplicate rules' version)
DERIVED: tuple[Derived, ...] = (
    *(Derived(f"subgroups/{t}", (f"subgroups/{t}.md", f"subgroups/{t}.csv", f"subgroups/{t}.png"), "subgroups.py",
              ("--tasks", t), _subgroup_records(t), ("ham10000",), 1, {"n_boot": 1000})
      for t in ("task2", "task4")),
    Derived("data_hygiene/duplicates", ("data_hygiene/duplicates.md", "data_hygiene/duplicates.csv",
                                        "data_hygiene/duplicates_effect.csv"), "duplicates_report.py", (),
            _hygiene_records, HYGIENE_DATASETS, 1, {"datasets": list(HYGIENE_DATASETS), "rules": RULES_VERSION}),
    *(Derived(f"ensembles/{t}", (f"ensembles/{t}.md",), "fusion.py", ("--tasks", t), _ensemble_parents(t),
              (info.TASKS[t].default_dataset,), ensembles.ENSEMBLE_VERSION,
              {"weight": ensembles.FUSION_WEIGHT, "seeds": ensembles.SEED_ENSEMBLE})
      for t in ensembles.REPORT_TASKS),
    *(Derived(f"learning_curves/{t}", (f"learning_curves/{t}.md", f"learning_curves/{t}.csv",
                                       f"learning_curves/{t}.json", f"learning_curves/{t}.png"), "learning_curves.py",
              ("--report-only", "--tasks", t), _curve_records(t), (info.TASKS[t].default_dataset,), 1,
              {"n_boot": 1000})
      for t in ("task1", "task2", "task4")),
)


def derived(name: str) -> Derived:
    for d in DERIVED:
        if d.name == name:
            return d
    raise KeyError(f"no derived artefact {name!r}; known: {', '.join(d.name for d in DERIVED)}")


def manifest_digests(datasets: Sequence[str], manifest_dir: Path | None = None) -> dict[str, str]:
    """Digest of each dataset's committed manifest ("" where it has none), read from the manifest file
    alone (the same digest a loaded Dataset carries), so a status check needs no data."""
    from skinbench.data.manifests import manifest_digest, read_manifest

    out = {}
    for name in datasets:
        frame = read_manifest(name, manifest_dir) if name in info.DATASETS else None
        out[name] = manifest_digest(frame) if frame is not None else ""
    return out


def key_inputs(d: Derived, root: str | os.PathLike, params: Mapping[str, Any] | None = None,
               manifest_dir: Path | None = None) -> dict[str, Any]:
    """What ``d`` reads today under ``root``, with ``params`` (default: the script's defaults)."""
    root = Path(root)
    params = dict(d.params if params is None else params)
    reading = d.read(root, params)
    records = {record_id(r, root): f"{r.run_key or ''}@{r.created or ''}" for r in reading.records}
    inputs = {"artefact": d.name, "version": d.version, "params": params, "records": dict(sorted(records.items())),
              "manifests": manifest_digests(d.datasets, manifest_dir)}
    if reading.roles is not None:
        inputs["roles"] = reading.roles
    return inputs


def key_of(inputs: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def key_path(d: Derived, root: str | os.PathLike) -> Path:
    return Path(root) / f"{d.files[0]}.key.json"


def write_key(d: Derived, root: str | os.PathLike, params: Mapping[str, Any] | None = None,
              manifest_dir: Path | None = None) -> Path:
    """Store the key of what ``d`` read beside it (call right after writing its files)."""
    inputs = key_inputs(d, root, params, manifest_dir)
    path = key_path(d, root)
    atomic_write_bytes(path, (json.dumps({"key": key_of(inputs), "inputs": inputs}, indent=1, sort_keys=True)
                              + "\n").encode())
    return path


@dataclass
class DerivedStatus:
    derived: Derived
    status: str  # current | stale | missing
    reasons: list[str] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return self.status == "current"


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    for k in ("version", "params", "manifests", "roles"):
        if old.get(k) != new.get(k):
            out.append(f"{k}: {json.dumps(old.get(k), sort_keys=True)} -> {json.dumps(new.get(k), sort_keys=True)}")
    before, now = old.get("records") or {}, new.get("records") or {}
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    rerun = sorted(p for p in set(now) & set(before) if now[p] != before[p])
    for label, items in (("records added", added), ("records gone", removed), ("records rerun", rerun)):
        if items:
            out.append(f"{label} since it was written: {', '.join(items[:4])}"
                       + (f" (+{len(items) - 4} more)" if len(items) > 4 else ""))
    return out


def check(d: Derived, root: str | os.PathLike, manifest_dir: Path | None = None) -> DerivedStatus:
    """Is ``d`` under ``root`` made from today's records and data (the script's default parameters)?"""
    root = Path(root)
    absent = [f for f in d.files[:1] if not (root / f).is_file()]
    kp = key_path(d, root)
    if absent:
        return DerivedStatus(d, "missing", [f"no {absent[0]}; make it with `{d.command}`"])
    if not kp.is_file():
        return DerivedStatus(d, "stale", [f"no key beside it ({kp.name}): made before reports were keyed; "
                                          f"rerun `{d.command}`"])
    try:
        stored = json.loads(kp.read_text())
        old_inputs = stored["inputs"]
        old_key = stored["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return DerivedStatus(d, "stale", [f"unreadable key {kp.name}; rerun `{d.command}`"])
    lost = [f for f in d.files[1:] if not (root / f).is_file()]
    if lost:  # a file added to the artefact since it was made, or one deleted: current only when all are there
        return DerivedStatus(d, "stale", [f"no {', '.join(lost)} beside {d.files[0]}; rerun `{d.command}`"])
    inputs = key_inputs(d, root, manifest_dir=manifest_dir)
    if key_of(inputs) == old_key:
        return DerivedStatus(d, "current")
    return DerivedStatus(d, "stale", (_changes(old_inputs, inputs) or ["key differs"]) + [f"rerun `{d.command}`"])
