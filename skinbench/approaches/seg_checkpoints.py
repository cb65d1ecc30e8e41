"""Resumable Keras training: ``last`` and ``best`` weights plus a small JSON state per run folder.

Files are replaced atomically, so an interrupted run resumes from the last finished epoch and a
finished run is reused instead of retrained.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras
import numpy as np

from skinbench.approaches.seg_data import PairBatches
from skinbench.approaches.seg_threshold import tuned_threshold
from skinbench.cache import atomic_write_bytes, note_cache
from skinbench.errors import WeightsError
from skinbench.progress import keras_callback


class EpochSync(keras.callbacks.Callback):
    """Gives the training batches Keras's epoch number, so a resumed fit draws the same batches."""

    def __init__(self, batches: PairBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.batches.set_epoch(epoch)


class Checkpointer(keras.callbacks.Callback):
    """Each epoch: save ``last`` weights and state; save ``best`` when ``monitor`` improves; stop early."""

    def __init__(self, run_dir: Path, monitor: str, mode: str, patience: int, state: dict):
        super().__init__()
        self.run_dir, self.monitor, self.mode, self.patience, self.state = run_dir, monitor, mode, patience, state
        self._began = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._began = time.perf_counter()

    def _save(self, name: str) -> None:
        tmp = self.run_dir / f".tmp-{os.getpid()}-{name}"
        self.model.save_weights(str(tmp))
        os.replace(tmp, self.run_dir / name)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float((logs or {}).get(self.monitor, np.nan))
        best = self.state.get("best")
        improved = np.isfinite(value) and (best is None or (value < best if self.mode == "min" else value > best))
        if improved:
            self._save("best.weights.h5")
            self.state.update(best=value, best_epoch=epoch, wait=0)
        else:
            self.state["wait"] = self.state.get("wait", 0) + 1
        self._save("last.weights.h5")
        self.state.update(epoch=epoch, rng=[np.asarray(v).tolist() for v in rng_states(self.model)], history=self.state.get("history", []) + [
            {**{k: float(v) for k, v in (logs or {}).items()},
             # wall seconds of the epoch (training and validation): a run that finds it cached still reports it
             "seconds": round(time.perf_counter() - self._began, 2)}])
        if self.patience and self.state["wait"] >= self.patience:
            self.model.stop_training = True
            self.state["stopped_early"] = True
        write_state(self.run_dir, self.state)


class ValidationJaccard(keras.callbacks.Callback):
    """Puts ``val_jaccard`` in each epoch's logs (before :class:`Checkpointer` reads them): Jaccard pooled
    over the validation images at their best cut, averaged over outputs, i.e. what the tables report.
    A rare attribute's ``val_loss`` is a poor judge of epochs: it averages batch Dice terms over batches
    that mostly hold no foreground at all."""

    def __init__(self, images: np.ndarray, truth: np.ndarray, batch_size: int):
        super().__init__()
        self.images, self.truth, self.batch_size = images, truth, batch_size  # truth: (n, H, W, n_outputs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        out = self.model.predict(self.images, batch_size=self.batch_size, verbose=0)
        prob = out["seg"] if isinstance(out, dict) else out
        scores = [tuned_threshold(self.truth[..., j], prob[..., j])[1] for j in range(self.truth.shape[-1])]
        if logs is not None:
            logs["val_jaccard"] = float(np.mean(scores))


def rng_states(model: keras.Model) -> list:
    """The dropout layers' seed-generator states: not in the weights file, so kept in ``state.json``."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def read_state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_state(run_dir: Path, state: dict) -> None:
    atomic_write_bytes(run_dir / "state.json", json.dumps(state, indent=1).encode())


def fit_resumable(model: keras.Model, train: PairBatches, val: PairBatches, *, epochs: int, run_dir: Path,
                  monitor: str = "val_loss", mode: str = "min", patience: int = 0, verbose: int | None = None,
                  previous: Path | None = None, callbacks: tuple[keras.callbacks.Callback, ...] = ()) -> dict:
    """Train ``model`` with best/last checkpoints in ``run_dir``; resume or reuse what is already there.

    Returns the state dict (best value and epoch, history). The best weights are loaded on return.
    ``previous``: the folder of an earlier stage this one continues (fine-tuning after the decoder stage):
    an epoch counts as best only if it beats that stage's best ``monitor`` value, and if none does, that
    stage's best weights are loaded (``kept_previous`` in the state): fine-tuning never makes it worse on
    validation.
    Epochs are reported through :func:`skinbench.progress.keras_callback` (Keras' own bars stay off);
    ``verbose=0`` reports nothing. ``callbacks`` run before the checkpointer (one that adds ``monitor``
    to the logs, such as :class:`ValidationJaccard`).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(run_dir)
    if state and (run_dir / "last.weights.h5").exists():
        if not model.optimizer.built:  # unbuilt, Keras skips the saved Adam moments and step count
            model.optimizer.build(model.trainable_variables)
        model.load_weights(str(run_dir / "last.weights.h5"))
        for var, value in zip(rng_states(model), state.get("rng", [])):
            var.assign(np.asarray(value, dtype=var.dtype))
    else:
        state = {}
        before = read_state(previous) if previous is not None else {}
        if before.get("best") is not None:
            state["best"] = before["best"]  # the bar this stage has to clear
            state["best_epoch"] = -1
    state["signature"] = signature(model)  # lets a checkpoint taken from this folder be checked later
    start = state.get("epoch", -1) + 1
    note_cache("segmenter_epochs", hit=True, n=start)  # epochs found done: the record's fit s excludes them
    if not state.get("stopped_early") and start < epochs:
        # shuffle=False: PairBatches shuffles per (seed, epoch); Keras would reorder its batches with
        # Python's global random state, which a resumed process does not share with the interrupted one
        lines = [] if verbose == 0 else [keras_callback(_stage_name(run_dir), epochs)]
        model.fit(train, validation_data=val, epochs=epochs, initial_epoch=start, shuffle=False, verbose=0,
                  callbacks=[EpochSync(train), *callbacks, Checkpointer(run_dir, monitor, mode, patience, state)]
                  + lines)
    note_cache("segmenter_epochs", hit=False, n=state.get("epoch", -1) + 1 - start)
    state["done"] = True
    if (run_dir / "best.weights.h5").exists():
        model.load_weights(str(run_dir / "best.weights.h5"))
    elif previous is not None and (previous / "best.weights.h5").exists():
        model.load_weights(str(previous / "best.weights.h5"))
        state["kept_previous"] = True
    write_state(run_dir, state)
    return state


def training_summary(state: dict, n_train: int) -> dict:
    """Epochs, wall seconds and training images/s of a finished ``fit_resumable`` state (and its earlier
    stage under ``head``): from the epochs' own timings, so they hold when the training was found cached.
    Epochs logged before timings were kept count in ``epochs`` but not in the rate."""
    stages = [state.get("head") or {}, state] if "head" in state else [state]
    epochs = [e for st in stages for e in st.get("history", [])]
    timed = [e["seconds"] for e in epochs if "seconds" in e]
    out: dict = {"epochs": len(epochs), "train_images": int(n_train)}
    if timed:
        out.update(seconds=round(sum(timed), 1), images_per_s=round(len(timed) * n_train / sum(timed), 1))
    return out


def _stage_name(run_dir: Path) -> str:
    """``<Class> training`` for ``<cache>/segmenters/<Class>-<key>``, ``<Class> fine-tuning`` for its
    ``finetune-<key>`` sub-folder."""
    if run_dir.name.startswith("finetune-"):
        return f"{run_dir.parent.name.rsplit('-', 1)[0]} fine-tuning"
    return f"{run_dir.name.rsplit('-', 1)[0]} training"


def signature(model: keras.Model) -> dict:
    """What a checkpoint must match beyond its weight shapes: the architecture (the model's name carries
    its kind and width) and the input size, which a fully convolutional network's weights do not show
    (a model taking any size, None here, names its sizes in its name)."""
    return {"model": model.name, "input_shape": [None if d is None else int(d) for d in model.inputs[0].shape[1:]]}


def _saved_signature(path: Path) -> dict | None:
    """The signature stored with a checkpoint: inside an exported ``.npz``, or the ``state.json`` of the
    training folder a ``.weights.h5`` comes from; None for files that carry none."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as npz:
                return json.loads(npz["signature"].tobytes().decode()) if "signature" in npz.files else None
        return read_state(path.parent).get("signature")
    except (OSError, ValueError, KeyError):
        return None


def load_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Load ``*.weights.h5`` (Keras) or ``*.npz`` (:meth:`KerasSegmenter.export_weights`) into ``model``;
    a checkpoint of another architecture or input size is refused, not loaded."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("checkpoint file not found", path=path,
                           fix="pass the path of weights trained with the same parameters")
    saved, mine = _saved_signature(path), signature(model)
    if saved is not None and saved != mine:
        raise WeightsError(f"checkpoint was saved from {saved['model']} at input {saved['input_shape']}, this "
                           f"model is {mine['model']} at input {mine['input_shape']}", path=path,
                           fix="use the architecture and input_size of the run that saved it, or retrain "
                               "without checkpoint=")
    try:
        if path.suffix == ".npz":
            with np.load(path) as npz:
                arrays = [npz[f"arr_{i}"] for i in range(sum(f.startswith("arr_") for f in npz.files))]
            model.set_weights([a.astype(np.asarray(w).dtype) for a, w in zip(arrays, model.get_weights(), strict=True)])
        else:
            model.load_weights(str(path))
    except ValueError as err:
        raise WeightsError(f"checkpoint does not fit this model ({str(err).splitlines()[0][:160]})", path=path,
                           fix="use the same architecture parameters (input_size, base_filters, depth, ...) "
                               "as the run that saved it") from err
