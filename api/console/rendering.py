"""Pages from the templates beside this module, with the filters they format values with, and safe headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).parent
#: Scripts and styles come only from /ui/static (no inline code), pages are never framed, forms post here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """'3 s ago', '5 min ago', '2 h ago', '4 d ago'; '-' for None."""
    if moment is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    return f"{duration(abs(seconds))} {'ago' if seconds >= 0 else 'from now'}"


def duration(seconds: float | None) -> str:
    """A short human duration: '850 ms', '12.4 s', '3 min 20 s', '2 h 5 min', '3 d 4 h'."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    steps = ((86400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s"))
    big, big_name, small, small_name = next(step for step in steps if seconds >= step[0])
    return f"{int(seconds // big)} {big_name} {int(seconds % big // small)} {small_name}"


def took(started: datetime | None, finished: datetime | None) -> str:
    """How long a job ran (so far, when it has not finished)."""
    if started is None:
        return "-"
    return duration(((finished or datetime.now(UTC)) - started).total_seconds())


def size(value: int | None) -> str:
    if value is None:
        return "-"
    amount, units = float(value), ["B", "KiB", "MiB", "GiB", "TiB"]
    while amount >= 1024 and len(units) > 1:
        amount, units = amount / 1024, units[1:]
    return f"{amount:.0f} {units[0]}" if units[0] == "B" else f"{amount:.1f} {units[0]}"


def pretty(value: Any, limit: int = 20_000) -> str:
    """Indented JSON, cut at ``limit`` characters (the job's API page has the whole)."""
    text = json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment() -> Environment:
    environment = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                              trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    environment.filters.update(ago=ago, duration=duration, size=size, pretty=pretty, when=when)
    environment.globals.update(took=took)
    return environment


TEMPLATES = _environment()


def render(request: Request, template: str, *, status_code: int = 200, **values: Any) -> HTMLResponse:
    """``template`` filled with ``values``, the request (for links) and its session (for action controls)."""
    page = TEMPLATES.get_template(template)
    html = page.render(request=request, session=getattr(request.state, "session", None), **values)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
