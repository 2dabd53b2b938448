"""compose.yaml cannot run here (no Docker), so it is checked against the settings it must agree with."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from conveyor import settings as settings_module
from conveyor.stack.minio import MinIO
from conveyor.stack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


@pytest.fixture
def conveyor_env(compose: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = compose["x-conveyor-env"]
    return env


@pytest.fixture
def compose_settings(conveyor_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> settings_module.Settings:
    for name, value in conveyor_env.items():
        monkeypatch.setenv(name, value)
    return settings_module.load()


def test_conveyor_environment_is_valid_settings(compose_settings: settings_module.Settings) -> None:
    assert compose_settings.postgres.host == "postgres"


def test_minio_publishes_where_conveyor_reads(
    compose: dict[str, Any], compose_settings: settings_module.Settings
) -> None:
    minio = compose["services"]["minio"]["environment"]
    assert minio["MINIO_ROOT_USER"] == compose_settings.s3.access_key
    assert minio["MINIO_ROOT_PASSWORD"] == compose_settings.s3.secret_key.get_secret_value()
    assert minio["MINIO_NOTIFY_KAFKA_TOPIC_PRIMARY"] == compose_settings.kafka.events_topic
    assert minio["MINIO_NOTIFY_KAFKA_BROKERS_PRIMARY"] == compose_settings.kafka.bootstrap_servers
    assert compose_settings.s3.notification_arn == "arn:minio:sqs::PRIMARY:kafka"


def test_compose_runs_minio_in_the_native_stacks_delivery_mode(compose: dict[str, Any]) -> None:
    """The default mode in both: no queue dir and asynchronous events (the reconciler fills the gaps)."""
    minio = compose["services"]["minio"]["environment"]
    native = MinIO(settings_module.Settings()).spec().env
    for variable in ("MINIO_API_SYNC_EVENTS", "MINIO_NOTIFY_KAFKA_QUEUE_DIR_PRIMARY"):
        assert (variable in minio) is (variable in native) is False


def test_postgres_credentials_match(compose: dict[str, Any], compose_settings: settings_module.Settings) -> None:
    postgres = compose["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_USER"] == compose_settings.postgres.user
    assert postgres["POSTGRES_PASSWORD"] == compose_settings.postgres.password.get_secret_value()
    assert postgres["POSTGRES_DB"] == compose_settings.postgres.database


def test_host_ports_are_the_native_stack_defaults(compose: dict[str, Any]) -> None:
    defaults = settings_module.load()
    expected = {
        "postgres": defaults.postgres.port,
        "redis": urlsplit(defaults.redis.url).port,
        "kafka": int(defaults.kafka.bootstrap_servers.rpartition(":")[2]),
        "minio": urlsplit(defaults.s3.endpoint).port,
    }
    for service, port in expected.items():
        published = [int(p.split(":")[1]) for p in compose["services"][service]["ports"]]
        assert port in published, f"{service} should publish host port {port}"


def test_every_service_has_a_healthcheck_or_is_one_shot(compose: dict[str, Any]) -> None:
    for name in ("postgres", "redis", "kafka", "minio"):
        assert "healthcheck" in compose["services"][name], name


def test_mounted_files_and_builds_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()
    prometheus = compose["services"]["prometheus"]["command"][0].split("=", 1)[1]
    assert (ROOT / "deploy/prometheus" / Path(prometheus).name).exists()


def test_conveyor_processes_run_as_users_run_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["ingest"]["command"][:2] == ["conveyor", "ingest"]
    assert services["worker"]["command"][:2] == ["conveyor", "worker"] and services["worker"]["deploy"]["replicas"] >= 2
    assert services["api"]["command"][:2] == ["conveyor", "api"]
    for name in ("ingest", "worker", "api", "setup"):
        assert services[name]["environment"] == compose["x-conveyor-env"], name


def test_the_queued_mode_is_a_setting_of_the_native_stack() -> None:
    queued = settings_module.Settings(stack=StackSettings(minio_queue_dir=True, minio_sync_events=True))
    env = MinIO(queued).spec().env
    assert env["MINIO_API_SYNC_EVENTS"] == "on" and env["MINIO_NOTIFY_KAFKA_QUEUE_DIR_PRIMARY"].endswith("queue")
