"""deploy/: Prometheus configs and alert rules pass promtool; the dashboard is built, and asks only for our metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from conveyor.api.cluster_metrics import ClusterMetrics
from conveyor.deploy.grafana import dashboard
from conveyor.ingest.metrics import IngestMetrics, ReconcileMetrics
from conveyor.pipeline.worker.autoscale import AutoscaleMetrics
from conveyor.pipeline.worker.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\b((?:conveyor|minio)_[a-z0-9_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# The HTTP metrics are registered by the API app itself (tests/integration checks them live).
HTTP = {"conveyor_http_requests_total", "conveyor_http_request_duration_seconds"}
MINIO = {"minio_notify_events_skipped_total", "minio_notify_target_queue_length", "minio_notify_target_failed_events"}


def _promtool() -> str:
    """promtool, which `conveyor stack up` installs with Prometheus: missing, these tests fail rather than skip."""
    found = shutil.which("promtool")
    assert found is not None, "promtool is missing: `conveyor stack up` installs it (Debian's prometheus package)"
    return found


def exported() -> set[str]:
    registry = CollectorRegistry()
    IngestMetrics(registry), ReconcileMetrics(registry), WorkerMetrics(registry), ClusterMetrics(registry)
    AutoscaleMetrics(registry)
    names = set()
    for family in registry.collect():
        suffixes = {"counter": ("_total",), "histogram": HISTOGRAM_SUFFIXES}.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names | HTTP | {f"{h}{s}" for h in HTTP for s in HISTOGRAM_SUFFIXES} | MINIO


def queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/conveyor.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus/rules/conveyor.rules.yml").read_text())
    return exprs + [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_prometheus_configs_pass_promtool(config: str) -> None:
    result = subprocess.run([_promtool(), "check", "config", config], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    rules = DEPLOY / "prometheus/rules"
    for argv in (["check", "rules", "conveyor.rules.yml"], ["test", "rules", "conveyor.rules.test.yml"]):
        result = subprocess.run([_promtool(), *argv], cwd=rules, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_and_a_runbook() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus/rules/conveyor.rules.yml").read_text())
    tests = yaml.safe_load((DEPLOY / "prometheus/rules/conveyor.rules.test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in alerts} == tested
    headings = {
        line.lstrip("#").strip().lower().replace(" ", "")
        for line in (DEPLOY.parent / "docs/operations.md").read_text().splitlines()
        if line.startswith("### ")
    }
    for rule in alerts:
        assert rule["annotations"]["runbook"].split("#")[1] in headings, f"{rule['alert']} has no runbook section"


def test_the_dashboard_is_valid_and_asks_only_for_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/conveyor.json").read_text())
    assert dashboard["uid"] == "conveyor" and dashboard["panels"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    known = exported()
    unknown = {name for expr in queries() for name in METRIC.findall(expr)} - known
    assert unknown == set(), f"queried but never exported: {sorted(unknown)}"


def test_the_committed_dashboard_is_what_its_builder_builds() -> None:
    assert (DEPLOY / "grafana/dashboards/conveyor.json").read_text() == dashboard.render(), (
        "deploy/grafana/dashboards/conveyor.json is stale: run python -m conveyor.deploy.grafana.dashboard"
    )


def test_one_dashboard_serves_every_deployment_through_its_variables() -> None:
    built = dashboard.dashboard()
    assert [v["name"] for v in built["templating"]["list"]] == ["datasource", "namespace", "instance", "job_type"]
    for panel in built["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            for name, labels in re.findall(r"\b(conveyor_[a-z0-9_]+)\{([^}]*)\}", target["expr"]):
                assert 'namespace=~"$namespace", instance=~"$instance"' in labels, target["expr"]
                assert ('job_type=~"$job_type"' in labels) == (name in dashboard.TYPED_METRICS), target["expr"]
            assert not re.search(r"\bconveyor_[a-z0-9_]+(?![a-z0-9_{])", target["expr"]), "a series left unscoped"


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/conveyor.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["uid"] == "prometheus"


def test_every_metric_is_documented_in_the_readme() -> None:
    readme = (DEPLOY.parent / "README.md").read_text()
    registry = CollectorRegistry()
    IngestMetrics(registry), ReconcileMetrics(registry), WorkerMetrics(registry), ClusterMetrics(registry)
    AutoscaleMetrics(registry)
    names = {family.name + ("_total" if family.type == "counter" else "") for family in registry.collect()}
    undocumented = {name for name in names | HTTP if f"`{name}`" not in readme}
    assert undocumented == set()
