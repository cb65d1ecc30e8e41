"""Hyper-parameters of the registered estimators: their signatures, and ``-p KEY=VALUE`` checked against them.

:func:`signature` reads an estimator's ``__init__`` from its source (no import, so no TensorFlow start-up
just to list or check parameters): each parameter's annotation and default. :func:`validate_params`
checks user overrides against it *before any work* (no data loaded, no cache folder made) and converts
command-line text to the annotated type; a wrong name or type, or a value outside the set the estimator
declares in its ``_allowed`` class attribute (:func:`allowed_values`, also read from source), is one
:class:`ConfigError` line naming the parameter, the expected type (or the allowed values) and an example
that works::

    -p n_words=abc: parameter n_words of approach 'bovw' takes an integer, not 'abc'. Fix: e.g. -p n_words=300

Rules for text values (the command line): ``none``/``null`` for a parameter that may be None;
``true``/``false`` (also yes/no, on/off, 1/0) for booleans; integers for ``int`` (``300``, not ``300.5``);
any number for ``float``; a JSON list (``[0.1,1,10]``) or comma-separated values for sequences; a JSON
object for ``dict``; anything else is a string where the parameter takes one. Parameters annotated
``Any`` (or not at all, with a None default) take JSON when the text parses as JSON, else the text.
Already-typed values (Python callers, the runner) are checked the same way; ints are accepted for floats.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from skinbench import info
from skinbench.errors import ConfigError

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")
_INT = re.compile(r"^[+-]?\d+$")
_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "none": "none", "seq": "a list (JSON [..] or comma-separated)", "dict": "a JSON object {..}",
               "any": "any value"}
#: names people try for a parameter that has another name here
SYNONYMS = {"vocab_size": "n_words", "vocabulary_size": "n_words", "k": "n_words", "n_clusters": "n_words",
            "lr": "learning_rate", "epoch": "epochs", "n_epochs": "epochs", "image_size": "input_size",
            "input_size": "image_size", "size": "input_size"}
_EXAMPLE = {"int": 3, "float": 0.5, "bool": True, "str": "text", "seq": [1, 2], "dict": {}, "none": None}


@dataclass(frozen=True)
class Param:
    """One constructor argument: name, annotation text ("" when none), default (``inspect._empty``-free)."""

    name: str
    annotation: str
    default: Any
    has_default: bool = True
    default_text: str = ""

    @functools.cached_property
    def kinds(self) -> frozenset[str]:
        kinds = _kinds(self.annotation) if self.annotation else frozenset()
        if not kinds:
            kinds = _kinds_of_value(self.default)
        return kinds

    @functools.cached_property
    def item_kinds(self) -> frozenset[str]:
        """Element kinds of a sequence parameter (``Sequence[int]`` -> {"int"}; unknown -> {"any"})."""
        if not self.annotation:
            return frozenset({"any"})
        try:
            node = ast.parse(self.annotation, mode="eval").body
        except SyntaxError:
            return frozenset({"any"})
        for sub in ast.walk(node):
            if isinstance(sub, ast.Subscript) and _name(sub.value) in _SEQ_NAMES:
                inner = sub.slice.elts[0] if isinstance(sub.slice, ast.Tuple) and sub.slice.elts else sub.slice
                return _kinds_node(inner) or frozenset({"any"})
        return frozenset({"any"})

    def describe(self) -> str:
        kinds = [k for k in ("int", "float", "bool", "str", "seq", "dict", "any") if k in self.kinds]
        text = " or ".join(_KIND_WORDS[k] for k in kinds) or "any value"
        return text + (" or none" if "none" in self.kinds and "any" not in self.kinds else "")


_SEQ_NAMES = {"Sequence", "list", "tuple", "List", "Tuple", "Iterable", "MutableSequence", "set", "frozenset"}
_DICT_NAMES = {"dict", "Dict", "Mapping", "MutableMapping"}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _kinds_node(node: ast.AST) -> frozenset[str]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _kinds_node(node.left) | _kinds_node(node.right)
    if isinstance(node, ast.Constant):
        if node.value is None:
            return frozenset({"none"})
        if isinstance(node.value, str):  # a quoted forward reference
            try:
                return _kinds_node(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return frozenset({"any"})
        return frozenset({"any"})
    if isinstance(node, ast.Subscript):
        outer = _name(node.value)
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer == "Optional":
            return _kinds_node(inner[0]) | {"none"}
        if outer == "Union":
            return frozenset().union(*(_kinds_node(n) for n in inner))
        if outer == "Literal":
            return frozenset().union(*(_kinds_of_value(getattr(n, "value", None)) for n in inner))
        if outer in _SEQ_NAMES:
            return frozenset({"seq"})
        if outer in _DICT_NAMES:
            return frozenset({"dict"})
        return frozenset({"any"})
    name = _name(node)
    if name in ("int", "float", "str", "bool"):
        return frozenset({name})
    if name == "PathLike":
        return frozenset({"str"})
    if name in _SEQ_NAMES:
        return frozenset({"seq"})
    if name in _DICT_NAMES:
        return frozenset({"dict"})
    return frozenset({"any"})


def _kinds(annotation: str) -> frozenset[str]:
    try:
        return _kinds_node(ast.parse(annotation, mode="eval").body)
    except SyntaxError:
        return frozenset({"any"})


def _kinds_of_value(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset({"any"})  # unannotated with a None default: could be anything
    if isinstance(value, bool):
        return frozenset({"bool"})
    if isinstance(value, int):
        return frozenset({"int"})
    if isinstance(value, float):
        return frozenset({"float"})
    if isinstance(value, str):
        return frozenset({"str"})
    if isinstance(value, (list, tuple)):
        return frozenset({"seq"})
    if isinstance(value, dict):
        return frozenset({"dict"})
    return frozenset({"any"})


# ----------------------------------------------------------------------------------------- signatures
def _from_source(module: str, cls: str) -> dict[str, Param] | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            if init is None or init.args.kwarg is not None or init.args.vararg is not None:
                return None  # inherited or open-ended: ask the class itself
            args = init.args
            pos = args.args[1:]
            defaults: list[ast.AST | None] = [None] * (len(pos) - len(args.defaults)) + list(args.defaults)
            out: dict[str, Param] = {}
            for arg, default in list(zip(pos, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults)):
                annotation = ast.unparse(arg.annotation) if arg.annotation is not None else ""
                if default is None:
                    out[arg.arg] = Param(arg.arg, annotation, None, has_default=False)
                    continue
                text = ast.unparse(default)
                try:
                    value = ast.literal_eval(default)
                except ValueError:
                    try:
                        value = eval(compile(ast.Expression(default), "<default>", "eval"), {"range": range})
                    except Exception:
                        value = text
                out[arg.arg] = Param(arg.arg, annotation, value, True, text)
            return out
    return None


# ------------------------------------------------------------------------------ declared value sets
#: the class attribute declaring a parameter's allowed values (``skinbench.approaches.base.allowed`` reads
#: it at run time; read here from source: this layer imports no estimator)
ALLOWED_ATTR = "_allowed"
#: the folder holding the skinbench package whose sources are read
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def _module_tree(module: str) -> ast.Module | None:
    """The parsed source of a skinbench module (None for any other, or one without a .py file)."""
    if module != "skinbench" and not module.startswith("skinbench."):
        return None
    # by path, not importlib.util.find_spec: that imports the parent, and a name like
    # skinbench.approaches.seg_training.TTA_MODES would import Keras
    base = _PACKAGE_ROOT.joinpath(*module.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    if not path.is_file():
        return None
    return ast.parse(path.read_text(encoding="utf-8"))


def _imported(tree: ast.Module, name: str) -> tuple[str, str] | None:
    """(module, attribute) that ``name`` is bound to by a module-level ``from M import X [as name]``, or
    (module, "") for ``import M as name`` / ``from P import M`` where M is a module."""
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    sub = f"{stmt.module}.{alias.name}"
                    return (sub, "") if _module_tree(sub) is not None else (stmt.module, alias.name)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname == name:
                    return alias.name, ""
    return None


def _constant(module: str, node: ast.AST, depth: int = 0) -> Any:
    """A declared value read from source without importing: a literal, a module-level constant of this
    or an imported skinbench module (``TTA_MODES``, ``tfdata.TTA_MODES``), ``a + b`` of tuples, or a dict
    display (its literal keys: the names a registry of losses accepts). ValueError when it is none."""
    tree = _module_tree(module)
    if tree is None or depth > 8:
        raise ValueError(module)
    if isinstance(node, ast.Dict):
        return tuple(ast.literal_eval(k) for k in node.keys if k is not None)
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return tuple(_constant(module, node.left, depth + 1)) + tuple(_constant(module, node.right, depth + 1))
    if isinstance(node, ast.Name):
        for stmt in tree.body:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == node.id for t in targets) and stmt.value is not None:
                return _constant(module, stmt.value, depth + 1)
        where = _imported(tree, node.id)
        if where and where[1]:
            return _constant(where[0], ast.Name(where[1]), depth + 1)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        where = _imported(tree, node.value.id)
        if where and not where[1]:
            return _constant(where[0], ast.Name(node.attr), depth + 1)
    raise ValueError(ast.unparse(node))


@functools.lru_cache(maxsize=None)
def _class_allowed(module: str, cls: str) -> dict[str, tuple]:
    """``_allowed`` of ``module:cls`` merged over its skinbench base classes' (the subclass wins), from source."""
    tree = _module_tree(module)
    node = next((n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef) and n.name == cls), None)
    if node is None:
        return {}
    out: dict[str, tuple] = {}
    for base in node.bases:
        if isinstance(base, ast.Name):
            where = _imported(tree, base.id) or (module, base.id)
            if where[1]:
                out.update(_class_allowed(*where))
    for stmt in node.body:
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else \
            stmt.target if isinstance(stmt, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == ALLOWED_ATTR and isinstance(stmt.value, ast.Dict):
            for key, value in zip(stmt.value.keys, stmt.value.values):
                try:
                    out[ast.literal_eval(key)] = tuple(_constant(module, value))
                except ValueError:
                    raise TypeError(f"{module}:{cls}.{ALLOWED_ATTR}: cannot read {ast.unparse(value)} from source "
                                    "(use a literal tuple, a module-level constant or a dict of names)") from None
    return out


def allowed_values(estimator: str) -> dict[str, tuple]:
    """``{parameter: allowed values}`` that ``"module:Class"`` declares (its ``_allowed`` and its bases'),
    read from source like :func:`signature`, so a value can be refused before any work."""
    module, cls = estimator.split(":")
    return _class_allowed(module, cls)


def _from_class(module: str, cls: str) -> dict[str, Param]:
    import importlib

    estimator = getattr(importlib.import_module(module), cls)
    out = {}
    for name, p in inspect.signature(estimator.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        annotation = p.annotation if isinstance(p.annotation, str) else (
            "" if p.annotation is inspect.Parameter.empty else getattr(p.annotation, "__name__", str(p.annotation)))
        has = p.default is not inspect.Parameter.empty
        out[name] = Param(name, annotation, p.default if has else None, has, repr(p.default) if has else "")
    return out


@functools.lru_cache(maxsize=None)
def signature(estimator: str) -> dict[str, Param]:
    """``{name: Param}`` of ``"module:Class"``'s constructor, read from its source when possible."""
    module, cls = estimator.split(":")
    return _from_source(module, cls) or _from_class(module, cls)


def approach_signature(approach: str | info.ApproachInfo) -> dict[str, Param]:
    ainfo = info.approach(approach) if isinstance(approach, str) else approach
    return signature(ainfo.estimator)


# ------------------------------------------------------------------------------------------ validation
class _Bad(Exception):
    pass


def _scalar_from_text(text: str, kinds: frozenset[str]) -> Any:
    low = text.strip().lower()
    if "any" in kinds:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None if low in _NONE else text
    if "none" in kinds and low in _NONE:
        return None
    if "bool" in kinds and low in _TRUE + _FALSE:
        return low in _TRUE
    if "int" in kinds and _INT.match(text.strip()):
        return int(text)
    if "float" in kinds:
        try:
            return float(text)
        except ValueError:
            pass
    if "seq" in kinds:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                raise _Bad() from None
            if isinstance(value, list):
                return value
            raise _Bad()
        if "str" not in kinds:
            return [part.strip() for part in stripped.split(",") if part.strip()]
    if "dict" in kinds:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        if "str" not in kinds:
            raise _Bad()
    if "str" in kinds:
        return text
    raise _Bad()


def _coerce_item(value: Any, kinds: frozenset[str]) -> Any:
    if "any" in kinds:
        return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value
    return _coerce(value, kinds, frozenset({"any"}))


def _coerce(value: Any, kinds: frozenset[str], item_kinds: frozenset[str]) -> Any:
    """``value`` converted to one of ``kinds`` or :class:`_Bad`."""
    if isinstance(value, str):
        value = _scalar_from_text(value, kinds)
        if isinstance(value, str) or value is None or "any" in kinds:
            return value
    if "any" in kinds:
        return value
    if value is None:
        if "none" in kinds:
            return None
        raise _Bad()
    if isinstance(value, bool):
        if "bool" in kinds:
            return value
        raise _Bad()
    if isinstance(value, int):
        if "int" in kinds:
            return value
        if "float" in kinds:
            return float(value)
        raise _Bad()
    if isinstance(value, float):
        if "float" in kinds:
            return value
        if "int" in kinds and value.is_integer():
            return int(value)
        raise _Bad()
    if isinstance(value, (list, tuple)):
        if "seq" in kinds:
            return [_coerce_item(v, item_kinds) for v in value]
        raise _Bad()
    if isinstance(value, dict):
        if "dict" in kinds:
            return value
        raise _Bad()
    raise _Bad()


def _example(name: str, param: Param | None, ainfo: info.ApproachInfo, task: str | None, option: str = "-p") -> str:
    value = ainfo.params_for(task).get(name, param.default if param is not None else None)
    if value is None and param is not None:
        for kind in ("int", "float", "bool", "str", "seq", "dict"):
            if kind in param.kinds:
                value = _EXAMPLE[kind]
                break
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = json.dumps(list(value), separators=(",", ":"))
    else:
        text = json.dumps(value) if value is not None else "none"
    return f"{option} {name}={text}"


def parse_assignments(items: list[str] | tuple[str, ...], example: str = "-p n_words=300") -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}`` (text values; :func:`validate_params` types them)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-p {item!r} is not KEY=VALUE",
                              fix=f"write e.g. {example} (an approach's parameters: `python -m skinbench list APPROACH`)")
        out[key.strip()] = value
    return out


def validate_params(approach_info: info.ApproachInfo | str, task: str | None,
                    params: dict[str, Any] | None, option: str = "-p") -> dict[str, Any]:
    """User overrides checked against the estimator's signature and converted to its types.

    Returns a new dict (the overrides only, typed). Raises :class:`ConfigError` (one line: the parameter,
    the expected type, an example) for an unknown name or a value of the wrong type. Idempotent, so the
    CLI and the runner may both call it. ``option``: how the user wrote the value (``-p``, or a sweep's
    ``-g`` grid axis), so the message quotes what they typed.
    """
    ainfo = info.approach(approach_info) if isinstance(approach_info, str) else approach_info
    sig = approach_signature(ainfo)
    allowed = allowed_values(ainfo.estimator)
    out: dict[str, Any] = {}
    for name, value in (params or {}).items():
        param = sig.get(name)
        if param is None:
            close = _close_match(name, sig)
            hint = f"did you mean {close}? " if close else ""
            shown = [p for p in sig if p not in ("cache_dir", "random_state")]
            raise ConfigError(f"approach {ainfo.name!r} has no parameter {name!r}",
                              fix=f"{hint}its parameters: {', '.join(shown)} (defaults and registered values: "
                                  f"`python -m skinbench list {ainfo.name}`)")
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        try:
            out[name] = _coerce(value, param.kinds, param.item_kinds)
        except (_Bad, json.JSONDecodeError, TypeError, ValueError):
            raise ConfigError(f"{option} {name}={shown}: parameter {name} of approach {ainfo.name!r} takes "
                              f"{param.describe()}, not {shown!r}",
                              fix=f"e.g. {_example(name, param, ainfo, task, option)}") from None
        choices = allowed.get(name)
        if choices is not None and out[name] not in choices:
            listed = ", ".join("none" if c is None else str(c) for c in choices)
            close = difflib.get_close_matches(str(out[name]), [str(c) for c in choices], n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"{option} {name}={shown}: parameter {name} of approach {ainfo.name!r} takes one of "
                              f"{listed}, not {shown!r}", fix=f"{hint}e.g. {option} {name}={close[0] if close else choices[0]}")
    return out


def _close_match(name: str, sig: dict[str, Param]) -> str | None:
    """The parameter a mistyped or synonymous ``name`` most likely means (None: no close one)."""
    if SYNONYMS.get(name) in sig:
        return SYNONYMS[name]
    close = difflib.get_close_matches(name, list(sig), n=1, cutoff=0.8)
    return close[0] if close else None


def check_names(approaches: Sequence[str], task: str | None, params: Mapping[str, Any],
                option: str = "-p") -> None:
    """Each name in ``params`` must be a parameter of at least one of ``approaches`` (overrides given once
    for several approaches go to those that take them). The first that none takes is the ConfigError
    :func:`validate_params` raises, for the approach with a close name if any (its did-you-mean)."""
    sigs = {a: approach_signature(a) for a in approaches}
    for name, value in params.items():
        if not any(name in sig for sig in sigs.values()):
            near = [a for a, sig in sigs.items() if _close_match(name, sig)]
            validate_params((near or list(approaches))[0], task, {name: value}, option)


def params_for_approaches(approaches: Sequence[str], task: str | None, params: Mapping[str, Any],
                          option: str = "-p") -> dict[str, dict[str, Any]]:
    """``{approach: typed overrides}``: overrides given once for several approaches (``run -a A B -p``,
    a sweep's ``-p``/``-g``), each approach getting those its estimator takes, typed by
    :func:`validate_params`; a name that none takes is an error (:func:`check_names`)."""
    check_names(approaches, task, params, option)
    return {a: validate_params(a, task, {k: v for k, v in params.items() if k in approach_signature(a)}, option)
            for a in approaches}


def split_values(text: str) -> list[str]:
    """A grid axis' values as text: ``1,10`` -> ``["1", "10"]``, ``[1,2],[3]`` -> ``["[1,2]", "[3]"]``:
    split on the commas outside brackets, braces and quotes. Each value is then typed like one ``-p``
    value (:func:`validate_params`), so ``-g`` and ``-p`` read a value the same way."""
    out, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


def describe_approach(approach: str, tasks: tuple[str, ...] | None = None) -> list[tuple[str, ...]]:
    """Rows ``(parameter, type, default, <value per task>..., smoke)`` for ``skinbench list APPROACH``."""
    ainfo = info.approach(approach)
    tasks = tasks or ainfo.tasks
    allowed = allowed_values(ainfo.estimator)
    rows = []
    for name, p in approach_signature(ainfo).items():
        if name in ("cache_dir",):
            continue
        kind = "one of " + ", ".join("none" if c is None else str(c) for c in allowed[name]) if name in allowed \
            else p.describe()
        default = p.default_text if p.has_default else "(required)"
        per_task = []
        for t in tasks:
            value = ainfo.params_for(t)
            per_task.append(_fmt(value[name]) if name in value else "")
        smoke = _fmt(ainfo.smoke_params[name]) if name in ainfo.smoke_params else ""
        rows.append((name, kind, default, *per_task, smoke))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, default=str) if isinstance(value, (list, tuple, dict)) else repr(value)
