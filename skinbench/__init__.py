"""skinbench: classical and deep skin-lesion analysis on the same data, splits and metrics."""

__version__ = "0.1.0"
