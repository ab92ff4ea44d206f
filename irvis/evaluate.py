"""A generator on a dataset split -> JSON + Markdown report + a sample grid a person can look at.

Default protocol: each pair resized so its shorter side is 256 (irvis.metrics.SCORING_SHORT_SIDE, antialiased), the whole frame
translated at once and compared with the truth; short_side=None compares at native resolution.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw
from torchmetrics.aggregation import MeanMetric

from irvis.data import Pair, load_pair, load_pairs
from irvis.directions import get_direction
from irvis.images import to_pil
from irvis.metrics import (BASELINES, PSNR_CAP_DB, SCORING_SHORT_SIDE, Truth, method_predictions, protocol,
                           score_image)
from irvis.paired import lead_over_best_baseline, lead_table
from irvis.perceptual import PROTOCOL as PERCEPTUAL_PROTOCOL
from irvis.perceptual import open_metrics
from irvis.tables import result_tables
from irvis.translate import Translator

GRID_ROWS = 6
GRID_HEIGHT = 200


class Means:
    """Running means of per-image metrics, overall ("__all__") and per set: a torchmetrics MeanMetric (summing in
    float64, as Python's floats do) per set, method and metric. Each metric is averaged over the images where it is
    defined (sharpness is undefined against a flat truth, VIF on images under 41 pixels): leave it out of `metrics`,
    or pass NaN; a metric never defined is left out of means()."""

    def __init__(self):
        self.sums: dict[str, dict[str, dict[str, MeanMetric]]] = {}
        self.counts: dict[str, int] = {}

    def add(self, set_name: str, method: str, metrics: dict[str, float]):
        for key in ("__all__", set_name):
            bucket = self.sums.setdefault(key, {}).setdefault(method, {})
            for name, value in metrics.items():
                if value != value:  # NaN: undefined for this image
                    continue
                if name not in bucket:
                    # this process's own images: a run's validation is on the main process alone
                    bucket[name] = MeanMetric(sync_on_compute=False).set_dtype(torch.float64)
                bucket[name].update(value)

    def count(self, set_name: str):
        for key in ("__all__", set_name):
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self, key: str = "__all__", digits: int | None = 4) -> dict[str, dict[str, float]]:
        """{method: {metric: mean}} for a set (or overall), rounded to `digits` (None: as summed)."""
        rounded = (lambda x: x) if digits is None else (lambda x: round(x, digits))
        return {m: {k: rounded(float(v.compute())) for k, v in ms.items()} for m, ms in self.sums[key].items()}


def evaluate(translator: Translator | None, pairs: Sequence[Pair], direction: str | None = None,
             short_side: int | None = SCORING_SHORT_SIDE, progress: bool = True, grid_rows: int = GRID_ROWS,
             lpips: bool | None = None, fid: bool | None = None) -> tuple[dict, list]:
    """Score the translator (if any), the baselines and the oracle on every pair.

    lpips / fid: None = computed when their weights are on disk (irvis.perceptual), True = required,
    False = skipped (FID costs an Inception pass per image and method: pass False in training loops).
    Returns (result dict, grid samples); the samples are (name, source, prediction, truth, baseline)
    tensors for the first grid_rows pairs."""
    from tqdm.auto import tqdm

    if translator is None and direction is None:
        raise ValueError("give a translator or a direction")
    d = translator.direction if translator is not None else get_direction(direction)
    if not pairs:
        raise ValueError("no pairs to evaluate")
    if len(pairs) < 2 and fid is not False:  # a set-level statistic needs a set
        if fid:
            raise ValueError("FID needs at least 2 pairs")
        fid = False
    perceptual, perceptual_status = open_metrics(lpips, fid, translator.device if translator is not None else "cpu")
    means, per_pair, samples = Means(), [], []
    for pair in tqdm(pairs, desc=f"evaluate {d.name}", disable=not progress):
        ir, vis = load_pair(pair, short_side=short_side)
        source, truth = d.arrange(ir, vis)
        prediction = translator.translate_tensor(source) if translator is not None else None
        methods = method_predictions(d.name, source, truth, prediction)
        row = {"name": pair.name, "set": pair.set_name}
        if "fid" in perceptual:
            perceptual["fid"].add_real(truth)
        scored = Truth(truth)  # the truth's statistics once, for every method
        for method, pred in methods.items():
            metrics = score_image(pred, scored)
            if "lpips" in perceptual:
                metrics["lpips"] = float(perceptual["lpips"](pred, truth)[0])
            if "fid" in perceptual:
                perceptual["fid"].add(method, pred)
            means.add(pair.set_name, method, metrics)
            row[method] = metrics
        means.count(pair.set_name)
        per_pair.append(row)
        if len(samples) < grid_rows:
            first_baseline = next(v for k, v in methods.items() if k.startswith("baseline:"))
            samples.append((f"{pair.set_name}/{pair.name}", source, prediction, truth, first_baseline))

    def split_methods(m: dict) -> dict:
        out = {"n_pairs": None, "model": m.get("model"),
               "baselines": {k.split(":", 1)[1]: v for k, v in m.items() if k.startswith("baseline:")},
               "oracles": {k.split(":", 1)[1]: v for k, v in m.items() if k.startswith("oracle:")}}
        return out

    overall_means = means.means("__all__")
    if "fid" in perceptual:  # set-level: one number per method over all pairs, overall only
        for method, value in perceptual["fid"].compute().items():
            overall_means[method]["fid"] = round(value, 4)
    overall = split_methods(overall_means)
    per_set = {}
    for set_name in sorted(k for k in means.counts if k != "__all__"):
        entry = split_methods(means.means(set_name))
        entry["n_pairs"] = means.counts[set_name]
        per_set[set_name] = entry
    result = {
        "direction": d.name,
        "n_pairs": len(pairs),
        "protocol": {
            **protocol(),
            "short_side": short_side if short_side is not None else "native",
            "frame": "whole frame translated at once, padded to the network's multiple and cropped back",
            "psnr_cap_db": PSNR_CAP_DB,
            "oracle": "affine: per-image least-squares affine map source->target channels; sees the truth",
            **{k: v for k, v in PERCEPTUAL_PROTOCOL.items() if k in perceptual},
        },
        "perceptual": perceptual_status,
        "model": overall["model"],
        "baselines": overall["baselines"],
        "oracles": overall["oracles"],
        "per_set": per_set,
        "pairs": per_pair,
    }
    leads = lead_over_best_baseline(result)  # empty without a generator
    if leads:
        result["lead_over_best_baseline"] = leads
    if translator is not None:
        result["weights"] = translator.source
        result["protocol"]["device"] = str(translator.device)
        result["protocol"]["working_size"] = translator.working_size or "native"
    return result, samples


def _label(img: Image.Image, text: str) -> Image.Image:
    img = img.convert("RGB")
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, min(img.width, 8 + 7 * len(text)), 16], fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 0))
    return img


def sample_grid(samples: list, direction: str, height: int = GRID_HEIGHT) -> Image.Image:
    """Rows of input | prediction | truth | baseline, each tile labelled, scaled to a common height."""
    d = get_direction(direction)
    baseline_name = next(iter(BASELINES[d.name]))
    rows = []
    for name, source, prediction, truth, baseline in samples:
        tiles = [(source, f"input ({d.source}) {name}"), (prediction, "prediction"), (truth, f"truth ({d.target})"),
                 (baseline, f"baseline: {baseline_name}")]
        imgs = []
        for t, text in tiles:
            if t is None:
                continue
            pil = to_pil(t)
            w = max(1, round(pil.width * height / pil.height))
            imgs.append(_label(pil.resize((w, height), Image.BICUBIC), text))
        rows.append(imgs)
    width = max(sum(i.width for i in r) + 4 * (len(r) - 1) for r in rows)
    grid = Image.new("RGB", (width, len(rows) * (height + 4) - 4), (255, 255, 255))
    for y, r in enumerate(rows):
        x = 0
        for img in r:
            grid.paste(img, (x, y * (height + 4)))
            x += img.width + 4
    return grid


def markdown_report(result: dict, grid_name: str | None = None, samples_note: str | None = None) -> str:
    """The result as a person reads it; grid_name: the sample grid beside it, else samples_note (if any) says
    where the samples went."""
    d = get_direction(result["direction"])
    lines = [f"# irvis evaluation: {d.label} ({d.name})", ""]
    if result.get("weights"):
        lines.append(f"Generator: `{result['weights']}`  ")
    p = result["protocol"]
    working = f" (the generator translates at shorter side {p['working_size']})" if p.get("working_size") not in (
        None, "native") else ""
    lines += [f"{result['n_pairs']} pairs; shorter side {p['short_side']}{working}; whole frames; infrared in 1 channel, "
              "visible in RGB; PSNR in dB (higher is better), SSIM (higher is better); sharpness is the prediction's "
              "mean Sobel gradient over the truth's (1 is right, near 0 a blur), gradient correlation the Pearson "
              "correlation of the two gradient maps (structure in the right places), VIF the visual information "
              "fidelity (higher is better). Means over pairs.", ""]
    notes = [f"{name.upper()}: {p[name]}." if state == "ok" else f"{name.upper()} {state}"
             for name, state in result.get("perceptual", {}).items() if state != "off"]
    if notes:
        lines += [n + "  " for n in notes] + [""]
    lines += result_tables(result, level=2)
    leads = result.get("lead_over_best_baseline") or lead_over_best_baseline(result)  # older reports: from their pairs
    if leads:
        lines += ["## How sure: the model against the best baseline", "",
                  "The lead is the mean over images of the model's score minus the best baseline's (that set's best by "
                  "mean); the interval is a 95% bootstrap over images, resampled within their sets (2000 replicates). "
                  "Ahead or behind only when the interval excludes 0; frames of one video sequence are not independent, "
                  "so their interval is narrower than another sequence would show. Two generators: `python -m irvis "
                  "versus`.", ""]
        lines += lead_table(leads) + [""]
    if grid_name:
        lines += ["## Samples", "", f"![input, prediction, truth, baseline]({grid_name})", ""]
    elif samples_note:
        lines += ["## Samples", "", samples_note, ""]
    lines += ["Regenerate: `python -m irvis evaluate` with the same arguments; the JSON beside this file holds per-pair figures.", ""]
    return "\n".join(lines)


def write_report(result: dict, samples: list, json_path: str | os.PathLike) -> dict[str, Path]:
    """Write OUT.json, OUT.md and OUT.png side by side; returns their paths."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": json_path, "markdown": json_path.with_suffix(".md"), "grid": json_path.with_suffix(".png")}
    if samples:
        sample_grid(samples, result["direction"]).save(paths["grid"])
    else:
        paths.pop("grid")
    json_path.write_text(json.dumps(result, indent=2, allow_nan=False))
    paths["markdown"].write_text(markdown_report(result, paths["grid"].name if "grid" in paths else None))
    return paths


def evaluate_dataset(weights: str | None, roots: Sequence[str], split: str = "test", direction: str | None = None,
                     short_side: int | None = SCORING_SHORT_SIDE, device: str = "auto", progress: bool = True,
                     lpips: bool | None = None, fid: bool | None = None,
                     working_size: int | str | None = "auto") -> tuple[dict, list]:
    """The CLI's entry: load weights (checking they match the direction), check data, evaluate."""
    translator = Translator.from_pretrained(weights, device=device, working_size=working_size) if weights else None
    problem = translator.direction.mismatch(direction, weights) if translator is not None else None
    if problem:
        raise ValueError(problem)
    pairs = load_pairs(roots, split)
    return evaluate(translator, pairs, direction=direction, short_side=short_side, progress=progress,
                    lpips=lpips, fid=fid)
