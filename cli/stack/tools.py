"""Finding the tools the stack builds and runs with, and installing Debian packages when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conveyor.db.errors import ConfigurationError


class MissingTool(ConfigurationError):
    """A tool the local stack needs is not installed."""


def require(tool: str, *, purpose: str, install_hint: str, search: list[Path] | None = None) -> Path:
    """The path of ``tool`` on PATH (or in ``search``), or a :class:`MissingTool` naming it and how to get it."""
    for directory in search or []:
        candidate = directory / tool
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(tool)
    if found is None:
        raise MissingTool(f"`{tool}` is needed {purpose} but was not found on PATH; {install_hint}")
    return Path(found)


def apt_install(packages: list[str], *, purpose: str) -> None:
    """Install Debian ``packages`` with apt-get (as root); raise :class:`MissingTool` if that is impossible."""
    if shutil.which("apt-get") is None:
        raise MissingTool(f"{', '.join(packages)} needed {purpose}, and `apt` is not available to install them")
    if os.geteuid() != 0:
        raise MissingTool(
            f"{', '.join(packages)} needed {purpose}; install them with "
            f"`sudo apt-get install -y {' '.join(packages)}` (apt needs root)"
        )
    print(f"[stack] installing {' '.join(packages)} with apt-get ...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise MissingTool(f"`{' '.join(argv)}` failed:\n{result.stderr.strip()[-2000:]}")
