"""Every `python -m skinbench ...` command shown to a user (README.md, `--help`) parses and validates:
names against the registry, `-p` parameters against the estimator's signature and types."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest

from skinbench import cli, info
from skinbench.params import validate_params

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _commands(text: str) -> list[str]:
    """``python -m skinbench ...`` command lines (comments and trailing prose cut, ``[x]`` made ``x``)."""
    found = []
    for raw in text.splitlines():
        m = re.search(r"python -m skinbench\b(.*)", raw)
        if not m:
            continue
        rest = m.group(1).split("#")[0]
        rest = re.split(r"`|\s{2,}", rest.rstrip())[0] if "`" in rest or "  " in rest.strip() else rest
        rest = re.sub(r"\[([^\]]*)\]", r"\1", rest).strip()
        if not rest or re.search(r"\b[A-Z]{3,}\b", rest):  # a bare mention, or a placeholder (TASK, KEY=VALUE)
            continue
        found.append(rest)
    return found


def _help_texts() -> str:
    parser = cli._build_parser()
    texts = [parser.format_help()]
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        texts += [sub.format_help() for sub in action.choices.values()]
    return "\n".join(texts)


def _check(command: str) -> None:
    argv = shlex.split(command)
    args = cli._build_parser().parse_args(argv)
    if args.command == "list" and args.name:
        assert args.name in {**info.APPROACHES, **info.TASKS, **info.DATASETS}, command
    if args.command in ("run", "predict"):
        names = cli._approach_names(args.task, args.approach if isinstance(args.approach, list) else [args.approach])
        from skinbench import runner

        for name in names:
            runner.resolve(args.task, name, args.dataset)
        params = cli.approach_params(args.task, names, args.param)
        for name in names:
            validate_params(name, args.task, params[name])
    if args.command == "table" and args.task:
        info.task(args.task)
    if args.command == "data":
        info.dataset(args.dataset)


def test_readme_commands_parse_and_validate():
    commands = _commands(README.read_text())
    assert len(commands) >= 8, commands
    assert any("-p n_words=" in c for c in commands)
    for command in commands:
        _check(command)


def test_help_examples_parse_and_validate():
    commands = _commands(_help_texts())
    assert len(commands) >= 6, commands
    for command in commands:
        _check(command)


def test_the_old_wrong_readme_parameter_is_gone():
    assert "vocab_size" not in README.read_text()


@pytest.mark.parametrize("command", ["run task1 -a bovw -p vocab_size=500", "run task4 -a all -p epochs=abc"])
def test_the_doc_checker_rejects_wrong_commands(command):
    from skinbench.errors import ConfigError

    with pytest.raises(ConfigError):
        _check(command)


def test_readme_states_cost_of_heavy_examples():
    text = README.read_text()
    assert re.search(r"--limit 200.*(\d+ min|minutes)", text, re.S) and re.search(r"\d+(\.\d+)? ?GB", text)


def test_tox_builds_tensorflow_once():
    """One tox environment runs the tests and the smoke run (TensorFlow installed once); .ci/run calls tox."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    envs = [e.strip() for e in re.split(r"[,\s]+", ini["tox"]["envlist"]) if e.strip()]
    assert len(envs) == 1, envs
    own = [s for s in ini.sections() if s.startswith("testenv:")]
    assert all("env_dir" in ini[s] or "envdir" in ini[s] for s in own), "an extra env must share the main one"
    commands = ini["testenv"]["commands"]
    assert "pytest" in commands and "skinbench smoke" in commands
    assert re.search(r"^\s*python3? -m tox\b|^\s*tox\b", (ROOT / ".ci" / "run").read_text(), re.M)
