"""Committed results name data and weights portably: never one machine's absolute paths."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from skinbench.paths import REPO_ROOT, portable

#: the check the repository's hook runs on results/ (an absolute path of at least two folders; `~/`,
#: `$VAR/` and `${VAR}/` prefixes and URLs are fine)
ABSOLUTE_PATH = re.compile(r"(^|[^A-Za-z0-9_.~$}/:\\])/[A-Za-z][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+/")


def _committed_results() -> list[Path]:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "results"], capture_output=True, text=True,
                             check=True).stdout
        return [REPO_ROOT / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):  # an exported tree without git: every file there
        return [p for p in (REPO_ROOT / "results").rglob("*") if p.is_file()]


def test_committed_results_hold_no_absolute_paths():
    offenders = []
    for path in _committed_results():
        data = path.read_bytes() if path.is_file() else b""
        if b"\0" in data[:8192]:  # figures
            continue
        for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            m = ABSOLUTE_PATH.search(line)
            if m:
                start = max(m.start() - 40, 0)
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: ...{line[start:m.end() + 40]}...")
    assert not offenders, (f"{len(offenders)} lines name absolute paths (regenerate the files that wrote them):\n"
                           + "\n".join(offenders[:20]))


def test_portable_names_data_weights_repo_and_home(tmp_path, monkeypatch):
    data, keras, home = tmp_path / "data", tmp_path / "data" / "weights" / "keras", tmp_path / "home"
    monkeypatch.setenv("SKINBENCH_DATA", str(data))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    assert portable(data / "ham10000" / "HAM10000_metadata.csv") == "$SKINBENCH_DATA/ham10000/HAM10000_metadata.csv"
    assert portable(data) == "$SKINBENCH_DATA"
    assert portable(keras / "models") == "$SKINBENCH_DATA/weights/keras/models"
    monkeypatch.setenv("KERAS_HOME", str(keras))  # the most specific base wins
    assert portable(keras / "models" / "x.h5") == "$KERAS_HOME/models/x.h5"
    assert portable(home / ".keras" / "models") == "~/.keras/models"
    assert portable(REPO_ROOT / "results" / "runs") == "results/runs"
    other = tmp_path / "elsewhere" / "x"
    assert portable(other, data=tmp_path / "elsewhere") == "$SKINBENCH_DATA/x"  # --data-root given
    for shown in ("$SKINBENCH_DATA/ham10000/images/x.jpg", "~/.keras/models/a/b", "$KERAS_HOME/models/a/"):
        assert not ABSOLUTE_PATH.search(shown), shown


def test_cli_skip_reason_for_missing_weights_names_no_machine_path(tmp_path, monkeypatch, capsys):
    """Where a user meets it: the one line `run` prints for a backbone without weights (the same text the
    regenerate script stores in a skipped record) names the folders portably."""
    from skinbench import cli

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SKINBENCH_OFFLINE", "1")
    code = cli.main(["run", "task1", "--approach", "transfer-vgg16", "--dataset", "synthetic", "-p", "val_size=0",
                     "--results", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 is in none of $KERAS_HOME/models" in err
    assert str(tmp_path) not in err.split("Fix:")[0] and not ABSOLUTE_PATH.search(err.split("Fix:")[0])
