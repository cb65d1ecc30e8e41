"""The example estimator passes skinbench's contract checks on synthetic data."""

from skinbench.testing import check_approach
from skinbench_plugin_example.colorhist import ColorHistogramClassifier


def test_contract_task1():
    check_approach(ColorHistogramClassifier, "task1", params={"bins": 4})


def test_contract_task2():
    check_approach(ColorHistogramClassifier, "task2", params={"bins": 4})
