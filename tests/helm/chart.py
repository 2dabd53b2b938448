"""Rendering the Helm chart with the project's own helm, and validating what it renders, offline.

Built-in kinds are checked against the Kubernetes API schemas kubernetes-validate ships (strict: an unknown
field fails). Custom resources (KEDA, the Prometheus operator) are checked against their CRDs' schemas, made
strict the same way: a field the CRD does not declare fails, where a cluster would silently drop it.
"""

from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from conveyor import settings as settings_module
from conveyor.stack.kubernetes import KubernetesTools, install_kubernetes_tools

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "conveyor"
KUBERNETES_VERSION = "1.37.0"
#: The values files the chart is proven with: its defaults, and the two of ci/.
SMALL, LARGE = CHART / "ci/small-values.yaml", CHART / "ci/large-values.yaml"
VALUES: dict[str, Path | None] = {"default": None, "small": SMALL, "large": LARGE}

Manifest = dict[str, Any]


@cache
def tools() -> KubernetesTools:
    return install_kubernetes_tools(settings_module.load().stack)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools().helm), *args], capture_output=True, text=True, check=False, timeout=120)


def render(values: Path | None, *sets: str) -> list[Manifest]:
    """Every object ``helm template`` renders with ``values`` (and ``--set`` pairs); fails loudly on an error."""
    args = ["template", "release", str(CHART), *(["-f", str(values)] if values else [])]
    result = helm(*args, *(part for pair in sets for part in ("--set", pair)))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


class _CrdLoader(yaml.SafeLoader):
    """YAML 1.1's ``=`` (the "value" tag) appears as a plain string in the Prometheus operator's enums."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


@dataclass(frozen=True)
class CustomKind:
    group: str
    version: str
    kind: str


@cache
def custom_schemas() -> dict[CustomKind, dict[str, Any]]:
    """The strict openAPIV3Schema of every version of every CRD the project fetched."""
    schemas = {}
    for path in tools().crd_files:
        crd = yaml.load(path.read_text(), Loader=_CrdLoader)
        for version in crd["spec"]["versions"]:
            kind = CustomKind(crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"])
            schemas[kind] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every object that lists its properties closed to others (as a cluster's pruning would)."""
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):  # fmt: skip
                node["additionalProperties"] = False
            for child in node.values():
                close(child)
        elif isinstance(node, list):
            for child in node:
                close(child)

    close(schema)
    properties = schema.setdefault("properties", {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties["metadata"] = {"type": "object"}  # checked below as ObjectMeta would be by the API server
    return schema


def validate(manifest: Manifest) -> None:
    """Raise if ``manifest`` is not a valid object of its kind (built-in or one of the fetched CRDs)."""
    group, _, version = manifest["apiVersion"].rpartition("/")
    custom = CustomKind(group, version, manifest["kind"])
    if custom in custom_schemas():
        # Not jsonschema.validate: that checks the schema first, and CRD patterns are Go regexps, not Python ones.
        jsonschema.Draft7Validator(custom_schemas()[custom]).validate(manifest)
        assert set(manifest["metadata"]) <= {"name", "namespace", "labels", "annotations"}, manifest["metadata"]
        return
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
