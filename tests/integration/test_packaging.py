"""The package as users install it: one import name, everything it needs at run time inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(ROOT)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    warnings = [line for line in (build.stdout + build.stderr).splitlines() if "Warning:" in line]
    assert warnings == [], "the build warns (a license table, data folders not declared as packages...)"
    (built,) = out.glob("conveyor-*.whl")
    return built


def test_the_wheel_installs_exactly_one_import_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"conveyor"}
    for shipped in ("conveyor/deploy/local/kafka/pom.xml", "conveyor/deploy/prometheus/prometheus.yml",
                    "conveyor/deploy/grafana/dashboards/conveyor.json", "conveyor/db/migrations/0001_job_engine.sql",
                    "conveyor/db/queries/jobs.sql", "conveyor/db/schema.sql", "conveyor/ingest/pipelines.toml",
                    "conveyor/samples/orders.csv", "conveyor/py.typed", "conveyor/api/console/templates/object.html",
                    "conveyor/api/console/static/console.css", "conveyor/api/console/static/console.js"):  # fmt: skip
        assert shipped in names, f"{shipped} is missing from the wheel"


def test_every_package_folder_is_in_the_wheel(wheel: Path) -> None:
    """A new folder of code must be listed in pyproject's packages, or an installed conveyor lacks it."""
    names = set(zipfile.ZipFile(wheel).namelist())
    rooms = {"cli": "conveyor", "api": "conveyor/api", "ingest": "conveyor/ingest", "pipeline": "conveyor/pipeline",
             "db": "conveyor/db"}  # fmt: skip
    for folder, package in rooms.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.relative_to(ROOT / folder).as_posix()
            assert f"{package}/{relative}" in names, f"{folder}/{relative}: add its package to pyproject.toml"


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv outside the checkout with the wheel (and its pinned dependencies) installed."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel)],
                   check=True, cwd=venv)  # fmt: skip
    yield venv


def run_installed(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "PYTHONPATH", "VIRTUAL_ENV"))}
    return subprocess.run(argv, cwd=cwd, env={**env, "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}"},
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_a_fresh_install_outside_the_checkout_runs_the_cli(installed: Path) -> None:
    elsewhere = installed.parent
    assert run_installed(installed, "conveyor", "--help", cwd=elsewhere).returncode == 0
    version = run_installed(installed, "conveyor", "--version", cwd=elsewhere)
    assert version.stdout.strip() == f"conveyor {metadata.version('conveyor')}", "the version is the package's"
    config = run_installed(installed, "conveyor", "config", cwd=elsewhere)
    assert config.returncode == 0, config.stderr
    assert json.loads(config.stdout)["api"]["tokens"] == ["**********"], "secrets stay masked"
    module = run_installed(installed, "python", "-m", "conveyor", "--help", cwd=elsewhere)
    assert module.returncode == 0 and "COMMAND" in module.stdout
    assert "warning" not in (config.stderr + module.stderr).lower(), "an install prints no deprecation warnings"
    rules = run_installed(installed, "conveyor", "pipelines", "check", cwd=elsewhere)
    assert rules.returncode == 0 and rules.stdout.startswith("ok:"), rules.stderr


def test_a_fresh_install_finds_its_run_time_files_and_reaches_the_stack(installed: Path) -> None:
    probe = """
from importlib import resources
from conveyor.stack.service import DEPLOY_LOCAL
from conveyor.db.sql import QUERIES
from conveyor.samples import sample_uploads
assert (DEPLOY_LOCAL / "kafka" / "pom.xml").is_file() and (DEPLOY_LOCAL / "postgres" / "bootstrap.sql").is_file()
assert "site-packages" in str(DEPLOY_LOCAL), DEPLOY_LOCAL
assert "job_claim" in QUERIES and sample_uploads()
print("ok")
"""
    found = run_installed(installed, "python", "-c", probe, cwd=installed.parent)
    assert found.stdout.strip() == "ok", found.stderr
    status = run_installed(installed, "conveyor", "stack", "up", cwd=installed.parent)
    assert status.returncode == 0, status.stderr  # the running stack is recognised as ours and left alone


@pytest.mark.parametrize("where", ["root", "elsewhere"])
def test_python_dash_m_conveyor_works_from_the_checkout_and_from_anywhere(where: str, tmp_path: Path) -> None:
    cwd = ROOT if where == "root" else tmp_path
    result = subprocess.run([sys.executable, "-m", "conveyor", "--help"], cwd=cwd, capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0 and "COMMAND" in result.stdout, result.stderr
