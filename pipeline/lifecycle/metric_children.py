"""A labelled metric's children, looked up once per label values.

prometheus_client's ``labels()`` checks its values and takes a lock on every call: a few microseconds
that the worker paid several times per job (bench/RESULTS.md). A child, once made, is the same object
for the life of the metric, so it can be kept.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


class MetricChildren(Generic[M]):
    """``children("a", "b")`` is ``metric.labels("a", "b")``, made on the first call and kept after it.

    Only for bounded label values (job types, outcomes, route templates): every combination is kept.
    """

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child
