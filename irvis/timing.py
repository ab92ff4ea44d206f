"""How the benchmarks time things: one home for the measuring rule every section and the trainer's card use."""

from __future__ import annotations

import time
from typing import Callable

import torch


def median_seconds(fn: Callable[[], object], repeats: int = 3, device: torch.device | None = None) -> float:
    """Median wall-clock seconds of fn() over `repeats` runs, after one warm-up run (CUDA work waited for)."""
    def once():
        start = time.perf_counter()
        fn()
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    fn()
    times = sorted(once() for _ in range(max(1, repeats)))
    return times[len(times) // 2]


def once_seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one run of fn() (for what is too slow to repeat)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
