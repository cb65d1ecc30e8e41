"""Start-up noise stays off the terminal (real warnings do not); non-TTY runs log progress lines."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from skinbench.progress import Progress, progress

NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "retracing", "Epoch 1/",
         "━━━━")


def test_tensorflow_start_up_and_keras_epoch_lines_are_silenced_real_warnings_kept():
    code = ("from skinbench import quiet; quiet.install()\n"
            "import warnings, numpy as np, keras\n"
            "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]); m.compile('adam', 'mse')\n"
            "m.fit(np.zeros((8, 4)), np.zeros(8), epochs=2)\n"
            "warnings.warn('a real warning')\n"
            "import sys; print('real stderr line', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
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
def test_cli_run_on_a_deep_approach_prints_no_tensorflow_noise(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "skinbench", "run", "task1", "-a", "transfer-mobilenetv2-logreg",
                           "--dataset", "synthetic", "-p", "weights=null", "-p", "input_size=32", "-p", "n_views=1",
                           "--n-boot", "20", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for needle in NOISE:
        assert needle not in proc.stderr, needle
