"""Is a record current? The one currency check, reading records against today's run keys.

It sits above :mod:`skinbench.results.records` (it reads records) and :mod:`skinbench.provenance` (the
keys and declared versions it compares), so neither of those needs the other to answer it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from skinbench import info
from skinbench.data.manifests import read_index
from skinbench.provenance import (RunSpec, code_digest, contract_versions, dataset_key_inputs, estimator_version,
                                  key_inputs, legacy_commit, run_key)
from skinbench.results.records import read_record, record_path


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
                f"key was not current at {legacy_commit()[:10]})"]
    return _diff(record_inputs, inputs) or ["run key differs"]


def expected_inputs(spec: RunSpec, manifest_digest: str | Any) -> tuple[dict[str, Any], str]:
    """(today's key inputs of ``spec``, the data folder its records are filed under); ``manifest_digest``
    as :func:`check` takes it."""
    if isinstance(manifest_digest, str):
        if spec.dataset_name == "generic":  # a digest alone cannot name the folder's records: never "generic/"
            raise ValueError("a generic folder's records are filed under its data slug: pass the loaded Dataset")
        return key_inputs(spec, manifest_digest), spec.dataset_name
    return dataset_key_inputs(spec, manifest_digest), manifest_digest.data_slug


#: the one key input a re-scoring may change (``versions.runner`` is :data:`skinbench.scoring.SCORING_VERSION`)
RESCORED_INPUT = "versions.runner"


def rescore_blockers(record: Any, inputs: Mapping[str, Any] | None = None) -> list[str]:
    """Why ``record`` cannot be re-scored from its stored predictions (empty: it can, or needs not be):
    every way its key differs from today's other than the scoring version. ``inputs``: today's key inputs
    of its spec (:func:`expected_inputs`, for a registered row: params and data are checked too); without
    them only the declared versions are (a sweep's grid point, a cross-dataset record)."""
    if not record.ok:
        return [f"{record.status} record (no numbers)"]
    if record.key_inputs is None:
        return explain(None, {})
    if inputs is None:
        if record.approach not in info.APPROACHES:
            return [f"approach {record.approach!r} is not registered here: its algorithm version is unknown"]
        inputs = {**record.key_inputs, "versions": {"estimator": estimator_version(record.approach),
                                                    **contract_versions()}}
    diffs = _diff(record.key_inputs, inputs)
    return [d for d in diffs if not d.startswith(RESCORED_INPUT + ":")]


def check(spec: RunSpec, results_root: str | Path, manifest_digest: str | Any) -> Currency:
    """Is every record of ``spec`` under ``results_root`` current? (The one currency check.)

    ``manifest_digest``: the data's digest (a registered dataset), or the loaded Dataset itself (any data,
    a user's generic folder included: its records live under its data slug, ``Dataset.data_slug``, the
    one name the runner writes them under), or anything with the same attributes (``sweep.DataRef``).
    """
    inputs, folder = expected_inputs(spec, manifest_digest)
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


def data_drift(record: Any, index: Mapping[str, Any] | None = None) -> list[str]:
    """Why a record was made on other data than today's (empty: the same, or not known from the record):
    its stored manifest digests (training data; a cross-dataset record's test data too) against today's
    ``data_manifests/index.json``, read from the record alone, so a table or a sweep's status marks a row
    trained on a since-rebuilt split without loading the data. Datasets without a committed manifest
    (synthetic, a user's folder) are not judged here."""
    if not record.ok or not record.key_inputs:
        return []
    index = read_index() if index is None else index
    ki = record.key_inputs
    out = []
    for dataset, digest in ((ki.get("dataset"), ki.get("manifest_digest")),
                            (ki.get("test_dataset"), ki.get("test_manifest_digest"))):
        today = (index.get(str(dataset)) or {}).get("digest") if dataset and digest else None
        if today and today != digest:
            out += _diff({"manifest_digest": digest}, {"manifest_digest": today})
    return out


def made_by_older_code(record: Any) -> bool:
    """A current record whose exact source differs from today's (declared equivalent by its versions)."""
    return bool(record.code_digest) and record.approach in info.APPROACHES and \
        record.code_digest != code_digest(record.approach)
