"""Statistics of the study: correlations, mutual information, R^2, and bootstrap intervals over images."""

from __future__ import annotations

import numpy as np

from irvis.analysis.features import COLOUR_FEATURES, MI_BINS, Pixels

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


def quantile_codes(x: np.ndarray, bins: int) -> np.ndarray:
    inner = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(inner, x, side="right")


def mutual_information(x: np.ndarray, y: np.ndarray, bins: int = MI_BINS, y_codes: np.ndarray | None = None) -> float:
    """Plug-in mutual information in bits between two variables, each cut into `bins` equal-frequency
    bins (fewer where ties merge bin edges). 0 for independent variables up to estimation bias of
    about (bins-1)^2 / (2 n ln 2) bits; log2(bins) for a variable with itself."""
    if _constant(x) or _constant(y):
        return 0.0
    cx, cy = quantile_codes(x, bins), quantile_codes(y, bins) if y_codes is None else y_codes
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
    return {"pearson": rounded(pearson(x, y)), "spearman": rounded(spearman(x, y, y_ranks)), "mi_bits": rounded(mi),
            "mi_corr": rounded(informational_correlation(mi))}


def rounded(v: float | None, digits: int = 4) -> float | None:
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


def distribution(r: np.ndarray) -> dict:
    r = r[np.isfinite(r)]
    if not len(r):
        return {"n_images": 0, "median": None, "q25": None, "q75": None, "fraction_positive": None}
    q25, med, q75 = np.quantile(r, [0.25, 0.5, 0.75])
    return {"n_images": int(len(r)), "median": rounded(med), "q25": rounded(q25), "q75": rounded(q75),
            "fraction_positive": rounded(float((r > 0).mean()))}


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


# ---------------------------------------------------------------------------------------------------
# Bootstrap over images: resample whole images (not pixels), within their sets, so that a set keeps its
# size in every replicate; a statistic is recomputed from per-image sums on each replicate.

N_BOOT = 2000
LEVEL = 0.95


def resample_indices(groups, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, n) image indices: each row draws, within every group (set), as many images as the group
    holds, with replacement. Groups in sorted order, so the draw depends only on the seed and the labels."""
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    cols = []
    for g in sorted(set(groups.tolist())):
        members = np.flatnonzero(groups == g)
        cols.append(members[rng.integers(0, len(members), (n_boot, len(members)))])
    return np.concatenate(cols, axis=1) if cols else np.zeros((n_boot, 0), dtype=np.int64)


def interval(replicates: np.ndarray, level: float = LEVEL) -> list[float | None]:
    """Percentile interval of bootstrap replicates (undefined replicates left out)."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if not len(r):
        return [None, None]
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    return [rounded(lo), rounded(hi)]


def pooled_r2(sse: np.ndarray, sums: np.ndarray, sumsqs: np.ndarray, n: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """R^2 pooled over the pixels of the images in each row of idx: 1 - SSE / SST, SST about the pooled
    mean of each channel. sse, n: (images,); sums, sumsqs: (images, channels) of the truth."""
    n_tot = n[idx].sum(1)
    s, q = sums[idx].sum(1), sumsqs[idx].sum(1)  # (rows, channels)
    sst = (q - s ** 2 / n_tot[:, None]).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sst > 1e-12, 1 - sse[idx].sum(1) / sst, np.nan)


def moment_sums(x: np.ndarray, y: np.ndarray, image: np.ndarray, n_images: int) -> np.ndarray:
    """(n_images, 6) per-image sums n, x, y, xx, yy, xy: a pooled Pearson r of any set of images from them."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    return np.stack([np.bincount(image, weights=w, minlength=n_images)
                     for w in (np.ones_like(x), x, y, x * x, y * y, x * y)], 1)


def pooled_pearson(sums: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Pearson r of the pixels of the images in each row of idx, from moment_sums."""
    n, sx, sy, sxx, syy, sxy = np.moveaxis(sums[idx].sum(1), -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vx, vy = sxx - sx * sx / n, syy - sy * sy / n
        r = (sxy - sx * sy / n) / np.sqrt(vx * vy)
    return np.where((vx > 1e-12) & (vy > 1e-12), r, np.nan)
