"""A private PostgreSQL 15 cluster: Debian's binaries, our data dir, loopback only."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from conveyor.db import admin
from conveyor.stack.process import ProcessSpec
from conveyor.stack.service import DEPLOY_LOCAL, Service
from conveyor.stack.tools import apt_install

PG_MAJOR = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
#: PostgreSQL refuses to run as root; a root-run stack runs it as Debian's `postgres` user.
SERVICE_USER = "postgres"
SUPERUSER = "postgres"
SCRIPTS = DEPLOY_LOCAL / "postgres"

# Durability off: the test suite commits thousands of transactions; benchmarks turn it back on.
FAST_UNSAFE = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]


class Postgres(Service):
    """PostgreSQL with a superuser reachable over the stack's own unix socket, and conveyor's role over TCP."""

    name = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.paths.data("postgres") / "data"

    @property
    def socket_dir(self) -> Path:
        return self.paths.data("postgres") / "socket"

    def install(self) -> None:
        if not (PG_BIN / "postgres").exists():
            apt_install([f"postgresql-{PG_MAJOR}"], purpose="to run PostgreSQL")

    def _user(self) -> str | None:
        return SERVICE_USER if os.geteuid() == 0 else None

    def _chown(self, path: Path) -> None:
        if (user := self._user()) is not None:
            record = pwd.getpwnam(user)
            os.chown(path, record.pw_uid, record.pw_gid)

    def prepare(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        for directory in (self.paths.data("postgres"), self.socket_dir):
            directory.mkdir(parents=True, exist_ok=True)
            self._chown(directory)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "-E", "UTF8", "--locale=C",
             "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
            user=self._user(), check=True, capture_output=True, env=self.base_env(),
        )  # fmt: skip

    def spec(self) -> ProcessSpec:
        port = str(self.settings.postgres.port)
        argv = [str(PG_BIN / "postgres"), "-D", str(self.data_dir), "-p", port, "-k", str(self.socket_dir),
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
                "-c", "shared_buffers=256MB"]  # fmt: skip
        if self.settings.stack.postgres_fast_unsafe:
            argv += FAST_UNSAFE
        # SIGINT is PostgreSQL's "fast" shutdown: SIGTERM ("smart") would wait for every client to leave.
        return ProcessSpec(argv, self.base_env(), self.paths.data("postgres"), self.paths.log("postgres"),
                           self._user(), stop_signal=signal.SIGINT)  # fmt: skip

    async def probe(self) -> None:
        # Over the unix socket as the superuser: conveyor's role may not exist yet on the first start.
        self._psql(SCRIPTS / "ping.sql")

    async def after_ready(self) -> None:
        """Create conveyor's login role and database once, then prove conveyor itself can log in."""
        pg = self.settings.postgres
        variables = {"user": pg.user, "password": pg.password.get_secret_value(), "database": pg.database}
        self._psql(SCRIPTS / "bootstrap.sql", variables)
        await admin.check_login(pg)

    def _psql(self, script: Path, variables: dict[str, str] | None = None) -> str:
        argv = [str(PG_BIN / "psql"), "-h", str(self.socket_dir), "-p", str(self.settings.postgres.port),
                "-U", SUPERUSER, "-d", "postgres", "-tAX", "-v", "ON_ERROR_STOP=1", "-f", str(script)]  # fmt: skip
        for name, value in (variables or {}).items():
            argv += ["-v", f"{name}={value}"]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, env=self.base_env())
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip() or f"psql exited {result.returncode}")
        return result.stdout

    def endpoint(self) -> str:
        pg = self.settings.postgres
        return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
