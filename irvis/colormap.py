"""The project's one colormap: matplotlib's "inferno" (perceptually uniform, readable in grayscale) from
five of its anchors, interpolated to a 256-entry table so no plotting library is needed. Error maps
(irvis.compare) and the study's figures (irvis.analysis.plots) both draw with it."""

from __future__ import annotations

import numpy as np

INFERNO_ANCHORS = [(0.0, (0, 0, 4)), (0.25, (87, 16, 110)), (0.5, (188, 55, 84)), (0.75, (249, 142, 9)),
                   (1.0, (252, 255, 164))]


def _table() -> np.ndarray:
    xs = np.linspace(0.0, 1.0, 256)
    stops = np.array([s for s, _ in INFERNO_ANCHORS])
    colors = np.array([c for _, c in INFERNO_ANCHORS], dtype=np.float64)
    return np.stack([np.interp(xs, stops, colors[:, i]) for i in range(3)], axis=1).round().astype(np.uint8)


INFERNO = _table()  # (256, 3) uint8: INFERNO[i] is the colour of i / 255


def colorize(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) -> uint8 RGB of shape (..., 3)."""
    return INFERNO[np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)]
