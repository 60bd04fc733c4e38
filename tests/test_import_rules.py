"""The architecture's rules, read from the source (AST): imports, parameter counts, one loop."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "codesign"
HEAVY = ("tensorflow", "tf_keras", "keras", "keras_tuner")
# What the search process runs: the command line and the search (its functions' own imports
# are followed too); the evaluation child's handlers are imported by name, in the child.
SEARCH_ENTRIES = ("codesign.cli", "codesign._api", "codesign.engine.job",
                  "codesign.engine.builtin", "codesign.hyper.search", "codesign.compress.search")
SEARCH_PROCESS = ("codesign.cli", "codesign._api", "codesign.preflight", "codesign.engine",
                  "codesign.hyper.search", "codesign.hyper.cli", "codesign.hyper.space",
                  "codesign.compress.search", "codesign.compress.cli",
                  "codesign.compress.settings", "codesign.compress.space")
MAX_PARAMETERS = 8
MAX_LINES = 500
LOOP_MODULE = "codesign/engine/trials.py"


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in PACKAGE.rglob("*.py")}


def _imported(module: str, lazy: bool) -> list[str]:
    """Modules ``module`` imports: at its top level, and inside functions if ``lazy``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[str] = []

    def names(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        return [base, *(f"{base}.{a.name}" for a in node.names)]

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom) and (top or lazy):
                found.extend(names(child))
            visit(child, top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(path.read_text()), True)
    return found


def reachable(starts: Iterable[str], lazy_in: tuple[str, ...]) -> dict[str, str]:
    """Every module importing ``starts`` imports, with the module that imported it first.

    Imports inside functions are followed in modules named by ``lazy_in``.
    """
    via: dict[str, str] = {}
    stack, seen = list(starts), set()
    while stack:
        module = stack.pop()
        if module in seen:
            continue
        seen.add(module)
        if module not in MODULES:
            continue
        for name in _imported(module, module.startswith(lazy_in)):
            parts = name.split(".")
            for k in range(1, len(parts) + 1):  # importing a.b.c imports a and a.b
                parent = ".".join(parts[:k])
                if parent not in seen:
                    via.setdefault(parent, module)
                    stack.append(parent)
    return {m: via.get(m, "") for m in seen}


def _chains(found: dict[str, str], bad: tuple[str, ...]) -> list[str]:
    """How each module of ``bad`` (or under it) was reached, as ``module <- importer <- ...``."""
    chains = []
    for module in sorted(m for m in found if m in bad or m.startswith(tuple(f"{b}." for b in bad))):
        chain = [module]
        while found.get(chain[-1]):
            chain.append(found[chain[-1]])
        chains.append(" <- ".join(chain))
    return chains


def _heavy(found: dict[str, str]) -> list[str]:
    return _chains(found, HEAVY)


def test_the_search_process_never_imports_tensorflow_or_keras_tuner() -> None:
    found = reachable(SEARCH_ENTRIES, SEARCH_PROCESS)
    assert "codesign.engine.trials" in found and "codesign.hyper.space" in found
    assert "codesign.compress.space" in found and "codesign.compress.settings" in found
    assert _heavy(found) == []
    assert _chains(found, ("codesign.nn", "codesign.tflite.convert", "codesign.child.builtin",
                           "codesign.hyper.evaluate", "codesign.compress.source",
                           "codesign.models")) == []


def test_the_checker_sees_a_heavy_import() -> None:
    """The same reading of the evaluation child's handlers finds TensorFlow."""
    found = reachable(["codesign.child.builtin", "codesign.hyper.evaluate"],
                      ("codesign.child", "codesign.hyper"))
    heavy = _heavy(found)
    assert any(c.startswith("tensorflow") for c in heavy)
    assert any(c.startswith("keras_tuner") for c in heavy)


@pytest.mark.parametrize(("package", "forbidden"), [
    ("codesign.report", ("codesign.engine",)),
    ("codesign.run", ("codesign.engine", "codesign.child")),
    ("codesign.space", ("codesign.nn",)),
    ("codesign.hardware", ("codesign.engine", "codesign.nn")),
    ("codesign.child.server", ("codesign.hyper", "codesign.compress", "codesign.nn",
                               "codesign.engine", "codesign.ramcheck")),
    ("codesign.child.source", ("codesign.hyper", "codesign.compress", "codesign.nn",
                               "codesign.engine", "codesign.ramcheck")),
])
def test_packages_keep_to_their_side(package: str, forbidden: tuple[str, ...]) -> None:
    starts = [m for m in MODULES if m == package or m.startswith(package + ".")]
    assert starts
    found = reachable(starts, (package,))
    assert _chains(found, forbidden) == []


def _functions() -> Iterable[tuple[Path, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path, node


def test_no_function_takes_more_than_eight_parameters() -> None:
    over = []
    for path, fn in _functions():
        a = fn.args
        names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
        if names and names[0] in ("self", "cls"):
            names = names[1:]
        count = len(names) + (a.vararg is not None) + (a.kwarg is not None)
        if count > MAX_PARAMETERS:
            over.append(f"{path.relative_to(PACKAGE.parent)}:{fn.lineno} {fn.name} ({count})")
    assert over == []


def test_only_the_loop_asks_and_tells_the_study() -> None:
    callers = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("ask", "tell")
                    and ast.unparse(node.func.value).endswith("study")):
                callers.add(str(path.relative_to(PACKAGE.parent)))
    assert callers == {LOOP_MODULE}


def test_no_module_is_over_five_hundred_lines() -> None:
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_package_ships_in_the_wheel() -> None:
    """pyproject.toml lists packages explicitly: a new sub-package must be in that list."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "codesign").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml's packages: {sorted(found - listed)}"
