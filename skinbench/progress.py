"""One progress display for long loops: a tqdm bar on a terminal, log lines otherwise.

On a TTY (stderr) :func:`progress` is a plain tqdm bar. When stderr is piped or logged, a bar would be
silence (or thousands of carriage returns), so instead it writes one line every ``every`` seconds
(``$SKINBENCH_PROGRESS_EVERY``, default 10) with the stage, the count and the rate, and a last line when
a loop that printed anything ends::

    skinbench: sift descriptors: 412/900 images (38.1 images/s, 11 s)

Loops shorter than ``every`` print nothing. ``SKINBENCH_PROGRESS=0`` turns both forms off. :func:`note`
(how an input was read, once per process) prints regardless.

Estimators use it in place of ``tqdm``: ``for x in progress(items, desc="encoding", unit="image")``,
or ``with Progress(total, desc) as bar: bar.update(k)`` for work counted in chunks.
:func:`keras_callback` reports Keras epochs the same way (one line per epoch when not on a TTY).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")
DEFAULT_EVERY = 10.0


def enabled() -> bool:
    return os.environ.get("SKINBENCH_PROGRESS", "1").lower() not in ("0", "false", "no", "off")


def is_tty(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get("SKINBENCH_PROGRESS_EVERY", DEFAULT_EVERY)))
    except ValueError:
        return DEFAULT_EVERY


class Progress:
    """Counts work and reports it: a tqdm bar on a TTY, a line every ``every`` seconds otherwise."""

    def __init__(self, total: int | None = None, desc: str = "working", unit: str = "it",
                 every: float | None = None, stream: TextIO | None = None, disable: bool = False):
        self.total, self.desc, self.unit = total, desc, unit
        self.every = _every() if every is None else every
        self.stream = stream
        self.n = 0
        self.start = self.last = time.monotonic()
        self.printed = False
        self.disabled = disable or not enabled()
        self._bar = None
        if not self.disabled and is_tty(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", leave=False, file=self.stream)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        rate = self.n / elapsed if elapsed > 0 else 0.0
        return f"skinbench: {self.desc}: {count} {self.unit} ({rate:.1f} {self.unit}/s, {elapsed:.0f} s)"

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        print(text, file=stream, flush=True)
        self.printed = True

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._write(self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.printed and not self.disabled:
            self._write(self.line().replace(f"skinbench: {self.desc}:", f"skinbench: {self.desc}: done", 1))

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(iterable: Iterable[T], desc: str = "working", total: int | None = None, unit: str = "it",
             every: float | None = None, disable: bool = False) -> Iterator[T]:
    """Iterate over ``iterable`` with progress shown (see the module doc); a drop-in for ``tqdm(...)``."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    bar = Progress(total, desc, unit, every, disable=disable)
    try:
        for item in iterable:
            yield item
            bar.update()
    finally:
        bar.close()


def stage(text: str) -> None:
    """Announce the start of a long stage (one line on stderr, TTY or not)."""
    if enabled():
        print(f"skinbench: {text}", file=sys.stderr, flush=True)


_noted: set[str] = set()


def note(text: str) -> None:
    """Say once per process, on stderr, how an input was read when it was not read as written (e.g. ids
    stripped of spaces, a negative-class column converted). Unlike progress it is printed with
    ``SKINBENCH_PROGRESS=0`` too: it is about the numbers, not the waiting. Once, because a run loads
    its data several times (checks, each approach, baselines)."""
    if text not in _noted:
        _noted.add(text)
        print(f"skinbench: {text}", file=sys.stderr, flush=True)


def keras_callback(desc: str = "training", epochs: int | None = None):
    """A Keras callback reporting one line per finished epoch (loss, validation loss and the segmenters'
    ``val_jaccard`` when present: what the epoch is judged by) instead of Keras' own per-epoch progress
    bars; pass it with ``fit(..., verbose=0)``."""
    import keras

    class _EpochLines(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self._start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            if not enabled():
                return
            logs = logs or {}
            parts = [f"{k} {v:.4f}" for k, v in logs.items()
                     if k in ("loss", "val_loss", "val_jaccard") and v is not None]
            total = f"/{epochs}" if epochs else ""
            elapsed = time.monotonic() - self._start
            print(f"skinbench: {desc}: epoch {epoch + 1}{total} ({', '.join(parts) or 'done'}; {elapsed:.0f} s)",
                  file=sys.stderr, flush=True)

    return _EpochLines()
