"""What a run minimises and the networks it starts from: Pix2Pix's conditional PatchGAN terms, L1, SSIM and
edge and texture losses, the --init-from weights, the EMA of the generator, the learning-rate
schedules."""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
import torch.nn.functional as F

from irvis.directions import get_direction
from irvis.metrics import gradient_magnitude
from irvis.nets import Generator, WeightsError, init_pix2pix, load_generator  # noqa: F401 (init_pix2pix: the D's too)
from train.config import ConfigError, TrainConfig


# ---------------------------------------------------------------------------------------------------
# Losses


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits.float(), target.float())
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-x.pow(2) / (2 * sigma**2))
    return g / g.sum()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, c1: float = 0.01**2, c2: float = 0.03**2) -> torch.Tensor:
    """1 - SSIM with the metric's Gaussian window (11, sigma 1.5) and constants, over the valid region. The
    window is separable, so two 1-D passes replace torchmetrics' 11x11 one: the same loss, 4-5x cheaper on a
    CPU, where a 2-D SSIM on RGB crops cost more than the generator's own backward pass."""
    x, y = pred.float(), target.float()
    c = x.shape[1]
    g = _gaussian_window().to(x)
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


def discriminator_loss(discriminator: torch.nn.Module, source: torch.Tensor, target: torch.Tensor,
                       fake: torch.Tensor, mode: str) -> torch.Tensor:
    """D's loss on real and (detached) fake pairs, in one forward: one DDP pass; instance norm keeps the
    samples independent."""
    logits = discriminator(torch.cat([source, source]), torch.cat([target, fake.detach()]))
    real_logits, fake_logits = logits.chunk(2)
    return 0.5 * (gan_loss(real_logits, True, mode) + gan_loss(fake_logits, False, mode))


def adversarial_term(plain_discriminator: torch.nn.Module, source: torch.Tensor, fake: torch.Tensor,
                     mode: str) -> torch.Tensor:
    """G's adversarial loss through the bare (unwrapped) D, frozen: D gets no gradient and no DDP reduction."""
    plain_discriminator.requires_grad_(False)
    try:
        return gan_loss(plain_discriminator(source, fake), True, mode)
    finally:
        plain_discriminator.requires_grad_(True)


def generator_loss(config: TrainConfig, fake: torch.Tensor, target: torch.Tensor,
                   adversarial: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted sum G minimises and its logged terms (detached)."""
    logs = {}
    l1 = F.l1_loss(fake.float(), target.float())
    ssim_term = torch.zeros((), device=fake.device)
    if config.ssim_weight > 0:
        ssim_term = ssim_loss(fake, target)
        logs["loss/ssim"] = ssim_term.detach()
    edge_term = torch.zeros((), device=fake.device)
    if config.edge_weight > 0:
        edge_term = edge_loss(fake, target)
        logs["loss/edge"] = edge_term.detach()
    texture_term = torch.zeros((), device=fake.device)
    if config.texture_weight > 0:
        texture_term = texture_loss(fake, target)
        logs["loss/texture"] = texture_term.detach()
    # Pix2Pix's weight 100 is for L1 on images in [-1, 1], twice our [0, 1] difference
    total = (config.l1_weight * 2 * l1 + config.gan_weight * adversarial + config.ssim_weight * ssim_term
             + config.edge_weight * edge_term + config.texture_weight * texture_term)
    logs["loss/l1"] = l1.detach()
    return total, logs


def lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if schedule == "linear":  # Pix2Pix: constant for the first half, then linearly to zero
            half = total_steps // 2
            return 1.0 if step < half else max(0.0, 1.0 - (step - half) / max(1, total_steps - half))
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        return 1.0

    return factor


# ---------------------------------------------------------------------------------------------------
# Starting weights and the average


def initial_weights(config: TrainConfig, like: Generator) -> Generator:
    """The --init-from generator, checked to be the same network as the one this run trains."""
    from irvis.hub import resolve_weights

    try:
        loaded = load_generator(resolve_weights(config.init_from))
    except WeightsError as e:
        raise ConfigError(f"--init-from: {e}") from None
    problem = get_direction(loaded.direction).mismatch(like.direction, config.init_from)
    if problem:
        raise ConfigError(f"--init-from {problem}")
    ours, theirs = like.state_dict(), loaded.state_dict()
    if loaded.arch != like.arch or ours.keys() != theirs.keys() or any(theirs[k].shape != v.shape for k, v in ours.items()):
        raise ConfigError(f"--init-from {config.init_from} holds a {loaded.arch} generator of another shape; this run "
                          f"trains {like.arch} {like.config} (set --arch/--ngf/--head to match)")
    return loaded


class EMA:
    """An exponential moving average of the generator's weights; the decay ramps up from about 0.1
    ((1 + n) / (10 + n)), so short runs are not dominated by the random initialisation."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
