"""Assemble a shipped generator folder (weights/DIRECTION) from a finished run: the weights in float16, the
model card's tables regenerated on the original test splits, the fit on the training split beside them (to tell
capacity from generalisation), the working size chosen on full-resolution validation frames, and the recipe
ablations' validation figures.

    python -m train.publish vis2ir --run runs/vis2ir-gan --ablation "no discriminator=runs/vis2ir-l1" \\
        --data ../shared/data --out weights/vis2ir

Choices are made on the `val` split only; `test` is scored for the card and never chooses anything."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from irvis.bench import median_seconds
from irvis.data import expand_roots, load_pairs
from irvis.directions import MODALITY_CHANNELS
from irvis.evaluate import evaluate
from irvis.images import load_image
from irvis.nets import load_generator
from irvis.translate import INFERENCE_FILE, Translator, probe_image
from train.checkpoint import METRICS_FILE
from train.export import export_checkpoint

WORKING_SIZES = (256, 384, 512, None)  # None: native resolution
TIME_BUDGET_S = 0.5  # per 1280x1024 frame on the publishing machine's CPU: what an interactive page can wait
STRUCTURE = ("sharpness", "gradient_correlation")

LIMITATIONS = {
    "ir2vis": [
        "Colour is not in the infrared signal. Cars, clothes, signs and façades come out in the typical colour of "
        "similar thermal contexts in the training sets; a red car or a blue jacket cannot be recovered from a single "
        "thermal frame, whatever the training.",
        "Lighting is not in the infrared signal either: street lamps, headlights and lit windows, which dominate "
        "LLVIP's night frames, are missing or guessed from context.",
        "Shapes come from the infrared frame itself (the output is a per-pixel affine map of it, its coefficients "
        "chosen from context): warm people and engines keep their outline, but their shading is the thermal "
        "image's, not a photograph's.",
    ],
    "vis2ir": [
        "Heat is not in the visible signal. People and running engines are found by their shape and context; cold "
        "parked cars, or warm surfaces that look like their surroundings (sun-heated walls, recently driven "
        "asphalt), are predicted wrongly.",
        "The level of an unseen scene is a guess. LLVIP's thermal camera rescales every frame to its own range, so "
        "the same pavement is dark in one frame and mid-gray in the next; SSIM punishes a wrong level where the "
        "thermal frame is flat, which is why a constant mid-gray image is hard to beat on LLVIP's SSIM.",
        "At night much of the visible frame is dark noise; structure the visible camera did not record cannot be "
        "drawn, and visible edges with no thermal counterpart (road markings, shadows) sometimes leak through.",
    ],
}


def _roots_with(data: list[str], split: str) -> list[str]:
    return [str(r) for r in expand_roots(data) if (Path(r) / "infrared" / split).is_dir()]


def _cells(m: dict) -> str:
    return (f"{m['psnr']:.2f} | {m['ssim']:.4f} | {m.get('sharpness', float('nan')):.3f} | "
            f"{m.get('gradient_correlation', float('nan')):.3f}")


def _best(baselines: dict, key: str) -> tuple[str, dict]:
    return max(baselines.items(), key=lambda kv: kv[1][key])


def fit_section(train: dict, test: dict) -> list[str]:
    """The same protocol on the training split and on the test split, overall and per set that has both."""
    lines = ["## Fit (train split) beside generalisation (test split)", "",
             "The same protocol on the pairs the generator learnt from and on held-out ones: a model that is sharp and "
             "right on its training frames but not on new scenes lacks data, one that is blurred on both lacks "
             "capacity or training.", "",
             "| split | set | pairs | PSNR | SSIM | sharpness | gradient corr. | best baseline PSNR | best baseline SSIM |",
             "|---|---|---|---|---|---|---|---|---|"]
    for split, result in (("train", train), ("test", test)):
        entries = [("overall", result["n_pairs"], result)] + [
            (name, e["n_pairs"], e) for name, e in result["per_set"].items() if name in test["per_set"]]
        for name, n, entry in entries:
            bp, bs = _best(entry["baselines"], "psnr"), _best(entry["baselines"], "ssim")
            lines.append(f"| {split} | {name} | {n} | {_cells(entry['model'])} | {bp[1]['psnr']:.2f} ({bp[0]}) | "
                         f"{bs[1]['ssim']:.4f} ({bs[0]}) |")
    return lines + [""]


def _timing_frame(val_pairs, source: str) -> torch.Tensor:
    """The frame each working size is timed on: an LLVIP validation frame (1280x1024) of the source modality,
    else a synthetic frame of that size."""
    llvip = [p for p in val_pairs if p.set_name == "llvip"]
    if llvip:
        return load_image(getattr(llvip[0], source), source)
    return probe_image(MODALITY_CHANNELS[source], (1024, 1280))[0]


def choose_working_size(weights: Path, val_pairs, frame: torch.Tensor, sizes=WORKING_SIZES,
                        budget_s: float = TIME_BUDGET_S) -> tuple[int | None, list[dict]]:
    """Score each working size on full-resolution validation frames (the prediction resized back to the frame and
    compared there, as the app shows it) and time one 1280x1024 frame. Chosen: among the sizes within the time
    budget, the highest gradient correlation (structure in the right places) among those within 0.5 dB of the best
    PSNR of the affordable sizes."""
    generator = load_generator(weights)
    rows = []
    for size in sizes:
        translator = Translator(generator, device="cpu", working_size=size)
        result, _ = evaluate(translator, val_pairs, short_side=None, progress=False, lpips=False, fid=False)
        seconds = median_seconds(lambda: translator.translate_tensor(frame))
        rows.append({"working_size": size, "seconds_per_frame": round(seconds, 3),
                     **{k: result["model"][k] for k in ("psnr", "ssim", *STRUCTURE)}})
    affordable = [r for r in rows if r["seconds_per_frame"] <= budget_s] or rows[:1]
    top_psnr = max(r["psnr"] for r in affordable)
    chosen = max((r for r in affordable if r["psnr"] >= top_psnr - 0.5), key=lambda r: r["gradient_correlation"])
    return chosen["working_size"], rows


def working_size_section(rows: list[dict], chosen: int | None, n_val: int, test_full: dict) -> list[str]:
    name = lambda s: "native" if s is None else str(s)  # noqa: E731
    lines = ["## Working size for full-resolution frames", "",
             f"Frames larger than the working size are translated at that shorter side and the prediction is resized "
             f"back. Chosen on the {n_val} validation pairs at their native resolution (never on test): among the sizes "
             f"that translate a 1280x1024 frame within {TIME_BUDGET_S:g} s on the CPU that published this card, the "
             "best gradient correlation within 0.5 dB of the best PSNR. Recorded in `inference.json`; "
             "`--working-size` overrides it.", "",
             "| working size | s per 1280x1024 frame (CPU) | PSNR | SSIM | sharpness | gradient corr. |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        mark = " (chosen)" if r["working_size"] == chosen else ""
        lines.append(f"| {name(r['working_size'])}{mark} | {r['seconds_per_frame']:.3f} | {_cells(r)} |")
    m = test_full["model"]
    lines += ["", f"On the test split at native resolution with the chosen size: PSNR {m['psnr']:.2f}, SSIM "
              f"{m['ssim']:.4f}, sharpness {m['sharpness']:.3f}, gradient correlation {m['gradient_correlation']:.3f} "
              f"({test_full['n_pairs']} pairs).", ""]
    return lines


def ablation_section(runs: dict[str, Path]) -> list[str]:
    """Each run's exported generator (run/final: its latest checkpoint) as its own training scored it (the
    validation split, whole frames), overall and on LLVIP."""
    from train.checkpoint import list_checkpoints, read_checkpoint

    lines = ["## Recipe ablations (validation split)", "",
             "Runs that differ from the shipped recipe in the settings named, each scored by its own export on the "
             "validation split (whole frames at the training's validation size): overall, then LLVIP.", "",
             "| run | steps trained | discriminator | edge loss | PSNR | SSIM | sharpness | gradient corr. | LLVIP PSNR "
             "| LLVIP SSIM | LLVIP sharpness | LLVIP gradient corr. |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, run in runs.items():
        config = json.loads((run / "final" / "training_config.json").read_text())
        result = json.loads((run / "final" / "evaluation.json").read_text())
        steps = read_checkpoint(list_checkpoints(run)[-1])[1]["step"]
        gan = (f"PatchGAN ({config['gan_mode']}, ndf {config['ndf']}, {config['d_layers']} layers)"
               if config["gan_weight"] else "none")
        llvip = result["per_set"].get("llvip", {}).get("model")
        lines.append(f"| {label} | {steps} | {gan} | {config.get('edge_weight', 0):g} | {_cells(result['model'])} | "
                     + (_cells(llvip) if llvip else "- | - | - | -") + " |")
    return lines + [""]


def history_section(run: Path) -> list[str]:
    """The shipped run's validation during training (metrics.jsonl): how the figures moved with steps."""
    path = run / METRICS_FILE
    if not path.is_file():
        return []
    lines = ["## Validation during training", "",
             "The shipped run's EMA weights on the validation split, whole frames, as training went:", "",
             "| step | PSNR | SSIM | sharpness | gradient corr. | LLVIP PSNR | LLVIP SSIM | LLVIP sharpness | "
             "LLVIP gradient corr. |", "|---|---|---|---|---|---|---|---|---|"]
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        cells = [f"{entry.get(f'val/{k}', float('nan')):.{2 if k == 'psnr' else 3}f}" for k in ("psnr", "ssim", *STRUCTURE)]
        cells += [f"{entry[f'val/llvip/{k}']:.{2 if k == 'psnr' else 3}f}" if f"val/llvip/{k}" in entry else "-"
                  for k in ("psnr", "ssim", *STRUCTURE)]
        lines.append(f"| {entry['step']} | " + " | ".join(cells) + " |")
    return lines + [""]


def publish(direction: str, run: Path, data: list[str], out: Path, ablations: dict[str, Path] | None = None,
            sizes=WORKING_SIZES) -> dict:
    test_roots = _roots_with(data, "test")
    val_roots = _roots_with(data, "val")
    # PSNR/SSIM/structure only: the same on every machine (LPIPS would depend on backbone weights being on this one)
    test = export_checkpoint(run, out, half=True, val_data=test_roots, val_split="test", val_max_pairs=0, lpips=False)
    (out / "evaluation.png").unlink(missing_ok=True)  # made of dataset frames: never shipped
    md = out / "evaluation.md"
    md.write_text(md.read_text().replace("![input, prediction, truth, baseline](evaluation.png)",
                                         "(sample grid: rerun the command below to draw it from your copy of the data)"))
    size = test["protocol"]["short_side"]
    shipped = Translator.from_pretrained(out, device="cpu", working_size=None)
    train, _ = evaluate(shipped, load_pairs(_roots_with(data, "train"), "train"), short_side=size, progress=False,
                        lpips=False, fid=False)
    val_pairs = load_pairs(val_roots, "val")
    frame = _timing_frame(val_pairs, shipped.direction.source)
    chosen, rows = choose_working_size(out, val_pairs, frame, sizes)
    (out / INFERENCE_FILE).write_text(json.dumps({"working_size": chosen, "chosen_on": "val", "candidates": rows},
                                                 indent=2) + "\n")
    test_full, _ = evaluate(Translator.from_pretrained(out, device="cpu"), load_pairs(test_roots, "test"), short_side=None,
                            progress=False, lpips=False, fid=False)
    extra = fit_section(train, test) + working_size_section(rows, chosen, len(val_pairs), test_full)
    extra += history_section(run)
    if ablations:
        extra += ablation_section({"shipped": run, **ablations})
    extra += ["## Where it fails", ""] + [f"- {text}" for text in LIMITATIONS[direction]] + [""]
    ablation_flags = "".join(f' --ablation "{k}={v}"' for k, v in (ablations or {}).items())
    extra += ["## Regenerate", "", "The weights and these tables: `bash train/recipe.sh ../shared/data` (the runs), then "
              f"`python -m train.publish {direction} --run {run}{ablation_flags} --data ../shared/data --out weights/"
              f"{direction}`. The sample grids: `python -m irvis evaluate --direction {direction} --weights weights/"
              f"{direction} --data {' '.join(test_roots)} --json eval/{direction}.json` (writes eval/{direction}.png).", ""]
    card = (out / "README.md").read_text()
    (out / "README.md").write_text(card.replace("## Use\n", "\n".join(extra) + "\n## Use\n", 1))
    summary = {"test": {"model": test["model"], "llvip": test["per_set"].get("llvip", {}).get("model")},
               "train": {"model": train["model"], "llvip": train["per_set"].get("llvip", {}).get("model")},
               "test_full_resolution": {"model": test_full["model"],
                                        "llvip": test_full["per_set"].get("llvip", {}).get("model")},
               "working_size": chosen}
    (out / "fit.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _ablation(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or not Path(path, "final", "evaluation.json").is_file():
        raise argparse.ArgumentTypeError(f"expected LABEL=RUN_FOLDER of a finished run, got {text!r}")
    return label, Path(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.publish", description=__doc__.split("\n\n")[0])
    p.add_argument("direction", choices=["ir2vis", "vis2ir"])
    p.add_argument("--run", type=Path, required=True, help="the finished run to ship (its latest checkpoint)")
    p.add_argument("--ablation", type=_ablation, action="append", default=[], metavar="LABEL=RUN",
                   help="a finished run of the same recipe with one setting changed, for the card's ablation table")
    p.add_argument("--data", nargs="+", default=["../shared/data"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--working-sizes", nargs="+", default=[str(s) if s else "native" for s in WORKING_SIZES],
                   help="candidate working sizes (shorter sides, or native)")
    args = p.parse_args(argv)
    sizes = tuple(None if s == "native" else int(s) for s in args.working_sizes)
    publish(args.direction, args.run, args.data, args.out, dict(args.ablation), sizes)
    print(f"wrote {args.out}: " + ", ".join(sorted(os.listdir(args.out))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
