"""Generators: the architecture registry, building, loading and saving.

Two generator architectures share one class, `Generator`, so a folder's config.json says which one it
holds and loading is one call; ARCHITECTURES is the registry (builder, settings with their defaults, size
multiple, initialisation) and SETTINGS what each setting means: Generator, the trainer's flags, checks and
initialisation, and `python -m irvis info` all read them:

- "irvis-unet" (default): a U-Net designed for any-size translation on CPU and GPU: bilinear upsampling
  followed by convolution (no transposed convolutions, hence no checkerboard artifacts), GroupNorm
  (statistics per image, so results do not depend on batch size or on how a batch is split across
  GPUs), residual blocks at 1/16 resolution, and few channels at full resolution where CPU time goes.
- "pix2pix-unet256": the original Pix2Pix generator (Isola et al. 2017; U-Net with 8 down-samplings,
  ngf 64, batch norm, dropout; irvis.pix2pix), kept as the reference every result is compared with.

Both take images in [0, 1] and return images in [0, 1]; the [-1, 1] scaling Pix2Pix uses lives inside.
Weights are config.json + model.safetensors, loaded strictly (see `load_generator`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from safetensors.torch import load_model
from torch import nn

from irvis.context import LEVEL_VIEWS, ContextBranch, LevelBranch, frame_view, histogram_features, level_reading, load_lite0
from irvis.directions import get_direction
from irvis.generator_folder import (CONFIG_NAME, MAX_PARAMETERS, WEIGHTS_NAME, WeightsError,
                                    check_config, header_shapes)
from irvis.pix2pix import NORMS, Pix2PixUNet256, init_pix2pix, norm_layer


class ConvNormAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, norm: str, stride: int = 1, act: bool = True):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=norm == "none"),
            norm_layer(norm, c_out),
            nn.LeakyReLU(0.2, inplace=True) if act else nn.Identity(),
        )


class ResBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(channels, channels, norm), ConvNormAct(channels, channels, norm, act=False))

    def forward(self, x):
        return F.leaky_relu(x + self.body(x), 0.2)


class UpBlock(nn.Module):
    """A 1x1 channel reduction, bilinear x2 (both linear, so reducing first is the same map on fewer
    channels), the skip added (cheaper than concatenation at high resolution), one 3x3 convolution."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.reduce = nn.Conv2d(c_in, c_out, 1)
        self.fuse = ConvNormAct(c_out, c_out, norm)

    def forward(self, x, skip, up_add: Callable | None = None):
        """up_add(x, skip): this level's reduction, x2 and skip addition as one exact operation (irvis.fused),
        used where the skip is exactly twice as large."""
        if up_add is not None and tuple(skip.shape[-2:]) == (2 * x.shape[-2], 2 * x.shape[-1]):
            return self.fuse(up_add(x, skip))
        x = F.interpolate(self.reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(x + skip)


HEADS = ("conv", "affine")
CONTEXTS = ("none", "lite0")


def _input_as_output(in_channels: int, out_channels: int) -> torch.Tensor:
    """(out, in) coefficients of the 'input as output' map: ITU-R 601 luma for RGB -> 1 channel, a copy of
    the one channel into each output channel, the identity for equal channel counts."""
    if in_channels == 3 and out_channels == 1:
        return torch.tensor([[0.299, 0.587, 0.114]])
    if in_channels == 1:
        return torch.ones(out_channels, 1)
    return torch.eye(out_channels, in_channels)


class IrvisUNet(nn.Module):
    """Space-to-depth in, so the network's first feature map is at 1/2 resolution (full-resolution
    convolutions with few channels are memory-bound and cost most CPU time); encoder down to
    1/2**depth; residual bottleneck; additive-skip decoder back to 1/2; then a light full-resolution
    head that sees the upsampled features beside the input itself.

    head="conv": one 3x3 convolution of [features, input]; the input enters through the same weights
    everywhere, so where context cannot tell whether an edge is brighter or darker in the other
    modality, a loss on pixels teaches the network to drop the edge (a blur).
    head="affine": that convolution plus a per-pixel affine map of the input's own channels,
    sum_c A_c(x, y) * input_c, whose coefficients the decoder predicts from context (as HDRNet's and the
    guided filter's local affine models do). Structure passes through at the input's resolution, with
    the sign and strength the scene calls for (a pedestrian's dark silhouette in visible becomes a
    bright one in infrared), and the network never has to redraw it. The coefficients start as the
    input-as-output map (the luma of a visible input; the infrared in every colour channel), so training
    begins from the input's full structure and learns which edges to keep, flip or drop, instead of
    having to discover structure from nothing under a loss that rewards a blur."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int, depth: int, n_res: int, norm: str,
                 head: str, context: str = "none", level: bool = False, level_view: str = "input"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}: use {' or '.join(HEADS)}")
        if context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}: use {' or '.join(CONTEXTS)}")
        if level_view not in LEVEL_VIEWS:
            raise ValueError(f"unknown level view {level_view!r}: use {' or '.join(LEVEL_VIEWS)}")
        if level_view != "input" and not (level and context == "lite0"):
            raise ValueError(f"level_view {level_view!r} needs the level branch and the lite0 context")
        self.level_view = level_view
        widths = [ngf * 2**i for i in range(depth)]  # at 1/2, 1/4, ... 1/2**depth
        self.stem = nn.Sequential(nn.PixelUnshuffle(2), ConvNormAct(in_channels * 4, widths[0], norm))
        self.downs = nn.ModuleList(
            nn.Sequential(ConvNormAct(widths[i], widths[i + 1], norm, stride=2), ConvNormAct(widths[i + 1], widths[i + 1], norm))
            for i in range(depth - 1)
        )
        self.bottleneck = nn.Sequential(*[ResBlock(widths[-1], norm) for _ in range(n_res)])
        self.ups = nn.ModuleList(UpBlock(widths[i + 1], widths[i], norm) for i in reversed(range(depth - 1)))
        self.to_full = nn.Conv2d(widths[0], 8, 3, padding=1)
        self.head = nn.Conv2d(8 + in_channels, out_channels, 3, padding=1)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.context = ContextBranch(widths) if context == "lite0" else None
        level_inputs = (histogram_features(in_channels) if level_view == "histogram"
                        else ContextBranch.GLOBAL_CHANNELS if self.context else widths[-1])
        self.level = LevelBranch(level_inputs, widths[-1]) if level else None
        self.coefficients = None
        if head == "affine":  # one coefficient per (output, input) channel pair, from the half-resolution features
            self.coefficients = nn.Conv2d(widths[0], out_channels * in_channels, 3, padding=1)
            nn.init.zeros_(self.coefficients.weight)
            with torch.no_grad():
                self.coefficients.bias.copy_(_input_as_output(in_channels, out_channels).flatten())

    def body(self, x, first: torch.Tensor | None = None, up_adds: list | None = None, frame: torch.Tensor | None = None):
        """Encoder, bottleneck and decoder: the half-resolution features the head reads. first: the stem's
        output where the caller computed it; up_adds: each decoder level's UpBlock.forward hook (irvis.fused).
        The context branch's features join the two coarsest encoder levels; the level branch scales and
        shifts the bottleneck's output per frame (cheap there, and everything after it follows).
        frame: with a whole-frame level_view, the frame_view of the whole frame x was cropped from (training passes
        it beside a crop; None: x is the whole frame)."""
        skips = [self.stem(x) if first is None else first]
        for down in self.downs:
            skips.append(down(skips[-1]))
        pooled = None
        if self.context is not None:
            coarsest, second, pooled = self.context(x)
            skips[-1] = skips[-1] + coarsest
            skips[-2] = skips[-2] + second
        h = self.bottleneck(skips.pop())
        if self.level is not None:
            if self.level_view != "input":  # the frame's level from the whole frame, also when x is a crop of it
                pooled = self.frame_pooled(frame_view(x) if frame is None else frame.to(x.dtype))
            h = self.level(h, h.mean(dim=(2, 3)) if pooled is None else pooled)
        for k, up in enumerate(self.ups):
            h = up(h, skips.pop(), up_adds[k] if up_adds else None)
        return h

    def frame_pooled(self, view: torch.Tensor) -> torch.Tensor:
        """What the level branch reads of a frame_view (in [-1, 1]) with a whole-frame level_view."""
        return level_reading(view, self.level_view, self.context)

    def frame_level(self, view: torch.Tensor) -> torch.Tensor:
        """The level branch's gain and offset (N, 2 * channels) for a frame_view in [-1, 1]."""
        return self.level.coefficients(self.frame_pooled(view).to(self.level.mlp[0].weight.dtype))

    def forward(self, x, frame: torch.Tensor | None = None):
        h = self.body(x, frame=frame)
        full = F.interpolate(F.leaky_relu(self.to_full(h), 0.2), size=x.shape[-2:], mode="bilinear", align_corners=False)
        out = self.head(torch.cat([full, x], dim=1))
        if self.coefficients is not None:
            a = F.interpolate(self.coefficients(h), size=x.shape[-2:], mode="bilinear", align_corners=False)
            a = a.unflatten(1, (self.out_channels, self.in_channels))  # (N, C_out, C_in, H, W)
            # in float32 even when the network runs in bf16: the input's fine structure lives in its low bits
            out = out.float() + (a.float() * x.float()[:, None]).sum(dim=2)
        return torch.tanh(out)


@dataclass(frozen=True)
class Architecture:
    """One generator architecture: how to build it, the settings it takes with its own defaults, and the
    multiple its input sides must be. The name in a config.json always means this network."""

    name: str
    build: Callable[..., nn.Module]  # (in_channels, out_channels, **settings) -> network
    defaults: dict[str, Any]  # every setting it takes, with its default
    multiple: Callable[[dict[str, Any]], int]  # settings -> size multiple
    summary: str
    # what a new training run starts from before its first step: (network, pretrained) -> None, loading the
    # pretrained parts when asked; None: the builder's own initialisation
    initialise: Callable[[nn.Module, bool], None] | None = None
    # settings of other architectures that configs written by earlier irvis versions carry: accepted only at
    # the value those versions wrote (they never changed the network), and not written again
    legacy: dict[str, Any] = field(default_factory=dict)
    # settings a config.json written before they existed lacks, at the value that config meant (which is not
    # always today's default: the first generators were saved before heads existed and have the conv head)
    absent: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Setting:
    """A generator setting: what it does (the trainer's --NAME help) and the values it takes (None: a whole
    number; a bool setting is on/off on the command line)."""

    help: str
    choices: tuple | None = None


# Every architecture's settings, as Generator takes them; an architecture's defaults say which it takes.
SETTINGS: dict[str, Setting] = {
    "ngf": Setting("generator base width: channels at the first level, doubled at each level below"),
    "depth": Setting("levels of the U-Net: its input sides are multiples of 2**depth"),
    "n_res": Setting("residual blocks at the U-Net's coarsest level"),
    "norm": Setting("normalisation layers: group (statistics per image), instance, batch or none", NORMS),
    "head": Setting("the output: affine (a per-pixel affine map of the input, its coefficients predicted from context: "
                    "the input's structure passes through) or conv (one convolution; the first shipped generators)",
                    HEADS),
    "level": Setting("the per-frame level branch: a scale and shift of the coarsest features from the whole frame",
                     (False, True)),
    "level_view": Setting("what the level branch reads: the encoder's features of the network's input (in training a "
                          "crop) or of a small view of the whole frame (training passes each crop's frame beside it), "
                          "that view's brightness histogram, or the encoder's features of that view blurred to its "
                          "layout (the scene, not the camera's grain)", LEVEL_VIEWS),
}


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("irvis-unet", lambda c_in, c_out, **s: IrvisUNet(c_in, c_out, **s),
                 {"ngf": 16, "depth": 5, "n_res": 2, "norm": "group", "head": "affine", "level": False},
                 lambda s: 2 ** s["depth"], "irvis U-Net: any size, GroupNorm, bilinear upsampling",
                 absent={"head": "conv"}),
    Architecture("irvis-lite0", lambda c_in, c_out, **s: IrvisUNet(c_in, c_out, context="lite0", **s),
                 {"ngf": 16, "depth": 5, "n_res": 0, "norm": "group", "head": "affine", "level": True,
                  "level_view": "input"},
                 lambda s: 2 ** s["depth"], "irvis U-Net + an ImageNet-pretrained EfficientNet-Lite0 context branch "
                 "(the input at 1/4 of its side) and a per-frame level branch",
                 initialise=lambda net, pretrained: load_lite0(net.context.encoder) if pretrained else None),
    Architecture("pix2pix-unet256", lambda c_in, c_out, **s: Pix2PixUNet256(c_in, c_out, **s),
                 {"ngf": 64, "norm": "batch"}, lambda s: 256,
                 "the Pix2Pix reference: U-Net 256, batch norm, dropout (about 54.4 M parameters)",
                 initialise=lambda net, pretrained: init_pix2pix(net),
                 legacy={"depth": 5, "n_res": 2, "head": "conv", "level": False}),
)}


def initialise_generator(generator: "Generator", pretrained: bool = True) -> "Generator":
    """A new generator as its architecture starts training: its own initialisation, and its pretrained parts
    loaded unless pretrained=False (the random-init ablation)."""
    init = architecture(generator.arch).initialise
    if init is not None:
        init(generator.net, pretrained)
    return generator


# The parts an architecture adds to the plain U-Net that start as its identity (irvis.context): a plain
# "irvis-unet" generator of the same settings can seed one, and it starts with that generator's output.
IDENTITY_PARTS = ("net.context.", "net.level.")


def grown_parts(ours: dict, theirs: dict) -> list[str] | None:
    """The state-dict keys `ours` adds to `theirs` when it is the same network grown by IDENTITY_PARTS alone
    (every key of theirs in ours at its shape, the rest identity parts); None when it is not."""
    if any(k not in ours or ours[k].shape != v.shape for k, v in theirs.items()):
        return None
    added = [k for k in ours if k not in theirs]
    return added if added and all(k.startswith(IDENTITY_PARTS) for k in added) else None


def pretrained_parameters(generator: "Generator") -> list[nn.Parameter]:
    """The parameters of a generator's pretrained part (irvis-lite0's context encoder), which train slower."""
    context = getattr(generator.net, "context", None)
    return list(context.encoder.parameters()) if context is not None else []


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}: use one of {', '.join(ARCHITECTURES)}") from None


def generator_config(direction: str, arch: str = "irvis-unet", **settings) -> dict[str, Any]:
    """The complete config of a generator: direction, arch and every setting of that architecture, the ones
    not given (or None) at the architecture's defaults. Settings it does not take are errors."""
    a = architecture(arch)
    given = {k: v for k, v in settings.items() if v is not None}
    foreign = sorted(f"{k}={v!r}" for k, v in given.items() if k not in a.defaults and a.legacy.get(k, object()) != v)
    if foreign:
        users = sorted({b.name for b in ARCHITECTURES.values() for k in given if k in b.defaults and b is not a})
        raise ValueError(f"{a.name} takes {', '.join(a.defaults)}, not {', '.join(foreign)}"
                         + (f" (a setting of {', '.join(users)})" if users else ""))
    return {"direction": get_direction(direction).name, "arch": a.name,
            **{k: given.get(k, default) for k, default in a.defaults.items()}}


class Generator(nn.Module, PyTorchModelHubMixin, library_name="irvis", tags=["image-to-image", "infrared", "pix2pix"]):
    """A translation network for one direction. Settings left out (None) take the architecture's defaults
    (ARCHITECTURES), so an arch name means the same network whichever way it is built; config.json holds
    the complete config (`self.config`)."""

    def __init__(self, direction: str = "ir2vis", arch: str = "irvis-unet", ngf: int | None = None,
                 depth: int | None = None, n_res: int | None = None, norm: str | None = None, head: str | None = None,
                 level: bool | None = None, level_view: str | None = None):
        super().__init__()
        self.config = generator_config(direction, arch, ngf=ngf, depth=depth, n_res=n_res, norm=norm, head=head,
                                       level=level, level_view=level_view)
        self._hub_mixin_config = dict(self.config)  # what save_pretrained writes as config.json
        d, a = get_direction(direction), architecture(arch)
        settings = {k: self.config[k] for k in a.defaults}
        self.direction, self.arch = d.name, a.name
        self.net = a.build(d.in_channels, d.out_channels, **settings)
        self.size_multiple = a.multiple(settings)

    @property
    def in_channels(self) -> int:
        return get_direction(self.direction).in_channels

    @property
    def wants_frame(self) -> bool:
        """Whether training should pass each crop's frame_view beside it (a whole-frame level_view)."""
        return getattr(self.net, "level_view", "input") != "input"

    def forward(self, x: torch.Tensor, frame: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C_in, H, W) in [0, 1], H and W multiples of size_multiple -> (N, C_out, H, W) in [0, 1].
        frame: the frame_view of the frames x was cropped from, in [0, 1] (level_view "frame"; None: x is whole)."""
        y = self.net(x * 2 - 1) if frame is None else self.net(x * 2 - 1, frame=frame * 2 - 1)
        if torch.is_inference_mode_enabled():  # no autograd to keep y for: rescale in place (full-res passes count)
            return y.add_(1).mul_(0.5)
        return (y + 1) / 2

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, revision: str | None = None,
                        map_location: str | torch.device = "cpu", **_ignored) -> "Generator":
        """A local folder or a Hub repo id, resolved local-first like every other entry point
        (irvis.hub.resolve_weights) and loaded strictly (load_generator): the mixin's own loader would
        fetch config.json by itself and load non-strictly."""
        from irvis.hub import resolve_weights

        return load_generator(resolve_weights(pretrained_model_name_or_path, revision=revision), map_location)


def build_generator(direction: str, arch: str = "irvis-unet", **settings) -> Generator:
    """Generator(direction, arch, **settings): the architecture's defaults for every setting not given."""
    return Generator(direction, arch, **settings)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_generator(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> Generator:
    """Load config.json + model.safetensors from a local folder. The config's types and ranges and the file's
    tensor names and shapes are checked against the network, built on the meta device (no memory), before
    anything is allocated; then the weights are loaded strictly and must be finite. Any mismatch is an error:
    never a silently random (or silently black) generator."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise WeightsError(f"{folder} is not a generator folder: {path.name} is missing")
    try:
        config = check_config(json.loads(config_path.read_text()), str(config_path), tuple(SETTINGS))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{config_path}: not valid JSON ({e})") from None
    a = ARCHITECTURES.get(config.get("arch", "irvis-unet"))
    config = {**(a.absent if a else {}), **config}
    try:
        with torch.device("meta"):
            shape_only = Generator(**config)
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{config_path}: {e}") from None
    if count_parameters(shape_only) > MAX_PARAMETERS:
        raise WeightsError(f"{config_path}: {count_parameters(shape_only) / 1e6:.0f} M parameters; generators are "
                           f"limited to {MAX_PARAMETERS / 1e6:.0f} M")
    expected = {k: tuple(v.shape) for k, v in shape_only.state_dict().items()}
    found = header_shapes(weights_path)
    missing, unexpected = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing or unexpected:
        raise WeightsError(
            f"{weights_path} does not match {config_path}: "
            f"{len(missing)} missing tensor(s) {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}")
    wrong = [f"{k} {found[k]} (expected {expected[k]})" for k in sorted(expected) if found[k] != expected[k]]
    if wrong:
        raise WeightsError(f"{weights_path} does not match {config_path}: shapes differ: {', '.join(wrong[:3])}")
    model = Generator(**config)
    try:
        load_model(model, weights_path, strict=True, device=str(map_location))
    except Exception as e:  # a file whose data does not match its own header
        raise WeightsError(f"{weights_path}: cannot be read as safetensors ({e})") from None
    broken = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise WeightsError(f"{weights_path}: {len(broken)} tensor(s) hold NaN or infinite values ({broken[0]}, ...): "
                           "the weights are damaged")
    return model.eval()


def cast_generator(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """model.to(dtype) in place, except a context encoder, which stays in float32 (ContextBranch.encode says why)."""
    model.to(dtype)
    for m in model.modules():
        if isinstance(m, ContextBranch):
            m.encoder.float()
    return model


def save_generator(model: Generator, folder: str | os.PathLike, half: bool = False) -> Path:
    """config.json + model.safetensors; half=True stores float16 (loads back into float32), a context encoder's
    weights float32."""
    import copy

    to_save = cast_generator(copy.deepcopy(model).cpu(), torch.float16) if half else model
    to_save.save_pretrained(folder)
    return Path(folder)
