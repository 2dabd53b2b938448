"""Cluster maintenance: rescuing jobs of lost workers, retention, and the leader that runs them."""

from __future__ import annotations
