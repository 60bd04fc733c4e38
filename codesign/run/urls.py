"""Storage URLs without their passwords (no heavy imports: the CLI masks its errors)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?=@)")


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    >>> mask_url("postgresql://me:secret@db:5432/runs")
    'postgresql://me:***@db:5432/runs'
    """
    return _PASSWORD.sub(lambda m: m.group("head") + "***", text)


def without_password(url: str) -> str:
    """The URL with its password removed (``user@host``), for recording on disk."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}"))
