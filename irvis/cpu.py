"""The CPU this process runs on: what it computes natively, and how the process's memory serves inference."""

from __future__ import annotations

import ctypes
import os
import platform

import torch

# glibc's mallopt parameters (malloc.h) and their environment variables, which, when set, win over ours
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
MMAP_THRESHOLD = 32 << 20  # blocks up to this size come from the heap and are reused (a 1280x1024 RGB float32 frame is 15 MiB)
TRIM_THRESHOLD = 256 << 20  # free memory the heap may keep before it shrinks
_freed_memory_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed blocks of up to MMAP_THRESHOLD instead of returning them to the
    system, process-wide, once. Its defaults map large blocks afresh each time they are needed (its adaptive
    threshold stops short of a full-resolution frame's working set), and the kernel then zero-fills every
    page on first touch: about 10,000 page faults per 1280x1024 frame. The cost: the process keeps up to
    TRIM_THRESHOLD of freed memory for the next frame. Does nothing (returns False) off glibc, or where the
    process chose its own settings through glibc's MALLOC_*_ variables or GLIBC_TUNABLES."""
    global _freed_memory_kept
    if _freed_memory_kept is None:
        _freed_memory_kept = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and not any(map(os.environ.get, _MALLOC_ENV)):
            try:
                mallopt = ctypes.CDLL(None).mallopt
                _freed_memory_kept = (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                                      and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
            except (OSError, AttributeError):  # a libc without mallopt
                pass
    return _freed_memory_kept


def cpu_has_native_bf16() -> bool:
    """AMX tiles or AVX512-BF16: oneDNN then runs bfloat16 convolutions natively (on other CPUs bf16 is
    emulated and slower than float32)."""
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and (cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported()))
    except AttributeError:
        return False
