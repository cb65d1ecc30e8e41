"""What a sweep is: :class:`SweepConfig` (tasks x approaches x seeds x a parameter grid, from arguments or
TOML) expanded to :class:`Point` s, each one :class:`~skinbench.provenance.RunSpec` with a stable id.

``-p`` / ``-g`` values are read by :mod:`skinbench.params` (one reading for ``run`` and ``sweep``).
:func:`registered_points` is what ``benchmarks/regenerate.py`` plans: every registered (task, approach)
on each task's regenerated datasets. Like benchopt's ``_generate_runs.py``: pure data, nothing runs here.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from skinbench import info
from skinbench import params as params_
from skinbench.errors import ConfigError
from skinbench.provenance import RunSpec

WORKS = ("run", "validation")
#: held-out share of the training images for "validation" points (lesion-aware, stratified)

# ===================================================================================== what a sweep is

@dataclass(frozen=True)
class Point:
    """One unit of work: a run spec, what to do with it, and where (under the results root) it lands.

    ``out`` is a folder relative to the results root ("" = the root itself: the point's records are the
    suite's ordinary rows). Grid points land in their own folder, because a record's path names task,
    dataset, approach, target and seed but not parameters (see :attr:`SweepConfig.out`).
    """

    spec: RunSpec
    work: str = "run"
    out: str = ""
    #: for tables: a short name of the point (not part of its identity)
    label: str = ""
    #: also write the ISIC submission files here (``run --predictions``; not part of its identity; written
    #: where the point runs, so in-process or on a shared filesystem)
    predictions: str = ""

    @property
    def id(self) -> str:
        head = f"{self.out}:" if self.out else ""
        kind = "" if self.work == "run" else f"{self.work}:"
        return f"{kind}{head}{self.spec.id}" + (f"/{self.spec.target}" if self.spec.target else "")


@dataclass
class SweepConfig:
    """A sweep as data: the product of tasks, approaches, seeds, targets and a parameter grid."""

    tasks: list[str]
    approaches: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    #: ``{name: [values]}``: every combination is one point (per task, approach, seed); values are typed
    #: per approach as ``-p`` values are (:func:`skinbench.params.validate_params`: text or typed)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    #: fixed parameter overrides for every point that takes them (no grid: they are the point's params)
    params: dict[str, Any] = field(default_factory=dict)
    #: one point per target (segmentation) instead of one point doing every target of the task
    targets: list[str] | None = None
    dataset: str | None = None
    limit: int | None = None
    n_boot: int = 1000
    name: str = "sweep"
    #: where points land, relative to the results root; ``str.format`` fields: name, label (``k=v,...`` of
    #: the point's parameters, fixed and grid), task, approach, seed and every grid key. None (the rule):
    #: a point with grid values lands in "sweeps/{name}/{label}" (one folder per grid point, which
    #: ``table`` shows as a sweep table, one row per point); a point without grid values (no grid, or an
    #: approach that has none of the grid's parameters) lands in the results root, as ``run`` with the
    #: same ``-p`` values would file it: fixed ``-p`` values alone do not make a grid point.
    out: str | None = None
    work: str = "run"
    #: learning curves: train each point on these nested fractions of the training split
    #: (``data.splits.training_set``; seeds draw different subset paths). A fraction point lands in
    #: "{name}/{task}/fraction={fraction}" unless ``out`` says otherwise; 1 (the whole split) is the suite's
    #: ordinary record (its spec has no fraction, so its run key and file are the ordinary ones)
    fractions: list[float] | None = None

    def points(self) -> list[Point]:
        """Every point, in a stable order; approaches that do not do a task are left out of it."""
        if self.work not in WORKS:
            raise ConfigError(f"unknown sweep work {self.work!r}", fix=f"use one of: {', '.join(WORKS)}")
        for t in self.tasks:
            info.task(t)
        names = self._approaches()
        pairs = [(task, approach) for task in self.tasks
                 for approach in (names if names != ["all"] else info.approaches_for(task))
                 if task in info.approach(approach).tasks]
        # every name and value is checked before any point exists, as `run -p` checks them
        every = sorted({a for _, a in pairs})
        params_.check_names(every, self.tasks[0] if self.tasks else None, self.params)
        params_.check_names(every, self.tasks[0] if self.tasks else None,
                            {k: (v[0] if v else "") for k, v in self.grid.items()}, option="-g")
        for key, values in self.grid.items():
            if not values:
                raise ConfigError(f"grid axis {key!r} has no values", fix=f"write e.g. -g {key}=V1,V2")
        fractions = self._fractions()
        keys = sorted(self.grid)
        combos = [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))] or [{}]
        out: list[Point] = []
        for task, approach in pairs:
            targets = self.targets or [None]
            sig = params_.approach_signature(approach)
            # a parameter applies to the approaches that have it (baselines beside a BoVW grid run once);
            # values are typed per approach (`-g C_grid=1,10` is two points, [1.0] and [10.0])
            mine = list({json.dumps(c, sort_keys=True, default=str): c for c in (
                params_.validate_params(approach, task, {k: v for k, v in c.items() if k in sig}, option="-g")
                for c in combos)}.values())
            fixed = params_.validate_params(approach, task, {k: v for k, v in self.params.items() if k in sig})
            for combo, seed, target, fraction in itertools.product(mine, self.seeds, targets, fractions):
                params = {**fixed, **combo}
                spec = RunSpec(task, approach, self.dataset, int(seed), params, target, self.limit, self.n_boot,
                               fraction)
                label = point_label(params)
                fields_ = {"name": self.name, "label": label, "task": task, "approach": approach,
                           "seed": seed, "fraction": _slug(fraction if fraction is not None else 1.0),
                           **{k: _slug(v) for k, v in combo.items()}}
                template = self.out if self.out is not None else _default_out(bool(combo), fraction)
                try:
                    folder = template.format(**fields_)
                except (KeyError, IndexError) as err:
                    raise ConfigError(f"output template {template!r} names an unknown field {err}",
                                      fix=f"use fields: {', '.join(fields_)}") from None
                out.append(Point(spec, self.work, _safe_folder(folder), label or approach))
        if not out:
            raise ConfigError("the sweep has no points (no approach does any of its tasks)",
                              fix="see `python -m skinbench list` for which approach does which task")
        ids = [p.id for p in out]
        if len(set(ids)) != len(ids):
            raise ConfigError("two sweep points share an id (repeated values in the grid or seeds?)",
                              fix="list each seed and grid value once")
        return out

    def _fractions(self) -> list[float | None]:
        """The spec fraction of each curve point: None for the whole split (1), checked and unique."""
        if self.fractions is None:
            return [None]
        from skinbench.data.splits import check_fraction  # here: NumPy and scikit-learn's start-up cost
        if not self.fractions:
            raise ConfigError("a learning curve needs at least one training fraction",
                              fix="e.g. fractions = [0.05, 0.1, 0.25, 0.5, 1]")
        values = [check_fraction(f) for f in self.fractions]
        if len(set(values)) != len(values):
            raise ConfigError(f"repeated training fraction in {self.fractions}", fix="list each fraction once")
        return [None if f == 1.0 else f for f in values]

    def _approaches(self) -> list[str]:
        if not self.approaches:
            raise ConfigError("a sweep needs at least one approach", fix="pass -a NAME (or -a all)")
        if "all" in self.approaches:
            return ["all"]
        for a in self.approaches:
            ainfo = info.approach(a)
            if not set(ainfo.tasks) & set(self.tasks):
                raise ConfigError(f"approach {a!r} does none of the sweep's tasks {self.tasks}",
                                  fix=f"it does: {', '.join(ainfo.tasks)}")
        return list(self.approaches)


def _default_out(grid: bool, fraction: float | None) -> str:
    """Where a point lands when ``out`` is not given (see :attr:`SweepConfig.out`, :attr:`SweepConfig.fractions`)."""
    if fraction is not None:
        return "{name}/{task}/fraction={fraction}" + ("/{label}" if grid else "")
    return "sweeps/{name}/{label}" if grid else ""


def point_label(params: Mapping[str, Any]) -> str:
    """``k=v,k=v`` of a point's parameters (sorted): its folder name and table label."""
    return ",".join(f"{k}={_slug(v)}" for k, v in sorted(params.items()))


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-") or "x"


def _safe_folder(folder: str) -> str:
    parts = [p for p in Path(folder).parts if p not in ("", ".")]
    if any(p == ".." for p in parts) or Path(folder).is_absolute():
        raise ConfigError(f"sweep output folder {folder!r} must stay inside the results root",
                          fix="use a relative folder without '..'")
    return "/".join(parts)


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``-g key=v1,v2`` items -> ``{key: ["v1", "v2"]}`` as text (``-g x=[1,2],[3,4]`` gives two list
    values). The text is typed per approach by :func:`skinbench.params.validate_params` when the points
    are made, exactly as a ``-p`` value is (:func:`skinbench.params.parse_assignments`)."""
    grid: dict[str, list[str]] = {}
    for key, text in params_.parse_assignments(list(items), example="-g n_words=100,300").items():
        values = params_.split_values(text)
        if any(v == "" for v in values):
            raise ConfigError(f"-g {key}={text} has an empty value", fix="write e.g. -g n_words=100,300")
        grid[key] = values
    return grid


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """A sweep TOML file as a dict of :class:`SweepConfig` fields (plus run options: workers, ...)."""
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("sweep config file not found", path=path, fix="check the --config path") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML ({err})", path=path, fix="see the Sweeps section of README.md") from None
    known = set(SweepConfig.__dataclass_fields__) | set(RUN_OPTIONS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown sweep setting(s) {unknown}", path=path, fix=f"valid: {', '.join(sorted(known))}")
    for key in ("grid",):
        if key in data:
            data[key] = {k: (v if isinstance(v, list) else [v]) for k, v in data[key].items()}
    return data


#: settings of a TOML file that are about how to run, not what
RUN_OPTIONS = ("workers", "threads", "scheduler", "retries", "results", "data_root", "dataset_kwargs")



def registered_points(only: Sequence[str] | None = None, *, approaches: Sequence[str] | None = None,
                      datasets: Sequence[str] | None = None, seed: int = 0, limit: int | None = None) -> list[Point]:
    """Every (task, approach) the registry declares, on each task's default (real) dataset and its
    variants (``TaskInfo.variants``), as points filed in the results root: what
    ``benchmarks/regenerate.py`` keeps current. ``only`` / ``approaches`` / ``datasets`` narrow it."""
    return [Point(RunSpec(t, a, d, seed, limit=limit), label=a)
            for t in info.TASKS if not only or t in only
            for d in info.task(t).regenerated_datasets() if not datasets or d in datasets
            for a in info.approaches_for(t, suite_only=True) if not approaches or a in approaches]
