"""An inference-only rewrite of irvis-unet's full-resolution work, for the fast path (irvis.translate).

At 1280x1024 the plain network spends more time at and near full resolution than in its body: bilinear
x2 upsampling (of the last decoder level, of 8 feature channels, of the affine coefficients), pixel
(un)shuffles, a concatenation with the input and a 3x3 convolution over it, and the affine product, all
memory-bound passes (and bilinear interpolation and pixel shuffles of channels-last bfloat16 are several
times slower on oneDNN CPUs than a convolution over the same bytes). All of it is linear up to the tanh,
so it folds into convolutions at half resolution on "phase" maps: a full-resolution map of C channels
held as 4 x C channels at half resolution, pixel (2i+ey, 2j+ex) in channel (2*ey+ex)*C + c. That order
(phase-major) makes the conversion back to full resolution in channels-last memory one copy of
contiguous runs, unlike pixel shuffle's channel-major order.

- bilinear x2 of a map is exactly a 3x3 convolution of the edge-replicated map into its phases: each output
  parity has its own kernel; a decoder level's skip is then added in place through a view.
- the head's feature part applied to bilinear_up(g) is, away from the outermost pixel ring, a 3x3
  convolution of g at half resolution into the output's phases; the input part, a 3x3 convolution at full
  resolution with zero padding, is exactly a 3x3 convolution of the input's phases into the output's (the
  two are one convolution where the input is narrow).
- the affine map sum_c A_c * input_c becomes, per input channel, the product of two phase maps: the
  coefficients upsampled into phases and the input channel's phases repeated for each output channel.

Every kernel is read off the plain layers (impulses pushed through them, or PyTorch's own bilinear
weights), so it is right by construction for whatever PyTorch computes. The folded head is exact except
on the output's one-pixel frame, where the plain head's zero padding at full resolution would become an
edge replication; that frame is recomputed the plain way from thin strips, so the whole output matches
the plain network up to rounding. The Translator still checks every fast path against plain float32 on a
probe image (FAST_PATH_MIN_PSNR), and the tests on real frames.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from irvis.nets import IrvisUNet


def phase_view(t: torch.Tensor) -> torch.Tensor:
    """(N, C, 2h, 2w) -> a (N, h, w, ey, ex, C) view of the same memory: pixel (2i+ey, 2j+ex), channel c."""
    n, c, height, width = t.shape
    return t.permute(0, 2, 3, 1).unflatten(1, (height // 2, 2)).unflatten(3, (width // 2, 2)).permute(0, 1, 3, 2, 4, 5)


def as_phases(phases: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, 4 * C, h, w) phase map -> a (N, h, w, ey, ex, C) view, to pair with phase_view."""
    return phases.permute(0, 2, 3, 1).unflatten(3, (2, 2, channels))


def to_phases(x: torch.Tensor) -> torch.Tensor:
    """(N, C, 2h, 2w) -> its (N, 4 * C, h, w) phase map, channels-last: pixel_unshuffle in phase-major order.
    One channel: the orders agree and pixel_unshuffle is fastest; more: a stride-2 convolution with 0/1
    weights (exact, but for float32 under a GPU's TF32: a copy there), 2.5x faster than a strided copy,
    which moves runs of only 2 * C values."""
    c = x.shape[1]
    if c == 1:
        return F.pixel_unshuffle(x, 2).contiguous(memory_format=torch.channels_last)
    if x.is_cuda and x.dtype == torch.float32:  # TF32 convolutions (cuDNN's default) would round the input
        return copy_to_phases(x)
    # output channel (2 * ey + ex) * C + c reads input channel c at kernel tap (ey, ex)
    pick = torch.eye(4, dtype=x.dtype, device=x.device).reshape(4, 1, 1, 2, 2) * torch.eye(
        c, dtype=x.dtype, device=x.device).reshape(1, c, c, 1, 1)
    return F.conv2d(x, pick.reshape(4 * c, c, 2, 2), stride=2)


def copy_to_phases(x: torch.Tensor) -> torch.Tensor:
    """to_phases as a strided copy."""
    n, c, height, width = x.shape
    out = torch.empty(n, 4 * c, height // 2, width // 2, dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    as_phases(out, c).copy_(phase_view(x))
    return out


def from_phases(phases: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, 4 * C, h, w) phase map -> (N, C, 2h, 2w) at full resolution, channels-last."""
    n, _, h, w = phases.shape
    out = torch.empty(n, channels, 2 * h, 2 * w, dtype=phases.dtype, device=phases.device,
                      memory_format=torch.channels_last)
    phase_view(out).copy_(as_phases(phases, channels))
    return out


def _channel_major_to_phase_major(rows: torch.Tensor, channels: int) -> torch.Tensor:
    """Reorder a leading axis of 4 * C from pixel (un)shuffle's order (c, phase) to phase-major (phase, c)."""
    return rows.unflatten(0, (channels, 4)).transpose(0, 1).flatten(0, 1)


def _parity_kernels(response: torch.Tensor, centre: int) -> torch.Tensor:
    """(..., 2, 2, 3, 3) kernels from the x2-resolution response (..., 2n, 2n) to an impulse at (centre,
    centre): output pixel (2i+ey, 2j+ex) reads input (i+my-1, j+mx-1) with weight [..., ey, ex, my, mx]."""
    i = centre - (torch.arange(3) - 1)  # the output row whose tap my lands on the impulse
    rows = (2 * i[:, None] + torch.arange(2)).T  # (ey, my) -> row
    return response[..., rows[:, None, :, None], rows[None, :, None, :]]


@torch.no_grad()
def _bilinear_phase_kernels() -> torch.Tensor:
    """(4, 3, 3): output phase (ey, ex) of bilinear x2 (align_corners=False) reads the edge-replicated input's
    3x3 neighbourhood with these weights (they sum to 1 per phase)."""
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1
    up = F.interpolate(impulse, scale_factor=2, mode="bilinear", align_corners=False)[0, 0]  # (10, 10)
    return _parity_kernels(up, 2).reshape(4, 3, 3)


@torch.no_grad()
def upsample_to_phases(linear: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Conv2d:
    """A 3x3 convolution, to run on the edge-replicated input, whose output is the phase map of bilinear x2
    of the 1x1 map `linear` (C_out, C_in) (plus bias) of its input: the two commute with edge replication."""
    c_out, c_in = linear.shape
    kernels = _bilinear_phase_kernels().to(linear)[:, None, None] * linear[None, :, :, None, None]  # (4, c_out, c_in, 3, 3)
    conv = nn.Conv2d(c_in, 4 * c_out, 3, bias=bias is not None).to(linear)
    conv.weight.copy_(kernels.flatten(0, 1))
    if bias is not None:
        conv.bias.copy_(bias.repeat(4))  # bilinear weights sum to 1: a constant passes through
    return conv


# decoder levels with at most this many channels take UpAdd: its upsampling convolution costs 36 C^2
# multiply-adds a pixel, which pays for itself only where interpolation's memory passes are the larger cost
# (measured at 1280x1024: 16 and 32 channels faster, 64 even, 128 twice as slow)
UP_ADD_MAX_CHANNELS = 32


class UpAdd(nn.Module):
    """A decoder level's 1x1 reduction, bilinear x2 and skip addition (UpBlock.forward's hook): the reduction,
    one 3x3 convolution into phases, and an in-place addition into the skip through a view (the skip is not
    used again)."""

    def __init__(self, reduce: nn.Conv2d):
        super().__init__()
        self.channels = reduce.out_channels
        self.reduce = reduce  # the network's own layer
        self.upsample = upsample_to_phases(torch.eye(self.channels).to(reduce.weight))

    def forward(self, x, skip):
        up = self.upsample(F.pad(self.reduce(x), (1, 1, 1, 1), mode="replicate"))
        phase_view(skip).add_(as_phases(up, self.channels))
        return skip


@torch.no_grad()
def _fold_head(head: nn.Conv2d, features: int) -> nn.Conv2d:
    """A half-resolution 3x3 convolution into the output's phases equal to head's feature part applied to
    the bilinear x2 upsampling of its input (`features` channels), read off with impulses."""
    c_out = head.out_channels
    n = 7  # impulses at the centre of 7x7 maps: far enough from the borders for the interior response
    impulses = torch.zeros(features, features, n, n, dtype=head.weight.dtype, device=head.weight.device)
    impulses[range(features), range(features), n // 2, n // 2] = 1
    up = F.interpolate(impulses, scale_factor=2, mode="bilinear", align_corners=False)
    response = F.conv2d(up, head.weight[:, :features], padding=1)  # (features, c_out, 2n, 2n), no bias
    w = _parity_kernels(response, n // 2).permute(2, 3, 1, 0, 4, 5)  # (ey, ex, c_out, features, my, mx)
    folded = nn.Conv2d(features, 4 * c_out, 3, padding=0, bias=True).to(head.weight)
    folded.weight.copy_(w.reshape(4 * c_out, features, 3, 3))
    folded.bias.copy_(head.bias.repeat(4))
    return folded


@torch.no_grad()
def _conv_on_phases(conv: nn.Conv2d) -> nn.Conv2d:
    """A 3x3 convolution (no bias) at full resolution with zero padding, as a 3x3 convolution of the input's
    phase map into the output's (zero padding of the phases is zero padding of the image): read off with
    impulses."""
    c_in, c_out, n = conv.in_channels, conv.out_channels, 5
    impulses = torch.zeros(4 * c_in, 4 * c_in, n, n, dtype=conv.weight.dtype, device=conv.weight.device)
    impulses[range(4 * c_in), range(4 * c_in), n // 2, n // 2] = 1  # phase-major channels, like to_phases
    images = torch.stack([from_phases(i[None], c_in)[0] for i in impulses])
    response = to_phases(F.conv2d(images, conv.weight, padding=1))  # (4 c_in, 4 c_out, n, n)
    taps = n // 2 + 1 - torch.arange(3)  # tap (my, mx) reads the impulse from (n//2 + 1 - my, ...)
    phased = nn.Conv2d(4 * c_in, 4 * c_out, 3, padding=1, bias=False).to(conv.weight)
    phased.weight.copy_(response.permute(1, 0, 2, 3)[:, :, taps][:, :, :, taps])
    return phased


@torch.no_grad()
def _repeat_phases(c_in: int, c_out: int, channel: int) -> nn.Conv2d:
    """A 1x1 convolution from an input's phase map to input channel `channel`'s phases once per output
    channel, in the output's phase-major order (weights 0 and 1: exact in any dtype)."""
    conv = nn.Conv2d(4 * c_in, 4 * c_out, 1, bias=False)
    conv.weight.zero_()
    for phase in range(4):
        conv.weight[phase * c_out:(phase + 1) * c_out, phase * c_in + channel] = 1
    return conv


class FusedIrvisUNet(nn.Module):
    """IrvisUNet with its full-resolution work folded onto phase maps (see the module docstring); shares
    the body's weights with the network it was made from. Inference only."""

    def __init__(self, net: IrvisUNet):
        super().__init__()
        self.net = net
        c_in, c_out = net.in_channels, net.out_channels
        self.stem = copy.deepcopy(net.stem[1])  # its convolution reads the phase-major input
        with torch.no_grad():
            self.stem[0].weight.copy_(_channel_major_to_phase_major(net.stem[1][0].weight.transpose(0, 1), c_in)
                                      .transpose(0, 1))
        self.up_adds = nn.ModuleDict({str(k): UpAdd(up.reduce) for k, up in enumerate(net.ups)
                                      if up.reduce.out_channels <= UP_ADD_MAX_CHANNELS})
        features = net.to_full.out_channels
        head_features = _fold_head(net.head, features)
        head_input = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False).to(net.head.weight)
        with torch.no_grad():
            head_input.weight.copy_(net.head.weight[:, features:])
        head_input = _conv_on_phases(head_input)
        # a narrow input (infrared's 4 phase channels) joins the features in one convolution: concatenating it
        # costs less than a second convolution and its addition (2-5% of ir2vis); visible's 12 do not
        # (1% slower). Its edge-replicated padding is wrong only on the frame, recomputed below.
        self.head = self.head_features = self.head_input = None
        if 4 * c_in <= features:
            self.head = nn.Conv2d(features + 4 * c_in, 4 * c_out, 3).to(net.head.weight)
            with torch.no_grad():
                self.head.weight.copy_(torch.cat([head_features.weight, head_input.weight], 1))
                self.head.bias.copy_(head_features.bias)
        else:
            self.head_features, self.head_input = head_features, head_input
        self.register_buffer("frame_weight", net.head.weight.detach().clone())  # the plain head, for the frame
        self.register_buffer("frame_bias", net.head.bias.detach().clone())
        self.coefficient_ups = nn.ModuleList()
        self.input_repeats = nn.ModuleList()
        if net.coefficients is not None:  # coefficient o * c_in + i multiplies input channel i into output o
            for i in range(c_in):
                pick = torch.zeros(c_out, c_out * c_in).to(net.head.weight)
                pick[range(c_out), [o * c_in + i for o in range(c_out)]] = 1
                self.coefficient_ups.append(upsample_to_phases(pick))
                self.input_repeats.append(_repeat_phases(c_in, c_out, i).to(net.head.weight))

    def forward(self, x):
        net, c_out = self.net, self.net.out_channels
        phases = to_phases(x)
        up_adds = [self.up_adds[str(k)] if str(k) in self.up_adds else None for k in range(len(net.ups))]
        h = net.body(x, first=self.stem(phases), up_adds=up_adds)
        g = F.leaky_relu(net.to_full(h), 0.2)
        if self.head is not None:
            out = self.head(F.pad(torch.cat([g, phases], 1), (1, 1, 1, 1), mode="replicate"))
        else:
            out = self.head_features(F.pad(g, (1, 1, 1, 1), mode="replicate"))
            out.add_(self.head_input(phases))
        self._exact_frame(out, g, x)
        if net.coefficients is not None:
            a = F.pad(net.coefficients(h), (1, 1, 1, 1), mode="replicate")
            for up, repeat in zip(self.coefficient_ups, self.input_repeats):
                # product and sum in float32 inside addcmul, rounded once to bfloat16: the input's fine structure
                # survives (the rounding moves the output by at most 0.11 of an 8-bit level after the tanh),
                # and 3-4% faster than a float32 accumulator fed bfloat16 factors (same PSNR vs plain float32)
                out = torch.addcmul(out, up(a), repeat(phases))
        return from_phases(out.float().tanh_(), c_out)

    def _exact_frame(self, phases: torch.Tensor, g: torch.Tensor, x: torch.Tensor) -> None:
        """Overwrite the outermost rows and columns of the folded head's output (phase map) with the plain
        head's: two half-resolution rows (columns) of g, upsampled to four, give the first two
        full-resolution rows (columns) exactly, and the head convolution with its zero padding then gives
        row 0."""
        H, W = x.shape[-2:]
        view = phases.unflatten(1, (2, 2, self.net.out_channels))  # (N, ey, ex, C, h, w)

        def plain(g_strip, x_strip, size):
            up = F.interpolate(g_strip, size=size, mode="bilinear", align_corners=False)
            return F.conv2d(torch.cat([up, x_strip.to(up.dtype)], 1), self.frame_weight, self.frame_bias, padding=1)

        def by_parity(line):  # (N, C, 2L) -> (N, 2, C, L): a full-resolution line split by its pixels' parity
            return line.unflatten(-1, (-1, 2)).permute(0, 3, 1, 2)

        view[:, 0, :, :, 0, :] = by_parity(plain(g[..., :2, :], x[..., :4, :], (4, W))[..., 0, :])
        view[:, 1, :, :, -1, :] = by_parity(plain(g[..., -2:, :], x[..., -4:, :], (4, W))[..., -1, :])
        view[:, :, 0, :, :, 0] = by_parity(plain(g[..., :, :2], x[..., :, :4], (H, 4))[..., :, 0])
        view[:, :, 1, :, :, -1] = by_parity(plain(g[..., :, -2:], x[..., :, -4:], (H, 4))[..., :, -1])


def fuse(generator: nn.Module) -> bool:
    """Replace an irvis-unet generator's network by its fused form, in place (for an inference copy), a context
    encoder's BatchNorm folded into its convolutions too. Returns whether it applied (other architectures are left
    as they are)."""
    if not isinstance(getattr(generator, "net", None), IrvisUNet):
        return False
    device = next(generator.net.parameters()).device
    if generator.net.context is not None:
        from irvis.backbones import fold_batchnorm

        fold_batchnorm(generator.net.context.encoder)
    generator.net = FusedIrvisUNet(generator.net).to(device)  # its new kernels are built on the CPU
    return True


def low_precision_copy(generator: nn.Module, dtype: torch.dtype) -> tuple[nn.Module, bool]:
    """A fused copy of the generator in dtype (a context encoder folded and kept in float32: in bfloat16 a
    fine-tuned encoder's features move the output, irvis.context.ContextBranch.encode), for the caller to check on
    a probe. Returns (copy, whether fused)."""
    from irvis.nets import cast_generator

    low = copy.deepcopy(generator)
    folded = fuse(low)
    return cast_generator(low, dtype), folded
