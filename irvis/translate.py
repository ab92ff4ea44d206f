"""Translator: any image in, its translation out, at the input's own resolution and aspect ratio."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from irvis.directions import Direction, get_direction
from irvis.hub import resolve_weights
from irvis.images import ImageSource, load_image, to_pil
from irvis.nets import Generator, load_generator


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (N, C, H, W) on the bottom/right up to a multiple; reflect where the image is large enough
    (no artificial edge for the network to see), replicate for tiny images such as 17x9."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


INFERENCE_FILE = "inference.json"


def recorded_working_size(folder: Path) -> int | None:
    """The shorter side to translate at, when the generator's folder records it: inference.json's
    "working_size" (chosen on full-resolution frames when the generator was published; null = native),
    else the shorter side the trainer validated at (training_config.json); None when neither says."""
    try:
        value = json.loads((folder / INFERENCE_FILE).read_text())["working_size"]
        if value is None or (isinstance(value, int) and value > 0):
            return value
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        config = json.loads((folder / "training_config.json").read_text())
        return int(config["val_short_side"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Translator:
    """working_size: images whose shorter side is larger are translated at that shorter side and the
    prediction is resized back to the input's resolution. A generator trained on frames about 256
    pixels high sees objects 4x larger in a 1280x1024 frame than it ever learnt from; translating at its
    working size keeps the scale it knows (and is 16x cheaper). None translates at native resolution."""

    def __init__(self, generator: Generator, device: str | torch.device = "auto", source: str | None = None,
                 working_size: int | None = None):
        if working_size is not None and working_size < 1:
            raise ValueError(f"working size must be a positive number of pixels, got {working_size}")
        self.working_size = working_size
        self.device = resolve_device(device)
        self.generator = generator.eval().to(self.device)
        if self.device.type in ("cpu", "cuda"):
            # convolutions run markedly faster in NHWC on oneDNN and cuDNN
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.direction: Direction = get_direction(generator.direction)
        self.source = source  # where the weights came from, for reports

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, device: str | torch.device = "auto",
                        revision: str | None = None, working_size: int | str | None = "auto") -> "Translator":
        """working_size "auto": the size recorded beside the weights by the trainer, else native."""
        folder = resolve_weights(path_or_repo_id, revision=revision)
        if working_size == "auto":
            working_size = recorded_working_size(folder)
        return cls(load_generator(folder), device=device, source=str(path_or_repo_id), working_size=working_size)

    @torch.inference_mode()
    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) or (C_in, H, W) in [0, 1] -> same layout with C_out channels, on the CPU."""
        single = x.dim() == 3
        if single:
            x = x[None]
        if x.shape[1] != self.direction.in_channels:
            raise ValueError(f"{self.direction.name} expects {self.direction.in_channels}-channel input, got {x.shape[1]}")
        size = x.shape[-2:]
        x = x.to(self.device, torch.float32)
        if self.working_size is not None and min(size) > self.working_size:
            x = v2.functional.resize(x, [self.working_size], antialias=True).clamp(0, 1)
        padded, (h, w) = pad_to_multiple(x, self.generator.size_multiple)
        if self.device.type in ("cpu", "cuda"):
            padded = padded.contiguous(memory_format=torch.channels_last)
        y = self.generator(padded)[..., :h, :w]
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=tuple(size), mode="bicubic", align_corners=False)
        y = y.clamp(0, 1).float().cpu().contiguous()
        return y[0] if single else y

    def load(self, image: ImageSource) -> torch.Tensor:
        """Decode and validate an input image for this direction (raises ImageError)."""
        return load_image(image, self.direction.source)

    def __call__(self, image: ImageSource) -> Image.Image:
        return to_pil(self.translate_tensor(self.load(image)))

    def translate_batch(self, images: Iterable[ImageSource], batch_size: int = 8) -> list[Image.Image]:
        """Translate many images; those of equal size run together in batches of batch_size."""
        tensors = [self.load(img) for img in images]
        outputs: list[torch.Tensor | None] = [None] * len(tensors)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(tensors):
            by_size.setdefault(tuple(t.shape[-2:]), []).append(i)
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                for i, y in zip(chunk, self.translate_tensor(torch.stack([tensors[i] for i in chunk]))):
                    outputs[i] = y
        return [to_pil(y) for y in outputs]
