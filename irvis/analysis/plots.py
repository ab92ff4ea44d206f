"""Figures of the study, PIL only: 2-D histograms with the conditional mean, and per-image correlations."""

from __future__ import annotations

import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from irvis.analysis.features import COLOUR_FEATURES, Pixels
from irvis.analysis.report import format_cell
from irvis.analysis.stats import pearson, rounded
from irvis.colormap import colorize

TILE = 150


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _range(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(x, [0.005, 0.995]) if len(x) else (0.0, 1.0)
    return (float(lo), float(hi)) if hi - lo > 1e-6 else (float(lo) - 0.5, float(lo) + 0.5)


def hist_tile(x: np.ndarray, y: np.ndarray, title: str) -> Image.Image:
    """Log-density of (x, y) with the mean of y per x column drawn in white; y grows upwards."""
    (x0, x1), (y0, y1) = _range(x), _range(y)
    counts, _, _ = np.histogram2d(y, x, bins=TILE, range=[[y0, y1], [x0, x1]])
    counts = counts[::-1]
    density = np.log1p(counts) / max(np.log1p(counts).max(), 1e-9)
    img = Image.fromarray(colorize(density))
    draw = ImageDraw.Draw(img)
    col = np.clip(((x - x0) / (x1 - x0) * TILE).astype(int), 0, TILE - 1)
    n = np.bincount(col, minlength=TILE)
    mean_y = np.bincount(col, weights=y.astype(np.float64), minlength=TILE) / np.maximum(n, 1)
    pts = [(c, (1 - (m - y0) / (y1 - y0)) * (TILE - 1)) for c, m, k in zip(range(TILE), mean_y, n) if k >= 20]
    if len(pts) > 1:
        draw.line(pts, fill=(255, 255, 255), width=2)
    draw.text((3, 2), title, fill=(255, 255, 255), font=_font(11))
    draw.text((3, TILE - 14), f"x {x0:.2f}..{x1:.2f}  y {y0:.2f}..{y1:.2f}", fill=(200, 200, 200), font=_font(9))
    return img


PANELS = (("luminance", "infrared", "x luminance, y infrared"), ("redness", "infrared", "x redness, y infrared"),
          ("gradient", "ir_gradient", "x vis gradient, y IR gradient"))


def histogram_figure(px: Pixels) -> Image.Image:
    """Rows: all sets, then each set; columns: IR vs luminance, IR vs redness, gradient vs gradient."""
    groups = [("all sets", px)] + [(s, px.of_set(s)) for s in px.sets]
    label_w, head_h, gap = 90, 34, 4
    fig = Image.new("RGB", (label_w + len(PANELS) * (TILE + gap), head_h + len(groups) * (TILE + gap)), "white")
    draw = ImageDraw.Draw(fig)
    for j, (_, _, caption) in enumerate(PANELS):
        draw.text((label_w + j * (TILE + gap), 4), caption, fill="black", font=_font(11))
    draw.text((label_w, 18), "white line: mean y per x; colour: log pixel count", fill=(90, 90, 90), font=_font(10))
    for i, (name, g) in enumerate(groups):
        y = head_h + i * (TILE + gap)
        draw.text((4, y + TILE // 2 - 6), name, fill="black", font=_font(12))
        for j, (fx, fy, _) in enumerate(PANELS):
            keep = ~g["gray_image"] if fx in COLOUR_FEATURES else np.ones(len(g), dtype=bool)
            x_px = (label_w + j * (TILE + gap), y)
            if keep.sum() < 2:
                draw.rectangle([x_px, (x_px[0] + TILE - 1, y + TILE - 1)], outline=(180, 180, 180))
                draw.text((x_px[0] + 8, y + TILE // 2 - 6), "grayscale visible", fill=(90, 90, 90), font=_font(11))
                continue
            r = pearson(g[fx][keep], g[fy][keep])
            fig.paste(hist_tile(g[fx][keep], g[fy][keep], f"r = {format_cell(rounded(r, 3))}"), x_px)
    return fig


def per_image_figure(result: dict) -> Image.Image:
    """One row per set: a dot per image at its within-image r(infrared, luminance), on [-1, 1]."""
    sets = list(result["per_set"])
    label_w, width, row_h, top = 90, 420, 22, 30
    fig = Image.new("RGB", (label_w + width + 20, top + row_h * len(sets) + 24), "white")
    draw = ImageDraw.Draw(fig)
    draw.text((label_w, 6), "within-image Pearson r of infrared vs luminance, one dot per image", fill="black",
              font=_font(11))

    def x_of(r: float) -> float:
        return label_w + (r + 1) / 2 * width

    bottom = top + row_h * len(sets)
    for r in (-1, -0.5, 0, 0.5, 1):
        draw.line([(x_of(r), top - 4), (x_of(r), bottom)], fill=(0, 0, 0) if r == 0 else (210, 210, 210))
        draw.text((x_of(r) - 8, bottom + 4), f"{r:g}", fill="black", font=_font(10))
    for i, s in enumerate(sets):
        y = top + i * row_h + row_h // 2
        draw.text((4, y - 7), s, fill="black", font=_font(12))
        for im in result["images"]:
            if im["set"] == s and im["r_luminance"] is not None:
                cx, cy = x_of(im["r_luminance"]), y + zlib.crc32(im["name"].encode()) % 7 - 3  # stable jitter
                draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=(200, 60, 40))
    return fig


# The receptive-field curve: one panel per direction and metric; x is the predictor's context

ABLATION_PANELS = (("r2", "R^2 of the target"), ("psnr", "PSNR (dB)"), ("ssim", "SSIM"),
                   ("gradient_correlation", "gradient correlation"))
SET_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
               (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _x_label(name: str, entry: dict) -> str:
    return f"{entry['receptive_field']}" if entry.get("receptive_field") else "frame"


def ablation_figure(summary: dict) -> Image.Image:
    """Rows: directions; columns: metrics. Black: all test images, mean with its 95% bootstrap interval;
    coloured: each test set's mean. x: receptive field in pixels (log-spaced), then the whole frame."""
    directions = list(summary["directions"])
    pw, ph, left, top, gap = 230, 170, 104, 40, 50
    sets = sorted({g for d in summary["directions"].values() for e in d["predictors"].values() for g in e
                   if isinstance(e[g], dict) and g != "all"})
    fig = Image.new("RGB", (left + len(ABLATION_PANELS) * (pw + gap), top + len(directions) * (ph + gap + 14) + 10),
                    "white")
    draw = ImageDraw.Draw(fig)
    draw.text((left, 6), "Prediction quality vs receptive field (test split); black: all test images with 95% "
              "bootstrap interval over images; colours: sets (clipped to the panel)", fill="black", font=_font(11))
    for r, direction in enumerate(directions):
        preds = summary["directions"][direction]["predictors"]
        names = list(preds)
        y0 = top + r * (ph + gap + 14)
        draw.text((4, y0 + ph // 2 - 6), direction, fill="black", font=_font(13))
        for c, (metric, title) in enumerate(ABLATION_PANELS):
            x0 = left + c * (pw + gap)
            core = [v for n in names for v in [preds[n]["all"][metric]["mean"], *preds[n]["all"][metric]["ci"]]
                    if v is not None]
            if not core:
                continue
            # the range follows all test images; a set far outside (a negative R^2 of a few frames) is clipped
            span = max(max(core) - min(core), 1e-3)
            per_set = [preds[n][g][metric]["mean"] for n in names for g in sets
                       if g in preds[n] and preds[n][g][metric]["mean"] is not None]
            lo = max(min(core + per_set), min(core) - 3 * span)
            hi = min(max(core + per_set), max(core) + 3 * span)
            lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)

            def xy(i, v):
                v = min(max(v, lo), hi)
                return (x0 + 12 + i * (pw - 24) / max(1, len(names) - 1), y0 + ph - (v - lo) / (hi - lo) * ph)

            draw.rectangle([x0, y0, x0 + pw, y0 + ph], outline=(160, 160, 160))
            draw.text((x0, y0 - 14), title, fill="black", font=_font(11))
            for frac in (0, 0.5, 1):
                v = lo + frac * (hi - lo)
                draw.text((x0 - 40, y0 + ph - frac * ph - 6), f"{v:.2f}", fill=(90, 90, 90), font=_font(9))
            if lo < 0 < hi and metric == "r2":
                draw.line([(x0, xy(0, 0)[1]), (x0 + pw, xy(0, 0)[1])], fill=(200, 200, 200))
            for k, s in enumerate(sets):
                pts = [xy(i, preds[n][s][metric]["mean"]) for i, n in enumerate(names)
                       if s in preds[n] and preds[n][s][metric]["mean"] is not None]
                if len(pts) > 1:
                    draw.line(pts, fill=SET_COLOURS[k % len(SET_COLOURS)], width=1)
            pts = []
            for i, n in enumerate(names):
                m = preds[n]["all"][metric]
                if m["mean"] is None:
                    continue
                pts.append(xy(i, m["mean"]))
                if m["ci"][0] is not None:
                    (cx, ya), (_, yb) = xy(i, m["ci"][0]), xy(i, m["ci"][1])
                    draw.line([(cx, ya), (cx, yb)], fill="black", width=2)
                    draw.line([(cx - 4, ya), (cx + 4, ya)], fill="black")
                    draw.line([(cx - 4, yb), (cx + 4, yb)], fill="black")
            if len(pts) > 1:
                draw.line(pts, fill="black", width=2)
            for p in pts:
                draw.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill="black")
            for i, n in enumerate(names):
                label = _x_label(n, preds[n])
                draw.text((xy(i, lo)[0] - 3 * len(label), y0 + ph + 3), label, fill="black", font=_font(10))
        draw.text((left, y0 + ph + 16), "receptive field (pixels at the study's size); 'frame': the default "
                  "generator, which sees the whole frame", fill=(90, 90, 90), font=_font(10))
    ly = fig.height - 18
    for k, s in enumerate(sets):
        x = left + k * 110
        draw.line([(x, ly + 6), (x + 18, ly + 6)], fill=SET_COLOURS[k % len(SET_COLOURS)], width=3)
        draw.text((x + 22, ly), s, fill="black", font=_font(10))
    return fig


def pair_figure(maps: dict) -> Image.Image:
    """The joint histograms of one registered pair: infrared vs luminance, vs redness, gradients."""
    fig = Image.new("RGB", (len(PANELS) * (TILE + 4), TILE + 20), "white")
    draw = ImageDraw.Draw(fig)
    for j, (fx, fy, caption) in enumerate(PANELS):
        x, y = maps[fx].reshape(-1), maps[fy].reshape(-1)
        draw.text((j * (TILE + 4), 3), caption, fill="black", font=_font(10))
        if fx in COLOUR_FEATURES and bool(maps["gray_image"].reshape(-1)[0]):
            draw.text((j * (TILE + 4) + 8, TILE // 2), "grayscale visible", fill=(90, 90, 90), font=_font(11))
            continue
        fig.paste(hist_tile(x, y, f"r = {format_cell(rounded(pearson(x, y), 3))}"), (j * (TILE + 4), 18))
    return fig
