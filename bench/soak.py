"""`make soak`: mixed uploads through `conveyor run` for a long while (30 minutes by default), with faults.

Uploads arrive at a steady pace (CSV, JSON lines, PNG, zip, binary). Every few minutes a fault: a worker
or the ingestor SIGKILLed, Redis or Kafka restarted. Every 10 s the resident memory and open files of
every conveyor process, and PostgreSQL's connections, are sampled. At the end every upload must be
processed, exactly once, and the samples are plotted to bench/soak.png and summarised: the figure is the
drift between the first and the last tenth of the run, which flat resources keep near zero.

Run it outside CI: ``make soak`` (``SOAK_MINUTES=5 make soak`` for a short one).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench import report
from conveyor import settings as settings_module
from conveyor.db.connection import connect
from conveyor.db.sql import QUERIES
from conveyor.samples import png, zip_of
from tests.conftest import stack
from tests.e2e.system import System, running_system

OUT = Path(__file__).parent
SAMPLE_SECONDS = 10.0


@dataclass
class Samples:
    at: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    open_files: list[int] = field(default_factory=list)
    pg_connections: list[int] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)


def conveyor_pids(system: System) -> list[int]:
    return sorted({*system.pids("ingest"), *system.pids("worker"), *system.pids("api"), system.process.pid})


def rss_and_files(pids: list[int]) -> tuple[float, int]:
    rss = files = 0
    for pid in pids:
        try:
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            files += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue  # it exited between listing and reading (a fault, or the autoscaler)
    return rss / (1 << 20), files


async def pg_connections(system: System) -> int:
    conn = await connect(system.settings.postgres)
    try:
        count: int = await conn.fetchval(QUERIES["connections_of_database"])
    finally:
        await conn.close()
    return count


def upload(i: int, rng: random.Random) -> tuple[str, bytes]:
    kind = i % 5
    if kind == 0:
        return f"soak/{i:06d}.csv", b"id,v\n" + b"".join(b"%d,%d\n" % (n, n) for n in range(rng.randint(1, 200)))
    if kind == 1:
        return f"soak/{i:06d}.jsonl", b"".join(b'{"n": %d}\n' % n for n in range(rng.randint(1, 50)))
    if kind == 2:
        return f"soak/{i:06d}.png", png(rng.randint(1, 8), rng.randint(1, 8))
    if kind == 3:
        return f"soak/{i:06d}.zip", zip_of({"a.txt": os.urandom(rng.randint(0, 500))})
    return f"soak/{i:06d}.bin", os.urandom(rng.randint(0, 64 << 10))


def fault(system: System, rng: random.Random) -> str:
    choice = rng.choice(["worker", "ingest", "redis", "kafka"])
    if choice in {"worker", "ingest"}:
        pids = system.pids(choice)[-1:]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return f"SIGKILL {choice}"
    stack("down", choice)
    time.sleep(3)
    stack("up", choice)
    return f"restart {choice}"


def soak(system: System, minutes: float, rate_per_second: float = 5.0) -> tuple[Samples, dict[str, bytes], list[str]]:
    rng, samples, uploaded, faults = random.Random(42), Samples(), {}, []
    stop = threading.Event()
    started = time.monotonic()

    def uploader() -> None:
        i = 0
        while not stop.is_set():
            key, data = upload(i, rng)
            system.upload(key, data)
            uploaded[key] = data
            i += 1
            time.sleep(1 / rate_per_second)

    thread = threading.Thread(target=uploader, daemon=True)
    thread.start()
    next_fault = started + 120
    while (elapsed := time.monotonic() - started) < minutes * 60:
        pids = conveyor_pids(system)
        rss, files = rss_and_files(pids)
        samples.at.append(elapsed / 60)
        samples.rss_mib.append(rss)
        samples.open_files.append(files)
        samples.pg_connections.append(asyncio.run(pg_connections(system)))
        samples.processes.append(len(pids))
        if time.monotonic() >= next_fault and elapsed < minutes * 60 - 120:
            faults.append(f"{elapsed / 60:.1f} min: {fault(system, rng)}")
            next_fault = time.monotonic() + rng.uniform(120, 240)
        time.sleep(SAMPLE_SECONDS)
    stop.set()
    thread.join()
    return samples, uploaded, faults


def drift(values: list[float]) -> tuple[float, float]:
    """Medians of the first and the last tenth of the run (after one minute of warm-up)."""
    tenth = max(1, len(values) // 10)
    warm = values[min(6, len(values) - 1) :] or values
    return statistics.median(warm[:tenth]), statistics.median(warm[-tenth:])


def plot(samples: Samples, path: Path) -> None:
    figure, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for ax, values, label in zip(axes, (samples.rss_mib, samples.open_files, samples.pg_connections),
                                 ("RSS of all conveyor processes (MiB)", "open files", "PostgreSQL connections"),
                                 strict=True):  # fmt: skip
        ax.plot(samples.at, values)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("minutes")
    figure.suptitle("make soak: mixed uploads with faults")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    settings = settings_module.load()
    with tempfile.TemporaryDirectory() as tmp, running_system(settings, Path(tmp)) as system:
        samples, uploaded, faults = soak(system, minutes)
        jobs = system.wait_until_settled(set(uploaded), within=600)
    mine = [j for j in jobs if str(j.source_key).startswith("soak/")]
    per_event = Counter((j.source_key, j.object_event_id, j.step) for j in mine)
    lost = set(uploaded) - {str(j.source_key) for j in mine}
    statuses = Counter(j.status.value for j in mine)
    plot(samples, OUT / "soak.png")
    lines = [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Command: `SOAK_MINUTES={minutes:g} make soak`.",
        f"{len(uploaded)} uploads over {minutes:g} minutes ({len(mine)} jobs): {len(lost)} lost, "
        f"{sum(n - 1 for n in per_event.values())} duplicated, statuses {dict(statuses)}.",
        f"Faults: {'; '.join(faults) or 'none'}.", "", *report.machine(), "",
        "Each figure is a drift: the median of the run's last tenth over its first (after a minute of warm-up);"
        " flat is 1.", "",
        "| resource | first tenth (median) | last tenth (median) | last / first |", "|---|---|---|---|",
    ]  # fmt: skip
    for name, values in (("RSS, all conveyor processes (MiB)", samples.rss_mib),
                         ("open files, all conveyor processes", samples.open_files),
                         ("PostgreSQL connections", samples.pg_connections)):  # fmt: skip
        first, last = drift([float(v) for v in values])
        ratio = f"{last / first:.2f}" if first else "-"
        lines.append(f"| {name} | {first:.0f} | {last:.0f} | {ratio} |")
    lines += ["", "![soak](soak.png)"]
    report.replace_block(OUT / "RESULTS.md", "soak", "## Soak (`make soak`)\n\n" + "\n".join(lines))
    print("\n".join(lines))
    if lost or any(n > 1 for n in per_event.values()):
        raise SystemExit("the soak lost or duplicated uploads")


if __name__ == "__main__":
    main()
