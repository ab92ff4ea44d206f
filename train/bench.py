"""Training throughput: the trainer's own step (`Trainer.train_batch`: forward, losses, backward, optimizer
steps, through Accelerate) timed on real batches, and its loader's pairs/s beside it, so a user can see
whether data or compute limits a run. `python -m train bench --data ROOT` prints it; `python -m irvis bench
--data ROOT` runs that command in a child process when the trainer is installed beside the library (it is, in
this repository and in the wheel), as the library never imports the trainer."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

# (label, extra trainer flags): the generator alone, and with the two PatchGANs in use
DISCRIMINATORS = (
    ("generator only (--gan-weight 0)", ["--gan-weight", "0"]),
    ("+ PatchGAN 70x70 (ndf 64, 3 layers)", ["--gan-weight", "1", "--ndf", "64", "--d-layers", "3"]),
    ("+ PatchGAN small (ndf 32, 2 layers)", ["--gan-weight", "1", "--ndf", "32", "--d-layers", "2"]),
)
# (label, Accelerate's --mixed-precision, extra flags): float32, bfloat16 autocast, and on a GPU bf16 with NHWC
# batches (tensor cores want channels-last; on this project's CPU it measured no gain)
PRECISIONS = (("fp32", "no", []), ("bf16", "bf16", []))
GPU_PRECISIONS = PRECISIONS + (("bf16, channels-last", "bf16", ["--channels-last"]),)
# the trainer's --compile (Inductor fuses each GroupNorm with its activation, forward and backward); on a GPU only
# by default: on this project's 2-core CPU it compiles for about a minute per configuration
COMPILED = (("bf16, channels-last, compiled", "bf16", ["--channels-last", "--compile"]),)


def _reset_accelerate() -> None:
    """Accelerate keeps one process-wide state; each configuration below needs its own."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def time_trainer(data: Sequence[str], direction: str, flags: list[str], mixed_precision: str, batch_size: int = 16,
                 crop_size: int = 128, steps: int = 3, cpu: bool = True) -> dict:
    """Seconds per optimizer step (median of `steps`, after one warm-up step) of a trainer built from
    these flags, on batches drawn beforehand from its own loader; and that loader's pairs/s."""
    from train.config import from_args
    from train.loop import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--direction", direction, "--data", *data, "--output-dir", tmp, "--batch-size", str(batch_size),
                "--crop-size", str(crop_size), "--min-load-size", str(max(crop_size, 256)), "--load-size", "286",
                "--num-workers", "0", "--mixed-precision", mixed_precision, "--gan-warmup", "0",
                "--report-to", "none", "--max-steps", str(steps + 1), *flags]
        if cpu:
            argv.append("--cpu")
        _reset_accelerate()
        trainer = Trainer(from_args(argv))
        start = time.perf_counter()
        batches = []
        while len(batches) < steps + 1:  # as many epochs as it takes (a small set may hold one batch)
            for batch in trainer.train_loader:
                batches.append(batch)
                if len(batches) == steps + 1:
                    break
        loader_seconds = time.perf_counter() - start
        pairs = sum(len(b["source"]) for b in batches)
        trainer.train_batch(batches[0])  # warm-up: allocator, oneDNN kernel choice
        times = []
        for batch in batches[1:]:
            t0 = time.perf_counter()
            trainer.train_batch(batch)
            if trainer.accelerator.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        device = str(trainer.accelerator.device)
        del trainer
    _reset_accelerate()
    seconds = sorted(times)[len(times) // 2]
    return {"seconds_per_step": seconds, "steps_per_second": 1 / seconds, "images_per_second": batch_size / seconds,
            "loader_pairs_per_second": pairs / loader_seconds, "device": device}


def training_throughput(data: Sequence[str], direction: str = "vis2ir", batch_size: int = 16, crop_size: int = 128,
                        steps: int = 3, cpu: bool = True, discriminators=DISCRIMINATORS,
                        precisions: Sequence[tuple] | None = None, compile: bool = False) -> list[dict]:
    """One row per (discriminator, precision): the default generator's training speed in the shipped recipe's
    shape (16 crops of 128 px) or the one asked for; compile adds the compiled trainer's rows."""
    rows = []
    precisions = list(precisions or (PRECISIONS if cpu else GPU_PRECISIONS)) + (list(COMPILED) if compile else [])
    for label, flags in discriminators:
        for name, mp, extra in precisions:
            r = time_trainer(data, direction, flags + extra, mp, batch_size=batch_size, crop_size=crop_size,
                             steps=steps, cpu=cpu)
            rows.append({"setup": label, "precision": name, "batch": batch_size, "crop": crop_size, **r})
    return rows


def bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, metavar="ROOT", help="training roots (e.g. ../shared/data/llvip)")
    p.add_argument("--direction", default="vis2ir")
    p.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU rows (bf16 with channels-last)")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per configuration")
    p.add_argument("--batch-size", type=int, default=16, help="training batch (the shipped recipe: 16 crops)")
    p.add_argument("--crop", type=int, default=128, help="training crop side (the shipped recipe: 128)")
    p.add_argument("--compile", action="store_true", help="add the compiled trainer's rows")
    p.add_argument("--json", help="also write the rows to this JSON file")
    return p


def main(argv: list[str]) -> int:
    from irvis.bench import format_report, machine

    args = bench_parser().parse_args(argv)
    result = {"rows": training_throughput(args.data, args.direction, batch_size=args.batch_size, crop_size=args.crop,
                                          steps=args.steps, cpu=args.device == "cpu", compile=args.compile)}
    print("\n".join(format_report({"machine": machine(), "training": result})), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
