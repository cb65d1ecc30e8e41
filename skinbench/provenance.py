"""What makes a record current: the run spec, its key, declared algorithm versions and exact provenance.

A run key hashes what can change a number: task, approach, estimator, merged parameters, seed, subset,
bootstrap size, the data manifest, and *declared* algorithm versions (the estimator's
``algorithm_version`` and the shared numeric contracts: data reading, metrics, scoring (skinbench.scoring)).
It does not hash source text, so a rename, a moved function or a comment leaves every record current;
a change that alters numbers bumps the version it touches, and exactly the records that depend on it go
stale. The golden check (tests/test_provenance.py) reruns the deterministic approaches and fails when
a number moved while no version was bumped.

Provenance is kept beside the key, never in it: each record stores the commit and the digest of the
exact source that made it (``code_digest``), and the dashboard says when a current record was made by
older code declared equivalent. Every "is this record current" question goes through
:func:`skinbench.results.currency.check`, which reads records against these keys.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from skinbench import info
from skinbench.cache import make_key
from skinbench.errors import ConfigError

PACKAGE = Path(__file__).parent

#: code a record's numbers depend on besides its estimator: its digest is provenance, not key
SHARED_CODE = ("runner.py", "scoring.py", "cache.py", "data", "metrics", "approaches/base.py")


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
    #: learning curves: train on this nested fraction of the training split (``data.splits.training_set``);
    #: None (the rule) and 1.0 are the whole split, and a spec without one keeps the run key it always had
    fraction: float | None = None

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
        parts: list[Any] = [dict(self.params or {}), self.limit, self.n_boot]
        if self.fraction is not None:  # a spec without one keeps its id
            parts.append(self.fraction)
        extra = make_key(*parts)[:8]
        return f"{self.task}/{self.dataset_name}/{self.approach}/seed{self.seed}/{extra}"


# ------------------------------------------------------------------ declared versions

def contract_versions() -> dict[str, int]:
    """Versions of the shared numeric contracts (each declared beside its code; read at call time, so a
    test may patch one). The key name ``runner`` stays: committed run keys hash it."""
    # here, not at the top, for start-up cost: the CLI and sweep import RunSpec without NumPy's dependants
    from skinbench import data, metrics, scoring

    return {"data": data.READ_VERSION, "metrics": metrics.METRICS_VERSION, "runner": scoring.SCORING_VERSION}


def estimator_version(approach: str) -> int:
    """The registered estimator's ``algorithm_version`` (imports its module: TensorFlow for deep ones)."""
    module, cls = info.approach(approach).estimator.split(":")
    return int(getattr(getattr(importlib.import_module(module), cls), "algorithm_version", 1))


def reproducibility(approach: str) -> dict[str, Any] | None:
    """``{"class": ..., "tolerance": ...}``: how a record of ``approach`` reproduces, as the registry states
    it, else as its estimator class declares it (``reproducibility``; imports its module, as
    :func:`estimator_version` does). None for an approach the registry does not know, or whose class (a
    plugin's, not built on :mod:`skinbench.approaches.base`) declares nothing: "not stated", which
    ``--verify`` holds to bitwise. A record states it (``RunRecord.reproducibility``); records made before
    it was stated read it from here."""
    # here, not at the top, for start-up cost (as contract_versions): the base imports scikit-learn
    from skinbench.approaches.base import REPRODUCIBILITY

    if approach not in info.APPROACHES:
        return None
    a = info.approach(approach)
    if a.reproducibility is not None:
        kind, tolerance = a.reproducibility
    else:
        module, cls = a.estimator.split(":")
        klass = getattr(importlib.import_module(module), cls)
        if not hasattr(klass, "reproducibility"):
            return None
        kind = klass.reproducibility
        tolerance = getattr(klass, "reproducibility_tolerance", 0.0)
    if kind not in REPRODUCIBILITY:
        raise ConfigError(f"approach {approach!r} declares reproducibility {kind!r}",
                          fix=f"declare one of: {', '.join(REPRODUCIBILITY)}")
    return {"class": kind, "tolerance": float(tolerance)}


#: Estimator classes renamed or split since committed records were made: {registered name: the name the
#: run keys hash}. A key hashes the estimator's name, yet a rename changes no number, so the key keeps the
#: old name (a class whose numbers change bumps its ``algorithm_version`` instead). The three transfer
#: estimators were one ``TransferClassifier`` whose ``mode`` parameter chose the algorithm.
_OLD_TRANSFER = "skinbench.approaches.transfer:TransferClassifier"
ESTIMATOR_RENAMES: dict[str, str] = {
    "skinbench.approaches.transfer:FeatureTransferClassifier": _OLD_TRANSFER,
    "skinbench.approaches.finetune:PartialFinetuneClassifier": _OLD_TRANSFER,
    "skinbench.approaches.transfer:EndToEndTransferClassifier": _OLD_TRANSFER,
}
#: Parameters a renamed class no longer takes because its class now says it, as the keys hashed them:
#: the registry gave the partial and end-to-end approaches ``mode`` (features was the default, never
#: written), so their keys keep it.
KEY_PARAMS: dict[str, dict[str, Any]] = {
    "skinbench.approaches.finetune:PartialFinetuneClassifier": {"mode": "partial"},
    "skinbench.approaches.transfer:EndToEndTransferClassifier": {"mode": "finetune"},
}


def key_estimator(estimator: str) -> str:
    """The name a run key hashes for the registered ``"module:Class"`` (see :data:`ESTIMATOR_RENAMES`)."""
    return ESTIMATOR_RENAMES.get(estimator, estimator)


def key_params(estimator: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a run key hashes: the merged ``params`` and what :data:`KEY_PARAMS` declares."""
    return {**KEY_PARAMS.get(estimator, {}), **dict(params)}


def key_inputs(spec: RunSpec, manifest_digest: str, classes: list[str] | None = None,
               subset: str | None = None) -> dict[str, Any]:
    """What the run key hashes, kept in the record so a stale one can say which input changed.

    ``classes``: a user-declared class order (generic data: which class is positive); registered
    datasets' classes are fixed by the registry and left out. ``subset``: the digest of a learning-curve
    point's training subset (:func:`subset_digest`); a spec without a fraction has no such input, so
    every key made before learning curves existed stays what it was.
    """
    if spec.fraction is not None and subset is None:
        raise ValueError("a learning-curve spec's key needs its training subset: use dataset_key_inputs")
    estimator = info.approach(spec.approach).estimator
    inputs = {
        "task": spec.task, "approach": spec.approach, "dataset": spec.dataset_name,
        "estimator": key_estimator(estimator), "params": key_params(estimator, spec.merged_params()),
        "seed": spec.seed, "limit": spec.limit, "n_boot": spec.n_boot, "manifest_digest": manifest_digest,
        "versions": {"estimator": estimator_version(spec.approach), **contract_versions()},
    }
    if classes:
        inputs["classes"] = list(classes)
    if info.approach(spec.approach).family == "deep":
        from skinbench.approaches import engines  # start-up cost: `list` keys no run

        engine = engines.key_input()
        if engine:  # not TensorFlow: not declared equivalent, so its records are keyed apart
            inputs["engine"] = engine
    if spec.fraction is not None:
        from skinbench.data.splits import SUBSET_VERSION  # start-up cost, as contract_versions

        inputs["subset"] = {"fraction": float(spec.fraction), "digest": subset, "rule": SUBSET_VERSION}
    return inputs


def subset_digest(spec: RunSpec, data: Any) -> str | None:
    """Digest of the images ``spec`` trains on when it has a fraction (None without one): computed from
    the loaded Dataset (``data.splits.training_set``, the runner's rule), or read from a reference that
    carries it for this very spec (``sweep.DataRef.train_subset``: made where the data is)."""
    if spec.fraction is None:
        return None
    carried = getattr(data, "train_subset", None)
    if carried is not None and tuple(carried[:3]) == (spec.fraction, spec.seed, spec.limit):
        return str(carried[3])
    if not hasattr(data, "split"):
        raise ValueError(f"no training subset of fraction {spec.fraction} (seed {spec.seed}) in this data reference")
    from skinbench.data.splits import subset_digest as digest_of, training_set  # start-up cost

    return digest_of(training_set(data, spec.seed, spec.limit, spec.fraction))


def dataset_key_inputs(spec: RunSpec, ds: Any) -> dict[str, Any]:
    """:func:`key_inputs` for a loaded Dataset (or a reference to one): a user's generic folder may declare
    its class order (which class is positive), so it enters the key; a registered dataset's classes are
    fixed by the registry. A learning-curve spec adds its training subset's digest."""
    return key_inputs(spec, ds.manifest_digest, classes=list(ds.class_names) if ds.name == "generic" else None,
                      subset=subset_digest(spec, ds))


def run_key(inputs: Mapping[str, Any]) -> str:
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


def legacy_commit() -> str:
    """The commit at which the legacy key declaration was made (a stale schema 1 record names it)."""
    return _legacy()["commit"]


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
        "estimator": key_estimator(info.APPROACHES[approach].estimator) if approach in info.APPROACHES else "",
        "params": entry["params"], "seed": record.get("seed"), "limit": record.get("limit"), "n_boot": 1000,
        "manifest_digest": (record.get("split") or {}).get("manifest_digest"), "versions": dict(LEGACY_VERSIONS),
    }
    return {"run_key": run_key(inputs), "key_inputs": inputs, "code_digest": entry["code_digest"]}
