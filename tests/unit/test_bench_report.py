"""bench/report: a ratio printed beside its target never reads as the other side of it."""

from __future__ import annotations

import pytest

from bench import report


@pytest.mark.parametrize(
    ("ratio", "target", "printed"),
    [(0.698, 0.7, "69.8%"), (0.7, 0.7, "70%"), (0.702, 0.7, "70%"), (0.85, 0.7, "85%"), (0.4996, 0.5, "49.96%"),
     (0.37, 0.5, "37%")],
)  # fmt: skip
def test_a_ratio_is_whole_unless_rounding_would_cross_its_target(ratio: float, target: float, printed: str) -> None:
    assert report.share(ratio, target) == printed
