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


def _test_command() -> str:
    """The README's test command (its "Two commands" block, second command)."""
    m = re.search(r"^pip install -c constraints\.txt -e \"\.\[test\]\".*$", README.read_text(), re.M)
    assert m, "the README's test command is gone"
    return m.group(0)


def test_the_test_command_installs_tensorflow_once():
    """The README's test command runs tox in the environment it installed into (``tox --current-env``: no
    second environment, which would install TensorFlow & co. again); .ci/run runs that same command, and
    tox runs the tests and the smoke run."""
    command = _test_command()
    assert command.endswith("&& tox --current-env"), command
    run = (ROOT / ".ci" / "run").read_text()
    assert re.search(r'^python3 -m pip install -q -c constraints\.txt -e "\.\[test\]" && python3 -m tox --current-env$',
                     run, re.M)
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    commands = ini["testenv"]["commands"]
    assert re.search(r"-m pytest\b", commands) and "-m skinbench smoke" in commands
    extras = re.search(r"^test = \[(.*?)\]$", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    assert extras and '"tox-current-env' in extras.group(1), extras


def test_ci_never_runs_with_update_golden():
    """A leftover SKINBENCH_UPDATE_GOLDEN must not reach the golden test in CI: tox passes SKINBENCH_*
    variables by name (no wildcard), and empties it (``--current-env`` passes the caller's environment)."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    passenv = ini["testenv"]["passenv"].split()
    assert passenv and not any("*" in v for v in passenv if v.startswith("SKINBENCH")), passenv
    assert "SKINBENCH_UPDATE_GOLDEN" not in passenv and "SKINBENCH_DATA" in passenv
    assert re.search(r"^\s*SKINBENCH_UPDATE_GOLDEN\s*=\s*$", ini["testenv"]["setenv"], re.M)


def test_tests_skip_on_third_party_packages_only():
    """``pytest.importorskip`` of a skinbench module turns a broken import into a skip: skip on the
    third-party package, then import ours normally (an error then fails the test)."""
    offenders = [f"{p.name}:{n}" for p in sorted((ROOT / "tests").glob("*.py"))
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if re.search(r"importorskip\(\s*['\"]skinbench", line)]
    assert not offenders, offenders
