"""Fuzz-style robustness of the generic adapter and image reading (issue 7).

Seeded random cases of malformed CSVs and image files: every case either loads correctly or raises a
:class:`SkinbenchError` whose message names the offending file; never another exception type. A run over
a dataset with one bad image ends in one clear error naming that image.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from PIL import Image

from skinbench.data import generic
from skinbench.data.images import read_image, read_mask
from skinbench.errors import DataError, SkinbenchError

#: random combinations of two or three mutations, on top of every mutation alone
N_COMBINATIONS = 20
N_IMAGES = 10
CLASSES = ("benign", "malignant")


# --------------------------------------------------------------------------------------- a good folder

def _good_folder(folder: Path, rng: np.random.Generator) -> list[str]:
    """A valid generic folder: labels.csv with a split, N_IMAGES small PNGs, one lesion mask each."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    ids = [f"img_{i:03d}" for i in range(N_IMAGES)]
    lines = ["image_id,label,lesion_id,split"]
    for i, image_id in enumerate(ids):
        img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / "images" / f"{image_id}.png"), img)
        mask = np.zeros((24, 32), np.uint8)
        mask[6:18, 8:24] = 255
        cv2.imwrite(str(folder / "masks" / f"{image_id}_lesion.png"), mask)
        lines.append(f"{image_id},{CLASSES[i % 2]},les_{i},{'train' if i < 6 else 'test'}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return ids


# ------------------------------------------------------------------------------------- CSV mutations

def _csv_lines(folder: Path) -> list[str]:
    return (folder / "labels.csv").read_text().splitlines()


def _write_lines(folder: Path, lines: list[str]) -> None:
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")


def drop_column(folder, rng):
    col = int(rng.integers(0, 2))  # image_id or label
    _write_lines(folder, [",".join(f for j, f in enumerate(line.split(",")) if j != col) for line in _csv_lines(folder)])


def empty_file(folder, rng):
    (folder / "labels.csv").write_bytes(b"")


def header_only(folder, rng):
    _write_lines(folder, _csv_lines(folder)[:1])


def duplicate_id(folder, rng):
    lines = _csv_lines(folder)
    lines.append(lines[1 + int(rng.integers(0, N_IMAGES))])
    _write_lines(folder, lines)


def unknown_label(folder, rng):
    lines = _csv_lines(folder)
    i = 1 + int(rng.integers(0, N_IMAGES))
    parts = lines[i].split(",")
    parts[1] = str(rng.choice(["melanoma?", "BENIGN", "2", "nan"]))
    lines[i] = ",".join(parts)
    _write_lines(folder, lines)


def empty_label(folder, rng):
    lines = _csv_lines(folder)
    parts = lines[3].split(",")
    parts[1] = " "
    lines[3] = ",".join(parts)
    _write_lines(folder, lines)


def bad_split(folder, rng):
    lines = _csv_lines(folder)
    lines[2] = lines[2].rsplit(",", 1)[0] + ",validation"
    _write_lines(folder, lines)


def extra_commas_in_row(folder, rng):
    lines = _csv_lines(folder)
    i = 1 + int(rng.integers(0, N_IMAGES))
    lines[i] += "," * int(rng.integers(1, 4)) + "x"
    _write_lines(folder, lines)


def trailing_commas_everywhere(folder, rng):
    _write_lines(folder, [line + "," for line in _csv_lines(folder)])


def utf16_encoding(folder, rng):
    (folder / "labels.csv").write_bytes((folder / "labels.csv").read_text().encode("utf-16"))


def latin1_bytes(folder, rng):
    lines = _csv_lines(folder)
    lines[1] = lines[1].replace("benign", "b\u00e9nign")
    (folder / "labels.csv").write_bytes("\n".join(lines).encode("latin-1"))


def utf8_bom(folder, rng):
    (folder / "labels.csv").write_bytes(b"\xef\xbb\xbf" + (folder / "labels.csv").read_bytes())


def binary_garbage(folder, rng):
    (folder / "labels.csv").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())


def semicolons(folder, rng):
    _write_lines(folder, [line.replace(",", ";") for line in _csv_lines(folder)])


def whitespace_and_crlf(folder, rng):
    lines = [" , ".join(line.split(",")) for line in _csv_lines(folder)]
    (folder / "labels.csv").write_bytes("\r\n".join(lines).encode() + b"\r\n")


def listed_image_missing(folder, rng):
    (folder / "images" / f"img_{int(rng.integers(0, N_IMAGES)):03d}.png").unlink()


def lesion_straddles_split(folder, rng):
    lines = _csv_lines(folder)
    lines[1] = lines[1].replace("les_0", "les_9")  # les_9 is a test image's lesion, img_000 is train
    _write_lines(folder, lines)


def empty_id(folder, rng):
    lines = _csv_lines(folder)
    lines[2] = "," + lines[2].split(",", 1)[1]
    _write_lines(folder, lines)


def csv_is_a_folder(folder, rng):
    (folder / "labels.csv").unlink()
    (folder / "labels.csv").mkdir()


def no_split_column(folder, rng):
    _write_lines(folder, [line.rsplit(",", 1)[0] for line in _csv_lines(folder)])


CSV_MUTATIONS: list[Callable] = [drop_column, empty_file, header_only, duplicate_id, unknown_label, empty_label,
                                 bad_split, extra_commas_in_row, trailing_commas_everywhere, utf16_encoding,
                                 latin1_bytes, utf8_bom, binary_garbage, semicolons, whitespace_and_crlf,
                                 listed_image_missing, lesion_straddles_split, empty_id, csv_is_a_folder,
                                 no_split_column]


# ----------------------------------------------------------------------------------- image mutations

def _victim(folder: Path, rng) -> Path:
    return folder / "images" / f"img_{int(rng.integers(0, N_IMAGES)):03d}.png"


def truncated_png(folder, rng):
    p = _victim(folder, rng)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * rng.uniform(0.2, 0.8))])


def truncated_jpeg_named_png(folder, rng):
    p = _victim(folder, rng)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    data = buf.tobytes()
    p.write_bytes(data[: int(len(data) * rng.uniform(0.3, 0.8))])


def zero_size(folder, rng):
    _victim(folder, rng).write_bytes(b"")


def sixteen_bit(folder, rng):
    cv2.imwrite(str(_victim(folder, rng)), rng.integers(0, 65536, (24, 32, 3), dtype=np.uint16))


def grayscale(folder, rng):
    cv2.imwrite(str(_victim(folder, rng)), rng.integers(0, 256, (24, 32), dtype=np.uint8))


def grayscale_16bit(folder, rng):
    cv2.imwrite(str(_victim(folder, rng)), rng.integers(0, 65536, (24, 32), dtype=np.uint16))


def rgba(folder, rng):
    cv2.imwrite(str(_victim(folder, rng)), rng.integers(0, 256, (24, 32, 4), dtype=np.uint8))


def palette(folder, rng):
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).convert("P").save(_victim(folder, rng))


def one_bit(folder, rng):
    Image.fromarray(rng.integers(0, 2, (24, 32), dtype=np.uint8) * 255).convert("1").save(_victim(folder, rng))


def non_image_bytes(folder, rng):
    _victim(folder, rng).write_bytes(b"<html>404 Not Found</html>" * int(rng.integers(1, 50)))


def random_bytes(folder, rng):
    _victim(folder, rng).write_bytes(rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes())


def png_header_only(folder, rng):
    _victim(folder, rng).write_bytes(b"\x89PNG\r\n\x1a\n")


def one_pixel(folder, rng):
    cv2.imwrite(str(_victim(folder, rng)), np.full((1, 1, 3), 128, np.uint8))


def truncated_mask(folder, rng):
    p = folder / "masks" / f"img_{int(rng.integers(0, N_IMAGES)):03d}_lesion.png"
    p.write_bytes(p.read_bytes()[:30])


IMAGE_MUTATIONS: list[Callable] = [truncated_png, truncated_jpeg_named_png, zero_size, sixteen_bit, grayscale,
                                   grayscale_16bit, rgba, palette, one_bit, non_image_bytes, random_bytes,
                                   png_header_only, one_pixel, truncated_mask]
#: mutations after which the folder must still load and every image read as RGB uint8
VALID_IMAGE_MUTATIONS = {sixteen_bit, grayscale, grayscale_16bit, rgba, palette, one_bit, one_pixel}
#: every mutation that leaves valid input (a folder that must load)
HARMLESS = VALID_IMAGE_MUTATIONS | {whitespace_and_crlf, trailing_commas_everywhere, no_split_column, utf8_bom}


# ---------------------------------------------------------------------------------------------- checks

def _names_a_file(err: SkinbenchError, folder: Path) -> bool:
    text = str(err)
    return any(str(p) in text or p.name in text for p in folder.rglob("*")) or str(folder) in text


def _load_and_read(folder: Path):
    """What a run does first: the adapter, then every image and mask."""
    ds = generic.load(folder, class_names=CLASSES, targets=("lesion",))
    images = [read_image(p, size=(16, 12) if i % 2 else None) for i, p in enumerate(ds.paths)]
    masks = [read_mask(m) for m in ds.masks("lesion") if m]
    return ds, images, masks


def _check_loaded(ds, images, masks) -> None:
    assert len(ds) == len(images) > 0
    assert set(ds.frame["split"]) <= {"train", "test"}
    assert ds.y.min() >= 0 and ds.y.max() < len(CLASSES)
    assert not ds.frame["image_id"].duplicated().any()
    for img in images:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    for m in masks:
        assert m.dtype == bool and m.ndim == 2


def _cases() -> list[tuple[int, list[Callable]]]:
    """Every mutation alone, then N_COMBINATIONS seeded random combinations of two or three."""
    rng = np.random.default_rng(20240607)
    everything = CSV_MUTATIONS + IMAGE_MUTATIONS
    cases = [(i, [m]) for i, m in enumerate(everything)]  # each mutation alone at least once
    while len(cases) < len(everything) + N_COMBINATIONS:
        k = int(rng.integers(2, 4))
        cases.append((len(cases), list(rng.choice(np.array(everything, dtype=object), k, replace=False))))
    return cases


@pytest.mark.parametrize("case, mutations", _cases(), ids=lambda v: "+".join(m.__name__ for m in v)
                         if isinstance(v, list) else str(v))
def test_malformed_inputs_load_or_raise_a_clear_error(tmp_path, case, mutations):
    rng = np.random.default_rng(case)
    folder = tmp_path / "data"
    _good_folder(folder, rng)
    applied = []
    for mutate in mutations:
        try:
            mutate(folder, rng)
        except (OSError, ValueError, IndexError):  # an earlier mutation left nothing for this one to change
            continue
        applied.append(mutate)
    mutations = applied
    try:
        loaded = _load_and_read(folder)
    except SkinbenchError as err:
        assert isinstance(err, DataError), f"{type(err).__name__} for a data problem: {err}"
        assert _names_a_file(err, folder), f"message does not name the file: {err}"
        assert "\n" not in str(err).strip(), "one line"
        assert set(mutations) - HARMLESS, f"valid input rejected: {err}"
        return
    # no other exception type escapes (pytest reports it as an error); loaded data must be right
    assert set(mutations) <= HARMLESS, f"{[m.__name__ for m in mutations]} loaded without an error"
    _check_loaded(*loaded)


def test_valid_odd_modes_read_as_rgb_with_the_right_content(tmp_path):
    """16-bit, grayscale, RGBA and palette inputs keep their pixels (not just their shape)."""
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "pal.png")
    Image.fromarray(np.dstack([rgb, np.full((4, 6), 255, np.uint8)])).save(tmp_path / "rgba.png")
    cv2.imwrite(str(tmp_path / "16.png"), (rgb[..., ::-1].astype(np.uint16) * 257))
    for name in ("rgb", "pal", "rgba", "16"):
        np.testing.assert_allclose(read_image(tmp_path / f"{name}.png").astype(int), rgb, atol=2, err_msg=name)
    gray = np.full((4, 6), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    assert (read_image(tmp_path / "gray.png") == 90).all()


# ---------------------------------------------------------------------------- a run over one bad image

@pytest.fixture()
def dataset_with_one_bad_image(tmp_path, synthetic_dataset) -> tuple[Path, Path]:
    """A generic-layout copy of the synthetic data in which one training image is truncated."""
    folder = tmp_path / "generic"
    shutil.copytree(synthetic_dataset.root, folder)
    train_ids = synthetic_dataset.split("train").ids
    bad = folder / "images" / f"{train_ids[len(train_ids) // 2]}.png"
    bad.write_bytes(bad.read_bytes()[:200])
    return folder, bad


@pytest.mark.slow
def test_run_with_one_bad_image_ends_in_one_clear_error(dataset_with_one_bad_image, tmp_path, capsys):
    """Through the CLI: exit 2 and one line naming the image; no traceback, no record written."""
    from skinbench import cli

    folder, bad = dataset_with_one_bad_image
    results = tmp_path / "results"
    argv = ["run", "task1", "--approach", "bovw", "--dataset", "generic", "--data-root", str(folder),
            "--results", str(results), "--n-boot", "20", "--param", "n_words=10", "--param", "n_jobs=2",
            "--param", "image_size=128", "--param", "progress=false"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("skinbench: error:")]
    assert len(lines) == 1 and bad.name in lines[0], err
    assert "Traceback" not in err
    assert not list(results.rglob("*.json"))


@pytest.mark.slow
def test_deep_pipeline_names_the_bad_image(dataset_with_one_bad_image, tmp_path):
    """The tf.data path (backbone features) raises DataError naming the file, not a TensorFlow error."""
    pytest.importorskip("tensorflow")  # skip on the third-party package; a broken skinbench module must fail
    from skinbench.approaches import transfer
    folder, bad = dataset_with_one_bad_image
    paths = sorted(str(p) for p in (folder / "images").glob("*.png"))[:12] + [str(bad)]
    with pytest.raises(DataError) as info:
        transfer.extract_features(paths, backbone="mobilenet_v2", weights=None, size=32, batch_size=4,
                                  cache_dir=tmp_path / "cache", progress=False)
    assert bad.name in str(info.value)


@pytest.mark.parametrize("mutate", IMAGE_MUTATIONS, ids=lambda m: m.__name__)
def test_cheap_up_front_check_agrees_with_decoding(tmp_path, mutate):
    """check_readable (headers and end markers only, run on every file before any fitting) rejects exactly
    the image and mask files that decoding them would reject, naming the file."""
    from skinbench.data.images import check_readable

    rng = np.random.default_rng(7)
    folder = tmp_path / "data"
    ids = _good_folder(folder, rng)
    mutate(folder, rng)
    images = [str(folder / "images" / f"{i}.png") for i in ids]
    masks = [str(folder / "masks" / f"{i}_lesion.png") for i in ids]
    decode_fails = []
    for path, reader in [(p, read_image) for p in images] + [(m, read_mask) for m in masks]:
        try:
            reader(path)
        except DataError:
            decode_fails.append(path)
    try:
        check_readable(images + masks)
        cheap_fails = None
    except DataError as err:
        cheap_fails = err
    if decode_fails:
        assert cheap_fails is not None, f"{mutate.__name__}: decoding fails but the up-front check passes"
        assert Path(decode_fails[0]).name in str(cheap_fails)
    else:
        assert cheap_fails is None, f"{mutate.__name__}: valid files rejected: {cheap_fails}"
