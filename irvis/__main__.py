"""python -m irvis <command>: translate, evaluate, versus, analyze, check-data, prepare, bench, push, info.

Why one file: it is the command line and nothing else; each command is a thin handler over the library (the work
lives in irvis.translate, irvis.evaluate, irvis.paired, ...) and its parser, and one parser holds them all, so
`--help` and the handlers cannot drift apart."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from irvis.colormap import DEFAULT_PALETTE, PALETTES
from irvis.directions import DIRECTIONS
from irvis.generator_folder import CONFIG_NAME


def _short_side(value: str | None) -> int | None:
    """--size: None (not given) is the scoring protocol's shorter side, "full" native resolution (None)."""
    from irvis.metrics import SCORING_SHORT_SIDE

    if value is None:
        return SCORING_SHORT_SIDE
    return None if value == "full" else int(value)


def _working_size(value: str) -> int | str | None:
    """--working-size: "auto", "native" (None) or a positive number of pixels."""
    if value in ("auto", "native"):
        return None if value == "native" else value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected auto, native or a positive number of pixels, got {value!r}")
    return int(value)


def _translate_jobs(inputs: list[str], out: Path, direction: str, palette: str = DEFAULT_PALETTE) -> tuple[list, list]:
    """(image jobs, video jobs), each a list of (source, destination). A folder is walked recursively and its
    layout mirrored under `out`; hidden files and files that are neither images nor videos are left out. An
    image drawn in a palette other than white-hot (the gray data) is named by it: NAME_vis2ir_ironbow.png."""
    from irvis.images import is_image_file
    from irvis.video import is_video_file

    images, videos = [], []
    drawn = "" if palette == DEFAULT_PALETTE else f"_{palette}"

    def add(src: Path, dst_dir: Path) -> None:
        if is_video_file(src):
            videos.append((src, dst_dir / f"{src.stem}_{direction}.mp4"))
        else:  # a named file that is not an image is still tried, so its error is reported
            images.append((src, dst_dir / f"{src.stem}_{direction}{drawn}.png"))

    for name in inputs:
        path = Path(name)
        if path.is_dir():
            for src in sorted(path.rglob("*")):
                rel = src.relative_to(path)
                if src.is_file() and not any(part.startswith(".") for part in rel.parts) \
                        and (is_image_file(src) or is_video_file(src)):
                    add(src, out / rel.parent)
        else:
            add(path, out)
    return images, videos


def cmd_translate(args) -> int:
    from irvis.translate import Translator, translate_files
    from irvis.video import VideoError, translate_video

    translator = Translator.from_pretrained(args.weights, device=args.device, working_size=args.working_size,
                                            precision=args.precision)
    problem = translator.direction.mismatch(args.direction, args.weights)
    if problem:
        raise SystemExit(f"error: {problem}")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"error: --out {out}: cannot make this output folder ({e.strerror or e})") from None
    if not os.access(out, os.W_OK):
        raise SystemExit(f"error: --out {out}: this folder cannot be written to")
    images, videos = _translate_jobs(args.inputs, out, translator.direction.name, args.palette)
    if videos and args.palette != DEFAULT_PALETTE:
        print("note: --palette draws images; videos are written white-hot", file=sys.stderr)
    if args.compile:
        translator.compile()
    print(f"{translator.direction.name} on {translator.device}, {translator.path}", file=sys.stderr)
    failures = 0
    if images:
        def report(src, error):
            print(f"skipped: {error}", file=sys.stderr)

        result = translate_files(translator, images, progress=len(images) > 1, report=report, palette=args.palette)
        failures += result["failures"]
        if len(images) > 1:
            print(f"{result['images']} image(s) -> {out} in {result['seconds']:.1f} s "
                  f"({result['frames_per_second']:.2f} frames/s), {result['failures']} skipped")
        else:
            for src, dst in images:
                if dst.is_file():
                    print(f"{src} -> {dst}")
    for src, dst in videos:
        try:
            result = translate_video(translator, src, dst, batch_size=args.batch_size)
        except VideoError as e:
            print(f"skipped: {e}", file=sys.stderr)
            failures += 1
            continue
        w, h = result["size"]
        print(f"{src} -> {dst} ({result['frames']} frames {w}x{h} at {float(result['rate']):g} frames/s; "
              f"translated at {result['frames_per_second']:.2f} frames/s)")
    return 1 if failures else 0


def cmd_evaluate(args) -> int:
    from irvis.evaluate import evaluate_dataset, write_report
    from irvis.metrics import registered

    size = _short_side(args.size)
    result, samples = evaluate_dataset(args.weights, args.data, split=args.split, direction=args.direction,
                                       short_side=size, device=args.device, lpips=args.lpips, fid=args.fid,
                                       working_size=args.working_size)
    paths = write_report(result, samples, args.json)
    table = {"model": result["model"], **{f"baseline:{k}": v for k, v in result["baselines"].items()}}
    for name, m in table.items():
        if m:
            print(f"{name:34s} " + "  ".join(f"{r.cli_label or r.label} {m[r.name]:{r.cli_format}}"
                                               for r in registered() if r.name in m))
    for name, state in result["perceptual"].items():
        if state.startswith("unavailable"):
            print(f"{name.upper()} {state}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_versus(args) -> int:
    from irvis.paired import compare_methods, load_method, markdown

    result = compare_methods(load_method(args.a), load_method(args.b), metrics=args.metrics, n_boot=args.bootstrap,
                             seed=args.seed)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result), end="")
    return 0


def cmd_analyze(args) -> int:
    from irvis.analysis import run

    size = _short_side(args.size)
    ablation = {"short_side": args.ablation_size, "crop": args.ablation_crop, "steps": args.ablation_steps,
                "batch": args.ablation_batch, "width": args.ablation_width, "seed": args.seed}
    result, paths = run(args.data, args.out, split=args.split, test_split=args.test_split or None, short_side=size,
                        pixels_per_image=args.pixels, seed=args.seed, n_boot=args.bootstrap,
                        ablation=args.ablation, ablation_settings=ablation, rerun_ablation=args.rerun_ablation)
    for line in result["conclusions"]:
        print(f"- {line}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_check_data(args) -> int:
    from irvis.data import check_data

    ok = True
    for split in args.split:
        report = check_data(args.roots, split)
        print(report.text())
        ok &= not report.problems
    return 0 if ok else 1


def cmd_prepare(args) -> int:
    from irvis.data import prepare_cache

    if args.jpeg_quality is not None and not 1 <= args.jpeg_quality <= 95:
        print(f"error: --jpeg-quality must be within 1-95, got {args.jpeg_quality}", file=sys.stderr)
        return 2
    roots = prepare_cache(args.roots, args.out, size=args.size, splits=args.split, jpeg_quality=args.jpeg_quality,
                          no_upscale=args.no_upscale)
    print("prepared: " + " ".join(str(r) for r in roots))
    print("train on them with --data " + " ".join(str(r) for r in roots))
    return 0


def cmd_bench(args) -> int:
    import os

    from irvis import bench

    w, h = (int(v) for v in args.size.lower().split("x"))
    weights = args.weights
    if weights is None and (Path(__file__).resolve().parents[1] / "weights" / args.direction / CONFIG_NAME).is_file():
        weights = str(Path(__file__).resolve().parents[1] / "weights" / args.direction)
    report: dict = {"machine": bench.machine()}
    if hasattr(os, "getloadavg"):
        report["load"] = "load average %.1f %.1f %.1f (1, 5, 15 min)" % os.getloadavg()

    def show(key: str, value) -> None:
        report[key] = value
        for line in bench.format_report({"machine": report["machine"], key: value})[1:]:
            print(line, flush=True)

    print(bench.format_report(report)[0], flush=True)
    if "load" in report:
        print(f"load during the run: {report['load']}", flush=True)
    if "inference" not in args.skip:
        show("inference", bench.bench_inference(args.direction, size=(h, w), repeats=args.repeats, device=args.device,
                                                weights=weights, data=args.data, levers=not args.quick,
                                                compile=args.compile and not args.quick, reference=True))
    if args.batch or (args.device.startswith("cuda") and "batch" not in args.skip):
        show("batch", bench.bench_batch(args.direction, size=(h, w), batch=args.batch or 8, device=args.device,
                                        weights=weights, repeats=max(args.repeats, 10),
                                        compile=args.compile and not args.quick))
    if "throughput" not in args.skip:
        show("throughput", bench.bench_folder_and_video(args.direction, (h, w), frames=args.frames, device=args.device,
                                                        weights=weights, data=args.data))
    if "training" not in args.skip:
        if args.data:
            show("training", bench.bench_training(args.data, args.direction, steps=args.train_steps, device=args.device,
                                                  batch_size=args.train_batch_size, crop_size=args.train_crop,
                                                  compile=args.compile and not args.quick
                                                  and not args.device.startswith("cpu")))
        else:
            print("\ntraining: skipped (give --data ROOT to measure the trainer's step and loader)")
    if "loader" not in args.skip and args.data:
        show("loader", bench.bench_loader(args.data, n=args.pairs))
    if "scoring" not in args.skip:
        from irvis.bench_scoring import bench_scoring

        shipped = {d: Path(__file__).resolve().parents[1] / "weights" / d for d in ("ir2vis", "vis2ir")}
        both = {d: str(f) if (f / CONFIG_NAME).is_file() else None for d, f in shipped.items()}
        if args.weights:
            both[args.direction] = weights
        show("scoring", bench_scoring(both, data=args.data, size=(h, w), repeats=args.repeats, device=args.device,
                                      evaluate_pairs=2 if args.quick else 6))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


def cmd_push(args) -> int:
    from irvis.hub import push_folder, upload_plan

    plan = upload_plan(args.weights)
    print(f"would upload to {args.repo_id}:" if args.dry_run else f"uploading to {args.repo_id}:")
    for f in plan:
        print(f"  {f}")
    if not args.dry_run:
        print(push_folder(args.weights, args.repo_id, private=args.private))
    return 0


def cmd_info(args) -> int:
    from irvis.hub import resolve_weights
    from irvis.nets import architecture, count_parameters, load_generator

    folder = resolve_weights(args.weights)
    g = load_generator(folder)
    print(json.dumps({**g.config, "architecture": architecture(g.arch).summary, "parameters": count_parameters(g),
                      "size_multiple": g.size_multiple, "folder": str(folder)}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m irvis", description="Infrared <-> visible image translation.")
    sub = p.add_subparsers(dest="command", required=True)
    directions = list(DIRECTIONS)

    t = sub.add_parser("translate", help="translate images, folders and videos with a generator")
    t.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, video files (mp4, avi, mkv, mov, webm) or folders (walked recursively)")
    t.add_argument("--weights", required=True, help="generator folder or Hub repo id")
    t.add_argument("--direction", choices=directions, help="checked against the weights")
    t.add_argument("--out", required=True,
                   help="output folder: NAME_DIRECTION.png per image, NAME_DIRECTION.mp4 per video; a folder's "
                        "layout is mirrored")
    t.add_argument("--palette", choices=list(PALETTES), default=DEFAULT_PALETTE,
                   help="how infrared predictions (vis2ir) are drawn: white-hot writes the gray values themselves; "
                        "the others write a picture named by its palette, NAME_vis2ir_PALETTE.png")
    t.add_argument("--device", default="auto")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto: the fastest path this machine supports that matches float32 within 40 dB PSNR "
                        "(bf16 on CPUs with AMX/AVX512-BF16); fp32: plain float32")
    t.add_argument("--compile", action="store_true",
                   help="torch.compile the generator (needs a C++ compiler; pays off on many frames of one size)")
    t.add_argument("--batch-size", type=int, default=4, help="video frames translated together")
    t.add_argument("--working-size", default="auto", type=_working_size, metavar="auto|native|N",
                   help="translate at this shorter side and resize back (auto: the size the generator was trained "
                        "at, recorded beside its weights; native: the input's own resolution)")
    t.set_defaults(func=cmd_translate)

    e = sub.add_parser("evaluate", help="score a generator and the baselines on a split")
    e.add_argument("--direction", choices=directions, required=True)
    e.add_argument("--weights", help="generator folder or Hub repo id (omit to score baselines only)")
    e.add_argument("--data", nargs="+", required=True, metavar="ROOT")
    e.add_argument("--split", default="test")
    e.add_argument("--size", help="shorter side in pixels, or 'full' for native resolution (default: the scoring protocol's, "
                        "irvis.metrics.SCORING_SHORT_SIDE)")
    e.add_argument("--json", required=True, help="OUT.json; OUT.md and OUT.png are written beside it")
    e.add_argument("--working-size", default="auto", type=_working_size, metavar="auto|native|N",
                   help="the generator translates frames at this shorter side, as `translate` does (auto: the size "
                        "recorded beside the weights); the prediction is scored at --size")
    e.add_argument("--device", default="auto")
    for metric in ("lpips", "fid"):
        e.add_argument(f"--{metric}", action=argparse.BooleanOptionalAction, default=None,
                       help=f"{metric.upper()}: --{metric} requires it, --no-{metric} skips it; by default it is "
                            "computed when its weights are on disk (see irvis/perceptual.py)")
    e.set_defaults(func=cmd_evaluate)

    v = sub.add_parser("versus", help="two methods on the same images: the lead of one over the other, with 95%% "
                                      "bootstrap intervals over images, overall and per set")
    v.add_argument("a", metavar="A", help="an evaluation report (evaluate --json): REPORT.json for its generator, "
                                          "REPORT.json:METHOD for a baseline or oracle (e.g. :mid_gray)")
    v.add_argument("b", metavar="B", help="the method A is measured against, named the same way")
    v.add_argument("--metrics", nargs="+", help="these metrics only (default: every per-image metric)")
    v.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap replicates")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--json", help="also write the comparison to this JSON file")
    v.set_defaults(func=cmd_versus)

    a = sub.add_parser("analyze", help="the infrared/visible correlation study: statistics, rules, report, plots")
    a.add_argument("--data", nargs="+", required=True, metavar="ROOT")
    a.add_argument("--split", default="train", help="split for the statistics and for fitting the rules")
    a.add_argument("--test-split", default="test", help="held-out split the rules are scored on ('' for none)")
    a.add_argument("--size", help="shorter side in pixels, or 'full' for native resolution (default: the scoring protocol's, "
                        "irvis.metrics.SCORING_SHORT_SIDE)")
    a.add_argument("--pixels", type=int, default=4096, help="pixels sampled per image")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", required=True, help="folder for analysis.json, analysis.md and the PNG figures")
    a.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                   help="bootstrap replicates for the 95%% intervals (images resampled within sets)")
    a.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=True,
                   help="the receptive-field ablation (trains small predictors on the CPU for minutes; OUT/ablation.json "
                        "is reused when it holds a run of the same settings)")
    a.add_argument("--rerun-ablation", action="store_true", help="train the ablation again even if OUT/ablation.json fits")
    a.add_argument("--ablation-size", type=int, default=96, help="shorter side of the ablation's frames")
    a.add_argument("--ablation-crop", type=int, default=64, help="training crop of the ablation's predictors")
    a.add_argument("--ablation-steps", type=int, default=300, help="training steps per predictor")
    a.add_argument("--ablation-batch", type=int, default=8, help="crops per step")
    a.add_argument("--ablation-width", type=int, default=16, help="channels of the fixed-field predictors")
    a.set_defaults(func=cmd_analyze)

    c = sub.add_parser("check-data", help="report every problem in LLVIP-layout datasets")
    c.add_argument("roots", nargs="+", metavar="ROOT")
    c.add_argument("--split", nargs="+", default=["train", "test"])
    c.set_defaults(func=cmd_check_data)

    r = sub.add_parser("prepare", help="write a resized cache of datasets for fast training")
    r.add_argument("roots", nargs="+", metavar="ROOT")
    r.add_argument("--out", required=True)
    r.add_argument("--size", type=int, default=286, help="shorter side of the cached images")
    r.add_argument("--split", nargs="+", default=["train", "val", "test"])
    r.add_argument("--jpeg-quality", type=int, metavar="Q", help="write JPEG at this quality (1-95) instead of "
                   "lossless PNG: about a third of the size, e.g. to copy the cache to a remote GPU machine")
    r.add_argument("--no-upscale", action="store_true", help="never enlarge a frame: smaller frames keep their own "
                   "size (a cache for training with --no-upscale, at the scale frames are translated at)")
    r.set_defaults(func=cmd_prepare)

    b = sub.add_parser("bench", help="speed: inference levers at native resolution, folders, videos, training, loader")
    b.add_argument("--size", default="1280x1024", help="WxH frame for inference, folder and video timings")
    b.add_argument("--direction", choices=directions, default="vis2ir")
    b.add_argument("--weights", help="generator folder (default: the shipped one for --direction, else random weights)")
    b.add_argument("--device", default="cpu")
    b.add_argument("--repeats", type=int, default=3, help="timed runs per figure (the median is reported)")
    b.add_argument("--data", nargs="*", help="roots: a real frame for the timings, and the trainer and loader benchmarks "
                                             "(e.g. ../shared/data/llvip)")
    b.add_argument("--frames", type=int, default=12, help="frames in the folder and video timings")
    b.add_argument("--train-steps", type=int, default=3, help="timed training steps per configuration")
    b.add_argument("--train-batch-size", type=int, default=16, help="training batch (the shipped recipe: 16 crops)")
    b.add_argument("--train-crop", type=int, default=128, help="training crop side (the shipped recipe: 128)")
    b.add_argument("--pairs", type=int, default=48, help="pairs in the loader benchmark")
    b.add_argument("--batch", type=int, default=0, help="also time batches of this many frames (default on a GPU: 8)")
    b.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="include torch.compile among the levers (compiles for a minute or more); on a GPU the "
                        "trainer's --compile rows too")
    b.add_argument("--quick", action="store_true", help="only the plain and automatic paths, no lever table")
    b.add_argument("--skip", nargs="*", default=[], choices=["inference", "batch", "throughput", "training", "loader",
                                                                 "scoring"])
    b.add_argument("--json", help="also write every figure to this JSON file")
    b.set_defaults(func=cmd_bench)

    u = sub.add_parser("push", help="upload a generator folder to the Hugging Face Hub")
    u.add_argument("--weights", required=True)
    u.add_argument("--repo-id", required=True)
    u.add_argument("--private", action="store_true")
    u.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")
    u.set_defaults(func=cmd_push)

    i = sub.add_parser("info", help="describe a generator")
    i.add_argument("weights")
    i.set_defaults(func=cmd_info)
    return p


def check_device(device: str) -> None:
    """A --device that cannot run here is an error message, not a traceback from deep inside torch."""
    import torch

    if device == "auto":
        return
    try:
        d = torch.device(device)
    except RuntimeError:
        raise SystemExit(f"error: --device {device}: not a device (auto, cpu, cuda, cuda:N or mps)") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {device}: no CUDA GPU is available here (use --device auto or cpu)")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise SystemExit(f"error: --device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if d.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SystemExit(f"error: --device {device}: Apple's MPS is not available here (use --device auto or cpu)")


def main(argv: list[str] | None = None) -> int:
    from irvis.data import DataError
    from irvis.images import ImageError
    from irvis.nets import WeightsError

    args = build_parser().parse_args(argv)
    if getattr(args, "device", None):
        check_device(args.device)
    try:
        return args.func(args)
    except (DataError, ImageError, WeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder that cannot be written: the reason, without a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
