"""The study: every statistic per set and pooled, its protocol, and the files it writes."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from irvis.analysis.features import (COLOUR_FEATURES, EDGE_QUANTILE, FEATURE_NOTES, GRAY_CHROMA,
                                     MI_BINS, VISIBLE_FEATURES, Pixels, collect_pixels)
from irvis.analysis import receptive
from irvis.analysis.plots import ablation_figure, histogram_figure, per_image_figure
from irvis.analysis.report import SHARED_EDGE_LIFT, WEAK_R2, ablation_sentences, conclusions, markdown_report
from irvis.analysis.rules import ir2vis_rules, structure, vis2ir_rules
from irvis.analysis.stats import (N_BOOT, distribution, quantile_codes, rounded, association, interval,
                                  moment_sums, per_image_correlations, pooled_pearson, ranks, resample_indices)
from irvis.data import load_pairs

def _associations(px: Pixels, idx: np.ndarray) -> dict:
    """Infrared vs every visible feature; pearson_ci: 95% bootstrap interval over images (rows of idx).
    Colour features use colour images only: a set whose visible images are all gray has none."""
    colour = ~px["gray_image"]  # colour features only where the visible image has colour
    out = {}
    for features, mask in ((COLOUR_FEATURES, colour), ([f for f in VISIBLE_FEATURES if f not in COLOUR_FEATURES], None)):
        if mask is not None and mask.sum() < 3:
            out.update({f: {"pearson": None, "spearman": None, "mi_bits": None, "mi_corr": None, "pearson_ci": [None, None],
                            "note": "no colour visible images"} for f in features})
            continue
        ir = px["infrared"] if mask is None else px["infrared"][mask]
        image = px.image if mask is None else px.image[mask]
        ir_ranks, ir_codes = ranks(ir), quantile_codes(ir, MI_BINS)
        for f in features:
            x = px[f] if mask is None else px[f][mask]
            out[f] = association(x, ir, ir_ranks, ir_codes)
            out[f]["pearson_ci"] = interval(pooled_pearson(moment_sums(x, ir, image, len(px.images)), idx))
    return {f: out[f] for f in VISIBLE_FEATURES}


def _sign_interval(r: np.ndarray, idx: np.ndarray) -> list[float | None]:
    """Interval of the share of images whose within-image r is positive (images where r is undefined left out)."""
    ok = np.isfinite(r)
    pos, n = (np.where(ok, r, 0) > 0)[idx].sum(1), ok[idx].sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return interval(pos / n)


def _group(px: Pixels, test: Pixels | None, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Every statistic for one set (or all sets pooled), with bootstrap intervals over images resampled
    within sets; rules only where a test split exists."""
    gray = np.bincount(px.image, weights=px["gray_image"], minlength=len(px.images)) > 0
    idx = resample_indices([s for s, _ in px.images], n_boot, seed)
    per_image = {f: per_image_correlations(px, f) for f in ("luminance", "redness")}
    out = {
        "n_images": len(px.images), "n_pixels": len(px), "n_grayscale_visible_images": int(gray.sum()),
        "association": _associations(px, idx),
        "per_image_r": {f: {**distribution(r), "fraction_positive_ci": _sign_interval(r, idx)}
                        for f, r in per_image.items()},
        "structure": structure(px, n_boot, seed),
    }
    if test is not None and len(test):
        out["rules"] = {"n_test_images": len(test.images), "vis2ir": vis2ir_rules(px, test, n_boot, seed),
                        "ir2vis": ir2vis_rules(px, test, n_boot, seed)}
    else:
        out["rules"] = None
        out["rules_note"] = "no held-out test pairs for it: rules are scored only on scenes they were not fitted on"
    return out


def analyze(roots: Sequence[str | os.PathLike], split: str = "train", test_split: str | None = "test",
            short_side: int | None = 256, pixels_per_image: int = 4096, seed: int = 0,
            progress: bool = True, n_boot: int = N_BOOT) -> tuple[dict, Pixels]:
    """Run the study on LLVIP-layout roots. Association and structure use `split`; rules are fitted
    on `split` and scored on `test_split` (per set, and all sets pooled). Returns (result, pixels of
    `split`) - the pixels feed the plots."""
    if pixels_per_image < 16:
        raise ValueError(f"pixels_per_image must be at least 16, got {pixels_per_image}")
    pairs = load_pairs(roots, split)
    test_pairs = load_pairs(roots, test_split, required=False) if test_split and test_split != split else []
    px = collect_pixels(pairs, short_side, pixels_per_image, seed, progress, desc=f"pixels {split}")
    test = collect_pixels(test_pairs, short_side, pixels_per_image, seed, progress,
                          desc=f"pixels {test_split}") if test_pairs else None
    per_set = {s: _group(px.of_set(s), test.of_set(s) if test is not None and s in test.sets else None, n_boot, seed)
               for s in px.sets}
    lum_r, red_r = per_image_correlations(px, "luminance"), per_image_correlations(px, "redness")
    result = {
        "protocol": _protocol(roots, split, test_split, short_side, pixels_per_image, seed, n_boot),
        "overall": _group(px, test, n_boot, seed),
        "per_set": per_set,
        "images": [{"set": s, "name": n, "r_luminance": rounded(r), "r_redness": rounded(rr)}
                   for (s, n), r, rr in zip(px.images, lum_r, red_r)],
    }
    result["conclusions"] = conclusions(result)
    return result, px


def _protocol(roots, split, test_split, short_side, pixels_per_image, seed, n_boot=N_BOOT) -> dict:
    return {
        "roots": [str(r) for r in roots], "split": split, "test_split": test_split,
        "short_side": short_side if short_side is not None else "native",
        "pixels_per_image": pixels_per_image, "seed": seed,
        "pooling": "every image contributes the same number of pixels; 'overall' pools all sets",
        "infrared": "1 channel, ITU-R 601 luma of the stored image, [0, 1]",
        "features": FEATURE_NOTES,
        "colour_features": f"{', '.join(COLOUR_FEATURES)} use only images whose visible image has colour "
                           f"(some pixel's channels differ by more than {GRAY_CHROMA * 255:.0f}/255)",
        "mutual_information": f"plug-in estimate in bits on {MI_BINS} equal-frequency bins per variable; "
                              "mi_corr = sqrt(1 - 2^(-2 MI)) (Linfoot)",
        "rules": "fitted on the split's pixels, scored on the test split's pixels (held-out scenes); "
                 "r2 = 1 - SSE/SST pooled over test pixels; r2_within_images_median = median per-image R^2",
        "edges": f"top {100 * (1 - EDGE_QUANTILE):.0f}% gradient magnitude per image; 'near' = within 1 pixel; "
                 "lift = rate / chance",
        "thresholds": {"weak_r2": WEAK_R2, "shared_edge_lift": SHARED_EDGE_LIFT},
        "intervals": f"95% percentile bootstrap over images ({n_boot} replicates, seed {seed}): whole images "
                     "resampled with replacement within each set, the statistic recomputed from their pixels; rules "
                     "as fitted on the split, their test images resampled",
        "n_boot": n_boot,
        "versions": {"numpy": np.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }


def write_analysis(result: dict, px: Pixels, out: str | os.PathLike) -> dict[str, Path]:
    """analysis.json, analysis.md and the PNG figures into `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "analysis.json", "markdown": out / "analysis.md",
             "histograms": out / "hist2d.png", "per_image": out / "per_image_r.png"}
    histogram_figure(px).save(paths["histograms"])
    per_image_figure(result).save(paths["per_image"])
    figures = {paths["histograms"].name: "2-D histograms per set: infrared vs luminance, vs redness; gradients",
               paths["per_image"].name: "Within-image correlation of infrared and luminance, per image"}
    if result.get("receptive_field"):
        paths["receptive_field"] = out / "receptive_field.png"
        ablation_figure(result["receptive_field"]).save(paths["receptive_field"])
        figures[paths["receptive_field"].name] = ("Test scores vs receptive field, both directions, with 95% "
                                                  "bootstrap intervals over images")
    paths["json"].write_text(json.dumps(result, indent=2, allow_nan=False))
    paths["markdown"].write_text(markdown_report(result, figures))
    return paths


def receptive_field_study(roots: Sequence[str | os.PathLike], out: str | os.PathLike, settings: dict | None = None,
                          rerun: bool = False, n_boot: int = N_BOOT, progress: bool = True) -> tuple[dict, bool]:
    """The receptive-field ablation's summary (intervals recomputed from its per-image scores). Training is
    the costly part: OUT/ablation.json is reused when it holds a run of exactly the requested protocol
    (rerun=True trains again). Returns (summary, reused)."""
    settings = settings or {}
    path = Path(out) / "ablation.json"
    requested = json.loads(json.dumps(receptive.protocol(roots, **settings)))
    ablation, reused = None, False
    if path.exists() and not rerun:
        stored = json.loads(path.read_text())
        if stored.get("protocol") == requested:
            ablation, reused = stored, True
    if ablation is None:
        cpu0 = time.process_time()
        ablation = receptive.run_ablation(roots, progress=progress, **settings)
        ablation["cpu_seconds"] = round(time.process_time() - cpu0, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ablation, indent=1, allow_nan=False))
    return receptive.summarize(ablation, n_boot, seed=requested["seed"]), reused


def run(roots: Sequence[str | os.PathLike], out: str | os.PathLike, ablation: bool = True,
        ablation_settings: dict | None = None, rerun_ablation: bool = False,
        **kwargs) -> tuple[dict, dict[str, Path]]:
    """analyze (+ the receptive-field ablation) + write_analysis: what `python -m irvis analyze` does."""
    result, px = analyze(roots, **kwargs)
    if ablation and not load_pairs(roots, "test", required=False):
        result["receptive_field_note"] = "no test pairs: the receptive-field ablation is scored only on held-out scenes"
    elif ablation:
        summary, reused = receptive_field_study(roots, out, ablation_settings, rerun_ablation,
                                                kwargs.get("n_boot", N_BOOT), kwargs.get("progress", True))
        result["receptive_field"] = {**summary, "reused": reused}
        result["conclusions"][-1:-1] = ablation_sentences(summary)
    return result, write_analysis(result, px, out)
