"""An inference-only rewrite of irvis-unet's full-resolution work, for the fast path (irvis.translate).

At 1280x1024 the plain network spends more time after its decoder than in it: bilinear x2 upsampling of
8 feature channels and of the affine coefficients to full resolution, a concatenation with the input,
and a 3x3 convolution over the result, all memory-bound (and bilinear interpolation of channels-last
bfloat16 is 3-4x slower than of float32 on oneDNN CPUs). Both maps are linear, so they fold:

- head(bilinear_up(g)) for the feature part of the head is, away from the outermost pixel ring, exactly a
  3x3 convolution of g at half resolution into 4 x C_out channels followed by a pixel shuffle: each
  output pixel's parity picks its own 3x3 kernel. The kernels are read off the plain layers by pushing
  impulses through them, so they are right by construction for whatever interpolation PyTorch does.
- bilinear x2 upsampling itself (the decoder's last level, the affine coefficients) is exactly a
  fixed depthwise 3x3 convolution of the edge-replicated map followed by a pixel shuffle.

The folded head is exact except on the output's one-pixel frame, where the plain head's zero padding
at full resolution would become an edge replication; that frame is recomputed the plain way from thin
strips, so the whole output matches the plain network up to rounding. The Translator still checks every
fast path against plain float32 on a probe image (FAST_PATH_MIN_PSNR), and the tests on real frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irvis.nets import IrvisUNet


def _parity_kernels(response: torch.Tensor, centre: int) -> torch.Tensor:
    """(..., 2, 2, 3, 3) kernels from the x2-resolution response (..., 2n, 2n) to an impulse at (centre,
    centre): output pixel (2i+ey, 2j+ex) reads input (i+my-1, j+mx-1) with weight [..., ey, ex, my, mx]."""
    i = centre - (torch.arange(3) - 1)  # the output row whose tap my lands on the impulse
    rows = (2 * i[:, None] + torch.arange(2)).T  # (ey, my) -> row
    return response[..., rows[:, None, :, None], rows[None, :, None, :]]


@torch.no_grad()
def _upsample_kernels(channels: int) -> torch.Tensor:
    """(4 * channels, 1, 3, 3) depthwise kernels whose pixel shuffle is bilinear x2 (align_corners=False)."""
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1
    up = F.interpolate(impulse, scale_factor=2, mode="bilinear", align_corners=False)[0, 0]  # (10, 10)
    return _parity_kernels(up, 2).reshape(4, 1, 3, 3).repeat(channels, 1, 1, 1)


class Upsample2x(nn.Module):
    """Bilinear x2 upsampling (align_corners=False, edges clamped as PyTorch clamps them), as a depthwise
    convolution and a pixel shuffle: runs at convolution speed in any dtype and memory layout."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("weight", _upsample_kernels(channels))

    def forward(self, x):
        y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.weight.to(x.dtype), groups=self.channels)
        return F.pixel_shuffle(y, 2)


@torch.no_grad()
def _fold_head(head: nn.Conv2d, features: int) -> nn.Conv2d:
    """A half-resolution 3x3 convolution whose pixel shuffle equals head's feature part applied to the
    bilinear x2 upsampling of its input (`features` channels), read off with impulses."""
    c_out = head.out_channels
    n = 7  # impulses at the centre of 7x7 maps: far enough from the borders for the interior response
    impulses = torch.zeros(features, features, n, n, dtype=head.weight.dtype, device=head.weight.device)
    impulses[range(features), range(features), n // 2, n // 2] = 1
    up = F.interpolate(impulses, scale_factor=2, mode="bilinear", align_corners=False)
    response = F.conv2d(up, head.weight[:, :features], padding=1)  # (features, c_out, 2n, 2n), no bias
    w = _parity_kernels(response, n // 2).permute(1, 2, 3, 0, 4, 5)  # (c_out, ey, ex, features, my, mx)
    folded = nn.Conv2d(features, 4 * c_out, 3, padding=0, bias=True).to(head.weight)
    folded.weight.copy_(w.reshape(4 * c_out, features, 3, 3))
    folded.bias.copy_(head.bias.repeat_interleave(4))
    return folded


class FusedIrvisUNet(nn.Module):
    """IrvisUNet with its full-resolution tail folded (see the module docstring); shares the body's
    weights with the network it was made from. Inference only."""

    def __init__(self, net: IrvisUNet):
        super().__init__()
        self.net = net
        features = net.to_full.out_channels
        self.head_features = _fold_head(net.head, features)
        # the head's feature part as it is, for the output's one-pixel frame
        self.register_buffer("frame_weight", net.head.weight[:, :features].detach().clone())
        self.register_buffer("frame_bias", net.head.bias.detach().clone())
        self.head_input = nn.Conv2d(net.in_channels, net.out_channels, 3, padding=1, bias=False).to(net.head.weight)
        with torch.no_grad():
            self.head_input.weight.copy_(net.head.weight[:, features:])
        self.up_last = Upsample2x(net.ups[-1].reduce.out_channels) if len(net.ups) else None
        self.up_coefficients = Upsample2x(net.coefficients.out_channels) if net.coefficients is not None else None

    def forward(self, x):
        net = self.net
        h = net.body(x, upsample_last=self.up_last)
        g = F.leaky_relu(net.to_full(h), 0.2)
        features = F.pixel_shuffle(self.head_features(F.pad(g, (1, 1, 1, 1), mode="replicate")), 2)
        self._exact_frame(features, g)
        head_input = self.head_input(x)
        if features.is_contiguous(memory_format=torch.channels_last):
            # a one-channel input is NCHW as much as channels-last, and the convolution then answers NCHW: an add
            # across the two layouts costs 5x one within a layout (4.1 ms vs 0.8 ms for both, ir2vis 1280x1024)
            head_input = head_input.contiguous(memory_format=torch.channels_last)
        out = features.add_(head_input)
        if self.up_coefficients is not None:
            a = self.up_coefficients(net.coefficients(h))
            out = out.float()  # accumulated in float32, as the plain network does; in place, channel by
            # channel: 5x faster than the broadcast product and sum, which copy everything to float32 first
            for o in range(net.out_channels):
                for i in range(net.in_channels):
                    out[:, o].addcmul_(a[:, o * net.in_channels + i], x[:, i])
        return torch.tanh_(out)

    def _exact_frame(self, features: torch.Tensor, g: torch.Tensor) -> None:
        """Overwrite the outermost rows and columns of the folded head's output with the plain head's:
        two half-resolution rows (columns) of g, upsampled to four, give the first two full-resolution
        rows (columns) exactly, and the head convolution with its zero padding then gives row 0."""
        H, W = features.shape[-2:]

        def plain(strip, size):
            up = F.interpolate(strip, size=size, mode="bilinear", align_corners=False)
            return F.conv2d(up, self.frame_weight, self.frame_bias, padding=1)

        features[..., :1, :] = plain(g[..., :2, :], (4, W))[..., :1, :]
        features[..., -1:, :] = plain(g[..., -2:, :], (4, W))[..., -1:, :]
        features[..., :, :1] = plain(g[..., :, :2], (H, 4))[..., :, :1]
        features[..., :, -1:] = plain(g[..., :, -2:], (H, 4))[..., :, -1:]


def fuse(generator: nn.Module) -> bool:
    """Replace an irvis-unet generator's network by its fused form, in place (for an inference copy).
    Returns whether it applied (other architectures are left as they are)."""
    if not isinstance(getattr(generator, "net", None), IrvisUNet):
        return False
    device = next(generator.net.parameters()).device
    generator.net = FusedIrvisUNet(generator.net).to(device)  # its new kernels are built on the CPU
    return True
