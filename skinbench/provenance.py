"""What makes a record current: the run spec, its key, declared algorithm versions and exact provenance.

A run key hashes what can change a number: task, approach, estimator, merged parameters, seed, subset,
bootstrap size, the data manifest, and *declared* algorithm versions (the estimator's
``algorithm_version`` and the shared numeric contracts: data reading, metrics, the runner's scoring).
It does not hash source text, so a rename, a moved function or a comment leaves every record current;
a change that alters numbers bumps the version it touches, and exactly the records that depend on it go
stale. The golden check (tests/test_provenance.py) reruns the deterministic approaches and fails when
a number moved while no version was bumped.

Provenance is kept beside the key, never in it: each record stores the commit and the digest of the
exact source that made it (``code_digest``), and the dashboard says when a current record was made by
older code declared equivalent. Every "is this record current" question goes through :func:`check`.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from skinbench import info

PACKAGE = Path(__file__).parent

#: code a record's numbers depend on besides its estimator: its digest is provenance, not key
SHARED_CODE = ("runner.py", "cache.py", "data", "metrics", "approaches/base.py")


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run, and so its record's identity: what ``runner.execute`` takes."""

    task: str
    approach: str
    dataset: str | None = None
    seed: int = 0
    #: user overrides on top of the registry's params for the task
    params: Mapping[str, Any] = field(default_factory=dict)
    #: one segmentation target (None: every target of the task)
    target: str | None = None
    limit: int | None = None
    n_boot: int = 1000

    @property
    def dataset_name(self) -> str:
        return self.dataset or info.task(self.task).default_dataset

    def merged_params(self) -> dict[str, Any]:
        return {**info.approach(self.approach).params_for(self.task), **dict(self.params or {})}

    def targets(self) -> tuple[str | None, ...]:
        if self.target:
            return (self.target,)
        return info.segmentation_targets(self.task, self.approach, self.dataset_name) or (None,)

    @property
    def id(self) -> str:
        """A stable, readable id (sweeps name points by it)."""
        from skinbench.cache import make_key

        extra = make_key(dict(self.params or {}), self.limit, self.n_boot)[:8]
        return f"{self.task}/{self.dataset_name}/{self.approach}/seed{self.seed}/{extra}"


# ------------------------------------------------------------------ declared versions

def contract_versions() -> dict[str, int]:
    """Versions of the shared numeric contracts (each declared beside its code)."""
    from skinbench import data, metrics, runner

    return {"data": data.READ_VERSION, "metrics": metrics.METRICS_VERSION, "runner": runner.SCORING_VERSION}


def estimator_version(approach: str) -> int:
    """The registered estimator's ``algorithm_version`` (imports its module: TensorFlow for deep ones)."""
    import importlib

    module, cls = info.approach(approach).estimator.split(":")
    return int(getattr(getattr(importlib.import_module(module), cls), "algorithm_version", 1))


def key_inputs(spec: RunSpec, manifest_digest: str, classes: list[str] | None = None) -> dict[str, Any]:
    """What the run key hashes, kept in the record so a stale one can say which input changed.

    ``classes``: a user-declared class order (generic data: which class is positive); registered
    datasets' classes are fixed by the registry and left out.
    """
    inputs = {
        "task": spec.task, "approach": spec.approach, "dataset": spec.dataset_name,
        "estimator": info.approach(spec.approach).estimator, "params": spec.merged_params(),
        "seed": spec.seed, "limit": spec.limit, "n_boot": spec.n_boot, "manifest_digest": manifest_digest,
        "versions": {"estimator": estimator_version(spec.approach), **contract_versions()},
    }
    if classes:
        inputs["classes"] = list(classes)
    return inputs


def dataset_key_inputs(spec: RunSpec, ds: Any) -> dict[str, Any]:
    """:func:`key_inputs` for a loaded Dataset: a user's generic folder may declare its class order (which
    class is positive), so it enters the key; a registered dataset's classes are fixed by the registry."""
    return key_inputs(spec, ds.manifest_digest, classes=list(ds.class_names) if ds.name == "generic" else None)


def run_key(inputs: Mapping[str, Any]) -> str:
    from skinbench.cache import make_key

    return make_key(dict(inputs))[:20]


# ------------------------------------------------------------------ exact provenance

def approach_sources(approach: str | None = None) -> list[Path]:
    """The source files a record of ``approach`` runs: the shared code, the estimator's module and every
    ``skinbench.approaches`` module it imports (transitively). ``None``: all numeric code."""
    files = {p for name in SHARED_CODE
             for p in ([PACKAGE / name] if name.endswith(".py") else (PACKAGE / name).rglob("*.py"))}
    if approach is None:
        return sorted(files | set((PACKAGE / "approaches").rglob("*.py")))
    todo = [info.approach(approach).estimator.split(":")[0]]
    if info.approach(approach).contributed:  # a plugin's module lives outside the package
        from importlib.util import find_spec

        spec = find_spec(todo[0])
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            files.add(Path(spec.origin))
    while todo:
        path = PACKAGE.parent / (todo.pop().replace(".", "/") + ".py")
        if path in files or not path.is_file():
            continue
        files.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("skinbench.approaches"):
                todo.append(node.module)
                todo.extend(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
            elif isinstance(node, ast.Import):
                todo.extend(a.name for a in node.names if a.name.startswith("skinbench.approaches"))
    return sorted(files)


def code_digest(approach: str | None = None) -> str:
    """Digest of the exact source behind ``approach``'s numbers: provenance, not part of the key."""
    h = hashlib.sha256()
    for path in approach_sources(approach):
        h.update((path.relative_to(PACKAGE).as_posix() if path.is_relative_to(PACKAGE) else path.name).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------ schema 1 records

#: versions that the code of the legacy commit is declared equivalent to (every one: 1)
LEGACY_VERSIONS = {"estimator": 1, "data": 1, "metrics": 1, "runner": 1}


@lru_cache(maxsize=1)
def _legacy() -> dict[str, Any]:
    """Run keys that were current at the legacy commit (checked there by the old source-digest rule),
    with the merged params and code digest each was made with."""
    return json.loads((PACKAGE / "provenance_legacy.json").read_text())


def migrate_legacy_key(record: Mapping[str, Any]) -> dict[str, Any]:
    """``run_key``, ``key_inputs``, ``code_digest`` for a schema 1 record.

    A record whose key was current at the legacy commit is re-keyed under :data:`LEGACY_VERSIONS`
    (same inputs, declared versions instead of source text); any other gets no key, so it is stale.
    """
    entry = _legacy()["keys"].get(record.get("run_key") or "")
    if entry is None:
        return {"run_key": None, "key_inputs": None, "code_digest": None}
    approach = record["approach"]
    inputs = {
        "task": record["task"], "approach": approach, "dataset": record["dataset"],
        "estimator": info.APPROACHES[approach].estimator if approach in info.APPROACHES else "",
        "params": entry["params"], "seed": record.get("seed"), "limit": record.get("limit"), "n_boot": 1000,
        "manifest_digest": (record.get("split") or {}).get("manifest_digest"), "versions": dict(LEGACY_VERSIONS),
    }
    return {"run_key": run_key(inputs), "key_inputs": inputs, "code_digest": entry["code_digest"]}


# ------------------------------------------------------------------ currency

@dataclass
class Currency:
    """Whether the records of one spec are current; ``reasons`` says why not."""

    spec: RunSpec
    status: str  # current | stale | skipped (a record that says why it has no numbers) | missing
    reasons: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return self.status == "current"


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += _diff(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    if old != new:
        name = prefix.rstrip(".")
        if name == "manifest_digest":
            return [f"data manifest changed ({str(old)[:12]} -> {str(new)[:12]})"]
        return [f"{name}: {json.dumps(old, default=str)} -> {json.dumps(new, default=str)}"]
    return []


def explain(record_inputs: Mapping[str, Any] | None, inputs: Mapping[str, Any]) -> list[str]:
    """Which inputs differ between a stored record and the spec now (empty: none)."""
    if record_inputs is None:
        return [f"made by code not declared equivalent to any algorithm version (a schema 1 record whose "
                f"key was not current at {_legacy()['commit'][:10]})"]
    return _diff(record_inputs, inputs) or ["run key differs"]


def check(spec: RunSpec, results_root: str | Path, manifest_digest: str | Any) -> Currency:
    """Is every record of ``spec`` under ``results_root`` current? (The one currency check.)

    ``manifest_digest``: the data's digest (a registered dataset), or the loaded Dataset itself (any data,
    a user's generic folder included: its records live under its data slug, ``Dataset.data_slug``, the
    one name the runner writes them under), or anything with the same attributes (``sweep.DataRef``).
    """
    from skinbench.results.records import read_record, record_path

    if isinstance(manifest_digest, str):
        if spec.dataset_name == "generic":  # a digest alone cannot name the folder's records: never "generic/"
            raise ValueError("a generic folder's records are filed under its data slug: pass the loaded Dataset")
        inputs, folder = key_inputs(spec, manifest_digest), spec.dataset_name
    else:
        inputs, folder = dataset_key_inputs(spec, manifest_digest), manifest_digest.data_slug
    key = run_key(inputs)
    reasons: list[str] = []
    paths: list[Path] = []
    status = "current"
    for target in spec.targets():
        path = record_path(spec.task, folder, spec.approach, target, root=results_root, seed=spec.seed)
        paths.append(path)
        record = read_record(path) if path.exists() else None
        label = f"{target}: " if target else ""
        if record is None:
            status = "missing"
            reasons.append(f"{label}no record at {path}")
        elif not record.ok:
            status = "skipped" if status == "current" else status
            reasons.append(f"{label}{record.status} record ({record.reason.splitlines()[0][:120] if record.reason else ''})")
        elif record.run_key != key:
            status = "stale" if status == "current" else status
            reasons += [label + r for r in explain(record.key_inputs, inputs)]
    return Currency(spec, status, reasons, paths)


def version_drift(record: Any) -> list[str]:
    """Why a record's numbers come from algorithm versions other than today's (empty: none), read from the
    record alone, so a table can mark a stale row without the data. (Params and data are checked by
    :func:`check`, which needs the spec and the data.)"""
    if not record.ok or record.approach not in info.APPROACHES or record.task not in info.TASKS:
        return []
    if record.key_inputs is None:
        return explain(None, {})
    now = {"estimator": estimator_version(record.approach), **contract_versions()}
    return _diff(record.key_inputs.get("versions") or {}, now, "versions.")


def made_by_older_code(record: Any) -> bool:
    """A current record whose exact source differs from today's (declared equivalent by its versions)."""
    return bool(record.code_digest) and record.approach in info.APPROACHES and \
        record.code_digest != code_digest(record.approach)
