"""Synthetic probe images: what the translator checks a reduced-precision fast path on (irvis.translate), and the
deterministic input of the benchmarks and the model cards' timings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The probe at these exposures (gain, offset on [0, 1]): as drawn (mean 0.48), dark (0.17: below LLVIP's darkest
# thermal frames, 0.22-0.34, where trained whole-frame levels raise their gain; two such ir2vis generators drifted to
# 30-32 dB in bf16 there, one of them at 52.9 dB on the probe as drawn) and bright (0.79).
PROBE_EXPOSURES = ((1.0, 0.0), (0.35, 0.0), (0.4, 0.6))


def probe_image(channels: int, size: tuple[int, int] = (128, 160), seed: int = 0, multiple: int = 1) -> torch.Tensor:
    """A deterministic image with smooth regions, edges and fine texture, in [0, 1]: (1, C, H, W), sides rounded up to `multiple`."""
    size, g = tuple(-(-s // multiple) * multiple for s in size), torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(1, channels, 5, 6, generator=g), size=size, mode="bicubic", align_corners=False)
    edges = (torch.rand(1, channels, 8, 10, generator=g) > 0.5).float()
    edges = F.interpolate(edges, size=size, mode="nearest")
    return (0.6 * coarse + 0.3 * edges + 0.1 * torch.rand(1, channels, *size, generator=g)).clamp(0, 1)


def probe_exposures(channels: int, multiple: int = 1) -> torch.Tensor:
    """The probe image at each of PROBE_EXPOSURES: (len(PROBE_EXPOSURES), C, H, W)."""
    probe = probe_image(channels, multiple=multiple)
    return torch.cat([probe * gain + offset for gain, offset in PROBE_EXPOSURES])
