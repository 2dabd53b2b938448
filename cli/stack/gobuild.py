"""``go install`` of a pinned module version into the stack's cache, with visible progress."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conveyor.stack.tools import MissingTool, require

PROGRESS_EVERY_SECONDS = 10.0


def go_install(*, package: str, version: str, binary: str, cache: Path) -> Path:
    """Build ``package@version`` once; return the cached binary. Module and build caches live in ``cache``."""
    target = cache / "bin" / f"{binary}-{version}" / binary
    if target.exists():
        return target
    go = require("go", purpose=f"to build {binary}", install_hint="install Go >= 1.24 (https://go.dev/dl)")
    staging = target.parent.with_name(target.parent.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    env = {
        **os.environ,
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
        "GOMODCACHE": str(cache / "go" / "mod"),
        "GOCACHE": str(cache / "go" / "build"),
        "GOBIN": str(staging),
        "GOFLAGS": "-buildvcs=false",
    }
    argv = [str(go), "install", "-v", "-trimpath", "-ldflags", "-s -w", f"{package}@{version}"]
    _run_with_progress(argv, env, label=f"building {binary} {version} (first time only, minutes)")
    staging.rename(target.parent)
    return target


def _run_with_progress(argv: list[str], env: dict[str, str], *, label: str) -> None:
    """Run ``argv``, printing a line with the count of packages compiled every few seconds."""
    print(f"[stack] {label} ...", file=sys.stderr, flush=True)
    started = last = time.monotonic()
    compiled, tail = 0, list[str]()
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            compiled += 1
            tail = [*tail[-30:], line.rstrip()]
            if time.monotonic() - last >= PROGRESS_EVERY_SECONDS:
                last = time.monotonic()
                print(f"[stack]   {compiled} packages, {last - started:.0f}s", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        raise MissingTool(f"`{' '.join(argv)}` failed:\n" + "\n".join(tail))
    print(
        f"[stack]   done: {compiled} packages in {time.monotonic() - started:.0f}s",
        file=sys.stderr,
        flush=True,
    )


def go_mod_download(*, module: str, version: str, cache: Path) -> Path:
    """Download the source of ``module@version`` once (into the stack's module cache); return its directory."""
    target = cache / "go" / "mod" / f"{module}@{version}"
    if target.is_dir():
        return target
    go = require("go", purpose=f"to download {module}", install_hint="install Go >= 1.24 (https://go.dev/dl)")
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOMODCACHE": str(cache / "go" / "mod"), "GOFLAGS": "-modcacherw"}
    argv = [str(go), "mod", "download", "-json", f"{module}@{version}"]
    print(f"[stack] downloading {module} {version} (first time only) ...", file=sys.stderr, flush=True)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not target.is_dir():
        raise MissingTool(f"`{' '.join(argv)}` failed:\n{(result.stdout + result.stderr).strip()[-2000:]}")
    return target
