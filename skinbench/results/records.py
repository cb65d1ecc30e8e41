"""One JSON record per run: where it lives, how it is written (atomically) and read back.

Tables, plots, the dashboard and submission files are rendered from these records only, so a record
carries everything needed to re-score a run: per-image predictions, split, seed, versions and machine.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shlex
import sys
import warnings
from datetime import date, datetime, timezone
from pathlib import Path
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Iterable, Mapping

import numpy as np

from skinbench import info, provenance
from skinbench.cache import atomic_write_bytes
from skinbench.environment import DIRTY_SUFFIX, environment
from skinbench.metrics.segmentation import per_image_scores
from skinbench.paths import REPO_ROOT, results_dir
from skinbench.scoring import (
    SCORING_VERSION,
    STORED_DECIMALS,
    fit_summary,
    params_of,
    scored_classification,
    scored_segmentation,
)

#: the record layout version; the one place it is written (``RunRecord.schema``). Schema 1 records
#: (before the typed record) are read through :func:`_from_schema1`.
SCHEMA = 2
#: decimals kept for floats: enough for any metric or score, small diffs in git (the scorer's one rounding
#: rule, :data:`skinbench.scoring.STORED_DECIMALS`: it computes the numbers from the scores rounded so)
FLOAT_DECIMALS = STORED_DECIMALS
#: bootstrap resamples of a record whose run key does not say (records before run keys used the default)
DEFAULT_N_BOOT = 1000


@dataclass
class RunRecord:
    """One run's result: what ran (spec and provenance), on what (split), and every per-image prediction.

    The runner builds it, :func:`write_record` stores it, and tables, plots, the dashboard and the
    submission writers read it; nothing else guesses at keys.
    """

    task: str
    dataset: str
    approach: str
    status: str = "ok"  # ok | skipped
    family: str = ""
    title: str = ""
    target: str | None = None
    seed: int | None = None
    limit: int | None = None
    #: the estimator's full parameters as it ran (``get_params``)
    params: dict[str, Any] = field(default_factory=dict)
    #: n_train, n_test, manifest_digest
    split: dict[str, Any] = field(default_factory=dict)
    #: ``{name: {"value": float | None, "ci": [lo, hi] | None}}``
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: confusion matrix, per-class scores, class names, positive class
    extras: dict[str, Any] = field(default_factory=dict)
    #: image_id plus y_true/scores (classification) or counts [tp, fp, fn, tn] (segmentation)
    predictions: dict[str, Any] = field(default_factory=dict)
    #: ``*_s`` durations, peak_rss_mb, and ``cache``: look-ups found vs computed during fit
    timings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    command: str = ""
    #: why a skipped record has no numbers
    reason: str = ""
    #: :func:`skinbench.provenance.run_key` of ``key_inputs``; None: not current under any declaration
    run_key: str | None = None
    #: what the run key hashes (so a stale record can say which input changed)
    key_inputs: dict[str, Any] | None = None
    #: digest of the exact source that made the record (provenance; not part of the key)
    code_digest: str | None = None
    #: a contributed approach's "package version" (``ApproachInfo.origin``); empty for the suite's own
    origin: str = ""
    #: how a rerun reproduces the numbers, ``{"class": "bitwise" | "bitwise-same-cpu" | "tolerance",
    #: "tolerance": float}`` (:func:`skinbench.provenance.reproducibility`); read it through :meth:`reproduces`
    reproducibility: dict[str, Any] | None = None
    #: set when the numbers were re-scored from the stored predictions without refitting
    #: (:func:`rescored_record`): from which scoring version, at which commit, by which command, when
    rescored: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA

    # ------------------------------------------------------------------ reading

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunRecord":
        """A record from its stored form; schema 1 records are migrated on the way in."""
        if not isinstance(data, dict) or not {"task", "dataset", "approach"} <= data.keys():
            raise ValueError("not a skinbench record (needs task, dataset, approach)")
        schema = data.get("schema", 1)
        if schema == 1:
            data = _from_schema1(data)
        elif schema != SCHEMA:
            raise ValueError(f"record schema {schema} is newer than this skinbench ({SCHEMA}); upgrade skinbench")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "RunRecord":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: v for k, v in out.items() if v not in (None, "", {}) or k in ("target", "seed", "limit")}

    @property
    def ok(self) -> bool:
        """A record with results (not one that says the approach was skipped)."""
        return self.status == "ok"

    @property
    def path_name(self) -> str:
        return f"{self.approach}__{self.target}" if self.target else self.approach

    def value(self, metric: str) -> float | None:
        entry = self.metrics.get(metric)
        return entry.get("value") if isinstance(entry, dict) else entry

    def ci(self, metric: str) -> tuple[float | None, float | None]:
        entry = self.metrics.get(metric)
        ci = entry.get("ci") if isinstance(entry, dict) else None
        return (ci[0], ci[1]) if ci else (None, None)

    def reproduces(self) -> dict[str, Any] | None:
        """How a rerun reproduces this record: as it states, else (records made before records stated it)
        as its approach declares it today; None for an approach the registry does not know. Read lazily,
        not when loading: the declaration imports the estimator's module."""
        return self.reproducibility or provenance.reproducibility(self.approach)

    @property
    def isa(self) -> str:
        """The instruction set of the machine that made the record ("unknown" before records named it)."""
        return (self.machine or {}).get("isa") or "unknown"

    @property
    def dirty(self) -> bool:
        """Made from a tree with uncommitted code changes (``versions.git_commit`` ends in ``+dirty``)."""
        return str((self.versions or {}).get("git_commit") or "").endswith(DIRTY_SUFFIX)

    @property
    def registered_family(self) -> str:
        """The family its approach is registered under today (the registry decides, as in the tables),
        else the one the record carries (a plugin no longer installed, an external prediction)."""
        return info.APPROACHES[self.approach].family if self.approach in info.APPROACHES else self.family

    @property
    def class_names(self) -> list[str]:
        return list(self.extras.get("class_names") or [])

    @property
    def n_boot(self) -> int:
        """The bootstrap resamples its metrics used (its run key's ``n_boot``; the default before keys)."""
        n_boot = (self.key_inputs or {}).get("n_boot")
        return int(n_boot) if n_boot else DEFAULT_N_BOOT

    def scored(self, cis: bool = True) -> dict[str, Any]:
        """Its ``metrics``, ``extras`` and ``predictions`` re-scored by today's scorer from its stored
        predictions alone (no model, no data), with its own bootstrap size and seed (``cis=False``: the
        values only, without intervals; they do not depend on the resamples)."""
        seed, n_boot = self.seed or 0, self.n_boot if cis else 0
        if "counts" in self.predictions:
            pred = self.predictions
            return scored_segmentation(pred["image_id"], self.counts(), pred.get("surface"), pred.get("mask_shape"),
                                       n_boot, seed)
        ids, y, scores = self.prediction_arrays()
        return scored_classification(ids, y, scores, self.class_names, self.extras.get("positive_class"), n_boot,
                                     seed)

    @property
    def fit_seconds(self) -> float | None:
        value = self.timings.get("fit_s")
        return None if value is None else float(value)

    @property
    def total_seconds(self) -> float | None:
        """Wall-clock cost of a run: the sum of its ``*_s`` parts."""
        keys = self.second_keys()
        return sum(float(self.timings[k]) for k in keys) if keys else None

    def second_keys(self) -> list[str]:
        """Timing entries that are durations (``*_s``); others (``peak_rss_mb``, rates) are not summed."""
        return [k for k, v in self.timings.items() if k.endswith("_s") and isinstance(v, (int, float))]

    @property
    def cache_hit_fraction(self) -> float | None:
        """Share of the fit's cache look-ups that found their work done (None: not recorded)."""
        use = self.timings.get("cache")
        if not use:
            return None
        hits = sum(v.get("hits", 0) for v in use.values())
        total = hits + sum(v.get("misses", 0) for v in use.values())
        return hits / total if total else None

    def cache_found(self) -> str:
        """What of the fit was found in the content cache (``"descriptors 900 of 900"``; "" when nothing
        was): written beside a fit time so a small one reads as "found cached", not as cheap. Only the
        per-image work a record counts (features, activations, training stages) is cached; a model fitted
        on it (an SVM grid, a head) ran."""
        use = self.timings.get("cache") or {}
        found = [(name, int(v.get("hits", 0)), int(v.get("hits", 0)) + int(v.get("misses", 0)))
                 for name, v in sorted(use.items()) if isinstance(v, dict) and v.get("hits")]
        return ", ".join(f"{name} {hits} of {total}" for name, hits, total in found)

    def prediction_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(image_ids, y_true int, scores (n, n_classes))`` of a classification record.

        Binary records may store only the positive-class score (1-D); it is expanded to two columns.
        """
        pred = self.predictions
        ids = np.asarray(pred["image_id"], dtype=str)
        scores = np.asarray(pred["scores"], dtype=float)
        if scores.ndim == 1:
            scores = np.stack([1.0 - scores, scores], axis=1)
        y = pred["y_true"]
        if len(y) and isinstance(y[0], str):
            y = [self.class_names.index(v) for v in y]
        return ids, np.asarray(y, dtype=np.int64), scores

    def counts(self) -> np.ndarray:
        """Per-image confusion counts ``(n, 4)`` = tp, fp, fn, tn of a segmentation record."""
        return np.asarray(self.predictions["counts"], dtype=np.int64).reshape(-1, 4)

    def per_image_jaccard(self) -> tuple[np.ndarray, np.ndarray]:
        """``(image_ids, jaccard)`` from the stored counts (empty truth and empty prediction score 1.0,
        as the official ISIC scorer does; see :func:`skinbench.metrics.segmentation.per_image_scores`)."""
        jac = per_image_scores(self.counts())["jaccard"]
        return np.asarray(self.predictions["image_id"], dtype=str), jac

    # ------------------------------------------------------------------ notebooks

    def summary(self) -> list[tuple[str, str]]:
        """(metric, "value [lo, hi]") of the task's primary metric first, then the others: what a notebook
        shows of a record (the full one is ``to_dict()``)."""
        primary = info.TASKS[self.task].primary_metric if self.task in info.TASKS else ""
        names = sorted(self.metrics, key=lambda m: (m != primary, m))
        out = []
        for m in names:
            value, (lo, hi) = self.value(m), self.ci(m)
            text = "-" if value is None else f"{value:.3f}"
            out.append((m, text + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")))
        return out

    def _label(self) -> str:
        parts = [self.task, self.dataset, self.approach + (f"/{self.target}" if self.target else "")]
        return " / ".join(parts) + f" (seed {self.seed}" + (f", {self.origin}" if self.origin else "") + ")"

    def __repr__(self) -> str:
        """Short: which run, its status and primary metric (the dataclass repr would print every prediction)."""
        if not self.ok:
            return f"<RunRecord {self._label()}: {self.status}: {self.reason}>"
        head = self.summary()[:1]
        return f"<RunRecord {self._label()}: " + (f"{head[0][0]} {head[0][1]}" if head else "no metrics") + ">"

    def _repr_html_(self) -> str:
        """A compact table for Jupyter: the run, then each metric with its 95% CI, then costs."""
        import html

        rows = "".join(f"<tr><td>{html.escape(m)}</td><td>{html.escape(v)}</td></tr>" for m, v in self.summary())
        costs = ", ".join(f"{k} {float(v):.3g}" for k, v in self.timings.items()
                          if isinstance(v, (int, float)) and (k.endswith("_s") or k == "peak_rss_mb"))
        status = "" if self.ok else f"<p>{html.escape(self.status)}: {html.escape(self.reason)}</p>"
        return (f"<div><b>{html.escape(self._label())}</b> {html.escape(self.family)}{status}"
                f"<table><tr><th>metric</th><th>value [95% CI]</th></tr>{rows}</table>"
                f"<small>n_train {self.split.get('n_train', '?')}, n_test {self.split.get('n_test', '?')}; "
                f"{html.escape(costs)}; run key {html.escape(str(self.run_key))}</small></div>")


def _numbers(record: RunRecord) -> dict[str, float | None]:
    """Every stored metric value and CI bound, as records store them (rounded to ``FLOAT_DECIMALS``)."""
    out: dict[str, float | None] = {}
    for m in record.metrics:
        for name, x in ((m, record.value(m)), (f"{m} CI low", record.ci(m)[0]), (f"{m} CI high", record.ci(m)[1])):
            out[name] = None if x is None else round(float(x), FLOAT_DECIMALS)
    return out


def same_cpu(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Two machine records of the same CPU model and instruction set (both known): where a
    ``bitwise-same-cpu`` record must reproduce exactly."""
    a, b = a or {}, b or {}
    return bool(a.get("isa")) and a.get("isa") == b.get("isa") and a.get("cpu") == b.get("cpu")


def compare_reproduction(old: RunRecord, new: RunRecord) -> tuple[str, str]:
    """(verdict, line) of a rerun ``new`` of the committed ``old`` under ``old``'s reproducibility rule
    (:meth:`RunRecord.reproduces`): verdict "same" (every metric and CI bound identical as stored),
    "within" (a ``bitwise-same-cpu`` record rerun on another CPU or instruction set, or a ``tolerance``
    one, no further than its tolerance) or "differs"; the line says which rule applied and the largest
    difference. What ``regenerate.py --verify`` prints and fails on."""
    a, b = _numbers(old), _numbers(new)
    diffs = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    if not diffs:
        return "same", "same"
    largest = max((abs(x - y) if x is not None and y is not None else math.inf) for x, y in diffs.values())
    rule = old.reproduces() or {"class": "bitwise", "tolerance": 0.0}
    kind, tolerance = rule["class"], float(rule.get("tolerance") or 0.0)
    moved = ", ".join(f"{k} {x} -> {y}" for k, (x, y) in list(diffs.items())[:4]) + (", ..." if len(diffs) > 4 else "")
    if kind == "bitwise":
        return "differs", f"differs (max diff {largest:.3g}; bitwise: must be identical on any machine): {moved}"
    here = f"CPU {new.machine.get('cpu', '?')} / ISA {new.isa}"
    if kind == "bitwise-same-cpu" and same_cpu(old.machine, new.machine):
        return "differs", (f"differs (max diff {largest:.3g}; bitwise-same-cpu, and this is the record's {here}: "
                           f"must be identical): {moved}")
    where = (f"record made on CPU {old.machine.get('cpu', '?')} / ISA {old.isa}, rerun on {here}"
             if kind == "bitwise-same-cpu" else "tolerance class")
    if largest <= tolerance:
        return "within", f"within tolerance (max diff {largest:.3g} <= {tolerance:g}; {where})"
    return "differs", f"differs (max diff {largest:.3g} > tolerance {tolerance:g}; {where}): {moved}"


def _from_schema1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: the run key of a record current at the legacy commit is re-issued under the
    declared versions it is equivalent to (:mod:`skinbench.provenance`); any other keeps no key."""
    out = dict(data, schema=SCHEMA)
    out.update(provenance.migrate_legacy_key(data))
    return out


def command_as_typed(argv: list[str] | None = None) -> str:
    """The command line as a user would type it again (``python -m skinbench run ...``, not a file path)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    head = Path(argv[0])
    if head.name == "__main__.py" and head.parent.name == "skinbench":
        first = "python -m skinbench"
    elif head.name == "skinbench":
        first = "skinbench"
    elif head.suffix == ".py":
        try:
            first = "python " + head.resolve().relative_to(REPO_ROOT).as_posix()
        except ValueError:
            first = "python " + head.name
    else:
        first = head.name
    return " ".join([first, *map(shlex.quote, argv[1:])])


def build_record(base: RunRecord, scored: Mapping[str, Any] | None = None, *, est: Any = None,
                 extras: Mapping[str, Any] | None = None, timings: Mapping[str, Any] | None = None,
                 key_inputs: Mapping[str, Any] | None = None, command: str | None = None,
                 status: str = "ok") -> RunRecord:
    """The one way a record is finished, for runs, cross-dataset runs, external predictions and sweeps alike.

    ``base`` says what ran and on what; ``scored`` are the scorer's ``metrics``/``extras``/``predictions``
    (:class:`skinbench.scoring.Scorer`); ``est`` the fitted estimator (its parameters and ``extras.fit``,
    what the fit chose); ``extras`` more extras. Stamped here, so no writer forgets one: environment
    (versions with the lock's digest, machine with its instruction set), how the run reproduces (the
    approach's declared ``reproducibility``), ``created`` now, the command as typed, the run key of
    ``key_inputs`` and, with ``timings``, the process's peak memory."""
    values = dict(scored or {})
    more: dict[str, Any] = {**values.pop("extras", {}), **dict(extras or {})}
    if est is not None:
        chosen = fit_summary(est)
        if chosen:
            more["fit"] = chosen
        values["params"] = params_of(est)
    if timings is not None:
        values["timings"] = {**timings, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if key_inputs is not None:
        values.update(key_inputs=dict(key_inputs), run_key=provenance.run_key(dict(key_inputs)))
    repro = provenance.reproducibility(base.approach)
    if repro is None and hasattr(est, "reproducibility"):  # an estimator the registry does not know
        repro = {"class": est.reproducibility, "tolerance": float(getattr(est, "reproducibility_tolerance", 0.0))}
    env = environment()
    return replace(base, **values, extras={**base.extras, **more}, status=status, versions=env["versions"],
                   reproducibility=repro,
                   machine=env["machine"], created=datetime.now(timezone.utc).isoformat(),
                   command=command or base.command or command_as_typed())


def rescored_record(record: RunRecord, command: str, commit: str) -> RunRecord:
    """``record`` re-scored by today's scorer (:meth:`RunRecord.scored`) under today's
    :data:`~skinbench.scoring.SCORING_VERSION`: new metrics, scored extras and predictions, the run key
    with the new scoring version, and ``rescored`` (from which version, at ``commit``, by ``command``,
    when); everything about the fit (params, timings, versions with its git commit, machine, created,
    code digest) is kept. The caller decides whether the record may be re-scored (only its scoring version
    may differ from today's key)."""
    if not record.ok or record.key_inputs is None:
        raise ValueError(f"{record.approach}: only a keyed record with results can be re-scored")
    scored = record.scored()
    inputs = dict(record.key_inputs)
    versions = dict(inputs.get("versions") or {})
    old = versions.get("runner")
    versions["runner"] = SCORING_VERSION
    inputs["versions"] = versions
    return replace(record, metrics=scored["metrics"], extras={**record.extras, **scored["extras"]},
                   predictions={**record.predictions, **scored["predictions"]}, key_inputs=inputs,
                   run_key=provenance.run_key(inputs),
                   rescored={"from_scoring_version": old, "to_scoring_version": SCORING_VERSION, "commit": commit,
                             "command": command, "at": datetime.now(timezone.utc).isoformat()})


def record_path(task: str, dataset: str, approach: str, target: str | None = None,
                root: str | os.PathLike | None = None, seed: int | None = 0) -> Path:
    """``<root>/runs/<task>/<dataset>/<approach>[__<target>][__seed<k>].json`` (root: ``paths.results_dir()``).

    Seed 0 has no suffix, so the first seed of every row keeps the path it always had.
    """
    base = Path(root) if root is not None else results_dir()
    name = f"{approach}__{target}" if target else approach
    if seed:
        name += f"__seed{seed}"
    return base / "runs" / task / dataset / f"{name}.json"


def path_of(record: RunRecord, root: str | os.PathLike | None = None) -> Path:
    return record_path(record.task, record.dataset, record.approach, record.target, root=root, seed=record.seed)


def _clean(obj: Any) -> Any:
    """JSON-able copy: numpy types to Python, floats rounded, NaN/inf to None (JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return round(value, FLOAT_DECIMALS) if math.isfinite(value) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    raise TypeError(f"record value of type {type(obj).__name__} is not JSON serialisable: {obj!r}")


def _is_flat(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _to_json(obj: Any, level: int = 0) -> str:
    """Indented JSON with sorted keys, but a list of scalars on one line and a table (list of such
    lists) one row per line: per-image predictions stay readable and diffable, not one number a line."""
    pad, inner = " " * level, " " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_to_json(obj[k], level + 1)}" for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list):
        if all(_is_flat(v) for v in obj):
            return json.dumps(obj, allow_nan=False)
        return "[\n" + ",\n".join(inner + _to_json(v, level + 1) for v in obj) + f"\n{pad}]"
    return json.dumps(obj, allow_nan=False)


def dumps(record: RunRecord | dict) -> bytes:
    """The exact bytes a record is stored as (sorted keys, indented, rounded floats, compact rows)."""
    data = record.to_dict() if isinstance(record, RunRecord) else record
    return (_to_json(_clean(data)) + "\n").encode()


def write_record(record: RunRecord, path: str | os.PathLike | None = None) -> Path:
    """Write ``record`` atomically (default path from its task/dataset/approach/target); return the path.

    Serialisation happens before anything touches the disk, so a record that cannot be serialised
    leaves no file behind, and an existing record is replaced only by a complete new one.
    """
    if not isinstance(record, RunRecord):
        raise TypeError(f"write_record takes a RunRecord, not {type(record).__name__}")
    data = dumps(record)
    path = Path(path) if path is not None else path_of(record)
    atomic_write_bytes(path, data)
    return path


def read_record(path: str | os.PathLike) -> RunRecord | None:
    """The record at ``path``; None (with a warning naming the file and the fix) if it is not one."""
    try:
        return RunRecord.from_file(path)
    except (OSError, ValueError, TypeError) as err:
        warnings.warn(f"{path}: skipped unreadable result record ({err}). Fix: rerun that approach "
                      f"or delete the file.", stacklevel=3)
        return None


def load_records(root: str | os.PathLike | None = None, task: str | None = None,
                 dataset: str | None = None) -> list[RunRecord]:
    """All records under ``<root>/runs`` (optionally one task / dataset), sorted by path.

    A file that is not a valid record is skipped with a warning naming it (one bad file must not hide
    every other result); delete or regenerate it to silence the warning.
    """
    base = (Path(root) if root is not None else results_dir()) / "runs"
    pattern = f"{task or '*'}/{dataset or '*'}/*.json"
    return [r for r in (read_record(p) for p in sorted(base.glob(pattern))) if r is not None]


def distinct(records: Iterable[RunRecord], key: str) -> list[Any]:
    """Distinct values of a record field (e.g. ``"machine"``), in first-seen order."""
    seen: list[Any] = []
    for r in records:
        value = getattr(r, key) or None
        if value is not None and value not in seen:
            seen.append(value)
    return seen
