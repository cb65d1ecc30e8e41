"""skinbench: classical and deep skin-lesion analysis on the same data, splits and metrics.

The Python API (:mod:`skinbench.api`: ``run``, ``score``, ``load_dataset``, ``load_results``, ``RunRecord``)
is imported on first use, so ``import skinbench`` stays cheap (no TensorFlow, no pandas).
"""

from typing import Any

__version__ = "0.1.0"

#: lazily re-exported names -> the module holding them
_LAZY = {"run": "skinbench.api", "load_dataset": "skinbench.api",
         "load_results": "skinbench.api", "RunRecord": "skinbench.results.records",
         "check_approach": "skinbench.testing"}
__all__ = ["__version__", "score", *_LAZY]


def __getattr__(name: str) -> Any:
    """``skinbench.run`` etc.: import :mod:`skinbench.api` when first asked for (PEP 562)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name == "score":  # the submodule skinbench/score.py, callable as skinbench.api.score (see there)
        import importlib

        return importlib.import_module("skinbench.score")
    raise AttributeError(f"module 'skinbench' has no attribute {name!r}")
