"""Assemble a shipped generator folder (weights/DIRECTION) from a finished run: the weights in float16, the
model card's tables regenerated on the original test splits, the fit on the training split beside them (to tell
capacity from generalisation), the working size chosen on full-resolution validation frames, the recipe
ablations' validation figures, and for a fine-tuned run (--init-from) its lineage: the parent run's recipe,
steps and training time, and the totals.

    python -m train.publish vis2ir --run runs/vis2ir-gan --ablation "no discriminator=runs/vis2ir-l1" \\
        --data ../shared/data --out weights/vis2ir
    python -m train.publish vis2ir --run runs/vis2ir-ft --parent-run runs/vis2ir-gan --data ../shared/data --out DIR

Choices are made on the `val` split only; `test` is scored for the card and never chooses anything."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from irvis.timing import median_seconds
from irvis.data import expand_roots, load_pairs
from irvis.directions import MODALITY_CHANNELS
from irvis.evaluate import evaluate, markdown_report
from irvis.images import image_size, load_image
from irvis.nets import count_parameters, load_generator
from irvis.tables import cell, cells, core, headers, table
from irvis.probe import probe_image
from irvis.translate import INFERENCE_FILE, Translator
from irvis.generator_folder import CARD_FILE, EVALUATION_FILE, EVALUATION_REPORT, FIT_FILE, TRAINING_CONFIG_FILE
from train.card import Section, lineage_section, model_card
from train.checkpoint import METRICS_FILE, is_checkpoint
from train.config import ConfigError
from train.export import export_checkpoint, open_checkpoint
from train.losses import LOSSES, weight_name

WORKING_SIZES = (256, 384, 512, None)  # None: native resolution
TIME_BUDGET_S = 0.5  # per 1280x1024 frame on the publishing machine's CPU: what an interactive page can wait

LIMITATIONS = {
    "ir2vis": [
        "Colour is not in the infrared signal. Cars, clothes, signs and façades come out in the typical colour of "
        "similar thermal contexts in the training sets; a red car or a blue jacket cannot be recovered from a single "
        "thermal frame, whatever the training.",
        "Lighting is not in the infrared signal either: street lamps, headlights and lit windows, which dominate "
        "LLVIP's night frames, are missing or guessed from context. Nor is a frame's overall light level: it comes "
        "with the camera (LLVIP's are night streets), and on LLVIP's test frames this drawing moved to LLVIP's own "
        "mean level would score about 4 dB higher; read from the thermal frame, no simple rule tells the camera "
        "(`python -m train.level_fit`), so an unseen night street can come out brighter than it was.",
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
        "The texture loss and the adversarial term ask for structure everywhere: where the visible frame shows dense "
        "foliage or dark noise, the prediction draws a fine cross-hatched texture the thermal frame does not have "
        "(the sharpness above 1 outside LLVIP in the tables).",
    ],
}


def _roots_with(data: list[str], split: str) -> list[str]:
    return [str(r) for r in expand_roots(data) if (Path(r) / "infrared" / split).is_dir()]


def _best(baselines: dict, key: str) -> str:
    name, m = max(baselines.items(), key=lambda kv: kv[1][key])
    return f"{cell(m, key)} ({name})"


def fit_section(train: dict, test: dict) -> Section:
    """The same protocol on the training split and on the test split, overall and per set that has both."""
    rows = []
    for split, result in (("train", train), ("test", test)):
        entries = [("overall", result)] + [(name, e) for name, e in result["per_set"].items() if name in test["per_set"]]
        rows += [[split, name, e["n_pairs"], *cells(e["model"]), _best(e["baselines"], "psnr"),
                  _best(e["baselines"], "ssim")] for name, e in entries]
    return Section("Fit (train split) beside generalisation (test split)", [
        "The same protocol on the pairs the generator learnt from and on held-out ones: a model that is sharp and "
        "right on its training frames but not on new scenes lacks data, one that is blurred on both lacks "
        "capacity or training.", "",
        *table(["split", "set", "pairs", *headers(), "best baseline PSNR", "best baseline SSIM"], rows)])


TIMING_SIZE = (1280, 1024)  # (width, height) of the frame the working sizes are timed on: LLVIP's


def _timing_frame(val_pairs, source: str) -> torch.Tensor:
    """The frame each working size is timed on: an LLVIP validation frame of the source modality at LLVIP's
    1280x1024 (the set also holds a few 640x512 frames, which would time a quarter of the pixels), else a
    synthetic frame of that size."""
    for pair in val_pairs:
        if pair.set_name == "llvip" and image_size(getattr(pair, source)) == TIMING_SIZE:
            return load_image(getattr(pair, source), source)
    return probe_image(MODALITY_CHANNELS[source], TIMING_SIZE[::-1])[0]


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
                     **{k: result["model"][k] for k in core()}})
    affordable = [r for r in rows if r["seconds_per_frame"] <= budget_s] or rows[:1]
    top_psnr = max(r["psnr"] for r in affordable)
    chosen = max((r for r in affordable if r["psnr"] >= top_psnr - 0.5), key=lambda r: r["gradient_correlation"])
    return chosen["working_size"], rows


def working_size_section(rows: list[dict], chosen: int | None, n_val: int, test_full: dict) -> Section:
    name = lambda s: "native" if s is None else str(s)  # noqa: E731
    m = test_full["model"]
    return Section("Working size for full-resolution frames", [
        f"Frames larger than the working size are translated at that shorter side and the prediction is resized "
        f"back. Chosen on the {n_val} validation pairs at their native resolution (never on test): among the sizes "
        f"that translate a 1280x1024 frame within {TIME_BUDGET_S:g} s on the CPU that published this card, the "
        "best gradient correlation within 0.5 dB of the best PSNR. Recorded in `inference.json`; "
        "`--working-size` overrides it.", "",
        *table(["working size", "s per 1280x1024 frame (CPU)", *headers()],
               [[name(r["working_size"]) + (" (chosen)" if r["working_size"] == chosen else ""),
                 f"{r['seconds_per_frame']:.3f}", *cells(r)] for r in rows]), "",
        f"On the test split at native resolution with the chosen size: PSNR {cell(m, 'psnr')}, SSIM {cell(m, 'ssim')}, "
        f"sharpness {cell(m, 'sharpness')}, gradient correlation {cell(m, 'gradient_correlation')} "
        f"({test_full['n_pairs']} pairs)."])


def run_folder(run: Path) -> Path:
    """A run folder, given it or one of its checkpoint folders."""
    return run.parent.parent if is_checkpoint(run) else run


def _val_export(run: Path, val_roots: list[str]) -> tuple[dict, dict]:
    """(training config, validation result) of a run's generator (a run folder: its latest checkpoint), exported
    now and scored on val_roots' validation split: every ablation on the same frames, whatever copy it trained on."""
    with tempfile.TemporaryDirectory() as tmp:
        result = export_checkpoint(run, Path(tmp) / "export", val_data=val_roots, val_split="val", val_max_pairs=0,
                                   lpips=False)
        return json.loads((Path(tmp) / "export" / TRAINING_CONFIG_FILE).read_text()), result


def ablation_section(runs: dict[str, Path], val_roots: list[str]) -> Section:
    """Each run's exported generator (a run folder: its latest checkpoint; or a checkpoint folder) scored on the
    same validation frames (val_roots, whole frames), overall and on LLVIP."""
    varied = [loss for loss in LOSSES.values() if loss.column]
    rows = []
    for label, run in runs.items():
        config, result = _val_export(run, val_roots)
        steps = open_checkpoint(run)[2]["step"]
        gan = (f"PatchGAN ({config['gan_mode']}, ndf {config['ndf']}, {config['d_layers']} layers)"
               if config["gan_weight"] else "none")
        llvip = result["per_set"].get("llvip", {}).get("model")
        rows.append([label, steps, gan, *(f"{config.get(weight_name(loss), 0):g}" for loss in varied),
                     *cells(result["model"]), *cells(llvip)])
    return Section("Recipe ablations (validation split)", [
        "Runs that differ from the shipped recipe in the settings named, each scored by its export on the original "
        "frames of the validation split (whole frames at the evaluation protocol's size): overall, then LLVIP.", "",
        *table(["run", "steps trained", "discriminator", *(loss.column for loss in varied), *headers(),
                *headers(prefix="LLVIP ")], rows)])


def history_section(run: Path) -> Section | None:
    """The shipped run's validation during training (metrics.jsonl): how the figures moved with steps."""
    path = run_folder(run) / METRICS_FILE
    if not path.is_file():
        return None
    rows, last = [], open_checkpoint(run)[2]["step"]
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["step"] > last:  # a checkpoint before the run's end ships: its history stops with it
            break
        overall = {k: entry.get(f"val/{k}") for k in core()}
        llvip = {k: entry.get(f"val/llvip/{k}") for k in core()}
        rows.append([entry["step"], *cells(overall), *cells(llvip)])
    return Section("Validation during training", [
        "The shipped run's EMA weights on the validation split, whole frames, as training went:", "",
        *table(["step", *headers(), *headers(prefix="LLVIP ")], rows)])


def parent_lineage(run: Path, parents: list[Path]) -> Section:
    """The Lineage section of a run fine-tuned from earlier runs' weights (--init-from): parents, the nearest
    first, each one the run (or checkpoint) the one before it started from."""
    _, config, state, _ = open_checkpoint(run)
    chain, child, child_config = [], run, config
    for parent in parents:
        if not child_config.init_from:
            raise ConfigError(f"--parent-run {parent}: the run {child} did not start from earlier weights (no "
                              "init_from in its training_config.json)")
        _, parent_config, parent_state, _ = open_checkpoint(parent)
        chain.append((str(parent), parent_config, parent_state))
        child, child_config = parent, parent_config
    return lineage_section(config, state, chain)


def publish(direction: str, run: Path, data: list[str], out: Path, ablations: dict[str, Path] | None = None,
            sizes=WORKING_SIZES, parents: list[Path] | None = None) -> dict:
    """parents: the runs whose weights `run` started from (--init-from), the nearest first: the card's Lineage."""
    _, config, state, _ = open_checkpoint(run)
    lineage = parent_lineage(run, parents) if parents else None  # refused before any work
    test_roots = _roots_with(data, "test")
    val_roots = _roots_with(data, "val")
    # PSNR/SSIM/structure only: the same on every machine (LPIPS would depend on backbone weights being on this one)
    test = export_checkpoint(run, out, half=True, val_data=test_roots, val_split="test", val_max_pairs=0, lpips=False)
    (out / "evaluation.png").unlink(missing_ok=True)  # made of dataset frames: never shipped
    (out / EVALUATION_REPORT).write_text(markdown_report(test, samples_note=(
        "(sample grid: rerun the command below to draw it from your copy of the data)")))
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

    # the export's card (the same inputs: test tables, Retrain and Rerun lines), then this command's sections
    card = model_card(config, state, test, count_parameters(shipped.generator), half=True, load_path=str(out),
                      val_roots=test_roots or config.data, split="test")
    if lineage is not None:
        card.add(lineage, before="Evaluation")
    extra = [fit_section(train, test), working_size_section(rows, chosen, len(val_pairs), test_full)]
    extra += [s for s in (history_section(run),) if s is not None]
    if ablations:
        extra.append(ablation_section({"shipped": run, **ablations}, val_roots))
    extra.append(Section("Where it fails", [f"- {text}" for text in LIMITATIONS[direction]]))
    flags = "".join(f' --ablation "{k}={v}"' for k, v in (ablations or {}).items())
    flags += "".join(f" --parent-run {parent}" for parent in parents or [])
    extra.append(Section("Regenerate", [
        "The weights and these tables: `bash train/recipe.sh ../shared/data` (the runs), then "
        f"`python -m train.publish {direction} --run {run}{flags} --data ../shared/data --out weights/{direction}`. "
        f"The sample grids: `python -m irvis evaluate --direction {direction} --weights weights/{direction} --data "
        f"{' '.join(test_roots)} --json eval/{direction}.json` (writes eval/{direction}.png)."]))
    card.add(*extra, before="Use").save(out / CARD_FILE)

    summary = {"test": {"model": test["model"], "llvip": test["per_set"].get("llvip", {}).get("model")},
               "train": {"model": train["model"], "llvip": train["per_set"].get("llvip", {}).get("model")},
               "test_full_resolution": {"model": test_full["model"],
                                        "llvip": test_full["per_set"].get("llvip", {}).get("model")},
               "working_size": chosen}
    (out / FIT_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _ablation(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or not (Path(path, "final", EVALUATION_FILE).is_file() or is_checkpoint(Path(path))
                                    or any(Path(path, "checkpoints").glob("checkpoint-*"))):
        raise argparse.ArgumentTypeError(f"expected LABEL=RUN_FOLDER (or a checkpoint folder), got {text!r}")
    return label, Path(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.publish", description=__doc__.split("\n\n")[0])
    p.add_argument("direction", choices=["ir2vis", "vis2ir"])
    p.add_argument("--run", type=Path, required=True,
                   help="the run to ship: a run folder (its latest checkpoint) or one of its checkpoint folders")
    p.add_argument("--ablation", type=_ablation, action="append", default=[], metavar="LABEL=RUN",
                   help="a finished run of the same recipe with one setting changed, for the card's ablation table")
    p.add_argument("--parent-run", type=Path, metavar="RUN", action="append", default=[],
                   help="the run (or checkpoint) whose weights --run started from (its --init-from): the card's "
                        "Lineage section, with the steps and training time of each run; repeat it, nearest first, "
                        "for a chain of fine-tunes")
    p.add_argument("--data", nargs="+", default=["../shared/data"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--working-sizes", nargs="+", default=[str(s) if s else "native" for s in WORKING_SIZES],
                   help="candidate working sizes (shorter sides, or native)")
    args = p.parse_args(argv)
    sizes = tuple(None if s == "native" else int(s) for s in args.working_sizes)
    try:
        publish(args.direction, args.run, args.data, args.out, dict(args.ablation), sizes, args.parent_run)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: " + ", ".join(sorted(os.listdir(args.out))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
