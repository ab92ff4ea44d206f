"""`python -m irvis bench`: every figure measured in one run, on this machine.

- inference at native resolution: the reference Pix2Pix forward pass; the default generator's forward
  pass under each speed lever (memory layout, bf16, bf16 weights, torch.compile, OpenVINO, threads), each
  with its speed-up and its PSNR against plain float32; decoding and encoding levers; one frame end to end
  (decode a JPEG, translate, encode a PNG), plain vs the automatic fast path;
- batched inference (a GPU's figure; `--batch N`, on by default with --device cuda): frames/s of the default
  generator on a batch of native frames under each lever (CUDA graphs, torch.compile), with its peak memory;
- folders and videos: frames/s through `translate_files` and `translate_video` (stages overlapped);
- training: the trainer's own step, images/s with and without a discriminator, fp32 vs bf16, beside its
  loader's pairs/s (needs --data and the trainer, train/, installed beside the library; measured by
  `python -m train bench` in a child process, so the library never imports the trainer);
- the loader with and without the prepared cache (--data);
- scoring against the truth: the app's requests with and without a truth, a gallery pair shown again, and
  `irvis evaluate` per pair (measured in irvis.bench_scoring).

Numbers go to the terminal and, with --json, to a file. Timings are medians of --repeats runs after a warm-up.

Why one file: each section is a measuring function and its lines in `format_report`, which change together (a new
lever is a row in both); the sections share the timing helper, the probe frame and the generator loading.
"""

from __future__ import annotations

import copy
import io
import json
import os
import platform
import resource
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from irvis.cpu import cpu_has_native_bf16, keep_freed_memory
from irvis.data import load_pairs, loader_throughput, prepare_cache
from irvis.directions import get_direction
from irvis.images import load_image, to_pil
from irvis.nets import build_generator, count_parameters, load_generator
from irvis.fused import fuse
from irvis.png import COMPRESS_LEVEL, COMPRESSORS, encode_png, save_png
from irvis.metrics import psnr
from irvis.timing import median_seconds
from irvis.probe import probe_image
from irvis.translate import Translator, pad_to_multiple, translate_files


def _unavailable(name: str, e: Exception) -> dict:
    """The row of a lever this machine lacks: its reason, so the rest are still measured."""
    return {"lever": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"}


def _timed_lever(rows: list, name: str, fn: Callable[[], torch.Tensor], reference: torch.Tensor, repeats: int,
                 dev: torch.device) -> tuple[float, float] | None:
    """(median seconds, PSNR of its output against reference) of one lever; None, with its row of
    unavailability appended, where it fails here."""
    try:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        out = fn().float()
        seconds = median_seconds(fn, repeats, dev)
    except Exception as e:
        rows.append(_unavailable(name, e))
        return None
    return seconds, psnr(out.clamp(0, 1), reference.clamp(0, 1)).mean().item()


def _add_built(rows: list, name: str, build: Callable[[], Callable[[], torch.Tensor]],
               add: Callable[[str, Callable[[], torch.Tensor], float], None]) -> None:
    """A lever that takes a while to set up (compiling, converting, capturing a graph): built and run once, then
    measured by add(name, run, setup seconds); its row of unavailability where that fails."""
    try:
        start = time.perf_counter()
        run = build()
        run()
        setup = time.perf_counter() - start
    except Exception as e:
        rows.append(_unavailable(name, e))
        return
    add(name, run, setup)


def _reduced_dtype(dev: torch.device) -> tuple[torch.dtype, str]:
    """The reduced precision a lever table measures on this device: bf16 (a CPU emulates it where it lacks it,
    which the table then shows), else the GPU's fp16."""
    low = torch.bfloat16 if dev.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    return low, "bf16" if low == torch.bfloat16 else "fp16"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "native_bf16": cpu_has_native_bf16(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def test_frame(direction: str, size: tuple[int, int], data: Sequence[str] | None = None) -> bytes:
    """A JPEG of the direction's source modality at (H, W): the first test (else train) frame of the first
    root of `data` (re-encoded when its size differs), else a synthetic frame."""
    d = get_direction(direction)
    h, w = size
    for split in ("test", "train"):
        pairs = load_pairs(data, split, required=False) if data else []
        if pairs:
            path = getattr(pairs[0], d.source)
            img = Image.open(path)
            if img.size == (w, h) and img.format == "JPEG":
                return Path(path).read_bytes()
            buf = io.BytesIO()
            img.convert("RGB").resize((w, h), Image.BICUBIC).save(buf, format="JPEG", quality=90)
            return buf.getvalue()
    buf = io.BytesIO()
    to_pil(probe_image(3, (h, w))[0]).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _generator(direction: str, weights: str | None):
    if weights:
        return load_generator(weights), str(weights)
    torch.manual_seed(0)
    return build_generator(direction), "random weights"


def _openvino_forward(model: torch.nn.Module, x: torch.Tensor, precision: str):
    """The generator exported to OpenVINO (converted from PyTorch in memory) and compiled for the CPU."""
    import openvino as ov

    ov_model = ov.convert_model(model.float().eval(), example_input=x)
    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                         "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    xn = x.contiguous().numpy()

    def run():
        return torch.from_numpy(request.infer({0: xn})[compiled.output(0)].copy())

    return run


def bench_inference(direction: str = "vis2ir", size: tuple[int, int] = (1024, 1280), repeats: int = 3,
                    device: str = "cpu", weights: str | None = None, data: Sequence[str] | None = None,
                    levers: bool = True, compile: bool = True, reference: bool = True) -> dict:
    """Native-resolution inference: levers on the forward pass, decode/encode, end to end."""
    dev = torch.device(device)
    d = get_direction(direction)
    g, source = _generator(direction, weights)
    g = g.eval().to(dev)
    h, w = size
    x = probe_image(d.in_channels, size).to(dev)
    result = {"direction": direction, "size": f"{w}x{h}", "device": str(dev), "weights": source, "levers": []}
    jpeg = test_frame(direction, size, data)
    if dev.type == "cpu":  # first, while malloc is as the process started; every later figure keeps freed memory
        result["freed_memory"] = bench_freed_memory(g, jpeg, repeats)

    with torch.inference_mode():
        if reference:
            # the reference as Pix2Pix's own code runs it (float32, NCHW), and with this project's cheapest
            # lossless lever (channels-last) so that no ratio flatters the default generator
            torch.manual_seed(0)
            ref = build_generator(direction, "pix2pix-unet256").eval().to(dev)
            xr = pad_to_multiple(x, ref.size_multiple)[0]
            nchw = median_seconds(lambda: ref(xr), repeats, dev)
            ref, xr = ref.to(memory_format=torch.channels_last), xr.contiguous(memory_format=torch.channels_last)
            result["reference"] = {"arch": "pix2pix-unet256", "parameters": count_parameters(ref),
                                   "forward_seconds": nchw,
                                   "forward_seconds_channels_last": median_seconds(lambda: ref(xr), repeats, dev)}
            del ref
        plain_g = copy.deepcopy(g).to(memory_format=torch.contiguous_format)
        plain_out = plain_g(x).float()
        plain_s = median_seconds(lambda: plain_g(x), repeats, dev)
        result["forward_fp32_seconds"] = plain_s
        rows = result["levers"]

        def add(name: str, fn: Callable[[], torch.Tensor], note: str = "", setup_seconds: float | None = None):
            measured = _timed_lever(rows, name, fn, plain_out, repeats, dev)
            if measured is not None:
                seconds, quality = measured
                rows.append({"lever": name, "forward_seconds": seconds, "speedup": plain_s / seconds,
                             "psnr_vs_fp32": quality, "note": note,
                             **({"setup_seconds": setup_seconds} if setup_seconds is not None else {})})

        rows.append({"lever": "fp32, NCHW (plain PyTorch)", "forward_seconds": plain_s, "speedup": 1.0,
                     "psnr_vs_fp32": float("inf"), "note": ""})
        if levers:
            gl = copy.deepcopy(g).to(memory_format=torch.channels_last)
            xl = x.contiguous(memory_format=torch.channels_last)
            add("fp32, channels-last", lambda: gl(xl))

            def autocast(model, dtype, inp):
                def run():
                    with torch.autocast(dev.type, dtype=dtype):
                        return model(inp)
                return run

            low, low_name = _reduced_dtype(dev)
            add(f"{low_name} autocast, channels-last", autocast(gl, low, xl),
                "AMX/AVX512-BF16" if dev.type == "cpu" and cpu_has_native_bf16() else "")
            gb = copy.deepcopy(gl).to(low)
            add(f"{low_name} weights and activations, channels-last", lambda: gb(xl.to(low)))
            threads = torch.get_num_threads()
            if dev.type == "cpu" and threads > 1:
                def one_thread():
                    torch.set_num_threads(1)
                    try:
                        with torch.autocast("cpu", dtype=low):
                            return gl(xl)
                    finally:
                        torch.set_num_threads(threads)
                add(f"{low_name} autocast, 1 thread instead of {threads}", one_thread)
            gf = copy.deepcopy(gl)
            if fuse(gf):  # irvis.fused: the full-resolution tail folded, exact to rounding
                add("fp32, channels-last, folded tail", lambda: gf(xl))
                gfb = copy.deepcopy(gf).to(low)
                add(f"{low_name} weights, channels-last, folded tail (auto)", lambda: gfb(xl.to(low)))

            def add_built(name: str, build: Callable[[], Callable[[], torch.Tensor]], note: str):
                _add_built(rows, name, build, lambda name, run, setup: add(name, run, note, setup))

            if compile:
                for name, dtype in (("fp32", None), (low_name, low)):
                    def build(dtype=dtype):
                        gc = torch.compile(copy.deepcopy(gl), dynamic=False)
                        return autocast(gc, dtype, xl) if dtype is not None else (lambda: gc(xl))
                    add_built(f"torch.compile, {name}, channels-last", build, "Inductor")
            if dev.type == "cpu":
                try:
                    import openvino
                except ImportError:
                    rows.append({"lever": "OpenVINO", "error": "not installed (pip install openvino)"})
                else:
                    for name, hint in (("fp32", "f32"), ("bf16", "bf16")):
                        add_built(f"OpenVINO {openvino.__version__.split('-')[0]}, {name}",
                                  lambda hint=hint: _openvino_forward(copy.deepcopy(g).cpu(), x.cpu(), hint),
                                  "exported graph")
    result.update(bench_end_to_end(g, direction, jpeg, size, repeats, device))
    return result


def bench_batch(direction: str = "vis2ir", size: tuple[int, int] = (1024, 1280), batch: int = 8, repeats: int = 10,
                device: str = "cuda", weights: str | None = None, compile: bool = True) -> dict:
    """Frames/s of the default generator on a batch of native frames (a GPU's figure): float32, channels-last,
    reduced-precision weights, the folded tail (the automatic path), that path replayed as a CUDA graph and
    compiled; each with its PSNR against float32 and its peak memory. The reference Pix2Pix U-Net beside them."""
    dev = torch.device(device)
    g, source = _generator(direction, weights)
    g = g.eval().to(dev)
    h, w = size
    x = torch.cat([probe_image(get_direction(direction).in_channels, size)] * batch).to(dev)
    low, low_name = _reduced_dtype(dev)
    result = {"direction": direction, "size": f"{w}x{h}", "batch": batch, "device": str(dev), "weights": source,
              "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None, "levers": []}
    rows = result["levers"]
    with torch.inference_mode():
        plain_out = g(x).float()

        def add(name: str, fn: Callable[[], torch.Tensor], setup_seconds: float | None = None):
            measured = _timed_lever(rows, name, fn, plain_out, repeats, dev)
            if measured is not None:
                seconds, quality = measured
                rows.append({"lever": name, "seconds_per_batch": seconds, "frames_per_second": batch / seconds,
                             "psnr_vs_fp32": quality,
                             **({"peak_memory_gib": torch.cuda.max_memory_allocated(dev) / 2**30}
                                if dev.type == "cuda" else {}),
                             **({"setup_seconds": setup_seconds} if setup_seconds is not None else {})})

        torch.manual_seed(0)
        ref = build_generator(direction, "pix2pix-unet256").eval().to(dev)
        xr = pad_to_multiple(x, ref.size_multiple)[0]
        ref_s = median_seconds(partial(ref, xr), repeats, dev)
        result["reference"] = {"arch": "pix2pix-unet256", "seconds_per_batch": ref_s, "frames_per_second": batch / ref_s}
        del ref, xr
        add("fp32, NCHW (plain PyTorch)", lambda: g(x))
        xl = x.contiguous(memory_format=torch.channels_last)
        gl = copy.deepcopy(g).to(memory_format=torch.channels_last)
        add("fp32, channels-last", lambda: gl(xl))
        gb = copy.deepcopy(gl).to(low)
        xb = xl.to(low)
        add(f"{low_name} weights, channels-last", lambda: gb(xb))
        gf = copy.deepcopy(gb)
        fast = gf if fuse(gf) else gb  # what Translator's automatic path runs
        add(f"{low_name} weights, channels-last, folded tail (auto)", lambda: fast(xb))
        if dev.type == "cuda":
            def graphed():
                static_in = xb.clone()
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(2):
                        fast(static_in)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = fast(static_in)

                def run():
                    static_in.copy_(xb)
                    graph.replay()
                    return static_out
                return run
            _add_built(rows, "... replayed as a CUDA graph", graphed, add)
        if compile:
            def compiled():
                gc = torch.compile(fast, dynamic=False)
                return lambda: gc(xb)
            _add_built(rows, "... torch.compile (Inductor)", compiled, add)
    return result


def _jpeg_to_png(translator: Translator, jpeg: bytes) -> np.ndarray:
    """The automatic path end to end: decode, translate, encode a PNG (to memory); returns the translation."""
    arr = translator.translate_uint8(translator.load(jpeg)[None])[0]
    save_png(arr, io.BytesIO())
    return arr


def bench_freed_memory(g, jpeg: bytes, repeats: int) -> dict:
    """The automatic path end to end on the CPU, with glibc's malloc as the process has it and after
    keep_freed_memory: seconds and page faults per frame. The setting cannot be undone, so this runs first."""
    fast = Translator(copy.deepcopy(g), device="cpu", keep_memory=False)

    def run():
        _jpeg_to_png(fast, jpeg)

    def measure() -> dict:
        run()  # the first frame after a change sizes the heap (or glibc's adaptive threshold)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        seconds = median_seconds(run, repeats)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        return {"seconds": seconds, "page_faults_per_frame": faults / (max(1, repeats) + 1)}

    as_it_was = measure()
    if not keep_freed_memory():
        return {"as_it_was": as_it_was, "kept": None}
    return {"as_it_was": as_it_was, "kept": measure()}


def bench_end_to_end(g, direction: str, jpeg: bytes, size: tuple[int, int], repeats: int, device: str) -> dict:
    """One JPEG frame -> PNG bytes: plain (float32, full decode, Pillow's default PNG level) vs auto."""
    d = get_direction(direction)
    plain = Translator(copy.deepcopy(g), device=device, precision="fp32")
    fast = Translator(copy.deepcopy(g), device=device)
    h, w = size

    def plain_run():
        out = to_pil(plain.translate_tensor(load_image(jpeg, d.source)))
        out.save(io.BytesIO(), format="PNG")
        return out

    def fast_run():
        return _jpeg_to_png(fast, jpeg)

    a = np.asarray(plain_run(), np.float32) / 255
    b = fast_run().astype(np.float32) / 255
    b = b[..., 0] if b.shape[-1] == 1 else b
    e2e = {"plain_seconds": median_seconds(plain_run, repeats), "fast_seconds": median_seconds(fast_run, repeats),
           "fast_path": fast.path, "psnr_fast_vs_plain": psnr(*(torch.from_numpy(v).reshape(1, 1, 1, -1) for v in (a, b))).item()}
    # where the rest of the time goes
    y = fast.translate_uint8(fast.load(jpeg)[None])[0]
    plain_float = plain.translate_tensor(load_image(jpeg, d.source))
    pil = to_pil(plain_float)

    def colour_then_luma():  # how infrared JPEGs were decoded before load_image drafted their luma plane
        return torch.from_numpy(np.array(Image.open(io.BytesIO(jpeg)).convert("L"))).float().div_(255)

    stages = {
        **({"decode JPEG, colour converted to luma": median_seconds(colour_then_luma, repeats)}
           if d.in_channels == 1 else {}),
        "decode JPEG to tensor" + (", luma plane only (load_image)" if d.in_channels == 1 else ""):
            median_seconds(lambda: load_image(jpeg, d.source), repeats),
        "forward (auto path, incl. pad/crop/uint8)": median_seconds(lambda: fast.translate_uint8(fast.load(jpeg)[None]), repeats)
        - median_seconds(lambda: fast.load(jpeg), repeats),
        "to PIL, float route (to_pil)": median_seconds(lambda: to_pil(plain_float), repeats),
        "PNG encode, Pillow default (level 6)": median_seconds(lambda: pil.save(io.BytesIO(), format="PNG"), repeats),
        "PNG encode, Pillow level 1": median_seconds(lambda: pil.save(io.BytesIO(), format="PNG", compress_level=1),
                                                     repeats),
        **{f"PNG encode, irvis.png (Up filter, {name} level {COMPRESS_LEVEL})": median_seconds(
            lambda name=name: encode_png(y, compressor=name), repeats) for name in COMPRESSORS},
    }
    return {"end_to_end": e2e, "stages": stages, "frame_bytes": len(jpeg), "frame_size": f"{w}x{h}"}


def bench_folder_and_video(direction: str, size: tuple[int, int], frames: int = 12, device: str = "cpu",
                           weights: str | None = None, data: Sequence[str] | None = None) -> dict:
    """frames/s of `translate_files` on a folder of copies of one JPEG frame, and of `translate_video` on a
    clip of that frame (H.264); decoding and encoding alone beside them."""
    from fractions import Fraction

    from irvis.video import VideoWriter, read_frames, translate_video

    d = get_direction(direction)
    g, _ = _generator(direction, weights)
    translator = Translator(g, device=device)
    jpeg = test_frame(direction, size, data)
    h, w = size
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jobs = []
        for i in range(frames):
            (tmp / "in").mkdir(exist_ok=True)
            (tmp / "in" / f"{i:03d}.jpg").write_bytes(jpeg)
            jobs.append((tmp / "in" / f"{i:03d}.jpg", tmp / "out" / f"{i:03d}.png"))
        translator.translate_uint8(translator.load(jpeg)[None])  # warm-up
        r = translate_files(translator, jobs, progress=False)
        start = time.perf_counter()
        for src, dst in jobs:  # the same work, one stage after another
            save_png(translator.translate_uint8(translator.load(src)[None])[0], dst)
        sequential = frames / (time.perf_counter() - start)
        out["folder"] = {"frames": frames, "frames_per_second": r["frames_per_second"],
                         "sequential_frames_per_second": sequential}
        frame = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
        clip = tmp / "clip.mp4"
        start = time.perf_counter()
        with VideoWriter(clip, w, h, rate=Fraction(25)) as wr:
            for _ in range(frames):
                wr.write(frame)
        encode_fps = frames / (time.perf_counter() - start)
        start = time.perf_counter()
        n = sum(1 for _ in read_frames(clip, d.in_channels))
        decode_fps = n / (time.perf_counter() - start)
        r = translate_video(translator, clip, tmp / "clip_out.mp4", progress=False)
        out["video"] = {"frames": r["frames"], "frames_per_second": r["frames_per_second"],
                        "decode_only_frames_per_second": decode_fps, "encode_only_frames_per_second": encode_fps,
                        "codec": "H.264 (libx264 veryfast, crf 18)"}
    out["path"] = translator.path
    out["size"] = f"{w}x{h}"
    return out


def bench_training(data: Sequence[str], direction: str = "vis2ir", steps: int = 3, device: str = "cpu",
                   batch_size: int = 16, crop_size: int = 128, compile: bool = False) -> dict:
    """The trainer's step and loader, measured by the trainer's own command (`python -m train bench`) in a child
    process: the library never imports the trainer, and the trainer's process-wide Accelerate state stays out of
    this one. Skipped, with the reason, when the trainer is not installed beside the library."""
    import importlib.util
    import subprocess
    import sys

    spec = importlib.util.find_spec("train")
    if spec is None or spec.origin is None:
        return {"skipped": "the trainer (train/) is not installed beside irvis"}
    env = dict(os.environ)  # the child finds the trainer where this process did, whatever its working folder
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(spec.origin).parents[1]), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "training.json"
        run = subprocess.run([sys.executable, "-m", "train", "bench", "--data", *map(str, data), "--direction", direction,
                              "--steps", str(steps), "--device", device, "--batch-size", str(batch_size), "--crop",
                              str(crop_size), "--json", str(out), *(["--compile"] if compile else [])],
                             env=env, capture_output=True, text=True)
        if run.returncode != 0 or not out.is_file():
            reason = ((run.stderr or run.stdout).strip().splitlines() or ["no output"])[-1]
            return {"skipped": f"python -m train bench failed: {reason}"}
        return json.loads(out.read_text())


def bench_loader(roots: Sequence[str], n: int = 48, load_size: int = 286, crop_size: int = 256) -> dict:
    pairs = load_pairs(roots, "train")[:n]
    with tempfile.TemporaryDirectory() as tmp:
        # only the pairs timed: preparing a whole split (12,000 decodes on the full LLVIP) to time 48 is waste
        cache_roots = prepare_cache(roots, tmp, size=load_size, splits=("train",), progress=False, max_pairs=n)
        cached = load_pairs(cache_roots, "train")[:n]
        loader_throughput(pairs[:4], n=4)  # warm-up
        original = loader_throughput(pairs, n=n, load_size=load_size, crop_size=crop_size)
        prepared = loader_throughput(cached, n=n, load_size=load_size, crop_size=crop_size)
    return {"pairs": len(pairs), "load_size": load_size, "crop_size": crop_size,
            "original_pairs_per_second": original, "prepared_pairs_per_second": prepared}


# -- the report ----------------------------------------------------------------------------------------
def _lever_lines(rows: list[dict], width: int, speed: Callable[[dict], str],
                 after: Callable[[dict], str] = lambda row: "") -> list[str]:
    """One line per lever: its name, its speed columns, its PSNR against float32, then `after` and its setup time."""
    lines = []
    for row in rows:
        if "error" in row:
            lines.append(f"  {row['lever']:{width}s} unavailable: {row['error']}")
            continue
        p = row["psnr_vs_fp32"]
        setup = f"  (setup {row['setup_seconds']:.0f} s)" if "setup_seconds" in row else ""
        lines.append(f"  {row['lever']:{width}s} {speed(row)} {'exact' if p == float('inf') else f'{p:.1f} dB':>13s}"
                     f"{after(row)}{setup}")
    return lines


def format_report(r: dict) -> list[str]:
    m = r["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)"
             + (f", GPU {m['gpu']}" if m.get("gpu") else "") + (", native bf16" if m["native_bf16"] else "")]
    if "load" in r:
        lines.append(f"load during the run: {r['load']}")
    inf = r.get("inference")
    if inf:
        lines.append(f"\ninference, one {inf['size']} frame, {inf['direction']}, {inf['device']} ({inf['weights']}):")
        ref = inf.get("reference")
        if ref:
            lines.append(f"  reference pix2pix-unet256 forward, fp32: {ref['forward_seconds']:.3f} s as its code runs it "
                         f"(NCHW), {ref['forward_seconds_channels_last']:.3f} s channels-last "
                         f"({ref['parameters'] / 1e6:.1f} M parameters)")
        lines.append(f"  {'default generator forward pass':48s} {'seconds':>8s} {'speed-up':>9s} {'PSNR vs fp32':>13s}")
        lines += _lever_lines(inf["levers"], 48, lambda row: f"{row['forward_seconds']:8.3f} {row['speedup']:8.2f}x")
        lines.append("  stages of one frame:")
        for name, s in inf["stages"].items():
            lines.append(f"    {name:46s} {s:8.3f} s")
        e = inf["end_to_end"]
        lines.append(f"  end to end (JPEG -> translate -> PNG), plain fp32 : {e['plain_seconds']:.3f} s")
        lines.append(f"  end to end, automatic path ({e['fast_path']}): {e['fast_seconds']:.3f} s, "
                     f"{e['psnr_fast_vs_plain']:.1f} dB vs plain")
        fm = inf.get("freed_memory")
        if fm and fm["kept"]:
            before, kept = fm["as_it_was"], fm["kept"]
            lines.append(f"  end to end, automatic path, glibc's malloc as it came: {before['seconds']:.3f} s "
                         f"({before['page_faults_per_frame']:.0f} page faults a frame); keeping freed memory "
                         f"(every figure here): {kept['seconds']:.3f} s ({kept['page_faults_per_frame']:.0f}), "
                         f"{before['seconds'] / kept['seconds']:.2f}x")
        elif fm:
            lines.append("  malloc: this process's own settings or an earlier Translator's were kept "
                         f"(end to end {fm['as_it_was']['seconds']:.3f} s)")
        if ref:
            lines.append(f"  end to end vs the reference forward pass: {ref['forward_seconds'] / e['fast_seconds']:.1f}x "
                         f"faster ({ref['forward_seconds_channels_last'] / e['fast_seconds']:.1f}x vs its channels-last run)")
    bt = r.get("batch")
    if bt:
        lines.append(f"\nbatched inference, {bt['batch']} frames of {bt['size']}, {bt['direction']}, {bt['device']}"
                     + (f" ({bt['gpu']})" if bt.get("gpu") else "") + f", {bt['weights']}:")
        ref = bt["reference"]
        lines.append(f"  reference pix2pix-unet256, fp32: {ref['frames_per_second']:.1f} frames/s")
        lines.append(f"  {'default generator':52s} {'frames/s':>9s} {'PSNR vs fp32':>13s} {'peak GiB':>9s}")
        lines += _lever_lines(bt["levers"], 52, lambda row: f"{row['frames_per_second']:9.1f}",
                              lambda row: f" {row['peak_memory_gib']:9.2f}" if "peak_memory_gib" in row else f" {'':9s}")
    fv = r.get("throughput")
    if fv:
        f, v = fv["folder"], fv["video"]
        lines.append(f"\nfolders and videos, {fv['size']} frames ({fv['path']}):")
        lines.append(f"  folder of {f['frames']} JPEGs -> PNGs: {f['frames_per_second']:.2f} frames/s overlapped, "
                     f"{f['sequential_frames_per_second']:.2f} one stage after another")
        lines.append(f"  video, {v['frames']} frames, {v['codec']}: {v['frames_per_second']:.2f} frames/s "
                     f"(decoding alone {v['decode_only_frames_per_second']:.1f}, encoding alone "
                     f"{v['encode_only_frames_per_second']:.1f})")
    tr = r.get("training")
    if tr:
        if "skipped" in tr:
            lines.append(f"\ntraining: skipped ({tr['skipped']})")
        else:
            rows = tr["rows"]
            lines.append(f"\ntraining, default generator, batch {rows[0]['batch']} crops of {rows[0]['crop']} px, "
                         f"{rows[0]['device']}, the trainer's own step:")
            lines.append(f"  {'setup':40s} {'precision':19s} {'steps/s':>8s} {'images/s':>9s} {'loader pairs/s':>15s}")
            for row in rows:
                lines.append(f"  {row['setup']:40s} {row['precision']:19s} {row['steps_per_second']:8.2f} "
                             f"{row['images_per_second']:9.1f} {row['loader_pairs_per_second']:15.1f}")
    ld = r.get("loader")
    if ld:
        lines.append(f"\nloader, {ld['pairs']} pairs, load {ld['load_size']} crop {ld['crop_size']}, 1 process: "
                     f"original files {ld['original_pairs_per_second']:.1f} pairs/s, prepared cache "
                     f"{ld['prepared_pairs_per_second']:.1f} pairs/s")
    if "scoring" in r:  # measured and worded in irvis.bench_scoring, which builds on the app's library
        from irvis.bench_scoring import scoring_lines

        lines += scoring_lines(r["scoring"])
    return lines
