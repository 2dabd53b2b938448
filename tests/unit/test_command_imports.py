"""What a conveyor process loads before its command runs: only the API's own command serves HTTP."""

from __future__ import annotations

import subprocess
import sys

#: The HTTP stack: loaded by ``conveyor api`` when it serves, by no other command.
HTTP_STACK = ("fastapi", "starlette", "uvicorn", "conveyor.api.app", "conveyor.commands.serving")


def test_building_the_commands_leaves_the_http_stack_unloaded() -> None:
    """Every command's parser is built at start (``conveyor.main``), so what its modules import, every worker,
    ingestor and CLI verb pays for; the HTTP stack was 0.4 s of CPU of that."""
    probe = f"import sys, conveyor.main; print(','.join(m for m in {HTTP_STACK!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""
