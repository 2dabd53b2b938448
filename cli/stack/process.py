"""Processes the stack owns: started detached, remembered by pid file, stopped only by that pid.

A pid file records the pid with the process's start time and executable; a pid whose identity no longer
matches (the process died and the number was reused) is not ours and is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one service in the foreground."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    user: str | None = None
    #: What asks the server to shut down cleanly (PostgreSQL's SIGTERM would wait for every client).
    stop_signal: signal.Signals = signal.SIGTERM


class OwnedProcess:
    """One long-running process of the stack, identified by ``<run_dir>/<name>.pid``."""

    def __init__(self, name: str, run_dir: Path) -> None:
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"

    def start(self, spec: ProcessSpec) -> int:
        """Spawn ``spec`` in its own session (so our Ctrl-C doesn't reach it) and record its pid."""
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with spec.log.open("ab") as log:
            child = subprocess.Popen(
                spec.argv,
                env=spec.env,
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=spec.user,
            )
        record = {"pid": child.pid, "identity": _identity(child.pid), "stop_signal": spec.stop_signal.name}
        self.pid_file.write_text(json.dumps(record))
        # Reap it the moment it exits: a crashed server left a zombie that still "held" its pid (PostgreSQL's
        # lock file then refused every restart until the starting process, e.g. `conveyor run`, ended).
        threading.Thread(target=child.wait, name=f"reap-{self.name}", daemon=True).start()
        return child.pid

    def pid(self) -> int | None:
        """The pid of our process if it is alive, else None (a stale pid file is removed)."""
        record = self._record()
        if record is None:
            return None
        pid = int(record["pid"])
        if record.get("identity") is not None and _identity(pid) == record["identity"]:
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def _record(self) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return record

    def exited_early(self) -> bool:
        """Whether the process we started has died (used while waiting for readiness)."""
        return self.pid() is None

    def stop(self, timeout: float = 30.0) -> bool:
        """Signal our process group to stop, SIGKILL after ``timeout``; True if something was stopped."""
        pid, record = self.pid(), self._record()
        if pid is None or record is None:
            return False
        _signal_group(pid, signal.Signals[record.get("stop_signal", "SIGTERM")])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _identity(pid) is not None:
            _reap(pid)
            time.sleep(0.1)
        if _identity(pid) is not None:
            _signal_group(pid, signal.SIGKILL)
            while _identity(pid) is not None:
                _reap(pid)
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True


def _identity(pid: int) -> list[str] | None:
    """``[start time in clock ticks since boot, executable]`` of a live, non-zombie process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return None
        # Field 22 of stat (starttime); fields[0] here is field 3 (state).
        return [fields[19], os.readlink(f"/proc/{pid}/exe")]
    except (OSError, IndexError):
        return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The process leads its own session (start_new_session), so its group id is its pid: signalling the
    # group also reaches any helper it forked, and nothing of anyone else's.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # When the stack was started by this very process, the child must be reaped or it lingers as a zombie.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
