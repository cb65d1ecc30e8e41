"""Benchmark scripts run as the CLI's commands do (errors.run_script): start-up noise off, and a user error
ends with one line naming the fix."""

from __future__ import annotations

import pytest

from skinbench import quiet
from skinbench.errors import ConfigError, run_script


@pytest.fixture(autouse=True)
def installs(monkeypatch) -> list[str]:
    """Records quiet.install calls instead of changing this test process's import hooks and filters."""
    calls: list[str] = []
    monkeypatch.setattr(quiet, "install", lambda: calls.append("install"))
    return calls


def test_run_script_prints_one_line_with_the_fix_and_exits_2(capsys, installs):
    def main() -> int:
        assert installs == ["install"]  # the noise is off before the script's own work starts
        raise ConfigError("unknown loss(es) ['x']", fix="use some of: dice, bce")

    with pytest.raises(SystemExit) as stop:
        run_script(main, "task3_losses")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["task3_losses: error: unknown loss(es) ['x'] Fix: use some of: dice, bce"]


def test_run_script_passes_main_status_and_programming_errors_through():
    with pytest.raises(SystemExit) as stop:
        run_script(lambda: 1, "x")
    assert stop.value.code == 1
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_script(lambda: 1 // 0, "x")
