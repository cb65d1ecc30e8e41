"""An example skinbench plugin: one classical approach, registered through the ``skinbench.approaches`` group."""

from __future__ import annotations

from skinbench.info import ApproachInfo

__version__ = "0.1.0"


def approaches() -> list[ApproachInfo]:
    """What the entry point returns: skinbench adds these to its registry (origin: this package and version)."""
    return [ApproachInfo("colorhist-logreg", "skinbench_plugin_example.colorhist:ColorHistogramClassifier",
                         "classical", ("task1", "task2"),
                         "HSV colour histograms (8 bins per channel) + balanced logistic regression (example plugin)",
                         params={"bins": 8, "C": 1.0}, smoke_params={"bins": 4})]
