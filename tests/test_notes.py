"""Issue 31: the hand-written notes on the results (docs/results-notes.md, moved out of the generated results/)
claim nothing about a row that the committed records do not hold. Each number they quote about a row is a
link to its record with the field it reads as the link's title; this test reads every one of them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from skinbench import info
from skinbench.results.currency import data_drift, version_drift
from skinbench.results.records import RunRecord

REPO = Path(__file__).resolve().parents[1]
NOTES = REPO / "docs" / "results-notes.md"
#: ``[0.723 [0.661, 0.779]](../results/runs/....json "balanced_accuracy")``: a number (and its CI) from a record
CLAIM = re.compile(r"\[(?P<text>[^\[\]]*(?:\[[^\[\]]*\])?\u2020?)\]\((?P<path>\.\./results/[^\s)]+) \"(?P<field>[^\"]+)\"\)")
NUMBER = re.compile(r"^(?P<value>-?\d+(?:\.\d+)?)(?: \[(?P<lo>-?\d+(?:\.\d+)?), (?P<hi>-?\d+(?:\.\d+)?)\])?"
                    r"(?P<earlier>\u2020)?$")
#: what the notes write after a number from a record trained on an earlier data manifest (a sweep not yet
#: rerun on a rebuilt split), with a footnote saying which split
EARLIER = "\u2020"
#: a backticked name shaped like an approach's (``bovw-sift-color``), which must be a registered one
APPROACH_LIKE = re.compile(r"`([a-z][a-z0-9]*(?:-[a-z0-9]+)+)`")


def claims() -> list[re.Match]:
    return list(CLAIM.finditer(NOTES.read_text()))


def _field(data: dict, path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        value = value[part]
    return value


def _as_shown(actual: float, shown: str) -> str:
    """``actual`` with as many decimals as the note shows."""
    decimals = len(shown.split(".", 1)[1]) if "." in shown else 0
    return f"{actual:.{decimals}f}"


def test_the_notes_quote_numbers_through_checkable_links():
    assert not (REPO / "results" / "NOTES.md").exists(), "hand-written notes live in docs/, results/ is generated"
    assert len(claims()) >= 40  # the notes' row claims: none dropped out of the check by a broken link


@pytest.mark.parametrize("claim", claims(), ids=lambda m: f"{Path(m['path']).stem}:{m['field']}:{m['text']}")
def test_each_number_the_notes_quote_is_the_records(claim):
    path = (NOTES.parent / claim["path"]).resolve()
    assert path.is_file(), f"{claim['path']}: no such record (a row that no longer exists)"
    record = RunRecord.from_file(path)
    assert record.ok, f"{claim['path']}: {record.status} ({record.reason})"
    assert not version_drift(record), f"{claim['path']} is stale: {version_drift(record)}"
    shown = NUMBER.match(claim["text"])
    assert shown, f"quote a number, or a number and its CI, not {claim['text']!r}"
    moved = data_drift(record)
    assert bool(shown["earlier"]) == bool(moved), (
        f"{claim['path']}: trained on an earlier data manifest ({moved}): mark the number {EARLIER} (the footnote "
        "names the split) or rerun it" if moved else f"{claim['text']!r} is marked {EARLIER} but its record is on "
        "today's data manifest")
    field = claim["field"]
    if "." in field:
        actual, ci = _field(json.loads(path.read_text()), field), None
    else:
        actual, ci = record.value(field), record.ci(field)
    assert actual is not None, f"{claim['path']} has no {field}"
    assert _as_shown(float(actual), shown["value"]) == shown["value"], (claim["text"], field, actual)
    if shown["lo"] is not None:
        assert ci is not None and ci[0] is not None, f"{claim['path']}: {field} has no CI"
        assert (_as_shown(ci[0], shown["lo"]), _as_shown(ci[1], shown["hi"])) == (shown["lo"], shown["hi"]), \
            (claim["text"], ci)


def test_every_approach_the_notes_name_is_registered():
    named = set(APPROACH_LIKE.findall(NOTES.read_text()))
    assert named, "the notes name no approach"
    assert named <= set(info.APPROACHES), sorted(named - set(info.APPROACHES))
