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
# "input" and "frame": the pooled encoder features of the input / of the frame's view; "histogram": the frame view's
# own brightness histogram, mean and spread per channel. The pooled stride-32 features of an ImageNet encoder move by
# 4-50% (L2) under noise of 1/255, which a person cannot see, and by as much between float32 and bfloat16, and a
# level read from them moved an output's level with them; a soft histogram moves in proportion to the noise.
# "coarse": the encoder's features of the frame view blurred to its layout (lit and dark regions, sky, road, people
# as blobs): on the val and test frames, noise of 2/255 on an infrared view moves ImageNet's pooled features by 64%
# of how far frames lie from one another, and a blur of 0.8 px by 67% (visible: 39% / 51%), so an encoder-read level
# learns the camera's grain; blurred with a Gaussian of COARSE_SIGMA px first, 16% and 7% (visible: 5% / 7%).
LEVEL_VIEWS = ("input", "frame", "histogram", "coarse")
COARSE_SIGMA = 3.0  # px of the 128x160 frame view: 24 px of a 1280x1024 frame
ENCODER_LEVEL_VIEWS = ("frame", "coarse")  # a level read by the encoder from a view of the whole frame
HISTOGRAM_BINS = 16


def frame_view(x: torch.Tensor) -> torch.Tensor:
    """The whole frame (N, C, H, W) as the level branch sees it: resized, antialiased, to FRAME_VIEW (in float32:
    PyTorch's antialiased resize has no bfloat16 kernel on CPUs)."""
    return F.interpolate(x.float(), size=FRAME_VIEW, mode="bilinear", antialias=True, align_corners=False).to(x.dtype)


def coarse_view(view: torch.Tensor) -> torch.Tensor:
    """A frame view blurred to its coarse layout (Gaussian of COARSE_SIGMA px, reflected at the borders), in float32."""
    from torchvision.transforms.v2.functional import gaussian_blur

    with torch.autocast(view.device.type, enabled=False):
        return gaussian_blur(view.float(), kernel_size=2 * round(3 * COARSE_SIGMA) + 1, sigma=COARSE_SIGMA)


def level_reading(view: torch.Tensor, level_view: str, context: "ContextBranch | None") -> torch.Tensor:
    """What a whole-frame level branch reads of a frame_view (in [-1, 1]): the view's histogram ("histogram"), or
    the context encoder's pooled features of the view ("frame") or of the view blurred to its layout ("coarse")."""
    if level_view == "histogram":
        return frame_histogram(view)
    return context.pooled(coarse_view(view) if level_view == "coarse" else view)


def reads_frame_level(generator: torch.nn.Module) -> bool:
    """Whether the generator's level branch is read by its encoder from a view of the whole frame (irvis-lite0 with
    level_view frame or coarse). Such a level scales the bottleneck by a per-frame gain, and a bf16 copy of the rest
    of the network then drifts on real frames (23-37 dB from float32 on LLVIP val frames, 0.8 dB of LLVIP val PSNR).
    The translator's probe now has a dark exposure that caught both such generators measured (30-32 dB; one passed
    the probe as drawn at 52.9 dB), but no probe covers every frame: "auto" runs these in float32."""
    return getattr(getattr(generator, "net", None), "level_view", "input") in ENCODER_LEVEL_VIEWS


def histogram_features(channels: int) -> int:
    return channels * (HISTOGRAM_BINS + 2)


def frame_histogram(view: torch.Tensor) -> torch.Tensor:
    """A frame view (N, C, h, w) in [-1, 1] (the network's range) -> (N, histogram_features(C)): per channel the
    share of pixels in each of HISTOGRAM_BINS soft (triangular) bins over [0, 1], times HISTOGRAM_BINS (so a flat
    histogram reads 1), then the mean and the standard deviation: how the camera's gain and exposure placed this
    frame. In float32: a pixel's weight moves between two neighbouring bins in proportion to how far it moves."""
    with torch.autocast(view.device.type, enabled=False):
        v = ((view.float() + 1) / 2).clamp(0, 1).flatten(2)  # (N, C, P)
        centres = torch.linspace(0, 1, HISTOGRAM_BINS, device=v.device)
        weights = (1 - (v[..., None] - centres).abs() * (HISTOGRAM_BINS - 1)).clamp_(min=0)  # (N, C, P, B)
        shares = weights.mean(dim=2) * HISTOGRAM_BINS
        return torch.cat([shares, v.mean(dim=2, keepdim=True), v.std(dim=2, keepdim=True)], dim=2).flatten(1)


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

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's pyramid of x in the network's range [-1, 1] (the encoder was trained on [0, 1]), in float32
        whatever the rest runs in: in bfloat16 (8 bits of mantissa) its features moved by 3-16% per level, and its
        weights rounded to float16 moved a fine-tuned generator's LLVIP frame from 22.4 to 17.3 dB."""
        rgb = (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x).float().add(1).mul(0.5)
        with torch.autocast(x.device.type, enabled=False):
            return self.encoder.features(rgb.to(self.encoder._conv_stem.weight.dtype))

    def forward(self, x: torch.Tensor):
        pyramid = self.encode(F.avg_pool2d(x.float(), CONTEXT_SCALE, ceil_mode=True))
        pyramid = [f.to(self.lateral[0].weight.dtype) for f in pyramid]  # the projections run in the network's dtype
        used = pyramid[self.first:][::-1]
        t = self.lateral[0](used[0])
        for lateral, f in zip(self.lateral[1:], used[1:]):
            t = F.interpolate(t, size=f.shape[-2:], mode="nearest") + lateral(f)
        t = F.leaky_relu(t, 0.2)
        fine = pyramid[self.first - 1]
        second = self.lateral_second(fine) + F.interpolate(self.reduce_second(t), size=fine.shape[-2:], mode="nearest")
        return self.project(t), self.project_second(F.leaky_relu(second, 0.2)), pyramid[-1].mean(dim=(2, 3))

    def pooled(self, view: torch.Tensor) -> torch.Tensor:
        """The whole frame's context for the level branch, from its frame_view (in [-1, 1])."""
        return self.encode(view)[-1].mean(dim=(2, 3))


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

    def coefficients(self, pooled: torch.Tensor) -> torch.Tensor:
        """(N, 2 * channels): each frame's gain, then offset."""
        return self.mlp(pooled)

    def forward(self, h: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        gain, offset = self.coefficients(pooled.to(h.dtype))[..., None, None].chunk(2, dim=1)
        return torch.addcmul(h + offset, h, gain)


def load_lite0(encoder: nn.Module) -> None:
    """EfficientNet-Lite0's ImageNet weights, without its classifier (irvis.backbones: hash-checked, weights-only)."""
    from irvis.backbones import pretrained_lite0

    encoder.load_state_dict(pretrained_lite0().state_dict(), strict=True)
