"""``conveyor stack up | down | status | logs | reset``: the services of the local stack, as one unit.

``up`` is idempotent: a service whose process is ours, alive and answering is left alone. ``down`` stops
only processes whose pid files ``up`` wrote. Readiness is a real request to each server.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.db.errors import ConfigurationError, ServiceUnavailable
from conveyor.stack.kafka import Kafka
from conveyor.stack.minio import MinIO
from conveyor.stack.postgres import Postgres
from conveyor.stack.process import OwnedProcess
from conveyor.stack.prometheus import Prometheus
from conveyor.stack.redis import Redis
from conveyor.stack.service import Service
from conveyor.stack.versitygw import VersityGW

if TYPE_CHECKING:
    from conveyor.settings import Settings

PROBE_INTERVAL_SECONDS = 0.25
PROBE_TIMEOUT_SECONDS = 10.0
LOG_TAIL_LINES = 30


class StackError(ServiceUnavailable):
    """A service of the local stack could not be started."""


@dataclass(frozen=True)
class ServiceStatus:
    """What ``stack status`` reports for one service."""

    name: str
    state: str  # "running", "stopped" or "unhealthy"
    pid: int | None
    endpoint: str
    detail: str = ""


class Stack:
    """The configured services, in start order (the S3 server after Kafka: versitygw needs its topic)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        s3_server: type[Service] = MinIO if settings.stack.s3_server == "minio" else VersityGW
        self.services: list[Service] = [cls(settings) for cls in (Postgres, Redis, Kafka, s3_server, Prometheus)]

    def select(self, names: Iterable[str] = ()) -> list[Service]:
        """The services named (all when none), in start order; unknown names are a configuration error."""
        wanted = set(names)
        known = {service.name for service in self.services}
        if unknown := wanted - known:
            raise ConfigurationError(f"unknown service(s) {sorted(unknown)}; the stack has {sorted(known)}")
        return [service for service in self.services if not wanted or service.name in wanted]

    def process(self, service: Service) -> OwnedProcess:
        return OwnedProcess(service.name, service.paths.run)

    async def up(self, names: Iterable[str] = ()) -> list[str]:
        """Install, prepare, start and wait for the services; return the names this call started."""
        selected = self.select(names)
        for service in selected:
            service.install()
            service.prepare()
        tasks: dict[str, asyncio.Task[bool]] = {}
        for service in selected:
            tasks[service.name] = asyncio.create_task(self._bring_up(service, tasks))
        results = await asyncio.gather(*tasks.values())
        return [name for name, started in zip(tasks, results, strict=True) if started]

    async def _bring_up(self, service: Service, tasks: dict[str, asyncio.Task[bool]]) -> bool:
        for dependency in service_dependencies(service):
            if dependency in tasks:
                await tasks[dependency]
        process = self.process(service)
        started = False
        if process.pid() is None:
            process.start(service.spec())
            started = True
        await self._wait_ready(service, process)
        await service.after_ready()
        return started

    async def _wait_ready(self, service: Service, process: OwnedProcess) -> None:
        deadline = time.monotonic() + self.settings.stack.ready_timeout_seconds
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if process.exited_early():
                raise StackError(f"{service.name} exited during start-up:\n{self.log_tail(service)}")
            try:
                await asyncio.wait_for(service.probe(), PROBE_TIMEOUT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = exc
                await asyncio.sleep(PROBE_INTERVAL_SECONDS)
            else:
                return
        raise StackError(f"{service.name} not ready after the timeout: {last_error!r}\n{self.log_tail(service)}")

    def down(self, names: Iterable[str] = ()) -> list[str]:
        """Stop our processes (reverse start order); return the names stopped."""
        return [s.name for s in reversed(self.select(names)) if self.process(s).stop()]

    async def status(self, names: Iterable[str] = ()) -> list[ServiceStatus]:
        """The truth about each service: is our process alive, and does the server answer a request?"""
        return list(await asyncio.gather(*(self._status(service) for service in self.select(names))))

    async def _status(self, service: Service) -> ServiceStatus:
        pid = self.process(service).pid()
        if pid is None:
            return ServiceStatus(service.name, "stopped", None, service.endpoint())
        try:
            await asyncio.wait_for(service.probe(), PROBE_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - reported, not raised: status must always answer
            return ServiceStatus(service.name, "unhealthy", pid, service.endpoint(), repr(exc)[:200])
        return ServiceStatus(service.name, "running", pid, service.endpoint())

    def reset(self) -> None:
        """Stop everything and delete the state dir (data, queues, logs); the build cache stays."""
        self.down()
        shutil.rmtree(self.settings.stack.state_dir, ignore_errors=True)

    def log_tail(self, service: Service, lines: int = LOG_TAIL_LINES) -> str:
        path = service.paths.log(service.name)
        if not path.exists():
            return f"(no log at {path})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def service_dependencies(service: Service) -> tuple[str, ...]:
    """Services that must be ready before ``service`` starts."""
    return ("kafka",) if isinstance(service, VersityGW) else ()


def format_table(statuses: list[ServiceStatus]) -> str:
    """A fixed-width table of service, state, pid and endpoint."""
    rows = [("SERVICE", "STATE", "PID", "ENDPOINT")]
    rows += [
        (s.name, s.state, str(s.pid or "-"), s.endpoint + (f"  ({s.detail})" if s.detail else "")) for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[3]]) for row in rows
    )
