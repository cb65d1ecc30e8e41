"""benchmarks/task3_selection.py's summary: both target features, and the perfect-gate column."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from skinbench.metrics.segmentation import segmentation_scores
from skinbench.results import records as rec
from scripts import load_script
from test_results import make_record, write_all



@pytest.fixture(scope="module")
def selection():
    return load_script("task3_selection")


def streaks_record() -> rec.RunRecord:
    """Half the test images hold no streaks, and the model paints false positives on every one of them."""
    r = make_record("task3", "mobilenet-unet", target="streaks", n=20)
    counts = np.asarray(r.predictions["counts"]).copy()
    absent = np.arange(len(counts)) % 2 == 1
    counts[absent, 0] = counts[absent, 2] = 0          # no truth pixel, so no tp and no fn
    counts[absent, 1] = 400                            # 400 false-positive pixels each
    counts[:, 3] = 10_000 - counts[:, :3].sum(axis=1)
    return replace(r, predictions={**r.predictions, "counts": counts.tolist()},
                   extras={"fit": {"validation_jaccard": 0.2, "threshold": 0.3, "tta": {"used": True},
                                   "training": {"epochs": 9, "seconds": 12.5}}})


def test_a_feature_without_a_registered_point_shows_the_committed_row(selection, tmp_path):
    root = tmp_path / "results"
    record = streaks_record()
    write_all(root, [record, make_record("task3", "mobilenet-unet", target="globules", n=20)])
    rows = selection.committed_registered_rows(["globules", "streaks"], {"globules"}, "synthetic", root)
    assert [(row["feature"], row["loss"]) for row in rows] == [("streaks", "registered (committed row)")]
    row = rows[0]
    assert (row["validation_jaccard"], row["threshold"], row["epochs"]) == (0.2, 0.3, 9)
    counts = record.counts()
    present = counts[:, 0] + counts[:, 2] > 0
    assert row["jaccard_set_perfect_gate"] == pytest.approx(segmentation_scores(counts[present])["jaccard_set"])
    # a perfect presence gate removes the false positives on the images without streaks
    assert row["jaccard_set_perfect_gate"] > segmentation_scores(counts)["jaccard_set"]
    # no record of the feature: no row (the summary shows only what was measured)
    assert selection.committed_registered_rows(["negative_network"], set(), "synthetic", root) == []
    frame = pd.DataFrame(rows + selection.baseline_rows(["streaks"], "synthetic", root, "mobilenet-unet", "(x row)"))
    selection.plot(frame.rename(columns={"loss": "schedule"}), tmp_path / "selection.png")
    assert (tmp_path / "selection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
