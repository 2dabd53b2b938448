"""The settings object: defaults for the local stack, nested env overrides, loud validation, masking."""

from __future__ import annotations

import json

import pytest

from conveyor import settings as settings_module
from conveyor.db.errors import ConfigurationError


def test_defaults_match_the_local_stack() -> None:
    settings = settings_module.load()
    assert settings.postgres.dsn().endswith("@127.0.0.1:15432/conveyor")
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.s3.endpoint == "http://127.0.0.1:19000"
    assert settings.s3.notification_arn == "arn:minio:sqs::PRIMARY:kafka"
    assert "s3:ObjectCreated:*" not in settings.s3.notification_events


def test_nested_sections_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_POSTGRES__PORT", "5544")
    monkeypatch.setenv("CONVEYOR_S3__BUCKETS", '["a", "b"]')
    settings = settings_module.load()
    assert settings.postgres.port == 5544
    assert settings.s3.buckets == ["a", "b"]


def test_invalid_values_name_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_POSTGRES__PORT", "70000")
    monkeypatch.setenv("CONVEYOR_KAFKA__BOOTSTRAP_SERVERS", "no-port-here")
    monkeypatch.setenv("CONVEYOR_S3__ENDPOINT", "ftp://example")
    with pytest.raises(ConfigurationError) as error:
        settings_module.load()
    message = str(error.value)
    assert "CONVEYOR_POSTGRES__PORT" in message and "70000" in message
    assert "CONVEYOR_KAFKA__BOOTSTRAP_SERVERS" in message
    assert "CONVEYOR_S3__ENDPOINT" in message


def test_cross_field_rule_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_POSTGRES__POOL_MIN_SIZE", "20")
    monkeypatch.setenv("CONVEYOR_POSTGRES__POOL_MAX_SIZE", "5")
    with pytest.raises(ConfigurationError, match="pool_min_size must not exceed pool_max_size"):
        settings_module.load()


def test_unknown_section_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="CONVEYOR_NOPE"):
        settings_module.load(nope={"x": 1})


def test_masked_configuration_hides_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_POSTGRES__PASSWORD", "pg-secret-value")
    monkeypatch.setenv("CONVEYOR_API__TOKENS", '["token-one", "token-two"]')
    dumped = json.dumps(settings_module.masked(settings_module.load()))
    for secret in ("pg-secret-value", "token-one", "token-two", "conveyor-secret"):
        assert secret not in dumped
    assert dumped.count(settings_module.MASK) >= 4


def test_config_command_prints_masked_json(capsys: pytest.CaptureFixture[str]) -> None:
    from conveyor.main import main

    assert main(["config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["s3"]["secret_key"] == settings_module.MASK
    assert printed["postgres"]["port"] == 15432


def test_config_command_fails_loudly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from conveyor.main import main

    monkeypatch.setenv("CONVEYOR_WORKER__CONCURRENCY", "0")
    assert main(["config"]) == 2
    assert "CONVEYOR_WORKER__CONCURRENCY" in capsys.readouterr().err
