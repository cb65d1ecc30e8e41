"""Keep library start-up noise off the user's terminal; one call, :func:`install`, at CLI start.

What is silenced, and how (everything else, real warnings included, still reaches the terminal):

* TensorFlow's C++ start-up lines (``WARNING: All log messages before absl::InitializeLog() ...``,
  ``oneDNN custom operations are on ...``, ``This TensorFlow binary is optimized to use ...``, CUDA
  factory registrations). They are written to file descriptor 2 while ``tensorflow`` loads, before any
  log level applies (``TF_CPP_MIN_LOG_LEVEL=3`` does not stop them), so an import hook captures fd 2
  while ``tensorflow``/``keras`` import and writes back every line that is not in :data:`NOISE_LINES`.
  ``TF_ENABLE_ONEDNN_OPTS`` is left alone: it changes the numbers.
* ``TF_CPP_MIN_LOG_LEVEL`` defaults to 3 while running: at 2, kernels still log lines such as ``E0000 ...
  util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512. Falling back ...`` (an ERROR-level
  line about a fine fallback); real TensorFlow failures reach the user as Python exceptions anyway.
  A value the user set is kept.
* ``tf.function`` retracing warnings (a logging filter on the ``tensorflow`` logger; other TensorFlow
  warnings stay).
* Keras' per-epoch progress bars: ``keras.config.disable_interactive_logging()`` sends them to absl's
  INFO log, which is not shown; training progress goes through :mod:`skinbench.progress` instead.
* Known-noise Python warnings (:data:`NOISE_WARNINGS`: Keras API nags, scikit-learn's "least populated
  class" on deliberately small validation folds), matched by message, never by whole category.

``SKINBENCH_VERBOSE=1`` turns all of this off (to debug an installation).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Iterator

#: C++ lines printed while TensorFlow loads that carry no information for a user
NOISE_LINES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|oneDNN custom operations are on"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|Could not find cuda drivers on your machine"
    r"|cuda_(dnn|fft|blas)\.cc:\d+\] Unable to register"
    r"|failed call to cuInit"
    r"|Unable to retrieve the CUDA|Unable to initialize backend 'cuda'"
    r"|^\s*$")

#: (message regex, category) of Python warnings that are noise for a skinbench user
NOISE_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"Your `PyDataset` class should call `super\(\).__init__", UserWarning),
    (r"Do not pass an `input_shape`/`input_dim` argument to a layer", UserWarning),
    (r"The structure of `inputs` doesn't match the expected structure", UserWarning),
    (r"`build\(\)` was called on layer", UserWarning),
    (r"Skipping variable loading for optimizer", UserWarning),
    (r"The least populated class in y has only \d+ members", UserWarning),
    (r"`input_shape` is undefined or non-square, or `rows` is not in", UserWarning),
    (r"X does not have valid feature names", UserWarning),
)

#: tensorflow logger messages that are noise (retracing warnings name user code that is fine)
NOISE_LOG = re.compile(r"triggered tf\.function retracing|calls to <function .*> triggered tf\.function")

_WRAPPED = ("tensorflow", "keras")
_installed = False


def verbose() -> bool:
    return os.environ.get("SKINBENCH_VERBOSE", "").lower() in ("1", "true", "yes")


@contextmanager
def filtered_stderr_fd(noise: re.Pattern = NOISE_LINES) -> Iterator[None]:
    """Capture file descriptor 2 (C/C++ writes included) and write back only the lines not in ``noise``."""
    try:
        fd = sys.stderr.fileno() if hasattr(sys.stderr, "fileno") else 2
    except (OSError, ValueError):
        fd = 2
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except OSError:  # no real fd 2 (embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not NOISE_LINES.search(line) and not noise.search(line)]
            if kept:
                os.write(fd, "".join(kept).encode())


class _NoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not NOISE_LOG.search(record.getMessage())
        except Exception:  # a malformed record is not ours to drop
            return True


def _after_import(name: str) -> None:
    if name == "tensorflow":
        logging.getLogger("tensorflow").addFilter(_NoiseFilter())
    elif name == "keras":
        try:
            import keras

            keras.config.disable_interactive_logging()
        except Exception:  # an older Keras without the switch: its bars stay
            pass


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, name: str):
        self._loader, self._name = loader, name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with filtered_stderr_fd():
            self._loader.exec_module(module)
        _after_import(self._name)

    def __getattr__(self, item):  # get_resource_reader, is_package, ...
        return getattr(self._loader, item)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of the top-level ``tensorflow`` and ``keras`` packages (see the module doc)."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _WRAPPED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader, fullname)
                return spec
        return None


def install_warning_filters() -> None:
    for message, category in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def install() -> None:
    """Silence the known start-up and training noise (see the module doc); idempotent."""
    global _installed
    if _installed or verbose():
        return
    _installed = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    install_warning_filters()
    for name in _WRAPPED:
        if name in sys.modules:  # already imported: only the after-import settings still apply
            _after_import(name)
    sys.meta_path.insert(0, _QuietFinder())
