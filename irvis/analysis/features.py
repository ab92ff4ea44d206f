"""Per-pixel quantities of the study: feature maps of a registered pair, and a seeded sample of pixels
from every image (each image weighs the same; a run is reproducible)."""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from scipy import ndimage

from irvis.data import Pair, load_pair
from irvis.images import luminance
from irvis.metrics import oracle_affine

VISIBLE_FEATURES = ("luminance", "red", "green", "blue", "redness", "red_chromaticity", "saturation",
                    "local_contrast", "gradient")
FEATURE_NOTES = {
    "luminance": "ITU-R 601 luma",
    "red": "R", "green": "G", "blue": "B",
    "redness": "R - (G + B) / 2",
    "red_chromaticity": "R / (R + G + B), brightness-free",
    "saturation": "HSV saturation (max - min) / max",
    "local_contrast": "standard deviation of luma in a 7x7 window",
    "gradient": "Sobel gradient magnitude of luma",
}
COLOUR_FEATURES = ("redness", "red_chromaticity", "saturation")  # meaningless on grayscale visible images
GRAY_CHROMA = 8 / 255  # JPEG chroma noise: an image whose channels never differ more is grayscale
MI_BINS = 32  # equal-frequency bins per variable: MI is then invariant to monotone rescaling
EDGE_QUANTILE = 0.9  # a pixel is an edge when its gradient is in its image's top 10%
CONTRAST_WINDOW = 7

# ---------------------------------------------------------------------------------------------------
# Pixels: per-image feature maps, then a seeded sample of pixels from each image


@dataclass
class Pixels:
    """Columns of sampled pixels; `image` indexes `images` (set, name) for every pixel."""
    columns: dict[str, np.ndarray]
    image: np.ndarray
    images: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.columns[key]

    @property
    def sets(self) -> list[str]:
        return sorted({s for s, _ in self.images})

    def of_set(self, set_name: str) -> "Pixels":
        keep_images = [i for i, (s, _) in enumerate(self.images) if s == set_name]
        remap = np.full(len(self.images), -1)
        remap[keep_images] = np.arange(len(keep_images))
        mask = remap[self.image] >= 0
        return Pixels({k: v[mask] for k, v in self.columns.items()}, remap[self.image[mask]],
                      [self.images[i] for i in keep_images])

    @staticmethod
    def concat(parts: Sequence["Pixels"]) -> "Pixels":
        if not parts:
            return Pixels({}, np.zeros(0, dtype=np.int64), [])
        offsets = np.cumsum([0] + [len(p.images) for p in parts[:-1]])
        return Pixels({k: np.concatenate([p.columns[k] for p in parts]) for k in parts[0].columns},
                      np.concatenate([p.image + o for p, o in zip(parts, offsets)]),
                      [im for p in parts for im in p.images])


def _gradient(gray: np.ndarray) -> np.ndarray:
    # irvis.metrics.gradient_magnitude (the same kernels and border; a test holds them equal) kept in float64
    # for the study's statistics; Sobel's kernels weigh 8 pixels: dividing by 8 gives intensity change per pixel
    return np.hypot(ndimage.sobel(gray, axis=0), ndimage.sobel(gray, axis=1)) / 8


def _edges(grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edge map, edge map dilated by one pixel): registration is good, not pixel-perfect."""
    edge = grad >= np.quantile(grad, EDGE_QUANTILE)
    return edge, ndimage.maximum_filter(edge, size=3)


def feature_maps(ir: torch.Tensor, vis: torch.Tensor) -> dict[str, np.ndarray]:
    """Every per-pixel quantity of the study for one registered pair, as (H, W) arrays.

    ir (1, H, W) and vis (3, H, W) in [0, 1], as irvis.data.load_pair returns them."""
    lum_t = luminance(vis)
    r, g, b = vis.numpy().astype(np.float64)
    lum = lum_t[0].numpy().astype(np.float64)
    infrared = ir[0].numpy().astype(np.float64)
    top, bottom = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    local_mean = ndimage.uniform_filter(lum, CONTRAST_WINDOW)
    local_var = ndimage.uniform_filter(lum * lum, CONTRAST_WINDOW) - local_mean ** 2
    maps = {
        "infrared": infrared, "luminance": lum, "red": r, "green": g, "blue": b,
        "redness": r - (g + b) / 2,
        "red_chromaticity": np.divide(r, r + g + b, out=np.full_like(r, 1 / 3), where=(r + g + b) > 1e-6),
        "saturation": np.divide(top - bottom, top, out=np.zeros_like(top), where=top > 1e-6),
        "local_contrast": np.sqrt(np.clip(local_var, 0, None)),
        "gradient": _gradient(lum),
        "ir_gradient": _gradient(infrared),
        # the per-image affine oracle in both directions (least squares on the image, sees the truth)
        "oracle_ir": oracle_affine(vis, ir)[0, 0].numpy().astype(np.float64),
    }
    oracle_rgb = oracle_affine(ir, vis)[0].numpy().astype(np.float64)
    maps.update({f"oracle_{c}": oracle_rgb[i] for i, c in enumerate(("red", "green", "blue"))})
    maps["gray_image"] = np.full(r.shape, (top - bottom).max() <= GRAY_CHROMA)
    maps["vis_edge"], maps["vis_edge_near"] = _edges(maps["gradient"])
    maps["ir_edge"], maps["ir_edge_near"] = _edges(maps["ir_gradient"])
    return maps


def _pixel_seed(seed: int, pair: Pair) -> int:
    # by name, not position: adding a set or a file never changes another image's sample
    return zlib.crc32(f"{seed}/{pair.set_name}/{pair.name}".encode())


def sample_pair(pair: Pair, short_side: int | None, pixels_per_image: int, seed: int) -> Pixels:
    ir, vis = load_pair(pair, short_side=short_side)
    maps = feature_maps(ir, vis)
    n_total = maps["infrared"].size
    rng = np.random.default_rng(_pixel_seed(seed, pair))
    idx = rng.choice(n_total, size=min(pixels_per_image, n_total), replace=False)
    idx.sort()
    columns = {k: (v.reshape(-1)[idx] if v.dtype == bool else v.reshape(-1)[idx].astype(np.float32))
               for k, v in maps.items()}
    return Pixels(columns, np.zeros(len(idx), dtype=np.int64), [(pair.set_name, pair.name)])


def collect_pixels(pairs: Sequence[Pair], short_side: int | None = 256, pixels_per_image: int = 4096,
                   seed: int = 0, progress: bool = True, desc: str = "pixels") -> Pixels:
    """Sample every pair (in parallel; the result does not depend on scheduling)."""
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        jobs = pool.map(lambda p: sample_pair(p, short_side, pixels_per_image, seed), pairs)
        parts = list(tqdm(jobs, total=len(pairs), desc=desc, disable=not progress))
    return Pixels.concat(parts)
