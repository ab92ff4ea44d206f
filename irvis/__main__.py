"""python -m irvis <command>: translate, evaluate, analyze, check-data, prepare, bench, push, info."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from irvis.directions import DIRECTIONS


def _working_size(value: str) -> int | str | None:
    """--working-size: "auto", "native" (None) or a positive number of pixels."""
    if value in ("auto", "native"):
        return None if value == "native" else value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected auto, native or a positive number of pixels, got {value!r}")
    return int(value)


def cmd_translate(args) -> int:
    from irvis.images import ImageError
    from irvis.translate import Translator

    translator = Translator.from_pretrained(args.weights, device=args.device, working_size=args.working_size)
    if args.direction and translator.direction.name != args.direction:
        raise SystemExit(f"error: {args.weights} holds a {translator.direction.name} generator, not {args.direction}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in args.inputs:
        try:
            result = translator(path)
        except ImageError as e:
            print(f"skipped: {e}", file=sys.stderr)
            failures += 1
            continue
        dst = out / f"{Path(path).stem}_{translator.direction.name}.png"
        result.save(dst)
        print(f"{path} -> {dst} ({result.width}x{result.height} {result.mode})")
    return 1 if failures else 0


def cmd_evaluate(args) -> int:
    from irvis.evaluate import evaluate_dataset, write_report

    size = None if args.size == "full" else int(args.size)
    result, samples = evaluate_dataset(args.weights, args.data, split=args.split, direction=args.direction,
                                       short_side=size, device=args.device, lpips=args.lpips, fid=args.fid,
                                       working_size=args.working_size)
    paths = write_report(result, samples, args.json)
    table = {"model": result["model"], **{f"baseline:{k}": v for k, v in result["baselines"].items()}}
    for name, m in table.items():
        if m:
            extra = "".join(f"  {label} {m[k]:.4f}" for k, label in (("sharpness", "sharpness"),
                            ("gradient_correlation", "grad-corr"), ("vif", "VIF"), ("lpips", "LPIPS"), ("fid", "FID"))
                            if k in m)
            print(f"{name:34s} PSNR {m['psnr']:7.3f}  SSIM {m['ssim']:.4f}{extra}")
    for name, state in result["perceptual"].items():
        if state.startswith("unavailable"):
            print(f"{name.upper()} {state}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_analyze(args) -> int:
    from irvis.analysis import run

    size = None if args.size == "full" else int(args.size)
    result, paths = run(args.data, args.out, split=args.split, test_split=args.test_split or None, short_side=size,
                        pixels_per_image=args.pixels, seed=args.seed)
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

    roots = prepare_cache(args.roots, args.out, size=args.size, splits=args.split)
    print("prepared: " + " ".join(str(r) for r in roots))
    print("train on them with --data " + " ".join(str(r) for r in roots))
    return 0


def cmd_bench(args) -> int:
    from irvis.bench import bench_generators, bench_loader

    w, h = (int(v) for v in args.size.lower().split("x"))
    for line in bench_generators(args.direction, size=(h, w), repeats=args.repeats, device=args.device):
        print(line, flush=True)
    if args.data:
        for line in bench_loader(args.data, n=args.pairs):
            print(line, flush=True)
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
    from irvis.nets import count_parameters, load_generator

    folder = resolve_weights(args.weights)
    g = load_generator(folder)
    config = json.loads((folder / "config.json").read_text())
    print(json.dumps({**config, "parameters": count_parameters(g), "size_multiple": g.size_multiple, "folder": str(folder)}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m irvis", description="Infrared <-> visible image translation.")
    sub = p.add_subparsers(dest="command", required=True)
    directions = list(DIRECTIONS)

    t = sub.add_parser("translate", help="translate images with a generator")
    t.add_argument("inputs", nargs="+", metavar="INPUT")
    t.add_argument("--weights", required=True, help="generator folder or Hub repo id")
    t.add_argument("--direction", choices=directions, help="checked against the weights")
    t.add_argument("--out", required=True, help="output folder (PNG files)")
    t.add_argument("--device", default="auto")
    t.add_argument("--working-size", default="auto", type=_working_size, metavar="auto|native|N",
                   help="translate at this shorter side and resize back (auto: the size the generator was trained "
                        "at, recorded beside its weights; native: the input's own resolution)")
    t.set_defaults(func=cmd_translate)

    e = sub.add_parser("evaluate", help="score a generator and the baselines on a split")
    e.add_argument("--direction", choices=directions, required=True)
    e.add_argument("--weights", help="generator folder or Hub repo id (omit to score baselines only)")
    e.add_argument("--data", nargs="+", required=True, metavar="ROOT")
    e.add_argument("--split", default="test")
    e.add_argument("--size", default="256", help="shorter side in pixels, or 'full' for native resolution")
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

    a = sub.add_parser("analyze", help="the infrared/visible correlation study: statistics, rules, report, plots")
    a.add_argument("--data", nargs="+", required=True, metavar="ROOT")
    a.add_argument("--split", default="train", help="split for the statistics and for fitting the rules")
    a.add_argument("--test-split", default="test", help="held-out split the rules are scored on ('' for none)")
    a.add_argument("--size", default="256", help="shorter side in pixels, or 'full' for native resolution")
    a.add_argument("--pixels", type=int, default=4096, help="pixels sampled per image")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", required=True, help="folder for analysis.json, analysis.md and the PNG figures")
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
    r.set_defaults(func=cmd_prepare)

    b = sub.add_parser("bench", help="speed of the default vs the reference generator; loader with vs without cache")
    b.add_argument("--size", default="1280x1024", help="WxH frame for the generator timing")
    b.add_argument("--direction", choices=directions, default="vis2ir")
    b.add_argument("--device", default="cpu")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--data", nargs="*", help="roots for the loader benchmark (e.g. ../shared/data/llvip)")
    b.add_argument("--pairs", type=int, default=48)
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


def main(argv: list[str] | None = None) -> int:
    from irvis.data import DataError
    from irvis.images import ImageError
    from irvis.nets import WeightsError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, ImageError, WeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
