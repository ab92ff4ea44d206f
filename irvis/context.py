"""The ImageNet prior of the "irvis-lite0" generator: what a pretrained encoder knows about the scene, and the
frame's level it implies. Both branches start as the identity of the plain U-Net (zero projections, zero
gain and offset), so training begins from "irvis-unet" and learns how much of the prior to take."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONTEXT_SCALE = 4  # the context encoder sees the input at 1/4 of its side: its stride 8 lands on the U-Net's 1/32
# the level branch's view of the whole frame (level_view "frame"): one fixed size, so a training batch of crops
# from frames of any shape stacks, and a frame is seen the same way in training and in use
FRAME_VIEW = (128, 160)
LEVEL_VIEWS = ("input", "frame")


def frame_view(x: torch.Tensor) -> torch.Tensor:
    """The whole frame (N, C, H, W) as the level branch sees it: resized, antialiased, to FRAME_VIEW (in float32:
    PyTorch's antialiased resize has no bfloat16 kernel on CPUs)."""
    return F.interpolate(x.float(), size=FRAME_VIEW, mode="bilinear", antialias=True, align_corners=False).to(x.dtype)


def _zero_conv(c_in: int, c_out: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ContextBranch(nn.Module):
    """What an ImageNet-trained encoder knows about the scene (a person, a car, a lamp, the sky), added to the
    U-Net's two coarsest encoder levels. EfficientNet-Lite0 reads the input at 1/CONTEXT_SCALE of its side
    (a 1280x1024 frame as 320x256: objects near the scale ImageNet showed them, for a fraction of the U-Net's
    time); its pyramid (strides 2-32) is merged top-down (a feature pyramid network) onto the levels that land on
    the U-Net's coarsest two. The projections start at zero, so training starts from the plain U-Net and
    learns how much context to take. The encoder's BatchNorm keeps its ImageNet statistics (batches of a few
    crops would only add noise)."""

    GLOBAL_CHANNELS = 320  # the pooled stride-32 features: the whole input's context, for the level branch

    def __init__(self, widths: list[int]):
        super().__init__()
        from irvis.backbones import EfficientNetLite0

        # pyramid level i (stride 2**(i+1)) lands on the U-Net's 1/(CONTEXT_SCALE * 2**(i+1))
        self.first = len(widths) + 1 - CONTEXT_SCALE.bit_length() - 1  # the level on the U-Net's coarsest
        if self.first < 1:
            raise ValueError(f"the lite0 context needs a U-Net depth of at least 4, got {len(widths)}")
        self.encoder = EfficientNetLite0(with_classifier=False)
        channels = EfficientNetLite0.PYRAMID_CHANNELS
        top = widths[-1]
        self.lateral = nn.ModuleList(nn.Conv2d(c, top, 1) for c in channels[self.first:][::-1])  # coarsest first
        self.lateral_second = nn.Conv2d(channels[self.first - 1], widths[-2], 1)
        self.reduce_second = nn.Conv2d(top, widths[-2], 1)
        self.project = _zero_conv(top, top)
        self.project_second = _zero_conv(widths[-2], widths[-2])

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen BatchNorm statistics (its weights still learn)
        return self

    def forward(self, x: torch.Tensor):
        rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        pyramid = self.encoder.features(F.avg_pool2d(rgb, CONTEXT_SCALE, ceil_mode=True))
        used = pyramid[self.first:][::-1]
        t = self.lateral[0](used[0])
        for lateral, f in zip(self.lateral[1:], used[1:]):
            t = F.interpolate(t, size=f.shape[-2:], mode="nearest") + lateral(f)
        t = F.leaky_relu(t, 0.2)
        fine = pyramid[self.first - 1]
        second = self.lateral_second(fine) + F.interpolate(self.reduce_second(t), size=fine.shape[-2:], mode="nearest")
        return self.project(t), self.project_second(F.leaky_relu(second, 0.2)), pyramid[-1].mean(dim=(2, 3))

    def pooled(self, view: torch.Tensor) -> torch.Tensor:
        """The whole frame's context for the level branch, from its frame_view."""
        rgb = view.expand(-1, 3, -1, -1) if view.shape[1] == 1 else view
        return self.encoder.features(rgb)[-1].mean(dim=(2, 3))


class LevelBranch(nn.Module):
    """The frame's level: a thermal camera rescales each frame to its own range, and a visible frame's exposure
    is the camera's choice, so the right overall level of an output depends on the whole input. Pooled context
    (the whole input at once) gives a per-frame, per-channel gain and offset of the bottleneck's output (FiLM),
    which the decoder carries to every pixel; they start at the identity."""

    def __init__(self, pooled_channels: int, channels: int, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(pooled_channels, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * channels))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, h: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        gain, offset = self.mlp(pooled.to(h.dtype))[..., None, None].chunk(2, dim=1)
        return torch.addcmul(h + offset, h, gain)


def load_lite0(encoder: nn.Module) -> None:
    """EfficientNet-Lite0's ImageNet weights, without its classifier (irvis.backbones: hash-checked, weights-only)."""
    from irvis.backbones import pretrained_lite0

    encoder.load_state_dict(pretrained_lite0().state_dict(), strict=True)
