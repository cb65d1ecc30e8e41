"""The HAM10000 lesion-mask file rule (``masks/<id>_segmentation.png``) lives in ham10000.py only: the
adapter, ``data verify`` and the pipeline benchmark all use it (a changed rule reaches each of them)."""

from __future__ import annotations

import cv2
import numpy as np

from scripts import load_script
from skinbench.data import ham10000, verify

IDS = [f"ISIC_00{24306 + k}" for k in range(12)]


def _ham_folder(folder, mask_file: str) -> None:
    rows = ["lesion_id,image_id,dx"] + [f"HAM_{k:07d},{i},{'nv' if k % 3 else 'mel'}" for k, i in enumerate(IDS)]
    (folder / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    for d in ("images", "masks"):
        (folder / d).mkdir()
    mask = np.zeros((45, 60), np.uint8)
    mask[10:30, 15:45] = 255
    for i in IDS:
        cv2.imwrite(str(folder / "images" / f"{i}.jpg"), np.full((45, 60, 3), 120, np.uint8))
        cv2.imwrite(str(folder / "masks" / mask_file.format(i)), mask)


def test_mask_file_name_is_the_isic_task1_name():
    assert ham10000.mask_file_name("ISIC_0024306") == "ISIC_0024306_segmentation.png"
    # data verify holds ham10000's own objects (bound at import, so compared by identity)
    _, dirs, pattern = verify.MASK_LAYOUTS["ham10000"]
    assert dirs is ham10000.MASK_DIRS and pattern is ham10000.MASK_FILE


def test_every_user_of_the_rule_follows_ham10000(tmp_path, monkeypatch):
    monkeypatch.setattr(ham10000, "MASK_FILE", "{}_lesionmask.png")  # a changed rule...
    _ham_folder(tmp_path, "{}_lesionmask.png")
    ds = ham10000.load(tmp_path, manifest_dir=tmp_path / "none")  # ...reaches the adapter
    assert [p.rsplit("/", 1)[-1] for p in ds.masks("lesion")] == [f"{i}_lesionmask.png" for i in IDS]
    perf = load_script("perf_pipeline")
    _, masks = perf.sample_paths(3, str(tmp_path / "images"))  # ...and the benchmark
    assert masks and all(m.endswith("_lesionmask.png") for m in masks)
