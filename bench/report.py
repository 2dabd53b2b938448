"""Writing bench/RESULTS.md: the machine, the versions, and one table per benchmark."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path


@dataclass
class Section:
    """One benchmark's part of the report."""

    title: str
    command: str
    body: list[str] = field(default_factory=list)
    #: Figures other sections compare against (e.g. the engine's best drain rate).
    figures: dict[str, float] = field(default_factory=dict)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.body += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self.body += ["| " + " | ".join(row) + " |" for row in rows]
        self.body.append("")

    def text(self, *lines: str) -> None:
        self.body += [*lines, ""]

    def render(self) -> str:
        return "\n".join([f"## {self.title}", "", f"Command: `{self.command}`", "", *self.body])


def machine() -> list[str]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    memory_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    versions = {name: _version(name) for name in ("asyncpg", "aiokafka", "redis", "minio", "fastapi", "uvicorn")}
    return [
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {os.cpu_count()} cores ({cpu}), {memory_kb / 1024 / 1024:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- PostgreSQL: {_command(['/usr/lib/postgresql/15/bin/postgres', '--version'])}",
    ]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _command(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


def rate(jobs: float, seconds: float) -> str:
    return f"{jobs / seconds:,.0f}"


def share(ratio: float, target: float) -> str:
    """``ratio`` as a percentage: whole, unless rounding would show it on the other side of ``target`` (a
    69.8% printed as 70% beside "missed")."""
    digits = next((d for d in range(3) if (round(ratio, d + 2) >= target) == (ratio >= target)), 3)
    return f"{ratio:.{digits}%}"


def write(path: str, sections: list[Section], preamble: list[str]) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Produced by `make bench` (do not edit by hand).",
        "",
        *machine(),
        "",
        *preamble,
        "",
    ]
    lines += [section.render() for section in sections]
    kept = [block for name in KEPT_BLOCKS if (block := _block(Path(path), name))]  # `make soak` writes its own
    with open(path, "w") as out:
        out.write("\n".join([*lines, *kept]).rstrip() + "\n")


#: Blocks of RESULTS.md written by commands of their own (`make soak`, `python -m bench.console`, `.health`,
#: `.profile`), kept when `make bench` rewrites the file.
KEPT_BLOCKS = ("soak", "console", "health", "profiles")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def _block(path: Path, name: str) -> str | None:
    begin, end = _markers(name)
    text = path.read_text() if path.exists() else ""
    if begin not in text or end not in text:
        return None
    return text[text.index(begin) : text.index(end) + len(end)]


def replace_block(path: Path, name: str, body: str) -> None:
    """Write ``body`` as RESULTS.md's block ``name``, in place of the previous one (or at the end)."""
    begin, end = _markers(name)
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    old = _block(path, name)
    path.write_text(text.replace(old, block) if old else text.rstrip() + "\n\n" + block + "\n")
