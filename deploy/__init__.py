"""Deployment files shipped with the package: the local stack's templates, Prometheus and Grafana.

This folder holds no code; it is a package only so ``importlib.resources`` finds it when installed.
"""

from __future__ import annotations
