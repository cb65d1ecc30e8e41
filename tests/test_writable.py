"""Issue 30 item 5: a read-only, full or impossible results folder is one line and exit 2, before any
work where it can be seen then, else at the write, with what was already written left intact.

Tests run as root, which ignores chmod: the read-only and full cases are made by making ``os.access``,
``os.replace``, ``os.fsync`` or ``shutil.disk_usage`` say so, and the impossible one by a path under a
regular file (which refuses root too)."""

from __future__ import annotations

import errno
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from skinbench import cache, paths
from skinbench.cli import main
from skinbench.errors import StorageError

RUN = ["run", "task1", "-a", "majority", "--dataset", "synthetic", "--n-boot", "20"]


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("skinbench: error:"), err
    return lines[0]


def _no_fit(monkeypatch) -> None:
    """Any fit reached fails the test: the folder must be refused before the work."""
    from skinbench import runner

    def refuse(*args, **kwargs):
        raise AssertionError("the run started although its results folder cannot be written")

    monkeypatch.setattr(runner, "execute", refuse)


@pytest.mark.parametrize("argv", [
    RUN + ["--results", "{f}/sub"],
    ["table", "task1", "--results", "{f}"],
    ["sweep", "task1", "-a", "majority", "--dataset", "synthetic", "--workers", "0", "--results", "{f}/x"],
    ["score", "task1", "nothing.csv", "--dataset", "synthetic", "--results", "{f}"],
    ["predict", "task1", "-a", "majority", "--dataset", "synthetic", "--out", "{f}/pred"],
    ["demo", "--task", "task1", "--results", "{f}/demo"],
])
def test_results_path_under_a_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys, argv):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _no_fit(monkeypatch)
    rc = main([a.replace("{f}", str(blocker)) for a in argv])
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and f"{blocker} is a file, not a folder" in line and "Fix: pass --" in line
    assert blocker.read_text() == "not a folder"


def test_read_only_results_folder_is_refused_before_the_fit(tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    _no_fit(monkeypatch)
    rc = main(RUN + ["--results", str(ro / "results")])
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "no permission to write" in line and str(ro) in line and "--results DIR" in line


def test_read_only_mount_that_root_may_access_is_caught_by_the_probe(tmp_path, monkeypatch, capsys):
    """Root's os.access says yes on a read-only mount; creating the probe file says EROFS."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kw):
        if dir is not None and Path(dir) == tmp_path:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    _no_fit(monkeypatch)
    rc = main(RUN + ["--results", str(tmp_path / "results")])
    assert rc == 2 and "read-only" in _one_line(capsys.readouterr().err)


def test_full_disk_is_refused_before_the_fit(tmp_path, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    _no_fit(monkeypatch)
    rc = main(RUN + ["--results", str(tmp_path)])
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "only 0.0 MB free" in line


@pytest.mark.parametrize("call, code, words", [("replace", errno.EROFS, "read-only"),
                                               ("fsync", errno.ENOSPC, "disk is full"),
                                               ("replace", errno.EACCES, "no permission")])
def test_write_time_errors_are_one_line_and_keep_the_earlier_record(tmp_path, monkeypatch, capsys, call, code,
                                                                    words):
    """The folder passed the check, then filled up (or was remounted) during the fit: exit 2, one line,
    the record of the earlier run byte for byte as it was, no temporary file left."""
    assert main(RUN + ["--results", str(tmp_path)]) == 0
    record = tmp_path / "runs" / "task1" / "synthetic" / "majority.json"
    before = record.read_bytes()
    capsys.readouterr()
    real = getattr(os, call)

    def failing(*args, **kw):
        if call == "fsync" or str(tmp_path) in os.fspath(args[-1]):
            raise OSError(code, os.strerror(code))
        return real(*args, **kw)

    monkeypatch.setattr(os, call, failing)
    rc = main(RUN + ["--results", str(tmp_path), "--seed", "0"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("skinbench: error:") == 1, err
    line = err.strip().splitlines()[-1]  # after the run's "== task1 / majority" progress line
    assert line.startswith("skinbench: error:") and line.count(str(tmp_path)) == 1
    assert rc == 2 and words in line and "Fix:" in line
    assert record.read_bytes() == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_atomic_write_maps_storage_errors_and_leaves_other_errors_alone(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    cache.atomic_write_bytes(target, b"old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(StorageError, match="disk is full"):
        cache.atomic_write_bytes(target, b"new")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError) as info:
        cache.atomic_write_bytes(target, b"new")
    assert not isinstance(info.value, StorageError)  # an unexpected OS error keeps its traceback
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    with pytest.raises(StorageError, match="a file is where a folder should be"):
        cache.atomic_write_bytes(target / "below" / "x.bin", b"x")


def test_dry_run_sweep_reads_a_read_only_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "access", lambda *a, **kw: False)
    rc = main(["sweep", "task1", "-a", "majority", "--dataset", "synthetic", "--dry-run", "--results",
               str(tmp_path)])
    assert rc == 0 and "to run" in capsys.readouterr().out
    assert paths.user_results_root(str(tmp_path), check=False) == tmp_path.resolve()


def test_runner_refuses_before_loading_data(tmp_path, monkeypatch):
    """Library and benchmark callers (runner.execute, regenerate.py) get the same check before the fit."""
    from skinbench import runner
    from skinbench.data import base

    blocker = tmp_path / "f"
    blocker.write_text("")
    monkeypatch.setattr(base, "check_for_task", lambda *a, **kw: pytest.fail("data checked: work started"))
    with pytest.raises(StorageError, match="is a file, not a folder"):
        runner.run("task1", "majority", dataset="synthetic", results_root=blocker / "r")
    with pytest.raises(StorageError, match="--predictions DIR"):
        runner.run("task1", "majority", dataset="synthetic", results_root=tmp_path, predictions_dir=blocker)
