"""Approaches and datasets from outside skinbench: installed plugins and ad hoc estimator classes.

A package registers its approaches with an entry point in the group ``skinbench.approaches`` (datasets:
``skinbench.datasets``) whose object is an :class:`~skinbench.info.ApproachInfo` (resp.
:class:`~skinbench.info.DatasetInfo`), a list of them, or a function returning either. They join the
registry (:mod:`skinbench.info`) on its first read, so ``list``, ``-p`` checks, run keys, records,
tables, sweeps, smoke runs and the significance tests treat them like the suite's own; each keeps an
``origin`` ("package version") that every table shows, so a reader tells contributed rows from the suite's.

A plugin that fails to import, or returns something malformed, costs one warning line naming its
package; the built-in registry stays usable. ``--approach package.module:Class`` (or a class handed to
:func:`skinbench.run`) registers one estimator ad hoc (:func:`register_class`), also in worker processes
(through ``$SKINBENCH_ADHOC_APPROACHES``). See docs/plugins.md.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
from dataclasses import replace
from importlib import metadata
from typing import Any, Iterable

from skinbench import info
from skinbench.errors import ConfigError

APPROACH_GROUP = "skinbench.approaches"
DATASET_GROUP = "skinbench.datasets"
#: ad hoc ``module:Class`` approaches of this process, inherited by sweep workers: JSON [[spec, family], ...]
ADHOC_ENV = "SKINBENCH_ADHOC_APPROACHES"
FAMILIES = ("classical", "deep")
_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_CLASSIFIER_TASKS = tuple(t.name for t in info.TASKS.values() if t.kind == "classification")
_SEGMENTER_TASKS = tuple(t.name for t in info.TASKS.values() if t.kind == "segmentation")


def warn(message: str) -> None:
    """One line on stderr: a broken plugin never stops the suite."""
    print(f"skinbench: warning: {message}", file=sys.stderr)


def _entries(group: str) -> list[metadata.EntryPoint]:
    try:
        return list(metadata.entry_points(group=group))
    except Exception as err:  # a broken installed distribution: say so, keep the suite usable
        warn(f"cannot read the installed {group} entry points ({err})")
        return []


def _package(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is not None:
        return dist.metadata["Name"] or ep.module, dist.version or "?"
    return ep.module.split(".")[0], "?"


def _items(obj: Any, kind: type) -> list[Any]:
    """An entry point's object as a list of ``kind`` (it may be one, a list, or a function returning either)."""
    if callable(obj) and not isinstance(obj, kind):
        obj = obj()
    items = [obj] if isinstance(obj, kind) else list(obj) if isinstance(obj, (list, tuple)) else None
    if items is None or not items or not all(isinstance(i, kind) for i in items):
        raise TypeError(f"expected {kind.__name__} objects (or a function returning a list of them), "
                        f"got {type(obj).__name__}")
    return items


def check_approach_info(a: info.ApproachInfo, taken: Iterable[str]) -> None:
    """Refuse what would break the suite later: a taken name, unknown tasks or family, a bad estimator."""
    if a.name in taken or a.name == "all":
        raise ValueError(f"approach name {a.name!r} is already taken")
    if not _SPEC.match(a.estimator or ""):
        raise ValueError(f"approach {a.name!r}: estimator {a.estimator!r} is not 'package.module:Class'")
    if a.family not in FAMILIES:  # the baselines are the suite's floor, run beside every row
        raise ValueError(f"approach {a.name!r}: family {a.family!r} is not classical or deep")
    unknown = [t for t in a.tasks if t not in info.TASKS]
    if not a.tasks or unknown:
        raise ValueError(f"approach {a.name!r}: tasks {list(a.tasks)} (known: {', '.join(info.TASKS)})")


def check_dataset_info(d: info.DatasetInfo, taken: Iterable[str]) -> None:
    if d.name in taken:
        raise ValueError(f"dataset name {d.name!r} is already taken")
    if not _SPEC.match(d.adapter or ""):
        raise ValueError(f"dataset {d.name!r}: adapter {d.adapter!r} is not 'package.module:function'")
    unknown = [t for t in d.tasks if t not in info.TASKS]
    if not d.tasks or unknown:
        raise ValueError(f"dataset {d.name!r}: tasks {list(d.tasks)} (known: {', '.join(info.TASKS)})")


def load(approaches: dict[str, info.ApproachInfo], datasets: dict[str, info.DatasetInfo]) -> None:
    """Add every installed plugin's approaches and datasets, then this process's ad hoc classes."""
    for group, kind, table, check in ((DATASET_GROUP, info.DatasetInfo, datasets, check_dataset_info),
                                      (APPROACH_GROUP, info.ApproachInfo, approaches, check_approach_info)):
        for ep in _entries(group):
            package, version = _package(ep)
            try:
                items = _items(ep.load(), kind)
                taken = set(dict.keys(table))
                for item in items:
                    check(item, taken)
                    taken.add(item.name)
            except Exception as err:  # any failure of third-party code: one line, the suite goes on
                warn(f"plugin package {package!r} ignored: its {group} entry point {ep.name!r} ({ep.value}) "
                     f"failed: {type(err).__name__}: {err}")
                continue
            for item in items:
                origin = item.origin if item.origin != info.SUITE else f"{package} {version}"
                dict.__setitem__(table, item.name, replace(item, origin=origin))
    for spec, family in _adhoc_from_env():
        try:
            register_class(spec, family, _export=False)
        except Exception as err:
            warn(f"ad hoc approach {spec!r} ignored: {err}")


def _adhoc_from_env() -> list[tuple[str, str]]:
    try:
        return [tuple(x) for x in json.loads(os.environ.get(ADHOC_ENV) or "[]")]
    except (ValueError, TypeError):
        return []


def kebab(name: str) -> str:
    """``ColorHistogramClassifier`` -> ``color-histogram-classifier``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def is_segmenter(cls: type) -> bool:
    """Which contract an estimator class follows: a segmenter's ``fit`` takes masks second. (By the base
    class's name: the registry's floor may not import ``skinbench.approaches``.)"""
    if any(c.__name__ == "PathSegmenter" and c.__module__ == "skinbench.approaches.base" for c in cls.__mro__):
        return True
    try:
        names = list(inspect.signature(cls.fit).parameters)
    except (TypeError, ValueError, AttributeError):
        return False
    return len(names) > 2 and "mask" in names[2]


def _origin_of(module: str) -> str:
    top = module.split(".")[0]
    dists = metadata.packages_distributions().get(top, [])
    if dists:
        return f"{dists[0]} {metadata.version(dists[0])} (ad hoc)"
    return f"{module} (ad hoc)"


def register_class(spec: str | type, family: str | None = None, *, _export: bool = True) -> str:
    """Register an estimator class (``"package.module:Class"`` or the class) as an approach; its name.

    The name is the class's ``name`` attribute or its kebab-cased name; tasks its ``tasks`` attribute, else
    every classification (or, for a segmenter, segmentation) task; family ``family`` or the class's
    ``family`` attribute (classical or deep). Registering the same class again returns the same name.
    """
    if isinstance(spec, type):
        cls, spec = spec, f"{spec.__module__}:{spec.__qualname__}"
    else:
        if not _SPEC.match(spec):
            raise ConfigError(f"--approach {spec!r} is neither a registered name nor 'package.module:Class'",
                              fix="see `python -m skinbench list`, or write e.g. --approach mypkg.model:MyClassifier "
                                  "--family classical")
        module, name = spec.split(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"cannot import approach class {spec!r} ({type(err).__name__}: {err})",
                              fix="install its package or put its folder on PYTHONPATH; check the module and "
                                  "class names") from None
    len(info.APPROACHES)  # the installed plugins first, so a name clash is seen
    family = family or getattr(cls, "family", None)
    if family not in FAMILIES:
        raise ConfigError(f"approach class {spec!r} needs its family declared (classical or deep), got {family!r}",
                          fix="add --family classical (or deep), or a class attribute family = 'classical'")
    for existing in dict.values(info.APPROACHES):
        if existing.estimator == spec and existing.contributed and existing.family == family:
            return existing.name
    name = getattr(cls, "name", None) if isinstance(getattr(cls, "name", None), str) else kebab(cls.__name__)
    tasks = tuple(getattr(cls, "tasks", ()) or (_SEGMENTER_TASKS if is_segmenter(cls) else _CLASSIFIER_TASKS))
    doc = (inspect.getdoc(cls) or "").strip().splitlines()
    ainfo = info.ApproachInfo(name, spec, family, tasks, getattr(cls, "title", None) or (doc[0] if doc else name),
                              smoke_params=dict(getattr(cls, "smoke_params", {}) or {}),
                              origin=_origin_of(spec.split(":")[0]))
    try:
        check_approach_info(ainfo, dict.keys(info.APPROACHES))
    except ValueError as err:
        raise ConfigError(f"cannot register {spec!r}: {err}",
                          fix="give the class another `name = '...'` attribute") from None
    dict.__setitem__(info.APPROACHES, name, ainfo)
    if _export:
        known = _adhoc_from_env()
        if (spec, family) not in known:
            os.environ[ADHOC_ENV] = json.dumps([*map(list, known), [spec, family]])
    return name


def resolve_names(names: Iterable[str], family: str | None) -> list[str]:
    """Approach names as typed: a ``package.module:Class`` is registered ad hoc and replaced by its name."""
    out = [register_class(n, family) if ":" in n else n for n in names]
    if family and not any(":" in n for n in names):
        raise ConfigError("--family declares the family of an --approach package.module:Class",
                          fix="drop --family (a registered approach has its family), or name a class")
    return out
