"""Issue 30 item 8: ``data verify`` counts only listed files as found, reports unreadable files as their
own class (never as checksum mismatches explained away as a re-encoded copy), and checks a generic
folder with the checks a run makes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers_generic import edit_labels, first, generic_copy

from skinbench.cli import main
from skinbench.data.verify import verify

MANIFEST = Path(__file__).resolve().parents[1] / "data_manifests" / "isic2016_task3.csv"


def _jpg(path: Path, seed: int = 0) -> None:
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (30, 40, 3), dtype=np.uint8))


def test_cli_verify_counts_listed_files_and_names_unreadable_ones(tmp_path, capsys):
    """The registered manifest (1279 ISIC 2016 ids, checksums of the held copy): a folder with three listed
    files (one fine but different, one empty, one not an image) and one unlisted file."""
    ids = pd.read_csv(MANIFEST, dtype=str)["image_id"].tolist()
    folder = tmp_path / "isic2016_task3"
    folder.mkdir()
    _jpg(folder / f"{ids[0]}.jpg")
    (folder / f"{ids[1]}.jpg").write_bytes(b"")
    (folder / f"{ids[2]}.jpg").write_text("<html>not found</html>")
    _jpg(folder / "ISIC_9999999.jpg", 1)
    assert main(["data", "verify", "isic2016_task3", "--data-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"manifest images: {len(ids)}; found: 3" in out  # the unlisted file is "extra", not "found"
    assert "extra (not in the manifest, ignored): 1 (ISIC_9999999)" in out
    assert (f"unreadable (empty, truncated or not an image): 2 ({ids[1]}.jpg: image file is empty (0 bytes), "
            f"{ids[2]}.jpg: not a readable image") in out
    assert f"checksum mismatches of readable files (held checksums): 1 ({ids[0]})" in out
    assert "result: PROBLEMS FOUND" in out


def _official(tmp_path: Path, n: int = 4) -> tuple[Path, Path, list[str]]:
    """A toy ham10000-like manifest with *official* checksums, every file present but re-encoded."""
    from skinbench.data.manifests import write_manifest

    ids = [f"ISIC_00{k:05d}" for k in range(n)]
    folder = tmp_path / "data" / "isic2016_task3"
    folder.mkdir(parents=True)
    for k, i in enumerate(ids):
        _jpg(folder / f"{i}.jpg", k)
    manifest = pd.DataFrame({"image_id": ids, "label": ["benign", "malignant"] * (n // 2), "lesion_id": ids,
                             "split": ["train", "test"] * (n // 2), "sha256": ["0" * 64] * n})
    write_manifest("isic2016_task3", manifest, {"checksums": "official"}, directory=tmp_path / "manifests")
    return tmp_path / "data", tmp_path / "manifests", ids


def test_a_truncated_file_in_a_re_encoded_copy_is_not_explained_away(tmp_path):
    root, manifests, ids = _official(tmp_path)
    whole = verify("isic2016_task3", root, manifest_dir=manifests)
    assert whole.reencoded and whole.usable and "re-encoded copy" in whole.summary()
    victim = root / "isic2016_task3" / f"{ids[1]}.jpg"
    victim.write_bytes(victim.read_bytes()[:-40])  # no end-of-image marker
    rep = verify("isic2016_task3", root, manifest_dir=manifests)
    assert rep.unreadable == {victim.name: "JPEG file is truncated (no end-of-image marker)"}
    assert ids[1] not in rep.mismatched and rep.n_found == 4 and rep.n_readable == 3
    assert rep.reencoded and not rep.usable  # the other three are a re-encoded copy; this one is broken
    assert rep.summary().endswith("result: PROBLEMS FOUND")


def _generic(tmp_path: Path, synthetic_dataset) -> Path:
    return generic_copy(synthetic_dataset.root, tmp_path / "mine")


def test_cli_verify_generic_folder_ok(tmp_path, synthetic_dataset, capsys):
    folder = _generic(tmp_path, synthetic_dataset)
    assert main(["data", "verify", "generic", "--data-root", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"generic: {folder}" in out and "listed images: 48; found: 48" in out
    assert "positive class: malignant" in out and "masks: globules 48, lesion 48, streaks 48" in out
    assert all(f"{t}: OK" in out for t in ("task1", "task3", "task4")) and out.rstrip().endswith("result: OK")


def test_cli_verify_generic_lists_every_problem(tmp_path, synthetic_dataset, capsys):
    folder = _generic(tmp_path, synthetic_dataset)
    table = edit_labels(folder, lambda t: t.assign(label=t["label"].map({"benign": "other",
                                                                          "malignant": "melanoma"})))
    ids = table["image_id"].tolist()
    (folder / "images" / f"{ids[0]}.png").write_bytes(b"")
    png = (folder / "images" / f"{ids[1]}.png").read_bytes()
    (folder / "images" / f"{ids[1]}.png").write_bytes(png[: len(png) // 2])
    (folder / "masks" / f"{ids[2]}_lesion.png").unlink()
    cv2.imwrite(str(folder / "masks" / f"{ids[3]}_streaks.png"), np.zeros((50, 50), np.uint8))
    assert main(["data", "verify", "generic", "--data-root", str(folder)]) == 1
    out = capsys.readouterr().out
    assert (f"unreadable (empty, truncated or not an image): 2 ({ids[0]}.png: image file is empty (0 bytes), "
            f"{ids[1]}.png: PNG file is truncated") in out
    assert "positive class: not declared" in out
    assert f"missing lesion masks: 1 ({ids[2]})" in out
    assert f"problem: {folder / 'masks' / f'{ids[3]}_streaks.png'}: mask is 50x50" in out
    assert "task1: cannot run: " in out and "do not say which class is positive" in out
    assert "task3: cannot run: 2 unreadable image(s)" in out
    assert "task4: cannot run: " in out and f"have no lesion mask file (first: {ids[2]})" in out
    assert out.rstrip().endswith("result: PROBLEMS FOUND")
    # the positive class declared as for `run`, one task: only what task1 reads counts
    (folder / "images" / f"{ids[0]}.png").write_bytes((folder / "images" / f"{ids[4]}.png").read_bytes())
    (folder / "images" / f"{ids[1]}.png").write_bytes(png)
    assert main(["data", "verify", "generic", "--data-root", str(folder), "--task", "task1",
                 "--positive", "melanoma"]) == 0
    out = capsys.readouterr().out
    assert "positive class: melanoma" in out and "task1: OK" in out and "task4" not in out and "masks" not in out


def test_cli_verify_generic_folder_that_cannot_load(tmp_path, synthetic_dataset, capsys):
    folder = _generic(tmp_path, synthetic_dataset)
    gone = first(edit_labels(folder, lambda t: None), "test")
    (folder / "images" / f"{gone}.png").unlink()
    assert main(["data", "verify", "generic", "--data-root", str(folder)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3 and f"absent from {folder / 'images'} (first: {gone})" in out[1]


@pytest.mark.parametrize("argv, needle", [
    (["data", "verify", "generic", "--data-root", "{tmp}/nowhere"], "data folder does not exist"),
    (["data", "verify", "ham10000", "--positive", "mel"], "--classes/--positive apply to your own data"),
    (["data", "verify", "ham10000", "--task", "task2"], "--task applies to your own data"),
    (["data", "verify", "generic", "--task", "task9"], "unknown task 'task9'"),
])
def test_cli_verify_option_errors_are_one_line(tmp_path, capsys, argv, needle):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_verify_generic_duplicates(tmp_path, synthetic_dataset):
    rep = verify("generic", _generic(tmp_path, synthetic_dataset), duplicates=True)
    assert rep.ok and rep.duplicates is not None and "duplicate pairs:" in rep.summary()
    json.dumps(rep.tasks)  # plain data
