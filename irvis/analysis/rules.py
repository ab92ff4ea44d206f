"""Rules fitted on train pixels and scored on test pixels, and the structure (edges) the two modalities share."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from irvis.analysis.features import Pixels
from irvis.analysis.stats import (N_BOOT, rounded, association, interval, moment_sums, pooled_pearson, pooled_r2,
                                  r2, r2_within_images, resample_indices)

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


RGB = ("red", "green", "blue")


def _stack(px: Pixels, names: Sequence[str]) -> np.ndarray:
    return np.stack([px[n] for n in names], 1).astype(np.float64)


def vis2ir_rules(train: Pixels, test: Pixels, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, dict]:
    """Infrared from visible: predictions on the test pixels of each rule fitted on train. r2_ci: the 95%
    bootstrap interval over test images (resampled within sets; the rules as fitted)."""
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
    return _score(rules, test["infrared"], test, n_boot, seed)


def ir2vis_rules(train: Pixels, test: Pixels, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, dict]:
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
    return _score(rules, _stack(test, RGB), test, n_boot, seed)


def _score(rules: dict, truth: np.ndarray, test: Pixels, n_boot: int, seed: int) -> dict[str, dict]:
    image, n_images = test.image, len(test.images)
    idx = resample_indices([s for s, _ in test.images], n_boot, seed)
    y = truth.astype(np.float64).reshape(len(truth), -1)
    n = np.bincount(image, minlength=n_images).astype(np.float64)
    sums = np.stack([np.bincount(image, weights=y[:, k], minlength=n_images) for k in range(y.shape[1])], 1)
    sumsqs = np.stack([np.bincount(image, weights=y[:, k] ** 2, minlength=n_images) for k in range(y.shape[1])], 1)
    out = {}
    for name, (pred, note) in rules.items():
        err = ((y - pred.astype(np.float64).reshape(len(y), -1)) ** 2).sum(1)
        sse = np.bincount(image, weights=err, minlength=n_images)
        out[name] = {"r2": rounded(r2(truth, pred)), "r2_ci": interval(pooled_r2(sse, sums, sumsqs, n, idx)),
                     "r2_within_images_median": rounded(r2_within_images(truth, pred, image)), "rule": note}
    return out


# ---------------------------------------------------------------------------------------------------
# Structure: edges are shared even when intensities are not


def structure(px: Pixels, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Gradient association and edge agreement; *_ci: 95% bootstrap intervals over images (within sets)."""
    n_images = len(px.images)
    idx = resample_indices([s for s, _ in px.images], n_boot, seed)

    def agreement(edge: np.ndarray, other_near: np.ndarray) -> dict:
        hit, chance = float(other_near[edge].mean()) if edge.any() else None, float(other_near.mean())
        counts = [np.bincount(px.image, weights=w.astype(np.float64), minlength=n_images)[idx].sum(1)
                  for w in (edge & other_near, edge, other_near, np.ones(len(edge)))]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = counts[0] / counts[1]
            lift = rate / (counts[2] / counts[3])
        return {"rate": rounded(hit), "rate_ci": interval(rate), "chance": rounded(chance),
                "lift": rounded(hit / chance) if hit is not None and chance > 0 else None, "lift_ci": interval(lift)}

    gradient = association(px["gradient"], px["ir_gradient"])
    gradient["pearson_ci"] = interval(pooled_pearson(moment_sums(px["gradient"], px["ir_gradient"], px.image, n_images), idx))
    return {
        "gradient": gradient,
        "visible_edges_near_infrared_edges": agreement(px["vis_edge"], px["ir_edge_near"]),
        "infrared_edges_near_visible_edges": agreement(px["ir_edge"], px["vis_edge_near"]),
    }
