"""Cached lower-backbone activations for partial fine-tuning: the frozen part runs once per image and view.

Why: on 2 CPU cores MobileNetV2's full training step runs at 9 img/s at 224 px, while its top blocks
train at 125 img/s on cached block_12 activations. The frozen lower part is a pure function of (image
bytes, view, backbone, weights, size, cut), so its output is cached by content like the pooled features.

Layout: ``<cache>/transfer_activations/<settings key>/<shard>.f16`` raw float16 rows, read a batch at a
time by offset (never held in memory whole), each with a ``<shard>.json`` naming its rows (image digest, view), their shape and a CRC-32 of the
bytes. The settings key holds everything the values depend on, so activations of another cut point,
size, backbone, weights or augmentation live elsewhere and are never reused; a shard whose size,
shape or checksum disagrees with its JSON is deleted and its rows recomputed. Shards are written
atomically, data before JSON, so an interrupted extraction resumes from its last whole shard.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from skinbench import progress as show
from skinbench.approaches import backbones, engines, tfdata
from skinbench.cache import atomic_write_bytes, make_key, note_cache
from skinbench.paths import cache_dir

#: bump when what is stored changes (decode, resize, augmentation, the cut tensor, the dtype)
CODE_VERSION = "activations-1"
#: images per shard: the unit of resumption (about 10 MB at MobileNetV2's default cut)
SHARD_ROWS = 256

Row = tuple[str, int]  # (image content digest, view)


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


class ActivationStore:
    """float16 activations of one settings key, looked up by (image digest, view)."""

    def __init__(self, settings: dict[str, Any], shape: Sequence[int], root: str | os.PathLike | None = None):
        self.settings, self.shape = settings, tuple(int(s) for s in shape)
        self.key = make_key(settings, self.shape, CODE_VERSION)
        self.dir = Path(root or cache_dir()) / "transfer_activations" / self.key[:24]
        self.row_size = int(np.prod(self.shape))
        self._shards: list[str] = []
        self._fds: dict[int, int] = {}
        self.index: dict[Row, tuple[int, int]] = {}
        #: shards found damaged (and deleted) when the store was opened
        self.dropped: list[str] = []
        self._open()

    def _open(self) -> None:
        if not self.dir.is_dir():
            return
        for meta in sorted(self.dir.glob("*.json")):
            data = meta.with_suffix(".f16")
            try:
                info = json.loads(meta.read_text())
                if info.get("settings_key") != self.key or tuple(info["shape"]) != self.shape:
                    raise ValueError("written for other settings")
                if data.stat().st_size != len(info["rows"]) * self.row_size * 2 or _crc(data) != info["crc32"]:
                    raise ValueError("size or checksum mismatch")
            except (OSError, ValueError, KeyError, TypeError):
                self.dropped.append(meta.stem)
                meta.unlink(missing_ok=True)
                data.unlink(missing_ok=True)
                continue
            sid = len(self._shards)
            self._shards.append(meta.stem)
            for r, (digest, view) in enumerate(info["rows"]):
                self.index[(digest, int(view))] = (sid, r)
        for orphan in self.dir.glob("*.f16"):  # data whose JSON never landed: an interrupted write
            if not orphan.with_suffix(".json").exists():
                orphan.unlink(missing_ok=True)

    def missing(self, rows: Sequence[Row]) -> list[Row]:
        return [r for r in dict.fromkeys(rows) if r not in self.index]

    def add(self, rows: Sequence[Row], values: np.ndarray) -> None:
        """Store one shard: ``values`` (len(rows), *shape)."""
        values = np.ascontiguousarray(values, dtype=np.float16)
        if values.shape != (len(rows),) + self.shape:
            raise ValueError(f"activations of shape {values.shape}, expected {(len(rows),) + self.shape}")
        name = make_key(self.key, list(rows))[:24]
        data, meta = self.dir / f"{name}.f16", self.dir / f"{name}.json"
        raw = values.tobytes()
        atomic_write_bytes(data, raw)
        atomic_write_bytes(meta, json.dumps({"settings_key": self.key, "shape": self.shape, "rows": list(rows),
                                             "crc32": zlib.crc32(raw), "settings": self.settings}).encode())
        sid = len(self._shards)
        self._shards.append(name)
        for r, row in enumerate(rows):
            self.index[tuple(row)] = (sid, r)

    def locate(self, rows: Sequence[Row]) -> np.ndarray:
        """(n, 2) int array of (shard, row) for ``rows`` (all must be stored)."""
        return np.array([self.index[tuple(r)] for r in rows], dtype=np.int64).reshape(-1, 2)

    def _fd(self, sid: int) -> int:
        if sid not in self._fds:
            self._fds[sid] = os.open(self.dir / f"{self._shards[sid]}.f16", os.O_RDONLY)
        return self._fds[sid]

    def gather(self, where: np.ndarray) -> np.ndarray:
        """float32 activations at (shard, row) positions, in order.

        Rows are read by offset (``os.pread``), not through a memory map: mapped pages count towards the
        process's resident memory, page-cache reads do not, so task2's 1.3 GB of activations cost the
        training process a batch at a time."""
        out = np.empty((len(where),) + self.shape, np.float32)
        nbytes = self.row_size * 2
        for i, (sid, row) in enumerate(where):
            raw = os.pread(self._fd(int(sid)), nbytes, int(row) * nbytes)
            out[i] = np.frombuffer(raw, dtype=np.float16).reshape(self.shape)
        return out

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def nbytes(self) -> int:
        return sum((self.dir / f"{s}.f16").stat().st_size for s in self._shards)


def open_store(*, backbone: str, weights: Any, size: int, cut: str | None, augment: tfdata.Augment | None,
               seed: int, shape: Sequence[int], cache_dir: str | os.PathLike | None = None) -> ActivationStore:
    """The store for these settings; ``weights`` enter by content (:func:`backbones.weights_id`)."""
    settings = {"backbone": backbone, "weights": backbones.weights_id(backbone, weights, size), "size": size,
                "cut": backbones.resolve_cut(backbone, cut), "augment": augment.as_dict() if augment else None,
                "view_seed": seed}
    for tag in engines.cache_tag():  # TensorFlow's stores keep the settings they had before the engines
        settings["engine"] = tag
    return ActivationStore(settings, shape, cache_dir)


def fill(store: ActivationStore, paths: Sequence[str], digests: Sequence[str], views: Sequence[int], *,
         model: Any, size: int, augment: tfdata.Augment | None, seed: int, batch_size: int = 32,
         progress: bool = True) -> None:
    """Compute and store the activations of every (image, view) the store lacks, a shard at a time."""
    import tensorflow as tf

    by_digest = dict(zip(digests, paths))
    todo = store.missing([(d, int(v)) for v in views for d in digests])
    note_cache("transfer_activations", True, len([d for v in views for d in digests]) - len(todo))
    note_cache("transfer_activations", False, len(todo))
    if not todo:
        return
    infer = engines.compiled(model)
    where = f"{store.settings.get('backbone', 'backbone')} activations (cut {store.settings.get('cut', '?')})"
    bar = show.Progress(len(todo), desc=where, unit="image", disable=not progress)
    for start in range(0, len(todo), SHARD_ROWS):
        rows = todo[start:start + SHARD_ROWS]
        out = []
        for view in sorted({v for _, v in rows}):
            ds_rows = [r for r in rows if r[1] == view]
            ds = tfdata.image_dataset([by_digest[d] for d, _ in ds_rows], (size, size),
                                      seeds=tfdata.view_seeds([d for d, _ in ds_rows], view, seed),
                                      augment=augment if view else None, batch_size=batch_size)
            try:
                for batch in ds:
                    act = np.asarray(infer(batch), dtype=np.float16)
                    out.append(act)
                    bar.update(len(act))
            except tf.errors.InvalidArgumentError:
                tfdata.find_unreadable([by_digest[d] for d, _ in ds_rows])
                raise
        ordered = [r for view in sorted({v for _, v in rows}) for r in rows if r[1] == view]
        store.add(ordered, np.concatenate(out))
    bar.close()


#: how training images are drawn each epoch: every image once in a random order, or class-balanced
SAMPLINGS = ("shuffle", "balanced")


def draw_order(rng: np.random.Generator, y: np.ndarray, sampling: str = "shuffle") -> np.ndarray:
    """One epoch's image order: a permutation ("shuffle"), or ``len(y)`` draws with replacement where each
    class is equally likely ("balanced": rare classes are seen as often as common ones, in the same number
    of steps; their images repeat within an epoch, common ones are left out)."""
    n = len(y)
    if sampling == "shuffle":
        return rng.permutation(n)
    if sampling != "balanced":
        raise ValueError(f"unknown sampling {sampling!r}")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    p = 1.0 / (len(classes) * counts[inverse])
    return rng.choice(n, size=n, replace=True, p=p / p.sum())


def array_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, sampling: str = "shuffle",
                  weights: np.ndarray | None = None):
    """Training batches of in-memory rows (pooled features) drawn per epoch by :func:`draw_order` (seeded):
    a ``keras.utils.PyDataset`` yielding (x, y[, sample weights])."""
    import keras

    class _Rows(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = draw_order(self.rng, y, sampling)

        def __len__(self) -> int:
            return int(np.ceil(len(y) / batch_size))

        def __getitem__(self, i: int):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            return (x[idx], y[idx]) if weights is None else (x[idx], y[idx], weights[idx].astype(np.float32))

        def on_epoch_end(self) -> None:
            self.order = draw_order(self.rng, y, sampling)

    return _Rows()


class ViewBatches:
    """Training batches of cached activations: each epoch one randomly drawn view per image (seeded), the
    images in the order of :func:`draw_order` (``sampling``).

    A ``keras.utils.PyDataset`` built lazily (so importing this module needs no TensorFlow); yields
    (activations, labels, sample weights) with the sample weight of each image's class.
    """

    def __new__(cls, store: ActivationStore, where: np.ndarray, y: np.ndarray, weights: np.ndarray,
                batch_size: int, seed: int, sampling: str = "shuffle"):
        import keras

        class _Batches(keras.utils.PyDataset):
            def __init__(self):
                super().__init__()
                # where: (n_views, n, 2) positions of each image's views
                self.rng = np.random.default_rng(seed)
                self._draw()

            def _draw(self) -> None:
                n_views, n = where.shape[:2]
                self.order = draw_order(self.rng, y, sampling)
                self.view = self.rng.integers(0, n_views, size=n)

            def __len__(self) -> int:
                return int(np.ceil(where.shape[1] / batch_size))

            def __getitem__(self, i: int):
                idx = self.order[i * batch_size:(i + 1) * batch_size]
                x = store.gather(where[self.view[idx], idx])
                return x, y[idx], weights[idx].astype(np.float32)

            def on_epoch_end(self) -> None:
                self._draw()

        return _Batches()


def iter_rows(store: ActivationStore, where: np.ndarray, batch_size: int = 256) -> Iterator[np.ndarray]:
    """float32 batches of stored activations at ``where`` ((n, 2) positions), in order."""
    for start in range(0, len(where), batch_size):
        yield store.gather(where[start:start + batch_size])
