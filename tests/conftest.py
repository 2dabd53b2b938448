"""Fixtures shared by every test tier. The services are the real ones `make test` started."""

from __future__ import annotations

import os

import pytest

from conveyor import settings as settings_module


@pytest.fixture(scope="session")
def settings() -> settings_module.Settings:
    """The settings the stack under test was started with (defaults plus any CONVEYOR_* of the run)."""
    return settings_module.load()


@pytest.fixture(autouse=True)
def _no_stray_settings_in_unit_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    # Unit tests must not depend on the developer's CONVEYOR_* variables.
    if "tests/unit" in str(request.node.path):
        for name in list(os.environ):
            if name.startswith(settings_module.ENV_PREFIX):
                monkeypatch.delenv(name)
