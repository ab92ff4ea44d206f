"""Benchmarks that print ratios measured in one run, on this machine: generator speed (default vs the
Pix2Pix reference) and loader throughput (original files vs the prepared cache)."""

from __future__ import annotations

import tempfile
import time
from typing import Sequence

import torch

from irvis.data import load_pairs, loader_throughput, prepare_cache
from irvis.nets import build_generator, count_parameters
from irvis.translate import Translator


def time_generator(arch: str, direction: str = "vis2ir", size: tuple[int, int] = (1024, 1280), repeats: int = 3,
                   device: str = "cpu") -> dict:
    """Median seconds per frame of a randomly initialised generator (weights do not change speed)."""
    torch.manual_seed(0)
    translator = Translator(build_generator(direction, arch), device=device)
    x = torch.rand(translator.direction.in_channels, *size)
    translator.translate_tensor(x)  # warm-up: allocator, oneDNN kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        translator.translate_tensor(x)
        if translator.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"arch": arch, "parameters": count_parameters(translator.generator), "seconds": sorted(times)[len(times) // 2]}


def bench_generators(direction: str = "vis2ir", size=(1024, 1280), repeats: int = 3, device: str = "cpu") -> list[str]:
    ref = time_generator("pix2pix-unet256", direction, size, repeats, device)
    new = time_generator("irvis-unet", direction, size, repeats, device)
    return [
        f"generator, one {size[1]}x{size[0]} frame, {direction}, device {device}, torch threads {torch.get_num_threads()}:",
        f"  reference pix2pix-unet256: {ref['parameters'] / 1e6:6.2f} M parameters, {ref['seconds']:.3f} s/frame",
        f"  default   irvis-unet     : {new['parameters'] / 1e6:6.2f} M parameters, {new['seconds']:.3f} s/frame",
        f"  speed-up: {ref['seconds'] / new['seconds']:.2f}x   parameters: {ref['parameters'] / new['parameters']:.1f}x fewer",
    ]


def bench_loader(roots: Sequence[str], n: int = 48, load_size: int = 286, crop_size: int = 256) -> list[str]:
    pairs = load_pairs(roots, "train")[:n]
    with tempfile.TemporaryDirectory() as tmp:
        cache_roots = prepare_cache(roots, tmp, size=load_size, splits=("train",), progress=False)
        cached = load_pairs(cache_roots, "train")[:n]
        loader_throughput(pairs[:4], n=4)  # warm-up
        original = loader_throughput(pairs, n=n, load_size=load_size, crop_size=crop_size)
        prepared = loader_throughput(cached, n=n, load_size=load_size, crop_size=crop_size)
    return [
        f"loader, {len(pairs)} pairs from {', '.join(roots)}, load {load_size} crop {crop_size}, 1 process:",
        f"  original files : {original:7.1f} pairs/s",
        f"  prepared cache : {prepared:7.1f} pairs/s",
        f"  speed-up: {prepared / original:.2f}x",
    ]
