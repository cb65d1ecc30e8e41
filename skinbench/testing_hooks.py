"""Pause points for tests: a test stops a run at a known place, then signals it, instead of racing a timer.

``SKINBENCH_TEST_PAUSE_AT=<point>[:<n>]`` makes the ``n``-th call (default the first) of
:func:`pause_point` for ``<point>`` create the file named by ``SKINBENCH_TEST_PAUSE_FILE`` (so the test
knows the run got there) and sleep, until the process is signalled or ``SKINBENCH_TEST_PAUSE_S``
seconds (default 300) pass. Unset, a call costs one environment lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT = "SKINBENCH_TEST_PAUSE_AT"
PAUSE_FILE = "SKINBENCH_TEST_PAUSE_FILE"
PAUSE_S = "SKINBENCH_TEST_PAUSE_S"

_calls: dict[str, int] = {}


def pause_point(name: str) -> None:
    """Pause here when the environment asks for ``name`` (see the module docstring); else return at once."""
    wanted = os.environ.get(PAUSE_AT)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _calls[name] = _calls.get(name, 0) + 1
    if _calls[name] != int(nth or 1):
        return
    marker = os.environ.get(PAUSE_FILE)
    if marker:
        Path(marker).write_text(str(os.getpid()))
    deadline = time.monotonic() + float(os.environ.get(PAUSE_S, "300"))
    while time.monotonic() < deadline:
        time.sleep(0.05)
