"""Finding a user's HyperModel: ``FILE.py:NAME`` or ``module:NAME``.

:func:`parse_spec` runs in the search process and checks what it can without
running the user's code (which imports TensorFlow): the file exists, parses,
and defines ``NAME`` at top level. :func:`load_build` runs in the evaluation
child: it imports the file and returns the build function.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import os
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codesign.errors import CodesignError

BuildFn = Callable[[Any], Any]
PASSED_BY_NAME = ("num_classes", "input_channels")  # constructor arguments codesign fills in


@dataclass(frozen=True)
class HyperSpec:
    """Where a HyperModel lives.

    Attributes:
        text: What the user wrote (``examples/small_cnn.py:SmallCNN``).
        file: The absolute path of the Python file that defines it.
        module: The module name for ``module:NAME`` (None for a file).
        name: The attribute: a HyperModel class or instance, or a build function.
        cwd: The directory ``module:NAME`` is imported from.
        pickled: A HyperModel instance given to the Python API, pickled (its
            class is found in ``file`` by the child).
    """

    text: str
    file: str
    module: str | None
    name: str
    cwd: str
    pickled: bytes | None = None

    def digest(self) -> str:
        """A digest of the file's contents (a resumed run must search the same space)."""
        h = hashlib.sha256(Path(self.file).read_bytes())
        h.update(self.pickled or b"")
        return h.hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the evaluation child."""
        return {"text": self.text, "file": self.file, "module": self.module,
                "name": self.name, "cwd": self.cwd, "pickled": self.pickled}


def as_spec(hypermodel: Any, cwd: Path | None = None) -> HyperSpec:
    """A spec from ``FILE.py:NAME`` / ``module:NAME``, or from an object (the Python API).

    An object may be a HyperModel class or a build function defined at the top
    level of a file, or a HyperModel instance (pickled; its class must be
    importable from its file). The child loads it from that file, so the search
    process needs nothing of it but its place.

    Raises:
        CodesignError: If the object has no file to be loaded from, or cannot be pickled.
    """
    if isinstance(hypermodel, str):
        return parse_spec(hypermodel, cwd)
    target = hypermodel if inspect.isclass(hypermodel) or inspect.isfunction(hypermodel) \
        else type(hypermodel)
    try:
        file = inspect.getfile(target)
    except TypeError:
        file = ""
    name = getattr(target, "__qualname__", "")
    if not file.endswith(".py") or not name.isidentifier():
        raise CodesignError(f"{hypermodel!r} is not defined at the top level of a Python file; "
                            "define it in one and pass it (or FILE.py:NAME)")
    pickled = None
    if target is not hypermodel:
        try:
            pickled = pickle.dumps(hypermodel)
        except Exception as exc:
            raise CodesignError(f"{type(hypermodel).__name__} cannot be pickled for the "
                                f"evaluation process ({exc}); pass its class instead") from None
    spec = parse_spec(f"{file}:{name}", cwd)
    return HyperSpec(text=f"{Path(file).name}:{name}", file=spec.file, module=None, name=name,
                     cwd=spec.cwd, pickled=pickled)


def parse_spec(text: str, cwd: Path | None = None) -> HyperSpec:
    """Check ``FILE.py:NAME`` or ``module:NAME`` without running the user's code.

    Raises:
        CodesignError: If the form is wrong, the file is missing or does not
            parse, or it defines no ``NAME``.
    """
    base = (cwd or Path.cwd()).resolve()
    target, sep, name = text.rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise CodesignError(f"--hypermodel {text!r}: write FILE.py:NAME or module:NAME "
                            "(NAME a HyperModel class or instance, or a build(hp) function)")
    module = None
    if target.endswith(".py"):
        path = (base / target).resolve()
        if not path.is_file():
            raise CodesignError(f"--hypermodel: {target} does not exist (relative to {base})")
    else:
        module = target
        path = _module_file(target, base)
    source = path.read_text()
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise CodesignError(f"{path}:{exc.lineno}: {exc.msg}; fix the file") from None
    defined = _top_level_names(tree)
    if name not in defined:
        listed = ", ".join(sorted(defined)) or "nothing"
        raise CodesignError(f"{path} defines no {name} at top level (it defines {listed})")
    return HyperSpec(text=text, file=str(path), module=module, name=name, cwd=str(base))


def _module_file(module: str, base: Path) -> Path:
    sys.path.insert(0, str(base))
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise CodesignError(f"--hypermodel: cannot find module {module} ({exc})") from None
    finally:
        sys.path.remove(str(base))
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise CodesignError(f"--hypermodel: no Python module {module} importable from {base}")
    return Path(found.origin)


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


# --- in the evaluation child -------------------------------------------------------------


def load_build(spec: dict[str, Any], num_classes: int, channels: int) -> BuildFn:
    """Import the user's file and return its ``build(hp)``.

    A HyperModel class is instantiated; constructor parameters called
    ``num_classes`` and ``input_channels`` receive the data set's.

    Raises:
        CodesignError: If the import fails or ``NAME`` is neither a HyperModel
            nor a function.
    """
    import keras_tuner as kt

    path = spec["file"]
    where = os.path.basename(path)
    for folder in (spec["cwd"], os.path.dirname(path)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        if spec["module"] is not None:
            module = importlib.import_module(spec["module"])
        else:
            name = "codesign_user_" + Path(path).stem
            mod_spec = importlib.util.spec_from_file_location(name, path)
            assert mod_spec is not None and mod_spec.loader is not None
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)
    except Exception as exc:
        raise CodesignError(f"importing {where} failed: {user_message(exc, path)}") from None
    obj = getattr(module, spec["name"], None)
    if spec.get("pickled"):
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = module  # a class the API's caller defined in its script
        try:
            obj = pickle.loads(spec["pickled"])
        except Exception as exc:
            raise CodesignError(f"{spec['text']}: the HyperModel could not be unpickled "
                                f"({user_message(exc, path)}); pass its class instead") from None
        finally:
            if main is not None:
                sys.modules["__main__"] = main
    if isinstance(obj, kt.HyperModel):
        return obj.build
    if inspect.isclass(obj) and issubclass(obj, kt.HyperModel):
        params = inspect.signature(obj).parameters
        given = {"num_classes": num_classes, "input_channels": channels}
        kwargs = {k: v for k, v in given.items() if k in params}
        try:
            return obj(**kwargs).build
        except Exception as exc:
            raise CodesignError(f"{spec['text']}: creating it failed: "
                                f"{user_message(exc, path)}") from None
    if callable(obj) and not inspect.isclass(obj):
        return obj
    raise CodesignError(f"{spec['text']} is a {type(obj).__name__}; give a keras_tuner.HyperModel "
                        "(class or instance) or a function build(hp) that returns a model")


def user_message(exc: BaseException, path: str) -> str:
    """``Type: message (file:line)``, the line being the last one in the user's file."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)]
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f" ({os.path.basename(path)}:{exc.lineno})"
    elif mine or frames:
        last = (mine or frames)[-1]
        where = f" ({os.path.basename(last.filename)}:{last.lineno})"
    else:
        where = ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"
