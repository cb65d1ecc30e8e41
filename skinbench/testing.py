"""Contract checks for a contributed estimator: ``check_approach(EstimatorClass, "task1")`` in its own tests.

Runs the estimator through the contract of :mod:`skinbench.approaches.base` on a small synthetic dataset,
the way the runner drives it, so a plugin finds its mistakes in its own test suite rather than as a
plausible wrong number in a table. Each failed check is an ``AssertionError`` whose message starts with
the check's name (``[proba-rows-sum-to-1] ...``):

- ``fit-predict``: fit on image paths (and labels or mask paths), predict the test images;
- classifier: ``classes_`` set, ``predict_proba`` (n_test, len(classes_)), finite, in [0, 1], rows summing
  to 1, ``predict`` one label of ``classes_`` per image; segmenter: one finite [0, 1] map per image, at that
  image's own (height, width);
- ``deterministic``: a second estimator with the same ``random_state`` predicts the same;
- ``get-params``: ``sklearn.base.clone`` round trip (constructor arguments stored under their names);
- ``writes-only-cache-dir``: nothing written to the working directory, ``$HOME`` or the data folder
  (a fresh temporary cwd and HOME are snapshotted; ``cache_dir`` and ``$SKINBENCH_CACHE`` may be written);
- ``degenerate-training-set``: on an empty (and, for a classifier, a one-class) training set ``fit`` raises
  one clear error (``ValueError`` or a :class:`skinbench.errors.SkinbenchError` with a message), or, for an
  estimator that needs no data (a constant baseline), still predicts valid output.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from sklearn.base import clone

from skinbench import info
from skinbench.data import synthetic
from skinbench.errors import SkinbenchError

#: images of the synthetic set the checks run on (small: the checks fit every estimator three times)
N_IMAGES = 32
IMAGE_SIZE = (64, 48)


class _Fail(AssertionError):
    pass


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise _Fail(f"[{name}] {message}")


#: files a library writes under a fresh HOME the first time the process imports it (Keras' config, Matplotlib's
#: font cache): the library's doing, not the estimator's, and present on any user's machine after one import
LIBRARY_HOME_FILES = (".keras/keras.json", ".cache/matplotlib/*", ".config/matplotlib/*", ".matplotlib/*")


def _snapshot(folders: list[Path], home: Path | None = None) -> dict[str, tuple[int, int]]:
    out = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if home is not None and folder == home and \
                    any(path.relative_to(home).match(p) for p in LIBRARY_HOME_FILES):
                continue
            if path.is_file():
                stat = path.stat()
                out[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return out


@contextlib.contextmanager
def _sandbox(root: Path) -> Iterator[dict[str, Path]]:
    """A fresh cwd, HOME and cache folder under ``root`` (restored afterwards)."""
    dirs = {k: root / k for k in ("cwd", "home", "cache")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    old_cwd, old_env = os.getcwd(), {k: os.environ.get(k) for k in ("HOME", "SKINBENCH_CACHE")}
    os.chdir(dirs["cwd"])
    os.environ["HOME"], os.environ["SKINBENCH_CACHE"] = str(dirs["home"]), str(dirs["cache"])
    try:
        yield dirs
    finally:
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _build(cls: type, params: dict[str, Any], seed: int, cache: Path) -> Any:
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = dict(params)
    if "random_state" in accepted:
        kwargs.setdefault("random_state", seed)
    if "cache_dir" in accepted:
        kwargs.setdefault("cache_dir", str(cache))
    return cls(**kwargs)


def _target(task: str) -> str | None:
    targets = info.task(task).targets
    return targets[0] if targets else None


def _needs_masks(cls: type) -> str | None:
    """The masks a classifier trains on besides its labels (a joint model such as Y-Net): its registered
    ``needs_masks``, else lesion masks when its ``fit`` takes a ``masks`` argument."""
    name = f"{cls.__module__}:{cls.__qualname__}"
    for approach in info.APPROACHES.values():
        if approach.estimator == name and approach.needs_masks:
            return approach.needs_masks
    return "lesion" if "masks" in inspect.signature(cls.fit).parameters else None


def _fit(est: Any, ds: Any, task: str) -> Any:
    """Fit the way :func:`skinbench.runner.fit_estimator` does: a classifier on labels (and the masks it
    needs), a segmenter on the target's masks with the class labels beside them."""
    target = _target(task)
    if target is None:
        masks = _needs_masks(type(est))
        extra = {"masks": ds.masks(masks)} if masks else {}
        return est.fit(ds.paths, ds.y, groups=ds.groups, **extra)
    return est.fit(ds.paths, ds.masks(target), y=ds.y if ds.class_names else None, groups=ds.groups)


def _predict(est: Any, ds: Any, task: str) -> list[np.ndarray] | np.ndarray:
    """Checked predictions of the test images (classification: probabilities; segmentation: maps)."""
    from skinbench.data.images import image_size

    n = len(ds)
    if _target(task) is None:
        _check(hasattr(est, "classes_"), "fit-predict", f"{type(est).__name__}.fit did not set classes_")
        classes = np.asarray(est.classes_)
        proba = np.asarray(est.predict_proba(ds.paths), dtype=float)
        _check(proba.shape == (n, len(classes)), "proba-shape",
               f"predict_proba gave shape {proba.shape}, expected (n_images={n}, len(classes_)={len(classes)})")
        _check(bool(np.isfinite(proba).all()), "proba-finite", "predict_proba gave NaN or infinite values")
        _check(bool(((proba >= -1e-9) & (proba <= 1 + 1e-9)).all()), "proba-range",
               f"predict_proba values outside [0, 1] (min {proba.min():.3g}, max {proba.max():.3g})")
        sums = proba.sum(axis=1)
        _check(bool(np.allclose(sums, 1.0, atol=1e-4)), "proba-rows-sum-to-1",
               f"predict_proba rows sum to {sums.min():.4g}..{sums.max():.4g}, not 1")
        if hasattr(est, "predict"):
            labels = np.asarray(est.predict(ds.paths))
            _check(labels.shape == (n,) and bool(np.isin(labels, classes).all()), "predict-labels",
                   f"predict gave shape {labels.shape} or labels outside classes_ {classes.tolist()}")
        return proba
    maps = [np.asarray(m) for m in est.predict_proba(ds.paths)]
    _check(len(maps) == n, "maps-count", f"predict_proba gave {len(maps)} maps for {n} images")
    for path, m in zip(ds.paths, maps):
        w, h = image_size(path)
        _check(m.shape == (h, w), "map-shape",
               f"map of {Path(path).name} has shape {m.shape}, expected the image's own (height, width) = {(h, w)}")
        _check(bool(np.isfinite(m).all()) and m.min() >= -1e-6 and m.max() <= 1 + 1e-6, "map-range",
               f"map of {Path(path).name} is not finite in [0, 1] (min {np.nanmin(m):.3g}, max {np.nanmax(m):.3g})")
    return maps


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(np.allclose(x, y, atol=1e-6) for x, y in zip(a, b))
    return bool(np.allclose(a, b, atol=1e-6))


def _degenerate(cls: type, params: dict[str, Any], seed: int, cache: Path, train: Any, test: Any, task: str,
                what: str) -> None:
    est = _build(cls, params, seed, cache)
    try:
        _fit(est, train, task)
    except (ValueError, SkinbenchError) as err:
        _check(bool(str(err).strip()), "degenerate-training-set",
               f"fit on {what} raised {type(err).__name__} without a message")
        return
    except Exception as err:  # an accident deep inside, not an error a user can act on
        raise _Fail(f"[degenerate-training-set] fit on {what} crashed with {type(err).__name__}: {err}; "
                    "raise ValueError (or a skinbench error) saying what the training set lacks") from err
    try:
        _predict(est, test, task)
    except _Fail as err:
        raise _Fail(f"[degenerate-training-set] fit on {what} succeeded silently but its predictions fail: "
                    f"{err}; raise ValueError in fit instead") from None
    except Exception as err:
        raise _Fail(f"[degenerate-training-set] fit on {what} succeeded silently, then predict crashed with "
                    f"{type(err).__name__}: {err}; raise ValueError in fit instead") from err


def check_approach(estimator: type, task: str, *, params: dict[str, Any] | None = None, seed: int = 0,
                   workdir: str | os.PathLike | None = None) -> None:
    """Run ``estimator`` (a class) through the contract for ``task`` on synthetic data; AssertionError naming
    the failed check. ``params``: constructor arguments (small settings keep it fast); ``workdir``: where
    the data and sandbox go (default: a temporary folder, removed)."""
    assert isinstance(estimator, type), f"check_approach takes the estimator class, got {estimator!r}"
    params = dict(params or {})
    tinfo = info.task(task)
    with contextlib.ExitStack() as stack:
        root = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="skb-check-")))
        data = root / "data"
        labels = tinfo.dataset_kwargs.get("synthetic", {}).get("labels", "binary")
        ds = synthetic.load(data, n_images=N_IMAGES, seed=seed, size=IMAGE_SIZE, labels=labels)
        train, test = ds.split("train"), ds.split("test")
        dirs = stack.enter_context(_sandbox(root / "sandbox"))
        watched = [dirs["cwd"], dirs["home"], data]
        before = _snapshot(watched, dirs["home"])

        est = _build(estimator, params, seed, dirs["cache"])
        try:
            _fit(est, train, task)
        except Exception as err:
            raise _Fail(f"[fit-predict] {estimator.__name__}.fit failed on the synthetic {task} training set: "
                        f"{type(err).__name__}: {err}") from err
        first = _predict(est, test, task)

        again = _build(estimator, params, seed, dirs["cache"] / "again")  # computed afresh, not found cached
        _fit(again, train, task)
        _check(_same(first, _predict(again, test, task)), "deterministic",
               f"two fits with random_state={seed} predicted differently: seed every random choice from "
               "random_state (numpy Generator, sklearn random_state, keras.utils.set_random_seed)")

        try:
            copy = clone(est)
        except Exception as err:
            raise _Fail(f"[get-params] sklearn.base.clone failed ({type(err).__name__}: {err}): store each "
                        "constructor argument unchanged under its own name, and do nothing else in __init__") from err
        mine, theirs = est.get_params(deep=False), copy.get_params(deep=False)
        _check(mine.keys() == theirs.keys() and all(repr(mine[k]) == repr(theirs[k]) for k in mine), "get-params",
               f"get_params after clone differs: {mine} vs {theirs}")
        missing = [p for p in inspect.signature(estimator.__init__).parameters if p != "self" and p not in mine]
        _check(not missing, "get-params", f"get_params lacks constructor arguments {missing}")

        empty = train.subset(np.array([], dtype=int))
        _degenerate(estimator, params, seed, dirs["cache"], empty, test, task, "an empty training set")
        if _target(task) is None:
            one = train.subset(np.flatnonzero(train.y == train.y[0]))
            _degenerate(estimator, params, seed, dirs["cache"], one, test, task, "a one-class training set")

        after = _snapshot(watched, dirs["home"])
        changed = sorted(p for p in after if before.get(p) != after[p])
        _check(not changed, "writes-only-cache-dir",
               f"wrote outside cache_dir: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}; "
               "write caches under the cache_dir parameter (skinbench.paths.cache_dir())")


def check_all(approaches: list[str] | None = None) -> bool:
    """``check_approach`` over registered approaches (default: all), each on its first task at its smoke
    settings, one line each; True when all pass. ``benchmarks/check_approaches.py`` runs it."""
    ok = True
    for name in approaches or list(info.APPROACHES):
        approach = info.approach(name)
        task = approach.tasks[0]
        module, cls = approach.estimator.split(":")
        started = time.perf_counter()
        try:
            check_approach(getattr(importlib.import_module(module), cls), task,
                           params={**approach.params_for(task), **approach.smoke_params})
            line = "pass"
        except (AssertionError, SkinbenchError) as err:
            ok, line = False, f"FAIL {str(err).splitlines()[0]}"
        print(f"{name:36s} {task}  {line}  ({time.perf_counter() - started:.0f} s)", flush=True)
    return ok
