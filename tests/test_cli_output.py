"""What a user sees of the command line (issue 30, item 9): help, `list` width, piping into `head`,
did-you-mean for approaches, notes cut at word boundaries, no raw library warnings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from skinbench import cli, info
from skinbench.results import tables
from skinbench.cli import main


def _records(tmp_path):
    results = tmp_path / "results"
    assert main(["run", "task1", "-a", "majority", "--dataset", "synthetic", "--n-boot", "20",
                 "--results", str(results)]) == 0
    return results


def test_table_into_a_closed_pipe_exits_quietly(tmp_path):
    """`skinbench table | head -1`: the reader leaves; no BrokenPipeError traceback, the SIGPIPE status."""
    results = _records(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "skinbench", "table", "task1", "--results", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # like `head` after its line: every write of the table now fails with EPIPE
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == cli.EXIT_BROKEN_PIPE == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize("columns", [100, 120])  # at 80 a URL and its dataset name alone are 82 wide
def test_list_fits_the_terminal_width_without_cutting_words(monkeypatch, capsys, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= columns
    words = set(out.split())
    for a in info.APPROACHES.values():  # every word of every title and need is shown whole
        assert set(a.title.split()) <= words and set(a.needs.split()) <= words, a.name
    for d in info.DATASETS.values():
        assert set(d.source.split()) <= words, d.name


def test_list_width_defaults_to_100_when_piped():
    proc = subprocess.run([sys.executable, "-m", "skinbench", "list"], capture_output=True, text=True,
                          env={k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}, timeout=120)
    assert proc.returncode == 0
    assert max(len(line) for line in proc.stdout.splitlines()) <= cli.DEFAULT_WIDTH


def test_list_of_one_approach_wraps_its_title(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["list", "mobilenet-unet"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 100


def test_top_level_help_names_every_command_with_a_one_line_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    parser = cli._build_parser()
    text = parser.format_help()
    description = parser.description
    for command in cli.COMMANDS:
        assert command in description, (command, description)
        line = next((ln for ln in text.splitlines() if re.match(rf"^\s+{command}\s+\S", ln)), None)
        assert line is not None, f"{command} has no help line"
        following = text.splitlines()[text.splitlines().index(line) + 1]
        assert not re.match(r"^\s{10,}\S", following), f"{command}'s help wraps onto a second line: {following!r}"


def _actions(name: str, parser=None) -> list:
    parser = parser or cli._build_parser()
    sub = next(a for a in parser._subparsers._group_actions).choices[name]  # type: ignore[union-attr]
    return [a for a in sub._actions if a.dest != "help"]


def test_predict_help_explains_every_argument():
    missing = [a.dest for a in _actions("predict") if not a.help]
    assert not missing, missing


def test_run_and_predict_share_their_options():
    """`--seed` is one definition: several values for run and predict alike."""
    parser = cli._build_parser()
    run = {a.dest: a for a in _actions("run", parser)}
    predict = {a.dest: a for a in _actions("predict", parser)}
    for dest in ("task", "seed", "param", "dataset", "data_root", "classes", "positive", "limit"):
        a, b = run[dest], predict[dest]
        assert (a.option_strings, a.nargs, a.type, a.default, a.help) == \
            (b.option_strings, b.nargs, b.type, b.default, b.help), dest
    args = cli._build_parser().parse_args(["predict", "task4", "-a", "ellipse", "--out", "x", "--seed", "0", "1"])
    assert args.seed == [0, 1]


def test_predict_with_several_seeds_writes_one_submission_each(tmp_path, capsys):
    out = tmp_path / "preds"
    assert main(["predict", "task4", "-a", "ellipse", "--dataset", "synthetic", "--out", str(out),
                 "--seed", "0", "1", "--limit", "8"]) == 0
    for seed in (0, 1):
        assert list((out / f"seed{seed}").glob("*_segmentation.png")), seed


@pytest.mark.parametrize("argv, close, other_task", [
    (["run", "task4", "-a", "unte"], "did you mean unet?", "bovw"),
    (["run", "task1", "-a", "bovv"], "did you mean bovw?", "unet"),
    (["predict", "task4", "-a", "elipse", "--out", "x"], "did you mean ellipse?", "majority"),
])
def test_unknown_approach_lists_this_tasks_approaches(argv, close, other_task, capsys):
    assert main([*argv, "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and close in err
    task = argv[1]
    assert all(name in err for name in info.approaches_for(task))
    assert not re.search(rf"\b{other_task}\b", err), err  # not every task's approaches


def test_unknown_name_gets_no_misleading_hint(capsys):
    assert main(["run", "task7", "-a", "unet"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'task7'" in err and "did you mean" not in err  # task1? task4? no guess


@pytest.mark.parametrize("text, width", [
    ("fit s: 100% of cached work found, not done again this run", 40),
    ("skipped: ImageNet weights for vgg16 not found offline at /somewhere", 40),
    ("a-very-long-single-word-without-any-space-in-it-at-all-here", 20),
])
def test_shorten_cuts_at_word_boundaries(text, width):
    short = tables.shorten(text, width)
    assert len(short) <= width and short.endswith("…")
    kept = short[:-1]
    if " " in text[:width]:
        assert text.startswith(kept) and text[len(kept)] in " ,;:", (text, short)  # a whole word was kept


def test_compact_table_notes_end_at_a_word():
    """The terminal table's note column: shortened at a word boundary, marked "…"."""
    note = "fit s: 100% of cached work found, not done again this run; see the record"
    row = {"approach": "bovw", "family": "classical", "status": "ok", "ap": 0.5, "auc": 0.7,
           "balanced_accuracy": 0.6, "accuracy": 0.6, "recall": 0.5, "n_test": 12, "fit_s": 1.0, "note": note}
    table = tables.Table("task1", "synthetic", None, "binary", "", tables.SHOWN_METRICS["binary"], rows=[row])
    out = table.to_terminal()
    cell = out.strip().splitlines()[-1].split("  ")[-1].strip()
    assert cell.endswith("…") and len(cell) <= tables.NOTE_WIDTH
    assert note.startswith(cell[:-1]) and note[len(cell) - 1] in " ,;", cell


def test_validation_scores_raise_no_sklearn_warning():
    """The smoke run printed sklearn's "y_pred contains classes not in y_true" from the validation score of
    model selection (transfer heads, BoVW on several classes): a small fold lacks a predicted class.
    The score is sklearn's balanced accuracy, without the warning."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.svm import SVC

    from skinbench.approaches import bovw
    from skinbench.approaches.transfer import selection_score
    from skinbench.metrics.classification import balanced_accuracy

    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])  # predicts class 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = balanced_accuracy_score(y, proba.argmax(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert selection_score("balanced_accuracy", y, proba) == pytest.approx(expected) == 0.75
        assert balanced_accuracy(y, proba.argmax(1)) == pytest.approx(expected)
        est = bovw.BoVWClassifier()
        est.classes_ = np.array([0, 1, 2])
        svc = SVC().fit(np.eye(3), [0, 1, 2])
        pred = svc.predict(np.eye(3))
        assert set(pred) - set(y[:3])  # the fold lacks a predicted class
        assert est._score(y[:3], svc, np.eye(3)) == pytest.approx(balanced_accuracy(y[:3], pred))


# ------------------------------------------------------------------ the demo: classical and deep, what it ran

@pytest.mark.slow
def test_demo_shows_a_deep_row_per_task_kind_and_only_what_it_ran(tmp_path, capsys, monkeypatch):
    """The first minute shows classical vs deep offline: a from-scratch CNN beside BoVW (classification),
    the U-Net beside the classical segmenter (segmentation); no "not run" rows, one line on the rest."""
    for name, fewer in (("cnn-scratch", {"epochs": 2}), ("unet", {"epochs": 1}), ("bovw", {"n_words": 10})):
        monkeypatch.setitem(cli.DEMO_PARAMS, name, {**cli.DEMO_PARAMS[name], **fewer})  # what is shown, fast
    assert main(["demo", "--task", "task1", "--task", "task4", "--n-images", "48", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "not run" not in out
    rows = {line.split()[0] for line in out.splitlines() if line.strip()}
    for task in ("task1", "task4"):
        names = cli.DEMO_APPROACHES[task]
        assert set(names) <= rows
        families = {info.approach(n).family for n in names}
        assert {"classical", "deep"} <= families, task
    kinds = {info.task(t).kind for t, names in cli.DEMO_APPROACHES.items()
             if any(info.approach(n).family == "deep" for n in names)}
    assert kinds == {"classification", "segmentation"}
    left = [line for line in out.splitlines() if line.startswith("not in the demo:")]
    assert len(left) == 1 and "--dataset synthetic" in left[0]
    for task, name in (("task1", "cnn-scratch"), ("task4", "unet")):
        record = json.loads(next((tmp_path / "runs" / task).rglob(f"{name}*.json")).read_text())
        assert record["status"] == "ok" and record["family"] == "deep"


def test_scratch_cnn_never_loads_pretrained_weights():
    """The demo's deep classifier is a from-scratch CNN, says so, and has no way to load weights."""
    from skinbench.params import approach_signature

    a = info.approach("cnn-scratch")
    assert a.family == "deep" and "from scratch" in a.title and "no pretrained weights" in a.title
    assert not a.needs
    assert not {k for k in approach_signature(a) if "weight" in k and k != "class_weight"}
