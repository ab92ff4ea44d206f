"""The infrared/visible correlation study: does a pixel's visible appearance predict its thermal
intensity, and back?

The original experiment trained Pix2Pix on LLVIP "to test whether visible features (bright spots, red
shades) predict thermal signatures and back" and concluded from poor models that "there is no simple
rule linking the two". This module answers the question directly, per set and over all sets:

1. Association: Pearson, Spearman and binned mutual information between infrared intensity and
   visible features (luminance, R, G, B, redness, red chromaticity, saturation, local contrast,
   gradient), pooled over pixels sampled from every image.
2. Rules: how much infrared variance simple per-pixel rules explain on held-out scenes (fitted on
   the train split, scored on the test split): fixed "bright/dark is hot", a global linear map from
   RGB, and lookup tables (the conditional mean of infrared per colour cell: no per-pixel rule that
   sees only those inputs can do better at that resolution), against the per-image affine oracle of
   irvis.metrics, which sees the truth. The same for visible colour from infrared.
3. Structure: gradient magnitudes and edges of the two modalities, which can agree where
   intensities do not.

Protocol: each pair is resized so its shorter side is `short_side` (antialiased, irvis.data.load_pair);
features are computed on the whole resized frame, then `pixels_per_image` pixels are drawn per image
(seeded by the seed and the image's name, so every image weighs the same and a run is reproducible).
"""

from __future__ import annotations

import json
import os
import platform
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from irvis.data import Pair, load_pair, load_pairs
from irvis.images import luminance
from irvis.metrics import oracle_affine

VISIBLE_FEATURES = ("luminance", "red", "green", "blue", "redness", "red_chromaticity", "saturation",
                    "local_contrast", "gradient")
FEATURE_NOTES = {
    "luminance": "ITU-R 601 luma",
    "red": "R", "green": "G", "blue": "B",
    "redness": "R - (G + B) / 2",
    "red_chromaticity": "R / (R + G + B), brightness-free",
    "saturation": "HSV saturation (max - min) / max",
    "local_contrast": "standard deviation of luma in a 7x7 window",
    "gradient": "Sobel gradient magnitude of luma",
}
COLOUR_FEATURES = ("redness", "red_chromaticity", "saturation")  # meaningless on grayscale visible images
GRAY_CHROMA = 8 / 255  # JPEG chroma noise: an image whose channels never differ more is grayscale
MI_BINS = 32  # equal-frequency bins per variable: MI is then invariant to monotone rescaling
EDGE_QUANTILE = 0.9  # a pixel is an edge when its gradient is in its image's top 10%
CONTRAST_WINDOW = 7
# thresholds that turn numbers into the report's sentences (stated in the report itself)
WEAK_R2 = 0.25
SHARED_EDGE_LIFT = 1.5


# ---------------------------------------------------------------------------------------------------
# Pixels: per-image feature maps, then a seeded sample of pixels from each image


@dataclass
class Pixels:
    """Columns of sampled pixels; `image` indexes `images` (set, name) for every pixel."""
    columns: dict[str, np.ndarray]
    image: np.ndarray
    images: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.columns[key]

    @property
    def sets(self) -> list[str]:
        return sorted({s for s, _ in self.images})

    def of_set(self, set_name: str) -> "Pixels":
        keep_images = [i for i, (s, _) in enumerate(self.images) if s == set_name]
        remap = np.full(len(self.images), -1)
        remap[keep_images] = np.arange(len(keep_images))
        mask = remap[self.image] >= 0
        return Pixels({k: v[mask] for k, v in self.columns.items()}, remap[self.image[mask]],
                      [self.images[i] for i in keep_images])

    @staticmethod
    def concat(parts: Sequence["Pixels"]) -> "Pixels":
        if not parts:
            return Pixels({}, np.zeros(0, dtype=np.int64), [])
        offsets = np.cumsum([0] + [len(p.images) for p in parts[:-1]])
        return Pixels({k: np.concatenate([p.columns[k] for p in parts]) for k in parts[0].columns},
                      np.concatenate([p.image + o for p, o in zip(parts, offsets)]),
                      [im for p in parts for im in p.images])


def _gradient(gray: np.ndarray) -> np.ndarray:
    # Sobel's kernels weigh 8 pixels: dividing by 8 gives intensity change per pixel
    return np.hypot(ndimage.sobel(gray, axis=0), ndimage.sobel(gray, axis=1)) / 8


def _edges(grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edge map, edge map dilated by one pixel): registration is good, not pixel-perfect."""
    edge = grad >= np.quantile(grad, EDGE_QUANTILE)
    return edge, ndimage.maximum_filter(edge, size=3)


def feature_maps(ir: torch.Tensor, vis: torch.Tensor) -> dict[str, np.ndarray]:
    """Every per-pixel quantity of the study for one registered pair, as (H, W) arrays.

    ir (1, H, W) and vis (3, H, W) in [0, 1], as irvis.data.load_pair returns them."""
    lum_t = luminance(vis)
    r, g, b = vis.numpy().astype(np.float64)
    lum = lum_t[0].numpy().astype(np.float64)
    infrared = ir[0].numpy().astype(np.float64)
    top, bottom = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    local_mean = ndimage.uniform_filter(lum, CONTRAST_WINDOW)
    local_var = ndimage.uniform_filter(lum * lum, CONTRAST_WINDOW) - local_mean ** 2
    maps = {
        "infrared": infrared, "luminance": lum, "red": r, "green": g, "blue": b,
        "redness": r - (g + b) / 2,
        "red_chromaticity": np.divide(r, r + g + b, out=np.full_like(r, 1 / 3), where=(r + g + b) > 1e-6),
        "saturation": np.divide(top - bottom, top, out=np.zeros_like(top), where=top > 1e-6),
        "local_contrast": np.sqrt(np.clip(local_var, 0, None)),
        "gradient": _gradient(lum),
        "ir_gradient": _gradient(infrared),
        # the per-image affine oracle in both directions (least squares on the image, sees the truth)
        "oracle_ir": oracle_affine(vis, ir)[0, 0].numpy().astype(np.float64),
    }
    oracle_rgb = oracle_affine(ir, vis)[0].numpy().astype(np.float64)
    maps.update({f"oracle_{c}": oracle_rgb[i] for i, c in enumerate(("red", "green", "blue"))})
    maps["gray_image"] = np.full(r.shape, (top - bottom).max() <= GRAY_CHROMA)
    maps["vis_edge"], maps["vis_edge_near"] = _edges(maps["gradient"])
    maps["ir_edge"], maps["ir_edge_near"] = _edges(maps["ir_gradient"])
    return maps


def _pixel_seed(seed: int, pair: Pair) -> int:
    # by name, not position: adding a set or a file never changes another image's sample
    return zlib.crc32(f"{seed}/{pair.set_name}/{pair.name}".encode())


def sample_pair(pair: Pair, short_side: int | None, pixels_per_image: int, seed: int) -> Pixels:
    ir, vis = load_pair(pair, short_side=short_side)
    maps = feature_maps(ir, vis)
    n_total = maps["infrared"].size
    rng = np.random.default_rng(_pixel_seed(seed, pair))
    idx = rng.choice(n_total, size=min(pixels_per_image, n_total), replace=False)
    idx.sort()
    columns = {k: (v.reshape(-1)[idx] if v.dtype == bool else v.reshape(-1)[idx].astype(np.float32))
               for k, v in maps.items()}
    return Pixels(columns, np.zeros(len(idx), dtype=np.int64), [(pair.set_name, pair.name)])


def collect_pixels(pairs: Sequence[Pair], short_side: int | None = 256, pixels_per_image: int = 4096,
                   seed: int = 0, progress: bool = True, desc: str = "pixels") -> Pixels:
    """Sample every pair (in parallel; the result does not depend on scheduling)."""
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        jobs = pool.map(lambda p: sample_pair(p, short_side, pixels_per_image, seed), pairs)
        parts = list(tqdm(jobs, total=len(pairs), desc=desc, disable=not progress))
    return Pixels.concat(parts)


# ---------------------------------------------------------------------------------------------------
# Statistics


def _constant(x: np.ndarray) -> bool:
    return len(x) < 3 or float(np.ptp(x)) < 1e-9


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson r, or None when either variable is constant (the correlation is undefined)."""
    if _constant(x) or _constant(y):
        return None
    x, y = x.astype(np.float64) - x.mean(dtype=np.float64), y.astype(np.float64) - y.mean(dtype=np.float64)
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))


def ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (scipy's rankdata 'average'), about 3x faster: the
    vectorised unstable sort is fine because tied values get one rank whatever their order."""
    order = np.argsort(x)
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    counts = np.diff(np.r_[starts, len(x)])
    out = np.empty(len(x))
    out[order] = np.repeat(starts + (counts + 1) / 2, counts)
    return out


def spearman(x: np.ndarray, y: np.ndarray, y_ranks: np.ndarray | None = None) -> float | None:
    """Spearman's rho: Pearson r of average ranks (ties share their mean rank)."""
    if _constant(x) or _constant(y):
        return None
    return pearson(ranks(x), ranks(y) if y_ranks is None else y_ranks)


def _quantile_codes(x: np.ndarray, bins: int) -> np.ndarray:
    inner = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(inner, x, side="right")


def mutual_information(x: np.ndarray, y: np.ndarray, bins: int = MI_BINS, y_codes: np.ndarray | None = None) -> float:
    """Plug-in mutual information in bits between two variables, each cut into `bins` equal-frequency
    bins (fewer where ties merge bin edges). 0 for independent variables up to estimation bias of
    about (bins-1)^2 / (2 n ln 2) bits; log2(bins) for a variable with itself."""
    if _constant(x) or _constant(y):
        return 0.0
    cx, cy = _quantile_codes(x, bins), _quantile_codes(y, bins) if y_codes is None else y_codes
    ny = int(cy.max()) + 1
    joint = np.bincount(cx * ny + cy, minlength=(int(cx.max()) + 1) * ny).reshape(-1, ny) / len(x)
    px, py = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(max(0.0, (joint[nz] * np.log2(joint[nz] / (px @ py)[nz])).sum()))


def informational_correlation(mi_bits: float) -> float:
    """Linfoot's r_I = sqrt(1 - 2^(-2 MI)): the |r| a Gaussian pair sharing that much information
    would have, so MI reads on the correlation scale and catches non-monotone dependence."""
    return float(np.sqrt(1 - 2 ** (-2 * mi_bits)))


def association(x: np.ndarray, y: np.ndarray, y_ranks: np.ndarray | None = None,
                y_codes: np.ndarray | None = None) -> dict:
    """Pearson, Spearman, MI (bits) and MI on the correlation scale; y's ranks and bin codes may be
    passed in when y is compared with many x."""
    mi = mutual_information(x, y, y_codes=y_codes)
    return {"pearson": _round(pearson(x, y)), "spearman": _round(spearman(x, y, y_ranks)), "mi_bits": _round(mi),
            "mi_corr": _round(informational_correlation(mi))}


def _round(v: float | None, digits: int = 4) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), digits)


def per_image_correlations(px: Pixels, feature: str) -> np.ndarray:
    """Pearson r of infrared vs a feature within each image (NaN where undefined, and for colour
    features of grayscale images, whose 'colour' is JPEG noise)."""
    order = np.argsort(px.image, kind="stable")
    bounds = np.searchsorted(px.image[order], np.arange(len(px.images) + 1))
    ir, f, gray = px["infrared"][order], px[feature][order], px["gray_image"][order]
    out = [None if feature in COLOUR_FEATURES and gray[a:b].any() else pearson(ir[a:b], f[a:b])
           for a, b in zip(bounds[:-1], bounds[1:])]
    return np.array([np.nan if r is None else r for r in out])


def _distribution(r: np.ndarray) -> dict:
    r = r[np.isfinite(r)]
    if not len(r):
        return {"n_images": 0, "median": None, "q25": None, "q75": None, "fraction_positive": None}
    q25, med, q75 = np.quantile(r, [0.25, 0.5, 0.75])
    return {"n_images": int(len(r)), "median": _round(med), "q25": _round(q25), "q75": _round(q75),
            "fraction_positive": _round(float((r > 0).mean()))}


# ---------------------------------------------------------------------------------------------------
# Rules: fitted on train pixels, scored on test pixels


class LinearRule:
    """Least-squares affine map from input columns to output columns."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> "LinearRule":
        design = np.c_[x.astype(np.float64), np.ones(len(x))]
        self.coef = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)[0]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.c_[x.astype(np.float64), np.ones(len(x))] @ self.coef


class LookupRule:
    """The mean training output in each cell of a grid over the inputs: the conditional mean, i.e. the
    best any rule can do that sees only which cell a pixel falls in. Cells are equal-frequency on the
    training data (quantile=True) or equal-width over [0, 1]; unseen cells predict the global mean."""

    def __init__(self, bins: Sequence[int], quantile: bool = True):
        self.bins, self.quantile = list(bins), quantile

    def _cells(self, x: np.ndarray) -> np.ndarray:
        cell = np.zeros(len(x), dtype=np.int64)
        for j, inner in enumerate(self.edges):
            cell = cell * (len(inner) + 1) + np.searchsorted(inner, x[:, j], side="right")
        return cell

    def fit(self, x: np.ndarray, y: np.ndarray) -> "LookupRule":
        if self.quantile:
            self.edges = [np.unique(np.quantile(x[:, j], np.linspace(0, 1, b + 1)[1:-1])) for j, b in enumerate(self.bins)]
        else:
            self.edges = [np.linspace(0, 1, b + 1)[1:-1] for b in self.bins]
        n_cells = int(np.prod([len(e) + 1 for e in self.edges]))
        cells, y = self._cells(x), y.astype(np.float64).reshape(len(x), -1)
        counts = np.bincount(cells, minlength=n_cells)
        sums = np.stack([np.bincount(cells, weights=y[:, k], minlength=n_cells) for k in range(y.shape[1])], 1)
        self.table = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], y.mean(0))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.table[self._cells(x)]


def r2(y: np.ndarray, pred: np.ndarray) -> float | None:
    """Coefficient of determination over all pixels (and channels): 1 - SSE / SST about the scored
    data's own mean. Negative when a rule is worse than predicting that mean."""
    y, pred = y.astype(np.float64).reshape(len(y), -1), pred.astype(np.float64).reshape(len(y), -1)
    sst = ((y - y.mean(0)) ** 2).sum()
    return None if sst < 1e-12 else float(1 - ((y - pred) ** 2).sum() / sst)


def r2_within_images(y: np.ndarray, pred: np.ndarray, image: np.ndarray) -> float | None:
    """Median over images of each image's own R^2 (SST about that image's mean): does the rule
    explain the pattern inside a scene, not just differences between scenes. Flat images are skipped."""
    y, pred = y.astype(np.float64).reshape(len(y), -1), pred.astype(np.float64).reshape(len(y), -1)
    n = np.bincount(image)
    mean = np.stack([np.bincount(image, weights=y[:, k]) for k in range(y.shape[1])], 1) / np.maximum(n, 1)[:, None]
    sst = np.bincount(image, weights=((y - mean[image]) ** 2).sum(1))
    sse = np.bincount(image, weights=((y - pred) ** 2).sum(1))
    ok = sst > 1e-6 * np.maximum(n, 1)
    return float(np.median(1 - sse[ok] / sst[ok])) if ok.any() else None


RGB = ("red", "green", "blue")


def _stack(px: Pixels, names: Sequence[str]) -> np.ndarray:
    return np.stack([px[n] for n in names], 1).astype(np.float64)


def vis2ir_rules(train: Pixels, test: Pixels) -> dict[str, dict]:
    """Infrared from visible: predictions on the test pixels of each rule fitted on train."""
    ir_train = train["infrared"]
    rules = {
        "bright_is_hot": (test["luminance"], "infrared = luminance (no fitting): the hypothesis under test"),
        "dark_is_hot": (1 - test["luminance"], "infrared = 1 - luminance (no fitting)"),
        "linear_rgb": (LinearRule().fit(_stack(train, RGB), ir_train).predict(_stack(test, RGB)),
                       "global least-squares a*R + b*G + c*B + d"),
        "lookup_luminance_redness": (
            LookupRule([16, 16]).fit(_stack(train, ("luminance", "redness")), ir_train)
            .predict(_stack(test, ("luminance", "redness")))[:, 0],
            "mean infrared per cell of 16 luminance x 16 redness equal-frequency bins"),
        "lookup_rgb": (LookupRule([8, 8, 8], quantile=False).fit(_stack(train, RGB), ir_train)
                       .predict(_stack(test, RGB))[:, 0],
                       "mean infrared per colour, 8x8x8 = 512 colour cells: the best per-pixel colour rule"),
        "oracle_affine_per_image": (test["oracle_ir"], "per-image least-squares affine RGB -> infrared; sees the truth"),
    }
    return _score(rules, test["infrared"], test.image)


def ir2vis_rules(train: Pixels, test: Pixels) -> dict[str, dict]:
    """Visible RGB from infrared, scored over the three channels together."""
    rgb_train, ir_train, ir_test = _stack(train, RGB), train["infrared"][:, None], test["infrared"][:, None]
    rules = {
        "infrared_as_gray": (np.repeat(ir_test, 3, 1), "R = G = B = infrared (no fitting)"),
        "linear": (LinearRule().fit(ir_train, rgb_train).predict(ir_test), "global least-squares per channel a*IR + b"),
        "lookup_infrared": (LookupRule([32]).fit(ir_train, rgb_train).predict(ir_test),
                            "mean colour per infrared level, 32 equal-frequency bins: the best per-pixel rule"),
        "oracle_affine_per_image": (_stack(test, [f"oracle_{c}" for c in RGB]),
                                    "per-image least-squares affine infrared -> RGB; sees the truth"),
    }
    return _score(rules, _stack(test, RGB), test.image)


def _score(rules: dict, truth: np.ndarray, image: np.ndarray) -> dict[str, dict]:
    return {name: {"r2": _round(r2(truth, pred)), "r2_within_images_median": _round(r2_within_images(truth, pred, image)),
                   "rule": note} for name, (pred, note) in rules.items()}


# ---------------------------------------------------------------------------------------------------
# Structure: edges are shared even when intensities are not


def structure(px: Pixels) -> dict:
    def agreement(edge: np.ndarray, other_near: np.ndarray) -> dict:
        hit, chance = float(other_near[edge].mean()) if edge.any() else None, float(other_near.mean())
        return {"rate": _round(hit), "chance": _round(chance),
                "lift": _round(hit / chance) if hit is not None and chance > 0 else None}

    return {
        "gradient": association(px["gradient"], px["ir_gradient"]),
        "visible_edges_near_infrared_edges": agreement(px["vis_edge"], px["ir_edge_near"]),
        "infrared_edges_near_visible_edges": agreement(px["ir_edge"], px["vis_edge_near"]),
    }


# ---------------------------------------------------------------------------------------------------
# The study


def _associations(px: Pixels) -> dict:
    colour = ~px["gray_image"]  # colour features only where the visible image has colour
    out = {}
    for features, mask in ((COLOUR_FEATURES, colour), ([f for f in VISIBLE_FEATURES if f not in COLOUR_FEATURES], None)):
        ir = px["infrared"] if mask is None else px["infrared"][mask]
        ir_ranks, ir_codes = ranks(ir), _quantile_codes(ir, MI_BINS)
        for f in features:
            x = px[f] if mask is None else px[f][mask]
            out[f] = association(x, ir, ir_ranks, ir_codes)
    return {f: out[f] for f in VISIBLE_FEATURES}


def _group(px: Pixels, test: Pixels | None) -> dict:
    """Every statistic for one set (or all sets pooled); rules only where a test split exists."""
    gray = np.bincount(px.image, weights=px["gray_image"], minlength=len(px.images)) > 0
    out = {
        "n_images": len(px.images), "n_pixels": len(px), "n_grayscale_visible_images": int(gray.sum()),
        "association": _associations(px),
        "per_image_r": {f: _distribution(per_image_correlations(px, f)) for f in ("luminance", "redness")},
        "structure": structure(px),
    }
    if test is not None and len(test):
        out["rules"] = {"n_test_images": len(test.images), "vis2ir": vis2ir_rules(px, test),
                        "ir2vis": ir2vis_rules(px, test)}
    else:
        out["rules"] = None
        out["rules_note"] = "no held-out test pairs for it: rules are scored only on scenes they were not fitted on"
    return out


def analyze(roots: Sequence[str | os.PathLike], split: str = "train", test_split: str | None = "test",
            short_side: int | None = 256, pixels_per_image: int = 4096, seed: int = 0,
            progress: bool = True) -> tuple[dict, Pixels]:
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
    per_set = {s: _group(px.of_set(s), test.of_set(s) if test is not None and s in test.sets else None)
               for s in px.sets}
    lum_r, red_r = per_image_correlations(px, "luminance"), per_image_correlations(px, "redness")
    result = {
        "protocol": _protocol(roots, split, test_split, short_side, pixels_per_image, seed),
        "overall": _group(px, test),
        "per_set": per_set,
        "images": [{"set": s, "name": n, "r_luminance": _round(r), "r_redness": _round(rr)}
                   for (s, n), r, rr in zip(px.images, lum_r, red_r)],
    }
    result["conclusions"] = conclusions(result)
    return result, px


def _protocol(roots, split, test_split, short_side, pixels_per_image, seed) -> dict:
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
        "versions": {"numpy": np.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }


# ---------------------------------------------------------------------------------------------------
# Plain-sentence conclusions, derived from the numbers


def _f(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.0f}%"


def _best(rules: dict, exclude: Iterable[str] = ("oracle_affine_per_image",)) -> tuple[str, float]:
    scored = [(k, v["r2"]) for k, v in rules.items() if k not in exclude and v["r2"] is not None]
    return max(scored, key=lambda kv: kv[1]) if scored else ("none", float("nan"))


def conclusions(result: dict) -> list[str]:
    o, per_set = result["overall"], result["per_set"]
    out = _association_sentences(o) + _sign_sentences(o, per_set) + _rule_sentences(o)
    out += _structure_sentences(o) + _per_set_sentences(per_set)
    out.append(_verdict(o))
    return out


def _association_sentences(o: dict) -> list[str]:
    a = o["association"]
    lum, red, chroma = a["luminance"], a["redness"], a["red_chromaticity"]
    lines = [f"Bright spots: over all {o['n_images']} images, infrared and visible luminance correlate at "
             f"r = {_f(lum['pearson'])} (Spearman {_f(lum['spearman'])}), so luminance accounts for "
             f"{_pct((lum['pearson'] or 0) ** 2)} of infrared variance linearly; it carries {_f(lum['mi_bits'])} "
             f"bits about infrared, what a correlation of {_f(lum['mi_corr'])} would."]
    if red["mi_bits"] is not None:
        rel = "less" if red["mi_bits"] < lum["mi_bits"] else "more"
        lines.append(f"Red shades: redness correlates with infrared at r = {_f(red['pearson'])} and carries "
                     f"{_f(red['mi_bits'])} bits, {rel} than luminance; red chromaticity (brightness-free) "
                     f"r = {_f(chroma['pearson'])}, {_f(chroma['mi_bits'])} bits.")
    return lines


def _sign_sentences(o: dict, per_set: dict) -> list[str]:
    d = o["per_image_r"]["luminance"]
    if d["median"] is None:
        return []
    mixed = 0.2 < d["fraction_positive"] < 0.8
    lines = [f"Within single images the luminance-infrared correlation has median {_f(d['median'])} "
             f"(quartiles {_f(d['q25'])} to {_f(d['q75'])}) and is positive in {_pct(d['fraction_positive'])} "
             "of images: " + ("its sign flips from scene to scene, so neither 'bright is hot' nor 'dark is hot' holds."
                              if mixed else "the sign is mostly the same, but its strength varies between scenes.")]
    share = {s: g["per_image_r"]["luminance"]["fraction_positive"] for s, g in per_set.items()
             if g["per_image_r"]["luminance"]["fraction_positive"] is not None}
    pos = [f"{s} ({_pct(v)})" for s, v in share.items() if v >= 0.7]
    neg = [f"{s} ({_pct(v)})" for s, v in share.items() if v <= 0.3]
    if pos and neg:
        lines.append(f"The sign depends on the dataset: the share of images where brighter means hotter is high in "
                     f"{', '.join(pos)} but low in {', '.join(neg)}.")
    return lines


def _rule_sentences(o: dict) -> list[str]:
    if not o.get("rules"):
        return [f"Rules were not scored: {o.get('rules_note', 'no test split')}."]
    v, i = o["rules"]["vis2ir"], o["rules"]["ir2vis"]
    (best_name, best), (back_name, back) = _best(v), _best(i)
    oracle, back_oracle = v["oracle_affine_per_image"], i["oracle_affine_per_image"]
    return [f"Visible -> infrared on {o['rules']['n_test_images']} held-out images: the best per-pixel rule fitted "
            f"on train ({best_name}) explains {_pct(best)} of infrared variance; the global linear RGB rule "
            f"{_pct(v['linear_rgb']['r2'])}; 'bright is hot' as it stands scores R^2 = {_f(v['bright_is_hot']['r2'])} "
            f"(worse than a constant). Even an affine map fitted to each test image with the truth in hand reaches "
            f"only {_pct(oracle['r2'])} pooled, and a median of {_pct(oracle['r2_within_images_median'])} within an image.",
            f"Infrared -> visible: the best per-pixel rule ({back_name}) explains {_pct(back)} of RGB variance; "
            f"the per-image oracle {_pct(back_oracle['r2'])} pooled, {_pct(back_oracle['r2_within_images_median'])} "
            "within an image."]


def _structure_sentences(o: dict) -> list[str]:
    g, e = o["structure"]["gradient"], o["structure"]["visible_edges_near_infrared_edges"]
    if e["lift"] is None:
        return []
    tail = ("Outlines are shared even though intensities are not: a model that looks at neighbourhoods can use "
            "them, a per-pixel rule cannot." if e["lift"] >= SHARED_EDGE_LIFT else
            "Edges agree little more than chance: the modalities share little structure either.")
    return [f"Structure: {_pct(e['rate'])} of visible edge pixels lie within one pixel of an infrared edge, "
            f"{_f(e['lift'], 1)}x the chance rate of {_pct(e['chance'])}; gradient magnitudes correlate at "
            f"r = {_f(g['pearson'])} (Spearman {_f(g['spearman'])}). {tail}"]


def _per_set_sentences(per_set: dict) -> list[str]:
    scored = {s: _best(g["rules"]["vis2ir"]) for s, g in per_set.items() if g.get("rules")}
    lines = []
    if scored:
        lo, hi = min(scored.items(), key=lambda kv: kv[1][1]), max(scored.items(), key=lambda kv: kv[1][1])
        lines.append(f"Per set, with rules fitted on that set's own train scenes, the best held-out R^2 for infrared "
                     f"ranges from {_f(lo[1][1])} ({lo[0]}) to {_f(hi[1][1])} ({hi[0]}); negative means worse than "
                     "predicting the test scenes' mean: what held on the train scenes does not carry over.")
    llvip = per_set.get("llvip")
    if llvip and llvip.get("rules"):
        d, (name, best) = llvip["per_image_r"]["luminance"], _best(llvip["rules"]["vis2ir"])
        lines.append(f"LLVIP, the original experiment's data: within an image luminance and infrared correlate at a "
                     f"median r = {_f(d['median'])} ({_pct(d['fraction_positive'])} of images positive), yet the best "
                     f"rule fitted on its train scenes scores R^2 = {_f(best)} on its test scenes ({name}).")
    gray = [f"{s} ({g['n_grayscale_visible_images']} of {g['n_images']})" for s, g in per_set.items()
            if g["n_grayscale_visible_images"]]
    if gray:
        lines.append(f"Grayscale visible images, left out of the colour features: {', '.join(gray)}.")
    return lines


def _verdict(o: dict) -> str:
    rules_weak = bool(o.get("rules")) and max(_best(o["rules"]["vis2ir"])[1], _best(o["rules"]["ir2vis"])[1]) < WEAK_R2
    lift = o["structure"]["visible_edges_near_infrared_edges"]["lift"]
    shared = lift is not None and lift >= SHARED_EDGE_LIFT
    if rules_weak and shared:
        return (f"Verdict: the original conclusion is right about intensities - no per-pixel rule, linear or not, "
                f"explains even {_pct(WEAK_R2)} of the other modality on unseen scenes - but the two modalities share "
                "geometry (edges), which is what a translation model must rely on.")
    if rules_weak:
        return (f"Verdict: no per-pixel rule explains even {_pct(WEAK_R2)} of the other modality on unseen scenes, and "
                "edges agree little: the data show little link of any simple kind.")
    return (f"Verdict: a per-pixel rule explains at least {_pct(WEAK_R2)} of the other modality on unseen scenes, "
            "so there is a simple link, if a partial one.")


# ---------------------------------------------------------------------------------------------------
# Report: Markdown and plots


def _cell(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def markdown_report(result: dict, figures: dict[str, str] | None = None) -> str:
    p, o, per_set = result["protocol"], result["overall"], result["per_set"]
    groups = {"all sets": o, **per_set}
    lines = ["# Does visible appearance predict thermal infrared, and back?", "",
             f"Regenerate: `{_command(p)}`", "",
             f"{o['n_images']} '{p['split']}' pairs from {len(per_set)} set(s), shorter side {p['short_side']}, "
             f"{p['pixels_per_image']} pixels drawn per image (seed {p['seed']}); rules fitted on '{p['split']}' and "
             f"scored on '{p['test_split']}'. Correlations are Pearson r / Spearman rho; MI in bits "
             f"({MI_BINS} equal-frequency bins).", "", "## Conclusions", ""]
    lines += [f"- {c}" for c in result["conclusions"]] + [""]
    lines += ["## Infrared vs visible features (all sets)", ""]
    lines += _table(["feature", "definition", "Pearson r", "Spearman rho", "MI (bits)", "MI as r"],
                    [(f, FEATURE_NOTES[f], *(o["association"][f][k] for k in ("pearson", "spearman", "mi_bits", "mi_corr")))
                     for f in VISIBLE_FEATURES]) + [""]
    lines += ["## Per set: luminance, redness, gradient vs infrared", ""]
    lines += _table(["set", "images", "colour images", "r lum", "MI lum", "r redness", "MI redness", "r gradient",
                     "MI gradient", "per-image r lum (median)", "images with r > 0"],
                    [(s, g["n_images"], g["n_images"] - g["n_grayscale_visible_images"],
                      g["association"]["luminance"]["pearson"], g["association"]["luminance"]["mi_bits"],
                      g["association"]["redness"]["pearson"], g["association"]["redness"]["mi_bits"],
                      g["association"]["gradient"]["pearson"], g["association"]["gradient"]["mi_bits"],
                      g["per_image_r"]["luminance"]["median"], _pct(g["per_image_r"]["luminance"]["fraction_positive"]))
                     for s, g in groups.items()]) + [""]
    lines += _rules_tables(groups)
    lines += ["## Structure: gradients and edges", ""]
    lines += _table(["set", "r gradients", "rho gradients", "MI gradients", "vis edges near IR edges", "chance", "lift",
                     "IR edges near vis edges", "lift"],
                    [(s, g["structure"]["gradient"]["pearson"], g["structure"]["gradient"]["spearman"],
                      g["structure"]["gradient"]["mi_bits"],
                      _pct(g["structure"]["visible_edges_near_infrared_edges"]["rate"]),
                      _pct(g["structure"]["visible_edges_near_infrared_edges"]["chance"]),
                      g["structure"]["visible_edges_near_infrared_edges"]["lift"],
                      _pct(g["structure"]["infrared_edges_near_visible_edges"]["rate"]),
                      g["structure"]["infrared_edges_near_visible_edges"]["lift"]) for s, g in groups.items()]) + [""]
    if figures:
        lines += ["## Figures", ""] + [f"![{caption}]({name})  \n{caption}" + "\n" for name, caption in figures.items()]
    lines += ["## Caveats", "",
              "- Pixels are pooled with equal weight per image; sets with more images weigh more in 'all sets'.",
              "- Images are 8-bit JPEGs whose infrared is already contrast-stretched by each camera (AGC): intensities "
              "are relative within an image, not temperatures, which alone limits any global rule.",
              *_coverage_caveats(per_set),
              f"- Decision thresholds used in the sentences: R^2 < {WEAK_R2} is 'weak'; edge lift >= "
              f"{SHARED_EDGE_LIFT} is 'shared structure'.", ""]
    return "\n".join(lines)


def _coverage_caveats(per_set: dict) -> list[str]:
    few = [f"{s} ({g['rules']['n_test_images']})" for s, g in per_set.items()
           if g.get("rules") and g["rules"]["n_test_images"] < 10]
    none = [s for s, g in per_set.items() if not g.get("rules")]
    out = [f"- Few test images, so noisy held-out R^2: {', '.join(few)}." if few else None,
           f"- No test split, so no held-out rules (their pixels still count in 'all sets' fits): {', '.join(none)}."
           if none else None]
    return [line for line in out if line]


def _rules_tables(groups: dict) -> list[str]:
    lines = []
    for direction, title in (("vis2ir", "Infrared from visible"), ("ir2vis", "Visible RGB from infrared")):
        scored = {s: g["rules"][direction] for s, g in groups.items() if g.get("rules")}
        if not scored:
            continue
        names = list(next(iter(scored.values())))
        lines += [f"## {title}: held-out R^2 of each rule (pooled / median within image)", ""]
        lines += [f"- `{n}`: {next(iter(scored.values()))[n]['rule']}" for n in names] + [""]
        lines += _table(["set", "test images", *names],
                        [(s, groups[s]["rules"]["n_test_images"],
                          *(f"{_cell(r[n]['r2'])} / {_cell(r[n]['r2_within_images_median'])}" for n in names))
                         for s, r in scored.items()]) + [""]
    return lines


def _command(p: dict) -> str:
    cmd = f"python -m irvis analyze --data {' '.join(p['roots'])} --split {p['split']}"
    if p["test_split"]:
        cmd += f" --test-split {p['test_split']}"
    return cmd + f" --size {p['short_side']} --pixels {p['pixels_per_image']} --seed {p['seed']} --out DIR"


# Plots, PIL only: 2-D histograms with the conditional mean, and per-image correlations

_COLORMAP = np.array([[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]], float)
TILE = 150


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _colorize(unit: np.ndarray) -> np.ndarray:
    pos = np.clip(unit, 0, 1) * (len(_COLORMAP) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_COLORMAP) - 2)
    frac = (pos - lo)[..., None]
    return (_COLORMAP[lo] * (1 - frac) + _COLORMAP[lo + 1] * frac).astype(np.uint8)


def _range(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(x, [0.005, 0.995]) if len(x) else (0.0, 1.0)
    return (float(lo), float(hi)) if hi - lo > 1e-6 else (float(lo) - 0.5, float(lo) + 0.5)


def hist_tile(x: np.ndarray, y: np.ndarray, title: str) -> Image.Image:
    """Log-density of (x, y) with the mean of y per x column drawn in white; y grows upwards."""
    (x0, x1), (y0, y1) = _range(x), _range(y)
    counts, _, _ = np.histogram2d(y, x, bins=TILE, range=[[y0, y1], [x0, x1]])
    counts = counts[::-1]
    density = np.log1p(counts) / max(np.log1p(counts).max(), 1e-9)
    img = Image.fromarray(_colorize(density))
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
            fig.paste(hist_tile(g[fx][keep], g[fy][keep], f"r = {_cell(_round(r, 3))}"), x_px)
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
    paths["json"].write_text(json.dumps(result, indent=2, allow_nan=False))
    paths["markdown"].write_text(markdown_report(result, figures))
    return paths


def run(roots: Sequence[str | os.PathLike], out: str | os.PathLike, **kwargs) -> tuple[dict, dict[str, Path]]:
    """analyze + write_analysis: what `python -m irvis analyze` does."""
    result, px = analyze(roots, **kwargs)
    return result, write_analysis(result, px, out)


__all__ = ["analyze", "run", "write_analysis", "markdown_report", "collect_pixels", "feature_maps", "pearson",
           "spearman", "mutual_information", "r2", "r2_within_images", "LinearRule", "LookupRule"]
