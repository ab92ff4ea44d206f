"""The Pix2Pix reference (Isola et al. 2017): its U-Net 256 generator, as pytorch-CycleGAN-and-pix2pix builds it,
its initialisation and its normalisation switch, which irvis's own networks and the trainer's PatchGAN share."""

from __future__ import annotations

import torch
from torch import nn


NORMS = ("group", "instance", "batch", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(8, channels // 2), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: use group, instance, batch or none")


class FrameStatisticsBatchNorm(nn.BatchNorm2d):
    """Batch norm as the Pix2Pix authors' test.py runs it: it never calls model.eval() (unless --eval), so at test
    time every frame is normalised by its own statistics (their test batch is one frame), never by the running
    averages. Trained at batch 1, those averages describe no single frame: in eval mode they turn every input into
    the same blotched picture. Training is plain batch norm; the state dict is batch norm's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        return nn.functional.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def _reference_norm(kind: str, channels: int) -> nn.Module:
    return FrameStatisticsBatchNorm(channels) if kind == "batch" else norm_layer(kind, channels)


class _UnetSkipBlock(nn.Module):
    """One level of the original Pix2Pix U-Net (pytorch-CycleGAN-and-pix2pix's UnetSkipConnectionBlock)."""

    def __init__(self, outer: int, inner: int, in_channels: int | None = None, sub: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, dropout: bool = False, norm: str = "batch"):
        super().__init__()
        self.outermost = outermost
        use_bias = norm != "batch"
        in_channels = outer if in_channels is None else in_channels
        down_conv = nn.Conv2d(in_channels, inner, 4, 2, 1, bias=use_bias)
        if outermost:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
            layers = [down_conv, sub, *up]
        elif innermost:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=use_bias), _reference_norm(norm, outer)]
            layers = [nn.LeakyReLU(0.2, True), down_conv, *up]
        else:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=use_bias), _reference_norm(norm, outer)]
            layers = [nn.LeakyReLU(0.2, True), down_conv, _reference_norm(norm, inner), sub, *up]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class Pix2PixUNet256(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, norm: str = "batch"):
        super().__init__()
        block = _UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(3):
            block = _UnetSkipBlock(ngf * 8, ngf * 8, sub=block, dropout=True, norm=norm)
        for mult in (4, 2, 1):
            block = _UnetSkipBlock(ngf * mult, ngf * mult * 2, sub=block, norm=norm)
        self.model = _UnetSkipBlock(out_channels, ngf, in_channels=in_channels, sub=block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


def init_pix2pix(model: nn.Module, gain: float = 0.02) -> None:
    """Pix2Pix's initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
