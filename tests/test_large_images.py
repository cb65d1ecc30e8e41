"""Issue 30 item 4: a huge test image must not make a segmentation run's overlay figure cost minutes and
gigabytes (one 10000x7500 image: 730 s and 14.3 GB, 35 s for the same 32 normal images), while the
metrics keep the truth mask's own grid."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_generic import edit_labels, first, generic_copy

from skinbench.results import plots

BIG = (6000, 4500)  # (width, height)


@pytest.fixture
def big_folder(tmp_path, synthetic_dataset) -> tuple[Path, str]:
    """A generic copy whose first test image (and its masks) is 6000x4500."""
    folder = generic_copy(synthetic_dataset.root, tmp_path / "g")
    victim = first(edit_labels(folder, lambda t: None), "test")
    img = cv2.imread(str(folder / "images" / f"{victim}.png"))
    cv2.imwrite(str(folder / "images" / f"{victim}.png"), cv2.resize(img, BIG, interpolation=cv2.INTER_LINEAR))
    for mask in folder.glob(f"masks/{victim}_*.png"):
        m = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(mask), cv2.resize(m, BIG, interpolation=cv2.INTER_NEAREST))
    return folder, victim


def test_run_with_a_huge_test_image_draws_overlays_at_display_size(tmp_path, big_folder, monkeypatch):
    """The runner (what `run`, `sweep` and the benchmarks call); at the runner level because `run` would add
    the all-foreground baseline, whose full-frame prediction makes the boundary metric itself cost ~1 GB
    and 20 s on this image: the metric's own grid, which this item must not change."""
    from skinbench import runner

    folder, victim = big_folder
    drawn: list[tuple[int, int]] = []
    real = plots.plot_overlays

    def spy(images, truths, preds, titles, path, **kw):
        drawn.extend(np.shape(a)[:2] for a in (*images, *truths, *preds))
        return real(images, truths, preds, titles, path, **kw)

    monkeypatch.setattr(plots, "plot_overlays", spy)
    tracemalloc.start()
    try:
        runner.run("task4", "all-background", dataset="generic", data_root=folder, target="lesion", n_boot=20,
                   results_root=tmp_path / "res", dataset_kwargs={"task": "task4"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # every array handed to the figure is at most 512 px on its long side; the huge one at 512x384
    assert drawn and max(max(s) for s in drawn) <= plots.OVERLAY_SIDE
    assert (384, 512) in drawn
    # the full-size path kept ~2.4 GB of numpy arrays alive (image, masks and matplotlib's float copies);
    # now only the metric's own full-grid masks (27 MB each) and their distance transform remain
    assert peak < 800 * 2**20, f"peak traced memory {peak / 2**20:.0f} MB"
    record = json.loads(next((tmp_path / "res" / "runs").rglob("all-background__lesion.json")).read_text())
    i = record["predictions"]["image_id"].index(victim)
    assert sum(record["predictions"]["counts"][i]) == BIG[0] * BIG[1]  # scored on the full truth grid
    overlay = next((tmp_path / "res" / "plots").glob("overlay_task4_*all-background__lesion.png"))
    height, width = cv2.imread(str(overlay)).shape[:2]
    assert width < 1200 and height < 6 * 400  # a 9-inch figure, one ~3-inch row per image


def test_plot_overlays_shrinks_full_size_inputs_and_keeps_thin_structures(tmp_path):
    h, w = 3000, 4000
    img = np.full((h, w, 3), 200, np.uint8)
    truth = np.zeros((h, w), bool)
    truth[1000:2000, 1000:3000] = True
    thin = np.zeros((h, w), bool)
    thin[1500:1503, 500:3500] = True  # 3 px tall: under half a display pixel once shrunk 8x
    path = plots.plot_overlays([img], [truth], [thin], ["big"], tmp_path / "ov.png")
    bgr = cv2.imread(str(path)).astype(int)
    red = (bgr[..., 2] > 200) & (bgr[..., 1] < 80) & (bgr[..., 0] < 80)
    lime = (bgr[..., 1] > 200) & (bgr[..., 2] < 80) & (bgr[..., 0] < 80)
    assert lime.sum() > 50 and red.sum() > 20  # the thin prediction is still drawn, not called "(empty)"
    assert plots.display_size(10000, 7500) == (512, 384) and plots.display_size(200, 150) == (200, 150)


def test_draft_read_is_for_pictures_only(tmp_path):
    from skinbench.data.images import read_image

    big = tmp_path / "big.jpg"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(big), cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (4000, 3000)))
    full = read_image(big, size=(400, 300))
    draft = read_image(big, size=(400, 300), draft=True)
    assert draft.shape == full.shape == (300, 400, 3)
    assert np.abs(draft.astype(int) - full.astype(int)).mean() < 4  # the same picture, decoded at 1/4 first
