"""The small TOML files codesign reads and writes: settings (``--config``) and spaces (``--space``).

Reading is :mod:`tomllib`'s; a missing file or a syntax error becomes one
line naming the file. Writing covers what those files hold: strings, numbers,
booleans, lists of them, tables and arrays of tables (no dates, no nulls:
``None`` values are left out).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codesign.errors import CodesignError

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """Read a TOML file.

    Args:
        path: The file.
        what: What it is, for messages (``config file``, ``space file``).

    Returns:
        The parsed document.

    Raises:
        CodesignError: In one line, if the file is missing, unreadable or not TOML.
    """
    if not path.exists():
        raise CodesignError(f"{what} {path} does not exist")
    if not path.is_file():
        raise CodesignError(f"{what} {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CodesignError(f"{what} {path} is unreadable ({_one_line(exc)})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CodesignError(f"{what} {path}: TOML syntax error: {_one_line(exc)}") from None


def dumps(doc: Mapping[str, Any], header: str = "") -> str:
    """Write a document as TOML text.

    Args:
        doc: Keys to values: scalars and lists of scalars first, then tables
            (mappings) and arrays of tables (lists of mappings).
        header: Comment lines put first (without the ``#``).

    Returns:
        The text, ending in a newline.
    """
    lines = [f"# {ln}".rstrip() for ln in header.splitlines()]
    lines += _table_lines(doc, prefix="")
    return "\n".join(lines).strip("\n") + "\n"


def _table_lines(doc: Mapping[str, Any], prefix: str) -> list[str]:
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in doc.items():
        if value is None:
            continue
        if isinstance(value, Mapping) or (isinstance(value, list | tuple) and value
                                          and all(isinstance(v, Mapping) for v in value)):
            tables.append((key, value))
            continue
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables:
        name = f"{prefix}{_key(key)}"
        if isinstance(value, Mapping):
            lines += ["", f"[{name}]", *_table_lines(value, f"{name}.")]
        else:
            for item in value:
                lines += ["", f"[[{name}]]", *_table_lines(item, f"{name}.")]
    return lines


def _key(key: str) -> str:
    return key if BARE_KEY.match(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, DEL aside)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
