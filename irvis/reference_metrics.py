"""The metrics as torchmetrics computes them: irvis.metrics before its fast path, kept as the reference that
the fast path is tested against (tests/test_metrics.py, on real pairs) and timed against (`python -m irvis
bench`, section "scoring"). Same conventions (irvis.metrics.PROTOCOL); each truth's statistics are computed
again for every prediction, with 2-D convolutions. dtype=torch.float64 gives the exact numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure, visual_information_fidelity

from irvis.images import luminance
from irvis.metrics import PSNR_CAP_DB, VIF_MIN_SIDE, Truth, psnr

def _batched(x: torch.Tensor) -> torch.Tensor:
    return x[None] if x.dim() == 3 else x


def _luma(x: torch.Tensor) -> torch.Tensor:  # in x's dtype
    return x if x.shape[-3] == 1 else luminance(x)


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def ssim(pred: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    pred, target = _batched(pred).to(dtype), _batched(target).to(dtype)
    side = min(pred.shape[-2:])
    kernel = min(11, side if side % 2 else side - 1)
    return structural_similarity_index_measure(
        pred, target, data_range=1.0, kernel_size=kernel, sigma=1.5 * kernel / 11, reduction="none"
    )


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    y = F.pad(_luma(x), (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(y, torch.stack([_SOBEL_X, _SOBEL_X.T])[:, None].to(y))
    return g.pow(2).sum(dim=1, keepdim=True).sqrt()


def sharpness(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    gp, gt = gradient_magnitude(pred).mean(dim=(1, 2, 3)), gradient_magnitude(target).mean(dim=(1, 2, 3))
    return torch.where(gt > 1e-8, gp / gt.clamp_min(1e-8), torch.full_like(gt, float("nan")))


def gradient_correlation(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    gp, gt = gradient_magnitude(pred).flatten(1), gradient_magnitude(target).flatten(1)
    gp, gt = gp - gp.mean(dim=1, keepdim=True), gt - gt.mean(dim=1, keepdim=True)
    denom = gp.norm(dim=1) * gt.norm(dim=1)
    return torch.where(denom > 1e-12, (gp * gt).sum(dim=1) / denom.clamp_min(1e-12), torch.zeros_like(denom))


def vif(pred: torch.Tensor, target: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    p, t = _luma(pred.to(dtype)) * 255, _luma(target.to(dtype)) * 255
    if min(p.shape[-2:]) < VIF_MIN_SIDE:
        return torch.full((p.shape[0],), float("nan"))
    return visual_information_fidelity(p, t, reduction="none").reshape(-1)


def score(pred: torch.Tensor, target: torch.Tensor | Truth, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """irvis.metrics.score of every metric, the reference way."""
    target = target.image if isinstance(target, Truth) else target
    pred, target = _batched(pred).to(dtype), _batched(target).to(dtype)
    return {"psnr": psnr(pred, target), "ssim": ssim(pred, target, dtype), "sharpness": sharpness(pred, target),
            "gradient_correlation": gradient_correlation(pred, target), "vif": vif(pred, target, dtype)}


def score_image(pred: torch.Tensor, target: torch.Tensor | Truth, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """irvis.metrics.score_image, the reference way."""
    m = {k: float(v[0]) for k, v in score(pred, target, dtype).items()}
    m["psnr"] = min(m["psnr"], PSNR_CAP_DB)
    return {k: v for k, v in m.items() if v == v}
