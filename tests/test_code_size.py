"""The size rule of docs/architecture.md and ../shared/STYLE.md, checked on every module of keeneye/.

* A module over 600 lines says why in its docstring, with the words "on purpose" (e.g. a converter's
  table of ops, the settings table); any other module that grows past it is split.
* A function's body is at most 80 lines. The body is counted from its first statement after the
  docstring: a Typer command's signature is its option table (one parameter per option, each with its
  help), read as declarations rather than code, so it is not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import keeneye

ROOT = Path(keeneye.__file__).parent
MAX_MODULE_LINES = 600
MAX_BODY_LINES = 80


def _modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0]
    if (
        len(body) > 1
        and isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        first = body[1]
    end = node.end_lineno if node.end_lineno is not None else node.lineno
    return end - first.lineno + 1


def test_long_modules_say_why() -> None:
    unexplained = []
    for path in _modules():
        text = path.read_text()
        lines = text.count("\n") + 1
        if lines <= MAX_MODULE_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "on purpose" not in doc:
            unexplained.append(f"{path.relative_to(ROOT.parent)}: {lines} lines")
    assert not unexplained, f"modules over {MAX_MODULE_LINES} lines without a written reason: {unexplained}"


def test_functions_are_short() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = _body_lines(node)
                if n > MAX_BODY_LINES:
                    long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}: {n} lines")
    assert not long, f"function bodies over {MAX_BODY_LINES} lines: {long}"


def test_the_rule_counts_bodies_only() -> None:
    """The counting itself: a 90-line body is long; a docstring and signature are not counted."""
    source = "def f(\n    a: int,\n) -> None:\n    '''doc\n\n    more'''\n" + "    x = 1\n" * 90
    (func,) = ast.parse(source).body
    assert isinstance(func, ast.FunctionDef) and _body_lines(func) == 90
