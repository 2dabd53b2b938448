"""The browser the console's tests drive: Debian's chromium, launched by Playwright (which downloads none)."""

from __future__ import annotations

import shutil
from pathlib import Path

from conveyor.stack.tools import apt_install, require

#: The browser, and fonts that keep its screenshots readable.
PACKAGES = ["chromium", "fonts-dejavu-core"]


def install_browser() -> Path:
    """The path of ``chromium``, installed with apt-get when it is missing."""
    if shutil.which("chromium") is None:
        apt_install(PACKAGES, purpose="to test the operator's console in a real browser")
    return require("chromium", purpose="to test the console", install_hint=f"apt-get install {' '.join(PACKAGES)}")
