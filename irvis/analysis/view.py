"""The study for a reader: its headline numbers from a written study folder, and the same statistics
for one registered pair a user brings (what the app's Study tab shows)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from irvis.analysis.features import feature_maps
from irvis.analysis.plots import pair_figure
from irvis.analysis.report import best_rule, receptive_field_text
from irvis.analysis.stats import pearson
from irvis.data import resize_short_side
from irvis.images import ImageSource, load_image

PAIR_SHORT_SIDE = 256  # the study's default size: an uploaded pair is measured as the shipped study was


@dataclass
class StudyFolder:
    """A folder written by `python -m irvis analyze`: its result and figures (None where absent)."""
    folder: Path
    result: dict
    histograms: Path | None
    per_image: Path | None
    receptive_field: Path | None


def read_study(folder: str | os.PathLike) -> StudyFolder | None:
    folder = Path(folder)
    try:
        result = json.loads((folder / "analysis.json").read_text())
    except (OSError, ValueError):
        return None
    found = {name: folder / f"{name}.png" for name in ("hist2d", "per_image_r", "receptive_field")}
    found = {k: p if p.is_file() else None for k, p in found.items()}
    return StudyFolder(folder, result, found["hist2d"], found["per_image_r"], found["receptive_field"])


def _ci(entry: dict, key: str) -> str:
    ci = entry.get(key) or [None, None]
    return "-" if ci[0] is None else f"{ci[0]:.2f} to {ci[1]:.2f}"


def headline_rows(result: dict) -> list[list[str]]:
    """[quantity, value, 95% interval] for the study's headline numbers, pooled over all sets."""
    o = result["overall"]
    a, s = o["association"], o["structure"]
    rows = [["r(infrared, luminance), all pixels", f"{a['luminance']['pearson']:.2f}", _ci(a["luminance"], "pearson_ci")]]
    if a["redness"]["pearson"] is not None:
        rows.append(["r(infrared, redness), colour images", f"{a['redness']['pearson']:.3f}",
                     _ci(a["redness"], "pearson_ci")])
    d = o["per_image_r"]["luminance"]
    if d["fraction_positive"] is not None:
        rows.append(["share of images where brighter is hotter", f"{d['fraction_positive']:.2f}",
                     _ci(d, "fraction_positive_ci")])
    if o.get("rules"):
        for direction, what in (("vis2ir", "infrared from visible"), ("ir2vis", "visible from infrared")):
            name, value = best_rule(o["rules"][direction])
            rows.append([f"R^2 of {what}, best per-pixel rule ({name}), test", f"{value:.2f}",
                         _ci(o["rules"][direction][name], "r2_ci")])
        bright = o["rules"]["vis2ir"]["bright_is_hot"]
        rows.append(["R^2 of 'bright is hot', test", f"{bright['r2']:.2f}", _ci(bright, "r2_ci")])
    rows.append(["r(visible gradient, infrared gradient)", f"{s['gradient']['pearson']:.2f}",
                 _ci(s["gradient"], "pearson_ci")])
    e = s["visible_edges_near_infrared_edges"]
    if e["lift"] is not None:
        rows.append(["visible edges near infrared edges, x chance", f"{e['lift']:.2f}", _ci(e, "lift_ci")])
    for direction, d in (result.get("receptive_field") or {}).get("directions", {}).items():
        for name, p in d["predictors"].items():
            rows.append([f"R^2 {direction}, receptive field {receptive_field_text(p)}, test", f"{p['all']['r2']['mean']:.2f}",
                         _ci(p["all"]["r2"], "ci")])
    return rows


def pair_study(infrared: ImageSource, visible: ImageSource) -> tuple[Image.Image, dict]:
    """Joint histograms and correlations of one registered pair (decoded and checked by irvis.images),
    measured at the study's size when larger."""
    ir, vis = load_image(infrared, "infrared"), load_image(visible, "visible")
    if ir.shape[-2:] != vis.shape[-2:]:
        (h1, w1), (h2, w2) = ir.shape[-2:], vis.shape[-2:]
        raise ValueError(f"the infrared image is {w1}x{h1} and the visible one {w2}x{h2}: a registered pair has "
                         "one size")
    if min(ir.shape[-2:]) < 8:
        raise ValueError("the images are too small to measure (at least 8 pixels a side)")
    if min(ir.shape[-2:]) > PAIR_SHORT_SIDE:
        ir, vis = resize_short_side(ir, PAIR_SHORT_SIDE), resize_short_side(vis, PAIR_SHORT_SIDE)
    maps = feature_maps(ir, vis)
    gray = bool(maps["gray_image"].reshape(-1)[0])
    edge, near = maps["vis_edge"], maps["ir_edge_near"]
    rate, chance = float(near[edge].mean()), float(near.mean())
    stats = {"size": list(ir.shape[-2:][::-1]), "grayscale_visible": gray,
             "r_luminance": pearson(maps["luminance"].ravel(), maps["infrared"].ravel()),
             "r_redness": None if gray else pearson(maps["redness"].ravel(), maps["infrared"].ravel()),
             "r_gradient": pearson(maps["gradient"].ravel(), maps["ir_gradient"].ravel()),
             "edge_rate": rate, "edge_lift": rate / chance if chance > 0 else None,
             "oracle_r2": _oracle_r2(maps)}
    return pair_figure(maps), stats


def _oracle_r2(maps: dict) -> float | None:
    y = maps["infrared"].ravel()
    sst = ((y - y.mean()) ** 2).sum()
    return None if sst < 1e-12 else float(1 - ((y - maps["oracle_ir"].ravel()) ** 2).sum() / sst)


def pair_summary(stats: dict, study: dict | None = None) -> str:
    """The pair's numbers in sentences, beside the shipped study's where one is given."""
    def f(v, digits=2):
        return "undefined (a flat image)" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"

    w, h = stats["size"]
    lines = [f"Measured at {w}x{h}. Within this pair, infrared and luminance correlate at r = {f(stats['r_luminance'])}"
             + (f" ({'brighter is hotter' if stats['r_luminance'] > 0 else 'brighter is cooler'} here)"
                if stats["r_luminance"] is not None else "") + "; "
             + ("the visible image is grayscale, so redness says nothing" if stats["grayscale_visible"]
                else f"redness r = {f(stats['r_redness'])}") + ".",
             f"The best affine map from this image's RGB to its own infrared explains R^2 = {f(stats['oracle_r2'])} "
             "(it sees the answer: an upper bound for any colour rule on this scene).",
             f"Structure: gradients correlate at r = {f(stats['r_gradient'])}; {100 * stats['edge_rate']:.0f}% of "
             f"visible edge pixels lie within one pixel of an infrared edge ({f(stats['edge_lift'], 1)}x chance)."]
    if study:
        o = study["overall"]
        d = o["per_image_r"]["luminance"]
        lines.append(f"In the shipped study ({o['n_images']} train images), the within-image r of infrared and "
                     f"luminance has median {f(d['median'])} (quartiles {f(d['q25'])} to {f(d['q75'])}); edges lie "
                     f"near infrared edges at {f(o['structure']['visible_edges_near_infrared_edges']['lift'], 1)}x chance.")
    return "\n\n".join(lines)


__all__ = ["read_study", "headline_rows", "pair_study", "pair_summary", "StudyFolder"]
