"""The project's colour tables, built from a few anchors each so no plotting library is needed.

- INFERNO: matplotlib's "inferno" (perceptually uniform, readable in grayscale). Error maps (irvis.compare) and
  the study's figures (irvis.analysis.plots) draw with it.
- PALETTES: how a thermal image is shown, as thermal cameras show it: white-hot (the gray data itself: hot is
  white), black-hot (hot is black), ironbow (black through purple, red and orange to white, the classic
  thermography palette) and inferno. A palette only draws: scores and files of data stay gray.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

INFERNO_ANCHORS = [(0.0, (0, 0, 4)), (0.25, (87, 16, 110)), (0.5, (188, 55, 84)), (0.75, (249, 142, 9)),
                   (1.0, (252, 255, 164))]
# Ironbow has no single standard; these anchors follow the common thermography rendering, brighter at every step
IRONBOW_ANCHORS = [(0.0, (0, 0, 0)), (0.15, (30, 0, 110)), (0.35, (135, 0, 155)), (0.55, (215, 45, 90)),
                   (0.72, (245, 120, 10)), (0.88, (255, 200, 30)), (1.0, (255, 255, 235))]


def _table(anchors) -> np.ndarray:
    xs = np.linspace(0.0, 1.0, 256)
    stops = np.array([s for s, _ in anchors])
    colors = np.array([c for _, c in anchors], dtype=np.float64)
    return np.stack([np.interp(xs, stops, colors[:, i]) for i in range(3)], axis=1).round().astype(np.uint8)


INFERNO = _table(INFERNO_ANCHORS)  # (256, 3) uint8: INFERNO[i] is the colour of i / 255

DEFAULT_PALETTE = "white-hot"
# name -> lookup table indexed by the gray level: (256,) stays gray (one channel), (256, 3) is RGB
PALETTES = {
    "white-hot": np.arange(256, dtype=np.uint8),
    "black-hot": np.arange(255, -1, -1, dtype=np.uint8),
    "ironbow": _table(IRONBOW_ANCHORS),
    "inferno": INFERNO,
}


def colorize(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) -> uint8 RGB of shape (..., 3), in inferno."""
    return INFERNO[np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)]


def palette_table(name: str) -> np.ndarray:
    if name not in PALETTES:
        raise ValueError(f"unknown palette {name!r}: choose one of {', '.join(PALETTES)}")
    return PALETTES[name]


def apply_palette(gray: np.ndarray, name: str) -> np.ndarray:
    """An 8-bit infrared image, (H, W) or (H, W, 1) uint8, drawn in a palette: (H, W) for white-hot and
    black-hot, (H, W, 3) RGB for the coloured ones. White-hot returns the values unchanged."""
    if gray.dtype != np.uint8 or not (gray.ndim == 2 or (gray.ndim == 3 and gray.shape[-1] == 1)):
        raise ValueError(f"a palette draws one-channel 8-bit images, got {gray.dtype} of shape {gray.shape}")
    return palette_table(name)[gray.reshape(gray.shape[:2])]


def palette_image(image: Image.Image, name: str) -> Image.Image:
    """A gray PIL image (mode L) drawn in a palette: mode L for white-hot and black-hot, RGB otherwise."""
    if image.mode != "L":
        raise ValueError(f"a palette draws gray (mode L) images, got mode {image.mode}")
    return Image.fromarray(apply_palette(np.asarray(image), name))
