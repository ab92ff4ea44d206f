"""Translator: any image in, its translation out, at the input's own resolution and aspect ratio.

Precision: by default the fastest numeric path this machine supports is used: a bfloat16 copy of the
weights on bfloat16 activations where the CPU has native bf16 (AMX or AVX512-BF16, through oneDNN) or
the GPU supports it, float16 on other CUDA GPUs, plain float32 elsewhere. A fast path is kept only if, on a probe image, its output
matches the plain float32 output within FAST_PATH_MIN_PSNR at each of three exposures (irvis.probe.PROBE_EXPOSURES: a
trained per-frame level amplifies a dark frame, where a fast path drifts first); `precision="fp32"` forces plain
float32.

Memory: on the CPU a Translator makes the process keep freed memory for reuse (irvis.cpu.keep_freed_memory).
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from irvis.colormap import DEFAULT_PALETTE, apply_palette
from irvis.context import reads_frame_level
from irvis.cpu import cpu_has_native_bf16, keep_freed_memory
from irvis.directions import Direction, get_direction
from irvis.fused import low_precision_copy
from irvis.hub import resolve_weights
from irvis.images import ImageSource, load_image
from irvis.generator_folder import INFERENCE_FILE, TRAINING_CONFIG_FILE, WeightsError
from irvis.metrics import psnr
from irvis.nets import Generator, load_generator
from irvis.png import save_png
from irvis.probe import probe_exposures, probe_image

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# a fast path must reproduce the float32 output at least this closely (PSNR, images in [0, 1])
FAST_PATH_MIN_PSNR = 40.0


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


def fast_precision(device: torch.device) -> str:
    """The reduced precision worth trying on this device, or "fp32" when there is none."""
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


MAX_WORKING_SIZE = 16_384


def recorded_working_size(folder: Path) -> int | None:
    """The shorter side to translate at, when the generator's folder records it: inference.json's
    "working_size" (chosen on full-resolution frames when the generator was published; null = native),
    else the shorter side the trainer validated at (training_config.json); None when neither says. An
    inference.json that is there but wrong is an error (WeightsError), not a silent fallback."""
    path = folder / INFERENCE_FILE
    if path.is_file():
        try:
            value = json.loads(path.read_text())["working_size"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise WeightsError(f"{path}: expected {{\"working_size\": null or a number of pixels}} ({e!r})") from None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= MAX_WORKING_SIZE):
            raise WeightsError(f"{path}: working_size must be null (native) or a whole number from 1 to "
                               f"{MAX_WORKING_SIZE}, got {value!r}")
        return value
    try:
        side = int(json.loads((folder / TRAINING_CONFIG_FILE).read_text())["val_short_side"])
        return side if 1 <= side <= MAX_WORKING_SIZE else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Translator:
    """working_size: images whose shorter side is larger are translated at that shorter side and the
    prediction is resized back to the input's resolution. A generator trained on frames about 256
    pixels high sees objects 4x larger in a 1280x1024 frame than it ever learnt from; translating at its
    working size keeps the scale it knows (and is 16x cheaper). None translates at native resolution.
    keep_memory: on the CPU, make this process's malloc keep freed memory for reuse (keep_freed_memory)."""

    def __init__(self, generator: Generator, device: str | torch.device = "auto", source: str | None = None,
                 working_size: int | None = None, precision: str = "auto", compile: bool = False,
                 keep_memory: bool = True, max_pixels: int | None = None):
        if working_size is not None and working_size < 1:
            raise ValueError(f"working size must be a positive number of pixels, got {working_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.working_size, self.max_pixels = working_size, max_pixels
        self.device = resolve_device(device)
        if keep_memory and self.device.type == "cpu":
            keep_freed_memory()
        self.generator = generator.eval().to(self.device)
        if self.device.type in ("cpu", "cuda"):
            # convolutions run markedly faster in NHWC on oneDNN and cuDNN
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.direction: Direction = get_direction(generator.direction)
        self.source = source  # where the weights came from, for reports
        self._forward, self._dtype = self.generator, torch.float32
        self.precision, self.probe_psnr, self.folded = "fp32", None, False
        self._choose_precision(precision)
        self.compiled = False
        if compile:
            self.compile()

    # -- the numeric path ----------------------------------------------------------------------------
    def _choose_precision(self, asked: str) -> None:
        """auto: the reduced precision this device runs natively, kept only where it matches float32 on a
        probe image within FAST_PATH_MIN_PSNR. An explicit bf16/fp16 is used as asked (and still probed).
        The fast path runs a bf16/fp16 copy of the weights on bf16/fp16 activations: on oneDNN this beats
        autocast (no casts between layers) and keeps GroupNorm and the interpolations in the low dtype too."""
        candidate = fast_precision(self.device) if asked == "auto" else asked
        if candidate == "fp32" or (asked == "auto" and reads_frame_level(self.generator)):
            return
        dtype = torch.bfloat16 if candidate == "bf16" else torch.float16
        probe = probe_exposures(self.direction.in_channels, multiple=self.generator.size_multiple).to(self.device)
        if self.device.type in ("cpu", "cuda"):
            probe = probe.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            try:
                reference = self.generator(probe).float()
                low, folded = low_precision_copy(self.generator, dtype)  # irvis.fused
                fast = low(probe.to(dtype)).float()
                self.probe_psnr = psnr(fast.clamp(0, 1), reference.clamp(0, 1)).min().item()  # the worst exposure
            except RuntimeError as e:  # a device without this dtype's kernels
                if asked != "auto":
                    raise ValueError(f"{candidate} is not available on {self.device}: {e}") from None
                return
        if asked == "auto" and not self.probe_psnr >= FAST_PATH_MIN_PSNR:  # NaN (a broken fast path) included
            return
        self.precision, self._dtype, self._forward, self.folded = candidate, dtype, low, folded

    def compile(self) -> bool:
        """torch.compile the generator (Inductor; needs a C++ compiler on the CPU). Each new input size is
        compiled once, so this pays off on many frames of one size (a folder, a video). Returns whether it
        worked; on failure the eager path stays."""
        if self.compiled:
            return True
        try:
            compiled = torch.compile(self._forward)
            probe = probe_image(self.direction.in_channels, (64, 64), 0, self.generator.size_multiple).to(self.device, self._dtype)
            with torch.inference_mode():
                compiled(probe.contiguous(memory_format=torch.channels_last))
        except Exception as e:  # no compiler, unsupported backend: the eager path is always there
            warnings.warn(f"torch.compile unavailable here, using eager PyTorch ({type(e).__name__}: {e})")
            return False
        self._forward, self.compiled = compiled, True
        return True

    @property
    def path(self) -> str:
        """The numeric path in words, for logs and reports."""
        words = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[self.precision]
        if self.probe_psnr is not None and self.precision != "fp32":
            words += f" ({self.probe_psnr:.1f} dB vs float32 on the probe, worst exposure)"
        if self.folded:
            words += ", folded full-resolution tail"
        return words + (", torch.compile" if self.compiled else "")

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, device: str | torch.device = "auto",
                        revision: str | None = None, working_size: int | str | None = "auto",
                        precision: str = "auto", compile: bool = False, max_pixels: int | None = None) -> "Translator":
        """working_size "auto": the size recorded beside the weights by the trainer, else native."""
        folder = resolve_weights(path_or_repo_id, revision=revision)
        if working_size == "auto":
            working_size = recorded_working_size(folder)
        return cls(load_generator(folder), device=device, source=str(path_or_repo_id), working_size=working_size,
                   precision=precision, compile=compile, max_pixels=max_pixels)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) on any device, float or uint8 -> (N, C_out, H, W) float32 in [0, 1] on self.device."""
        if x.shape[1] != self.direction.in_channels:
            raise ValueError(f"{self.direction.name} expects {self.direction.in_channels}-channel input, got {x.shape[1]}")
        size = x.shape[-2:]
        target = self._working_shape(*size)
        resize = target is not None
        from_uint8 = x.dtype == torch.uint8
        x = x.to(self.device)
        # straight to the dtype the network runs in, unless a float32 resize comes first (0-255 are exact in bf16),
        # into NHWC for the convolutions, with every stride canonical: a decoded frame given as load(...)[None]
        # has a batch stride of C, which PyTorch's convolutions read as NCHW (vis2ir 20% slower)
        layout = torch.channels_last if self.device.type in ("cpu", "cuda") else torch.contiguous_format
        x = torch.empty(x.shape, dtype=torch.float32 if resize else self._dtype, device=self.device,
                        memory_format=layout).copy_(x)
        if from_uint8:
            x = x.div_(255)
        if resize:
            x = v2.functional.resize(x, target, antialias=True).clamp_(0, 1).to(self._dtype)
        padded, (h, w) = pad_to_multiple(x, self.generator.size_multiple)
        if self.device.type in ("cpu", "cuda"):
            padded = padded.contiguous(memory_format=torch.channels_last)
        y = self._forward(padded)[..., :h, :w].float()
        if y.shape[-2:] != size:  # bicubic overshoots: clamp; the generator's own output is in [0, 1]
            return F.interpolate(y, size=tuple(size), mode="bicubic", align_corners=False).clamp_(0, 1)
        return y

    def _working_shape(self, h: int, w: int) -> list[int] | None:
        """The size the network runs at for an h x w input, or None for the input's own: the shorter side at
        most working_size, then at most max_pixels in all (a very elongated image, or no working size)."""
        target = None
        if self.working_size is not None and min(h, w) > self.working_size:
            target = [self.working_size]  # torchvision's own rounding of the longer side
            h, w = (self.working_size, int(self.working_size * w / h)) if h <= w else (int(self.working_size * h / w),
                                                                                      self.working_size)
        if self.max_pixels is not None and h * w > self.max_pixels:
            f = math.sqrt(self.max_pixels / (h * w))
            target = [max(1, int(h * f)), max(1, int(w * f))]
        return target

    @torch.inference_mode()
    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) or (C_in, H, W) in [0, 1] -> same layout with C_out channels, on the CPU."""
        single = x.dim() == 3
        y = self._predict(x[None] if single else x).cpu().contiguous()
        return y[0] if single else y

    @torch.inference_mode()
    def translate_uint8(self, x: torch.Tensor) -> np.ndarray:
        """(N, C_in, H, W) float in [0, 1] or uint8 -> (N, H, W, C_out) uint8 array, rounded as `to_pil`
        rounds. The fast route to files: no float copy of the output in channel-first order."""
        y = self._predict(x).mul_(255).round_().to(torch.uint8)
        return y.permute(0, 2, 3, 1).cpu().contiguous().numpy()

    def load(self, image: ImageSource) -> torch.Tensor:
        """Decode and validate an input image for this direction (raises ImageError): (C, H, W), uint8 for an
        8-bit image (converted once, inside the network's first pass), float in [0, 1] for a 16-bit one."""
        return load_image(image, self.direction.source, uint8=True)

    def __call__(self, image: ImageSource) -> Image.Image:
        return array_to_pil(self.translate_uint8(self.load(image)[None])[0])

    def translate_batch(self, images: Iterable[ImageSource], batch_size: int = 8) -> list[Image.Image]:
        """Translate many images; those of equal size run together in batches of batch_size."""
        tensors = [self.load(img) for img in images]
        outputs: list[torch.Tensor | None] = [None] * len(tensors)
        by_size: dict[tuple, list[int]] = {}
        for i, t in enumerate(tensors):  # 8-bit (uint8) and 16-bit (float) images never share a batch
            by_size.setdefault((*t.shape[-2:], t.dtype), []).append(i)
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                for i, y in zip(chunk, self.translate_uint8(torch.stack([tensors[i] for i in chunk]))):
                    outputs[i] = y
        return [array_to_pil(y) for y in outputs]


def array_to_pil(arr: np.ndarray) -> Image.Image:
    """(H, W, 1) or (H, W, 3) uint8 -> PIL "L" or "RGB"."""
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


# ---------------------------------------------------------------------------------------------------
# Many files: decoding, translation and encoding overlapped

_DONE = object()


def overlapped(source: Iterable, work, sink, depth: int = 2) -> None:
    """Run `sink(work(item))` for every item of `source`, with three stages at once: `source` is iterated
    in a reader thread, `work` runs in the calling thread and `sink` in a writer thread, each handing over
    through a queue of `depth` items, so the slowest stage sets the pace (decoders, PyTorch and the PNG compressors
    release the GIL). The first error of any stage stops all three and is raised here."""
    import queue
    import threading

    q_in: queue.Queue = queue.Queue(depth)
    q_out: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(q, item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def get(q):
        while not stop.is_set():
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                pass
        return _DONE

    def read():
        try:
            for item in source:
                if not put(q_in, item):
                    break
        except BaseException as e:
            errors.append(e)
            stop.set()
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
            put(q_in, _DONE)

    def write():
        try:
            while (item := get(q_out)) is not _DONE:
                sink(item)
        except BaseException as e:
            errors.append(e)
            stop.set()

    # each thread in a copy of the caller's context: callbacks (a web request's progress bar) see what it sees
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(stage,), daemon=True)
               for stage in (read, write)]
    for t in threads:
        t.start()
    try:
        while (item := get(q_in)) is not _DONE:
            if not put(q_out, work(item)):
                break
        put(q_out, _DONE)
        threads[1].join()
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


def translate_files(translator: "Translator", jobs: list[tuple[Path, Path]], progress: bool = True,
                    report=None, palette: str = DEFAULT_PALETTE) -> dict:
    """Translate each (source image, destination PNG) pair, decoding the next image and writing the last
    one while the current one is translated. A file that cannot be used is reported through
    `report(src, error)` and skipped. An infrared prediction is written in `palette` (irvis.colormap; white-hot
    writes its gray values as they are). Returns images, failures, seconds, frames_per_second."""
    from tqdm.auto import tqdm

    from irvis.images import ImageError

    Image.init()  # Pillow registers its format plugins lazily, and not thread-safely: do it here, once
    if palette != DEFAULT_PALETTE and translator.direction.target != "infrared":
        raise ValueError(f"palette {palette!r}: palettes draw infrared images, and {translator.direction.name} "
                         f"writes {translator.direction.target} ones")
    draw = (lambda y: y) if palette == DEFAULT_PALETTE else (lambda y: apply_palette(y, palette))
    failures: list[tuple[Path, ImageError]] = []
    bar = tqdm(total=len(jobs), unit="img", desc=f"translate {translator.direction.name}", disable=not progress,
               dynamic_ncols=True)

    def decode():
        for src, dst in jobs:
            try:
                yield src, dst, translator.load(src)
            except ImageError as e:
                yield src, dst, e

    def work(item):
        src, dst, x = item
        return (src, dst, x) if isinstance(x, ImageError) else (src, dst, translator.translate_uint8(x[None])[0])

    def sink(item):
        src, dst, y = item
        if isinstance(y, ImageError):
            failures.append((src, y))
            if report is not None:
                report(src, y)
        else:
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            save_png(draw(y), dst)
        bar.update(1)

    start = time.perf_counter()
    try:
        overlapped(decode(), work, sink)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    done = len(jobs) - len(failures)
    return {"images": done, "failures": len(failures), "seconds": seconds,
            "frames_per_second": done / seconds if seconds > 0 else 0.0}
