"""What the trainer trains: the generator as the config asks it built and initialised, the conditional PatchGAN
discriminator, and how their optimizers group and run."""

from __future__ import annotations

import torch
from torch import nn

from irvis.backbones import PretrainedWeightsError
from irvis.nets import Generator, build_generator, initialise_generator, pretrained_parameters
from irvis.pix2pix import init_pix2pix, norm_layer
from train.config import ConfigError, TrainConfig
from train.objective import initial_weights


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN of Pix2Pix, conditional: it sees (input, output) concatenated, in [0, 1]."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        use_bias = norm in ("instance", "none")
        layers = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=use_bias), norm_layer(norm, ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        init_pix2pix(self)

    def forward(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([source, image], dim=1) * 2 - 1)


def initial_generator(cfg: TrainConfig) -> Generator:
    """The generator a run starts from: --init-from's weights, else the architecture's own initialisation
    (an ImageNet encoder where it has one and --encoder-init asks for it). A plain generator seeding a grown
    one (irvis-lite0 from a shipped irvis-unet) fills the U-Net; the new branches start as the architecture
    starts them, as the identity, so step 0 draws what the seed drew."""
    generator = build_generator(cfg.direction, cfg.arch, **cfg.generator_overrides())
    seed = initial_weights(cfg, generator) if cfg.init_from else None
    if seed is None or seed.arch != generator.arch:
        try:
            initialise_generator(generator, pretrained=cfg.encoder_init == "imagenet")
        except PretrainedWeightsError as e:  # not installed, or not the published file
            raise ConfigError(str(e)) from None
    if seed is not None:
        generator.load_state_dict(seed.state_dict(), strict=seed.arch == generator.arch)
    return generator


def generator_groups(generator: Generator, cfg: TrainConfig) -> list[dict]:
    """Adam's parameter groups: a pretrained encoder at --encoder-lr-scale of the learning rate, the rest at it
    (one group where there is nothing pretrained, as checkpoints of earlier runs hold)."""
    slow = {id(p) for p in pretrained_parameters(generator)}
    if not slow:
        return [{"params": list(generator.parameters())}]
    return [{"params": [p for p in generator.parameters() if id(p) not in slow]},
            {"params": [p for p in generator.parameters() if id(p) in slow], "lr": cfg.lr_g * cfg.encoder_lr_scale}]


def fused_adam(device: torch.device) -> bool:
    """Adam's fused kernel (one pass over every parameter) where PyTorch has it: on this project's generator
    an optimizer step takes 1.5 ms on the CPU instead of 10.8 ms, and on a GPU a few kernels instead of dozens."""
    return device.type in ("cuda", "cpu")
