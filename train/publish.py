"""Assemble a shipped generator folder (weights/DIRECTION) from the recipe's runs, with the model card's
tables regenerated on the original test splits and the same-budget comparison with the Pix2Pix reference.

    python -m train.publish vis2ir --runs runs --data ../shared/data --out weights/vis2ir

Reads runs/DIRECTION-shipped (the shipped run), runs/DIRECTION-default (the default architecture under the
comparison budget), runs/DIRECTION-reference (pix2pix-unet256, same recipe, steps and pixels per batch) and,
when it exists, runs/DIRECTION-reference-full (pix2pix-unet256 with the shipped run's steps); see
train/recipe.sh."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from irvis.data import expand_roots, load_pairs
from irvis.evaluate import evaluate
from irvis.translate import Translator
from train.export import export_checkpoint

LIMITATIONS = {
    "ir2vis": [
        "The predictions are soft, nearly flat images in the average colour of the scene (a dark olive for LLVIP's "
        "night streets, a pale gray for daytime roads) with the largest shapes faintly drawn; warm people come out "
        "as dark silhouettes. They beat every fixed rule on PSNR and SSIM because those reward the right overall "
        "level and colour, not because they look like photographs.",
        "Colour is not in the infrared signal. Cars, clothes, signs and façades come out in the average colour of "
        "similar thermal contexts in the training sets; a red car or a blue jacket cannot be recovered from a "
        "single thermal frame, whatever the training.",
        "Lighting is not in the infrared signal either: street lamps, headlights and lit windows, which dominate "
        "LLVIP's night frames, are missing or guessed from context.",
    ],
    "vis2ir": [
        "The prediction is a blurred thermal background, with the largest warm or cold regions (roads, walls, "
        "vegetation) roughly placed; pedestrians, the hottest objects, are at best faint blobs.",
        "The level of an unseen scene is a guess, and on LLVIP it is most of the score. LLVIP's thermal camera "
        "rescales every frame to its own range; 8 of its 12 test frames show one sidewalk whose pavement is warm "
        "(mean infrared level 0.31), while its training frames' ground is mostly cold (0.15). The prediction's "
        "mean there is 0.25, and its SSIM lead over a constant mid-gray image on LLVIP (0.433 vs 0.429, inside "
        "the noise of 12 frames) comes from that level: a flat image at the prediction's own mean would score "
        "0.441, a flat image at the true mean 0.454. On LLVIP the predicted structure does not yet help SSIM; "
        "more scenes in training, rather than more steps, is what would change that.",
        "Heat is not in the visible signal. People and running engines can only be found by their shape; cold "
        "parked cars, or warm surfaces that look like their surroundings (sun-heated walls, recently driven "
        "asphalt), are predicted wrongly.",
        "At night much of the visible frame is dark noise; the generator fills it with the typical thermal "
        "background of the training scenes, and a camera with a different thermal gain gives a different level.",
    ],
}


def _scores(weights: Path, pairs, short_side: int) -> dict:
    result, _ = evaluate(Translator.from_pretrained(weights, device="cpu"), pairs, short_side=short_side, progress=False,
                         lpips=False, fid=False)
    return result


def _row(name: str, m: dict) -> str:
    return f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} |"


def comparison_section(default: dict, reference: dict, budget: str, shipped: dict | None = None,
                       reference_full: dict | None = None, full_steps: int | None = None) -> list[str]:
    """reference_full: the reference trained with the shipped run's recipe and steps (4 crops of 256 px per step
    where the shipped run takes 16 of 128), when that run exists; it answers the question at the real budget."""
    lines = ["## Compared with the original Pix2Pix generator", "",
             f"Both architectures trained with the same objective, optimiser, schedule, data and number of pixels per "
             f"step ({budget}; Pix2Pix's U-Net halves the frame eight times, so it needs 256-pixel crops and takes "
             "a quarter as many per batch), evaluated the same way (test splits, whole frames, shorter side 256):", "",
             "| generator | set | PSNR (dB) | SSIM |", "|---|---|---|---|"]
    rows = [("irvis-unet (default, 3.8 M parameters)", default),
            ("pix2pix-unet256 (reference, 54.4 M parameters)", reference)]
    if shipped is not None:
        rows.append(("irvis-unet as shipped (the full recipe above)", shipped))
    if reference_full is not None:
        rows.append((f"pix2pix-unet256 with the shipped recipe ({full_steps} steps)", reference_full))
    for label, result in rows:
        lines.append(_row(f"{label} | overall", result["model"]))
        if "llvip" in result["per_set"]:
            lines.append(_row(f"{label} | llvip", result["per_set"]["llvip"]["model"]))
    lines += ["", f"At this budget the default is {_lead(default, reference, None)} against the reference overall, "
              "with 14x fewer parameters and several times less CPU time per frame (`python -m irvis bench`).", ""]
    if reference_full is not None and shipped is not None:
        lines += [f"With the shipped recipe's {full_steps} steps for both, the shipped generator is "
                  + _lead(shipped, reference_full, None) + " against the reference overall"
                  + (", " + _lead(shipped, reference_full, "llvip") + " on LLVIP" if "llvip" in shipped["per_set"] else "")
                  + ".", ""]
    return lines


def _lead(a: dict, b: dict, set_name: str | None) -> str:
    ma, mb = (r["model"] if set_name is None else r["per_set"][set_name]["model"] for r in (a, b))
    return f"{ma['psnr'] - mb['psnr']:+.2f} dB PSNR and {ma['ssim'] - mb['ssim']:+.4f} SSIM"


def _budget(config: dict) -> str:
    loss = "L1" + (f" + SSIM (weight {config['ssim_weight']:g})" if config.get("ssim_weight") else "")
    if config.get("gan_weight"):
        loss += " + PatchGAN"
    return (f"{config['arch']}: {config['max_steps']} steps of batch {config['batch_size']}, {config['crop_size']}-pixel "
            f"crops, {loss}, {config['lr_schedule']} learning rate from {config['lr_g']:g}")


def _budget_sentence(config: dict) -> str:
    return (f"A short training ({config['max_steps']} steps of {config['batch_size']} crops of {config['crop_size']} px; "
            "hardware and time in the table above) on a few hundred pairs, and it shows:")


def publish(direction: str, runs: Path, data: list[str], out: Path) -> None:
    roots = [str(r) for r in expand_roots(data) if (Path(r) / "infrared" / "test").is_dir()]
    # PSNR/SSIM only: the same on every machine (LPIPS would depend on backbone weights being on this one)
    export_checkpoint(runs / f"{direction}-shipped", out, half=True, val_data=roots, val_max_pairs=0, lpips=False)
    (out / "evaluation.png").unlink(missing_ok=True)  # made of dataset frames: never shipped
    md = out / "evaluation.md"
    md.write_text(md.read_text().replace("![input, prediction, truth, baseline](evaluation.png)",
                                         "(sample grid: rerun the command below to draw it from your copy of the data)"))
    pairs = load_pairs(roots, "test")
    finals = {name: runs / f"{direction}-{name}" / "final" for name in ("default", "reference")}
    shipped = json.loads((out / "evaluation.json").read_text())
    size = shipped["protocol"]["short_side"]
    default, reference = (_scores(finals[name], pairs, size) for name in ("default", "reference"))
    configs = {name: json.loads((path / "training_config.json").read_text()) for name, path in finals.items()}
    budget = "; ".join(_budget(configs[name]) for name in ("default", "reference"))
    full = runs / f"{direction}-reference-full" / "final"
    reference_full = _scores(full, pairs, size) if full.is_dir() else None
    full_steps = json.loads((full / "training_config.json").read_text())["max_steps"] if reference_full else None
    card = (out / "README.md").read_text()
    extra = comparison_section(default, reference, budget, shipped, reference_full, full_steps)
    extra += ["## Where it fails", "", _budget_sentence(json.loads((out / "training_config.json").read_text())), ""]
    extra += [f"- {text}" for text in LIMITATIONS[direction]] + [""]
    extra += ["## Regenerate", "", "The weights, these tables and the comparison: `bash train/recipe.sh "
              "../shared/data` (the runs), then `python -m train.publish " + direction + " --runs runs --data "
              "../shared/data --out weights/" + direction + "`. The sample grids: `python -m irvis evaluate --direction "
              + direction + " --weights weights/" + direction + " --data " + " ".join(roots) + " --json eval/" + direction
              + ".json` (writes eval/" + direction + ".png).", ""]
    (out / "README.md").write_text(card.replace("## Use\n", "\n".join(extra) + "\n## Use\n", 1))
    (out / "comparison.json").write_text(json.dumps({"budget": budget, "default": default["model"],
                                                     "reference": reference["model"],
                                                     "default_llvip": default["per_set"].get("llvip", {}).get("model"),
                                                     "reference_llvip": reference["per_set"].get("llvip", {}).get("model"),
                                                     "reference_full": reference_full and reference_full["model"],
                                                     "reference_full_llvip": reference_full and reference_full["per_set"]
                                                     .get("llvip", {}).get("model")},
                                                    indent=2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.publish", description=__doc__.split("\n\n")[0])
    p.add_argument("direction", choices=["ir2vis", "vis2ir"])
    p.add_argument("--runs", default="runs", type=Path)
    p.add_argument("--data", nargs="+", default=["../shared/data"])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    publish(args.direction, args.runs, args.data, args.out)
    print(f"wrote {args.out}: " + ", ".join(sorted(os.listdir(args.out))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
