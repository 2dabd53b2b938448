"""Running the peer queues' scripts in their own virtualenv and collecting their JSON lines."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from conveyor.pipeline.engine.settings import RedisSettings

PEERS = Path(__file__).parent / "peers"
#: One virtualenv per peer (their Redis client pins conflict): .venv-bench/<peer>, made by `make bench`.
VENVS = PEERS.parents[1] / ".venv-bench"


@dataclass(frozen=True)
class PeerFigure:
    peer: str
    variant: str
    jobs: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


def run_all(postgres_dsn: str, redis: RedisSettings, jobs: int) -> list[PeerFigure]:
    """Procrastinate on PostgreSQL, Celery and arq on Redis, each draining ``jobs`` no-op jobs."""
    url = urlsplit(redis.url)
    host, port = url.hostname or "127.0.0.1", str(url.port or 6379)
    commands = {
        "procrastinate": ["procrastinate_bench.py", postgres_dsn, str(jobs)],
        "celery": ["celery_bench.py", str(jobs)],
        "arq": ["arq_bench.py", host, port, str(jobs)],
    }
    figures = []
    for peer, (script, *args) in commands.items():
        env = {"BENCH_CELERY_BROKER": f"redis://{host}:{port}/4", "PATH": "/usr/bin:/bin"}
        python = VENVS / peer / "bin" / "python"
        result = subprocess.run([str(python), script, *args], cwd=PEERS, env=env, capture_output=True, text=True,
                                check=False, timeout=1800)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"peer benchmark {script} failed:\n{result.stderr[-3000:]}")
        figures += [PeerFigure(**json.loads(line)) for line in result.stdout.splitlines() if line.startswith("{")]
    return figures
