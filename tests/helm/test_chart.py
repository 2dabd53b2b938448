"""The Helm chart: it lints, renders valid objects for each values file, and hands conveyor settings it accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.helm.chart import CHART, LARGE, VALUES, Manifest, helm, of_kind, render, validate

DEPLOY = CHART.parents[1]


@pytest.mark.parametrize("name", VALUES)
def test_the_chart_lints_strictly(name: str) -> None:
    values = VALUES[name]
    result = helm("lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", VALUES)
def test_every_rendered_object_is_valid_against_its_schema(name: str) -> None:
    manifests = render(VALUES[name])
    assert {"Deployment", "ConfigMap", "Service"} <= {m["kind"] for m in manifests}
    for manifest in manifests:
        validate(manifest)


def test_the_validation_catches_a_misspelt_field() -> None:
    manifests = render(VALUES["default"])
    (scaled, *_) = of_kind(manifests, "ScaledObject")
    scaled["spec"]["maxReplicas"] = 3  # KEDA's field is maxReplicaCount
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        validate(scaled)
    (deployment, *_) = of_kind(manifests, "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


@pytest.mark.parametrize("name", VALUES)
def test_each_process_gets_settings_conveyor_accepts(name: str, tmp_path: Path) -> None:
    manifests = render(VALUES[name])
    config = {m["metadata"]["name"]: m["data"] for m in of_kind(manifests, "ConfigMap")}
    checked = 0
    for workload in of_kind(manifests, "Deployment") + of_kind(manifests, "Job"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            env = container_env(container, config, tmp_path)
            effective = conveyor(env, "config")
            assert effective["api"]["tokens"] == ["**********"] and effective["postgres"]["password"] == "**********"
            command = container["command"]
            assert command[0] == "conveyor"
            conveyor(env, *command[1:], "--help", json_out=False)  # the subcommand exists
            if "CONVEYOR_INGEST__PIPELINES_FILE" in env:
                conveyor(env, "pipelines", "check", json_out=False)
            checked += 1
    assert checked >= 4


def container_env(container: dict[str, Any], config: dict[str, dict[str, str]], tmp: Path) -> dict[str, str]:
    """The environment Kubernetes would give ``container``: its ConfigMaps, its values, made-up secrets."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config[source["configMapRef"]["name"]])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:  # a secret: a made-up value of the shape the Secret must hold
            env[variable["name"]] = made_up_secret(variable["name"])
    if "CONVEYOR_INGEST__PIPELINES_FILE" in env:  # where the chart mounts its pipelines ConfigMap
        (pipelines,) = [data["pipelines.toml"] for data in config.values() if "pipelines.toml" in data]
        (tmp / "pipelines.toml").write_text(pipelines)
        env["CONVEYOR_INGEST__PIPELINES_FILE"] = str(tmp / "pipelines.toml")
    return env


def made_up_secret(name: str) -> str:
    if name.endswith("TOKENS"):
        return '["token-from-a-secret"]'  # a JSON list of tokens
    if name == "CONVEYOR_REDIS__URL":
        return "redis://:pw@redis:6379/0"
    return f"secret-{name.lower()}"


def conveyor(env: dict[str, str], *args: str, json_out: bool = True) -> Any:
    """Run the conveyor CLI with exactly ``env`` as its CONVEYOR_ settings; it must exit 0."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    result = subprocess.run([sys.executable, "-m", "conveyor", *args], env={**clean, **env},
                            capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert result.returncode == 0, f"conveyor {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout) if json_out else result.stdout


def test_the_worker_settings_of_each_group_are_its_own() -> None:
    manifests = render(VALUES["large"])
    groups = yaml.safe_load(LARGE.read_text())["workers"]["groups"]
    for group in groups:
        (deployment,) = [m for m in of_kind(manifests, "Deployment") if m["metadata"]["name"].endswith(group["name"])]
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert json.loads(env["CONVEYOR_WORKER__JOB_TYPES"]) == group["jobTypes"]
        assert env["CONVEYOR_WORKER__CONCURRENCY"] == str(group["concurrency"])


@pytest.mark.parametrize("name", VALUES)
def test_a_worker_pod_outlives_its_shutdown_grace_and_probes_its_own_loops(name: str) -> None:
    manifests = render(VALUES[name])
    (config,) = [m["data"] for m in of_kind(manifests, "ConfigMap") if "CONVEYOR_POSTGRES__HOST" in m["data"]]
    grace = float(config["CONVEYOR_WORKER__SHUTDOWN_GRACE_SECONDS"])
    for deployment in of_kind(manifests, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        if container["command"] == ["conveyor", "worker"]:
            assert pod["terminationGracePeriodSeconds"] >= grace + 10
        live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
        assert live["path"] == "/health/live"
        assert ready["path"] == ("/health" if container["command"] == ["conveyor", "api"] else "/health/ready")
        assert {live["port"], ready["port"]} <= {port["name"] for port in container["ports"]}


def test_ingest_never_scales_beyond_the_partitions() -> None:
    (scaled,) = [
        m for m in of_kind(render(VALUES["large"]), "ScaledObject") if m["spec"]["triggers"][0]["type"] == "kafka"
    ]
    large = yaml.safe_load(LARGE.read_text())
    assert scaled["spec"]["maxReplicaCount"] <= large["kafka"]["partitions"]
    result = helm("template", "release", str(CHART), "--set", "kafka.partitions=2")
    assert result.returncode != 0 and "exceeds kafka.partitions" in result.stderr


def test_a_job_type_that_would_break_the_query_is_refused() -> None:
    group = "workers.groups[0]"
    sets = [f"{group}.name=x", f"{group}.jobTypes[0]=a'b", f"{group}.autoscaling.enabled=true"]
    result = helm("template", "release", str(CHART), *(part for pair in sets for part in ("--set", pair)))
    assert result.returncode != 0 and "is not a job type name" in result.stderr


def test_the_alert_rules_and_the_dashboard_are_the_committed_files() -> None:
    manifests = render(VALUES["large"])
    (rule,) = of_kind(manifests, "PrometheusRule")
    rules = yaml.safe_load((DEPLOY / "prometheus/rules/conveyor.rules.yml").read_text())
    assert rule["spec"]["groups"] == rules["groups"]
    (board,) = [m for m in of_kind(manifests, "ConfigMap") if "conveyor.json" in m.get("data", {})]
    assert board["data"]["conveyor.json"] == (DEPLOY / "grafana/dashboards/conveyor.json").read_text()
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_hook_jobs_carry_the_same_settings_as_the_processes() -> None:
    manifests: list[Manifest] = render(VALUES["small"])
    (config,) = [m["data"] for m in of_kind(manifests, "ConfigMap") if "CONVEYOR_POSTGRES__HOST" in m["data"]]
    jobs = {m["metadata"]["name"]: m for m in of_kind(manifests, "Job")}
    assert set(jobs) == {"release-conveyor-migrate", "release-conveyor-bootstrap"}
    for job in jobs.values():
        (container,) = job["spec"]["template"]["spec"]["containers"]
        inline = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        assert inline == config
    assert jobs["release-conveyor-migrate"]["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
