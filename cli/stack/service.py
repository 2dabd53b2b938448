"""What every service of the local stack provides, and the paths they share."""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from conveyor.stack.process import ProcessSpec

if TYPE_CHECKING:
    from conveyor.settings import Settings

#: deploy/local, shipped as package data: configuration templates and the Kafka POM.
DEPLOY_LOCAL = Path(str(resources.files("conveyor.deploy"))) / "local"


@dataclass(frozen=True)
class StackPaths:
    """Where the stack caches builds (kept across resets and clones) and keeps state (removed by reset)."""

    cache: Path
    state: Path

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def data(self, service: str) -> Path:
        return self.state / service

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"


class Service(abc.ABC):
    """One server of the stack: installed once into the cache, prepared once per state dir, then run."""

    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = StackPaths(settings.stack.cache_dir, settings.stack.state_dir)

    @abc.abstractmethod
    def install(self) -> None:
        """Make the binaries available (apt, Maven, go install); cached, so cheap when already done."""

    def prepare(self) -> None:  # noqa: B027 - most services need no one-time setup
        """Create the data directory and anything it must hold before the first start."""

    @abc.abstractmethod
    def spec(self) -> ProcessSpec:
        """The foreground command that runs the server."""

    @abc.abstractmethod
    async def probe(self) -> None:
        """Make one real request; raise if the server does not answer it correctly."""

    async def after_ready(self) -> None:  # noqa: B027 - optional hook; most services need nothing
        """Work that needs the running server (roles, databases, topics); idempotent."""

    @abc.abstractmethod
    def endpoint(self) -> str:
        """Where clients reach the server."""

    def base_env(self) -> dict[str, str]:
        """A minimal environment for the child: no CONVEYOR_* or proxy settings leak into servers."""
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "JAVA_HOME")
        return {key: os.environ[key] for key in keep if key in os.environ}
