"""The generator's pixel losses, one registry: each entry is a name, a default weight, a function of (prediction,
truth) and the words that name it. The trainer's --NAME-weight flag, the generator's weighted sum and its logged
loss/NAME, the start banner, the model card's objective and publish's ablation columns are all read from LOSSES,
so a new loss is one entry here. The adversarial term is not among them: it needs the discriminator
(train.objective)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from irvis.metrics import centred_gradients, gaussian_window, gradient_magnitude


@dataclass(frozen=True)
class Loss:
    name: str  # the flag --NAME-weight, the setting NAME_weight, the logged loss/NAME
    default: float  # its weight unless the flag sets one (0: off)
    function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (prediction, truth) in [0, 1] -> a scalar
    help: str  # what it is and when to use it: the flag's help
    label: str  # its name in the start banner
    card: str  # its words in the model card's objective, with {weight}
    column: str | None = None  # its column in publish's recipe ablations, where the shipped runs vary it
    scale: float = 1.0  # the sum takes weight x scale x the function's value


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred.float(), target.float())


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, c1: float = 0.01**2, c2: float = 0.03**2) -> torch.Tensor:
    """1 - SSIM with the metric's Gaussian window (11, sigma 1.5) and constants: torchmetrics' SSIM map averaged
    over the valid region (torchmetrics also averages a reflected border, which a loss has no use for). The
    window is separable, so two 1-D passes replace torchmetrics' 11x11 one, 4-5x cheaper on a CPU, where a 2-D
    SSIM on RGB crops cost more than the generator's own backward pass."""
    x, y = pred.float(), target.float()
    c = x.shape[1]
    g = torch.tensor(gaussian_window(11, 1.5), dtype=torch.float32, device=x.device)  # SSIM's window, made there
    rows, cols = g.view(1, 1, 1, -1).repeat(5 * c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(5 * c, 1, 1, 1)
    with torch.autocast(x.device.type, enabled=False):  # variances are differences of moments: bf16 loses them
        moments = F.conv2d(F.conv2d(torch.cat([x, y, x * x, y * y, x * y], dim=1), rows, groups=5 * c), cols,
                           groups=5 * c)
    mx, my, exx, eyy, exy = moments.chunk(5, dim=1)
    vx, vy, cov = exx - mx.pow(2), eyy - my.pow(2), exy - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx.pow(2) + my.pow(2) + c1) * (vx + vy + c2))
    return 1 - ssim_map.mean()


def edge_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |(|grad pred| - |grad truth|)|: Sobel gradient magnitudes of the lumas, compared without their
    sign. Between modalities the sign of an edge depends on the scene (a pedestrian is darker than the street
    in visible, brighter in thermal) while its place does not, so a pixel loss alone is lowest for a blur
    that averages both signs to nothing; this term is lowest for an edge of the right strength in the right
    place, whichever its sign, and is blind to each frame's overall level."""
    with torch.autocast(pred.device.type, enabled=False):  # the metric's own Sobel magnitudes, in float32
        return (gradient_magnitude(pred, eps=1e-6) - gradient_magnitude(target, eps=1e-6)).abs().mean()


def texture_loss(pred: torch.Tensor, target: torch.Tensor, cell: int = 8) -> torch.Tensor:
    """Mean |local edge energy of pred - of truth|: the Sobel gradient magnitudes averaged over cell x cell
    blocks. Where the exact place of fine structure cannot be known from the other modality (ground, foliage,
    a crowd at night), every per-pixel loss, the edge loss included, is lowest for a blur; this one asks each
    block for the right amount of structure wherever it lies inside the block."""
    with torch.autocast(pred.device.type, enabled=False):
        gp, gt = gradient_magnitude(pred, eps=1e-6), gradient_magnitude(target, eps=1e-6)
        return (F.avg_pool2d(gp, cell) - F.avg_pool2d(gt, cell)).abs().mean()


def gradient_correlation_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - the per-crop Pearson correlation of the Sobel gradient-magnitude maps (the evaluation's gradient
    correlation, made differentiable): where the edges are, blind to their strength and sign. The edge and texture
    losses ask for the right amount of edge, which a hallucinated edge in the wrong place can supply; this asks
    for the place. A flat crop (either side) adds nothing."""
    with torch.autocast(pred.device.type, enabled=False):
        (gp, gp_norm), (gt, gt_norm) = (centred_gradients(gradient_magnitude(x, eps=1e-6)) for x in (pred, target))
        denom = gp_norm * gt_norm
        valid = denom > 1e-6
        corr = (gp * gt).sum(dim=1)[valid] / denom[valid]
        return (1 - corr).sum() / pred.shape[0]


# In the order the banner and the card name them.
LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    # Pix2Pix's weight 100 is for L1 on images in [-1, 1], twice our [0, 1] difference
    Loss("l1", 100.0, l1_loss, "weight of the L1 loss (measured on the [-1, 1] scale, as Pix2Pix)", "L1",
         "L1 (weight {weight})", scale=2.0),
    Loss("ssim", 0.0, ssim_loss, "weight of an SSIM loss, 1 - SSIM(prediction, truth) (0: off); SSIM rewards flat "
         "where the truth is flat, which L1 alone learns slowly", "SSIM", "SSIM loss (weight {weight})"),
    Loss("edge", 0.0, edge_loss, "weight of an edge loss: L1 between the Sobel gradient magnitudes of prediction and "
         "truth, blind to each edge's sign and to the frame's level (0: off; e.g. 50): a pixel loss alone rewards "
         "blurring edges whose sign differs between modalities", "edge",
         "edge loss (Sobel magnitudes, weight {weight})", column="edge loss"),
    Loss("texture", 0.0, texture_loss, "weight of a texture loss: L1 between the 8x8-block means of the Sobel "
         "gradient magnitudes of prediction and truth (0: off; e.g. 100): the right amount of structure in each "
         "block, where its exact place cannot be known", "texture",
         "texture loss (8x8-block edge energy, weight {weight})", column="texture loss"),
    Loss("gradcorr", 0.0, gradient_correlation_loss, "weight of a gradient-correlation loss: 1 - the Pearson "
         "correlation of the Sobel gradient-magnitude maps of prediction and truth, per crop (0: off; e.g. 10): "
         "edges in the places the truth has them, whatever their strength", "gradient correlation",
         "gradient-correlation loss (weight {weight})", column="gradient-correlation loss"),
)}


def weight_name(loss: Loss) -> str:
    """The setting (TrainConfig field) holding a loss's weight."""
    return f"{loss.name}_weight"


def active(config) -> list[tuple[Loss, float]]:
    """The losses a run uses (weight above 0), with their weights, in the registry's order."""
    return [(loss, w) for loss in LOSSES.values() if (w := getattr(config, weight_name(loss), 0.0)) > 0]
