"""Start-up noise stays off the terminal (real warnings do not); non-TTY runs log progress lines."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from skinbench.progress import Progress, progress

NOISE = ("absl::InitializeLog", "oneDNN custom operations", "oneDNN supports", "cpu_feature_guard", "retracing",
         "Epoch 1/", "━━━━")


def _env_without_tf_log_level() -> dict[str, str]:
    """The user's environment as in a fresh shell: no TF_CPP_MIN_LOG_LEVEL (conftest sets one)."""
    import os

    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_tensorflow_start_up_and_keras_epoch_lines_are_silenced_real_warnings_kept():
    code = ("from skinbench import quiet; quiet.install()\n"
            "import warnings, numpy as np, keras\n"
            "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]); m.compile('adam', 'mse')\n"
            "m.fit(np.zeros((8, 4)), np.zeros(8), epochs=2)\n"
            "warnings.warn('a real warning')\n"
            "import sys; print('real stderr line', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=_env_without_tf_log_level())
    assert proc.returncode == 0, proc.stderr
    for needle in NOISE:
        assert needle not in proc.stderr + proc.stdout, needle
    assert "a real warning" in proc.stderr and "real stderr line" in proc.stderr


def test_known_noise_warnings_only():
    import warnings

    from skinbench import quiet

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.install_warning_filters()
        warnings.warn("The least populated class in y has only 1 members, which is less than n_splits=5.",
                      UserWarning)
        warnings.warn("something the user must see", UserWarning)
    assert [str(w.message) for w in caught] == ["something the user must see"]


def test_progress_lines_when_not_a_tty(monkeypatch):
    monkeypatch.setenv("SKINBENCH_PROGRESS_EVERY", "0")
    buf = io.StringIO()
    with Progress(3, "checking image files", "file", stream=buf) as bar:
        for _ in range(3):
            bar.update()
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("skinbench: checking image files: 1/3 file (") and "file/s" in lines[0]
    assert lines[-1].startswith("skinbench: checking image files: done 3/3 file")
    assert list(progress(range(4), "x")) == [0, 1, 2, 3]


@pytest.mark.slow
def test_cli_keras_training_prints_no_tensorflow_noise(tmp_path):
    """A Keras U-Net trained through the CLI (smoke settings: tiny, 1 epoch; the cheapest Keras segmenter: its
    training loop, callbacks and prediction are every Keras segmenter's) prints no start-up lines, no
    per-epoch bars, no retracing warnings, no oneDNN fallback lines."""
    proc = subprocess.run([sys.executable, "-m", "skinbench", "smoke", "--task", "task4", "-a", "unet",
                           "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env=_env_without_tf_log_level())
    assert proc.returncode == 0, proc.stderr
    for needle in NOISE:
        assert needle not in proc.stderr + proc.stdout, needle
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("sweep: 1 points: 1 run, 0 current (kept), 0 failed"), proc.stderr
    assert lines[-2].startswith("skinbench sweep: [1/1, running 0, failed 0] done task4/synthetic/unet/")
    assert all(line.startswith("skinbench: ") for line in lines[:-2]), proc.stderr  # progress lines only
    assert any(" training: epoch 1/1 (" in line for line in lines), proc.stderr  # epochs via skinbench.progress


def test_bovw_fit_not_on_a_tty_logs_progress_lines_naming_each_stage(synthetic_dataset, tmp_path, monkeypatch, capsys):
    """The approaches' long loops go through skinbench.progress: piped, a fit prints stage lines, no bar."""
    from skinbench.approaches.bovw import BoVWClassifier

    monkeypatch.setenv("SKINBENCH_PROGRESS_EVERY", "0")  # a line per step: the loops here are short
    monkeypatch.delenv("SKINBENCH_PROGRESS", raising=False)
    tr = synthetic_dataset.split("train")
    BoVWClassifier(detector="dense", image_size=64, dense_step=16, n_words=8, C_grid=(1.0, 10.0), gamma_grid=(1.0,),
                   val_repeats=1, n_jobs=1, cache_dir=str(tmp_path / "c")).fit(tr.paths[:16], tr.y[:16],
                                                                               tr.groups[:16])
    err = capsys.readouterr().err
    lines = err.splitlines()
    for stage in ("dense descriptors", "C/gamma grid per validation split", "encoding"):
        assert any(f"{stage}: " in line for line in lines), (stage, err)
    assert any(line.startswith("skinbench: dense descriptors: done 16/16 image (") for line in lines), err
    assert "\r" not in err  # no tqdm bar when stderr is not a terminal
    assert all(line.startswith("skinbench: ") for line in lines), err

    BoVWClassifier(detector="dense", image_size=64, dense_step=16, n_words=8, C=1.0, gamma=1.0, n_jobs=1,
                   progress=False, cache_dir=str(tmp_path / "c")).fit(tr.paths[:16], tr.y[:16])
    assert capsys.readouterr().err == ""  # progress=False still turns the display off


def test_keras_segmenter_fit_reports_epochs_through_the_progress_callback(synthetic_dataset, tmp_path, monkeypatch,
                                                                          capsys):
    pytest.importorskip("keras")
    from skinbench.approaches.unet import UNetSegmenter

    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SKINBENCH_PROGRESS", raising=False)
    tr = synthetic_dataset.split("train")
    tiny = dict(input_size=32, base_filters=4, depth=2, epochs=2, batch_size=8, validation_fraction=0.25, patience=5)
    UNetSegmenter(**tiny).fit(tr.paths, tr.masks("lesion"), groups=tr.groups)
    lines = [line for line in capsys.readouterr().err.splitlines() if " epoch " in line]
    assert [line.split(" (")[0] for line in lines] == ["skinbench: UNetSegmenter training: epoch 1/2",
                                                      "skinbench: UNetSegmenter training: epoch 2/2"], lines
    assert all("loss " in line and "val_loss " in line for line in lines), lines
    assert not any("val_jaccard" in line for line in lines), lines  # only when epochs are judged by it
    assert not any(n in line for line in lines for n in ("Epoch 1/", "━━━━"))

    UNetSegmenter(**{**tiny, "epochs": 1}, verbose=0).fit(tr.paths, tr.masks("lesion"), groups=tr.groups)
    assert " epoch " not in capsys.readouterr().err  # verbose=0: no epoch lines
