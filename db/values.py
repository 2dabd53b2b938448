"""What PostgreSQL can store in text and jsonb: no NUL characters, no lone UTF-16 surrogates, no NaN.

JSON has no NaN or Infinity (Python's ``json`` writes them anyway, and jsonb refuses them).
"""

from __future__ import annotations

import math
from typing import Any


def unstorable(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) PostgreSQL would reject, or None when everything is storable."""
    if isinstance(value, str):
        return path or "value" if _bad(value) else None
    if isinstance(value, float):
        return path or "value" if not math.isfinite(value) else None
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


def storable(value: Any) -> Any:
    """``value`` with what PostgreSQL refuses replaced: U+FFFD for NUL, ``?`` for lone surrogates, None for NaN."""
    if isinstance(value, str):
        return _storable_text(value) if _bad(value) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_storable_text(str(k)) if isinstance(k, str) else k: storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def _storable_text(text: str) -> str:
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
