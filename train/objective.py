"""What a run minimises and the networks it starts from: Pix2Pix's conditional PatchGAN terms beside the
registry's pixel losses (train.losses), the --init-from weights, the EMA of the generator, the learning-rate
schedules."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from irvis.directions import get_direction
from irvis.nets import Generator, WeightsError, grown_parts, load_generator
from train.config import ConfigError, TrainConfig
from train.losses import active


# ---------------------------------------------------------------------------------------------------
# Losses


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits.float(), target.float())
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


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
    """The weighted sum G minimises: the adversarial term and each loss of the registry in use (train.losses);
    the latter logged as loss/NAME (detached)."""
    total, logs = config.gan_weight * adversarial, {}
    for loss, weight in active(config):
        term = loss.function(fake, target)
        total = total + weight * loss.scale * term
        logs[f"loss/{loss.name}"] = term.detach()
    return total, logs


# twice what train.stability adds to a whole frame: a frame_view is the frame shrunk, which averages its noise down
STEADINESS_NOISE = 2 / 255


def level_steadiness_loss(net: torch.nn.Module, frame: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the level branch's gain and offset for each frame_view (in [0, 1]) and for the
    same view with noise of STEADINESS_NOISE. Squared, not absolute: an absolute difference pulls every coefficient
    back with the same force however small its move, which held the level at its start (an ir2vis run stayed at
    11.9 dB on LLVIP val for 750 steps, where the same run without it reached 15.0); a square lets small moves be and
    stops large ones. net: the generator's network (irvis-lite0 with level_view "frame")."""
    view = frame * 2 - 1
    noisy = view + torch.randn_like(view) * (2 * STEADINESS_NOISE)  # the network's range is twice [0, 1]'s
    return (net.frame_level(view) - net.frame_level(noisy)).square().mean()


def lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    """torch's LambdaLR factor, a closed form of the step: a resume with another --max-steps stretches the schedule
    from where it is, and checkpoints hold LambdaLR's state (torch's chained schedulers, SequentialLR of LinearLR
    or CosineAnnealingLR, update recursively and could do neither)."""
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
    """The --init-from generator, checked to be the same network as the one this run trains, or the plain
    network it grows from (irvis.nets.grown_parts: e.g. a shipped irvis-unet seeding irvis-lite0, whose new
    branches start as the identity)."""
    from irvis.hub import resolve_weights

    try:
        loaded = load_generator(resolve_weights(config.init_from))
    except WeightsError as e:
        raise ConfigError(f"--init-from: {e}") from None
    problem = get_direction(loaded.direction).mismatch(like.direction, config.init_from)
    if problem:
        raise ConfigError(f"--init-from {problem}")
    ours, theirs = like.state_dict(), loaded.state_dict()
    same = loaded.arch == like.arch and ours.keys() == theirs.keys() and all(theirs[k].shape == v.shape
                                                                             for k, v in ours.items())
    if not same and grown_parts(ours, theirs) is None:
        raise ConfigError(f"--init-from {config.init_from} holds a {loaded.arch} generator of another shape; this run "
                          f"trains {like.arch} {like.config} (set --arch/--ngf/--n-res/--head to match)")
    return loaded


class EMA:
    """An exponential moving average of the generator's weights, kept by torch's AveragedModel (buffers copied,
    not averaged); the decay ramps up from about 0.1 ((1 + n) / (10 + n) at the n-th update), so short runs are
    not dominated by the random initialisation. `model` is the averaged network itself: what checkpoints hold,
    with `updates` beside it in the training state, as before AveragedModel kept it."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.average = AveragedModel(model, multi_avg_fn=self._ramp, use_buffers=False)
        self.average.n_averaged.fill_(1)  # the copy is the start, not an average: the first update is the 1st
        self.model = self.average.module.eval().requires_grad_(False)

    def _ramp(self, averaged: list[torch.Tensor], current: list[torch.Tensor], _on_device: torch.Tensor) -> None:
        n = self.updates + 1  # the CPU count: no device sync
        d = min(self.decay, (1 + n) / (10 + n))
        for a, p in zip(averaged, current):
            a.lerp_(p, 1 - d)

    @property
    def updates(self) -> int:
        return int(self.average.n_averaged) - 1

    @updates.setter
    def updates(self, n: int) -> None:
        self.average.n_averaged.fill_(n + 1)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.average.update_parameters(model)
