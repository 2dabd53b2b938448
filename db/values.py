"""What PostgreSQL can store in text and jsonb: no NUL characters, no lone UTF-16 surrogates."""

from __future__ import annotations

from typing import Any


def unstorable(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) PostgreSQL would reject, or None when everything is storable."""
    if isinstance(value, str):
        return path or "value" if _bad(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _bad(key):
                return (path or "value") + " (a key)"
            if (found := unstorable(item, where)) is not None:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := unstorable(item, f"{path}[{index}]")) is not None:
                return found
    return None


def _bad(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
