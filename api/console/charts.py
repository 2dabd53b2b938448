"""Small SVG charts drawn on the server: no charting library, no script, nothing fetched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 300, 60, 2


@dataclass(frozen=True)
class Sparkline:
    """A line over ``values`` in a WIDTH by HEIGHT box, with the area under it and its peak."""

    line: str
    area: str
    peak: float
    latest: float


def sparkline(values: Sequence[float]) -> Sparkline:
    """Points for an SVG polyline and polygon; the highest value touches the top, zero the bottom."""
    peak = max(values, default=0.0)
    scale = (HEIGHT - 2 * PAD) / peak if peak > 0 else 0.0
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    points = [(PAD + i * step, HEIGHT - PAD - v * scale) for i, v in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    area = f"{PAD},{HEIGHT - PAD} {line} {PAD + (len(values) - 1) * step:.1f},{HEIGHT - PAD}" if points else ""
    return Sparkline(line=line, area=area, peak=peak, latest=values[-1] if values else 0.0)


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    #: The bar's width in the chart's units (0..100).
    width: float


def bars(values: dict[str, int]) -> list[Bar]:
    """Horizontal bars scaled to the largest value."""
    top = max(values.values(), default=0)
    return [Bar(label, value, 100 * value / top if top else 0.0) for label, value in values.items()]
