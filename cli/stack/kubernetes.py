"""The tools that prove the Helm chart without a cluster: helm, and the schemas of the custom resources it renders.

helm is built once from the Go module proxy (like MinIO); the CRDs come from the Go modules of KEDA and the
Prometheus operator, at pinned versions. Both are cached beside the stack's other builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor.stack.gobuild import go_install, go_mod_download
from conveyor.stack.settings import StackSettings

HELM_PACKAGE = "helm.sh/helm/v4/cmd/helm"
KEDA_MODULE = "github.com/kedacore/keda/v2"
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"


@dataclass(frozen=True)
class KubernetesTools:
    helm: Path
    #: Every CustomResourceDefinition file the chart's custom resources are validated against.
    crd_files: list[Path]


def install_kubernetes_tools(settings: StackSettings) -> KubernetesTools:
    """Build or find helm and the CRD files (cached: only the first call on a machine takes minutes)."""
    cache = settings.cache_dir
    helm = go_install(package=HELM_PACKAGE, version=settings.helm_version, binary="helm", cache=cache)
    keda = go_mod_download(module=KEDA_MODULE, version=settings.keda_version, cache=cache)
    operator = go_mod_download(
        module=PROMETHEUS_OPERATOR_MODULE, version=settings.prometheus_operator_version, cache=cache
    )
    crds = sorted((keda / "config" / "crd" / "bases").glob("keda.sh_*.yaml"))
    crds += sorted((operator / "example" / "prometheus-operator-crd").glob("monitoring.coreos.com_*.yaml"))
    return KubernetesTools(helm=helm, crd_files=crds)
