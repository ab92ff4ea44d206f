"""Image-quality metrics with stated conventions, and the baselines every score is compared with.

Conventions (also written into every evaluation JSON as its protocol):
- Images are float in [0, 1] (data range 1.0), compared at the resolution given, no border cropped.
- Infrared is compared in one channel (LLVIP's 3-channel gray infrared is folded to luma first);
  visible is compared in RGB, PSNR over all three channels' pixels, SSIM averaged over channels.
- SSIM: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03 (Wang et al. 2004), torchmetrics' formulation.
- Structure (PSNR and SSIM reward a blur that hedges between possible answers; these do not), on the
  luma of both images: Sobel gradient magnitude (3x3 kernels, replicated border)
  - sharpness: mean gradient magnitude of the prediction / of the truth (1 is right, a blur is near 0,
    noise far above 1; a flat truth gives NaN and is left out of means);
  - gradient_correlation: Pearson correlation of the two gradient-magnitude maps (0 where either map
    is constant: a flat image shares no structure);
  - VIF: pixel-domain visual information fidelity (Sheikh & Bovik 2006), torchmetrics' formulation, on luma
    scaled to [0, 255] (its noise variance 2 assumes that scale); needs 41 pixels a side.
SSIM and VIF are computed here by separable filtering, with the truth's side once per truth (Truth): the
same numbers as torchmetrics (irvis.reference_metrics, tests/test_metrics.py) at a fraction of the time.

REGISTRY declares each metric once (function, label, rounding, which way is better, what it compares); every
list of metrics elsewhere (reports, the app's table, the CLI, the model card, training's validation) is derived
from it, so a metric is added by one entry.

Why one file: a metric's function, the truth-side statistics it shares with the others (Truth) and its registry
entry sit together, so adding or checking a metric is one edit in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio

from irvis.directions import get_direction
from irvis.images import luminance

# How every score is compared (evaluation JSON's protocol, before each metric's own line: protocol())
CONVENTIONS = {
    "data_range": 1.0,
    "infrared": "1 channel (ITU-R 601 luma of the stored image)",
    "visible": "RGB",
}
# The protocol's shorter side: each pair resized so its shorter side is this many pixels before it is scored
# (irvis.evaluate's and the CLI's default, the app's when a generator has no evaluation.json, the gallery's)
SCORING_SHORT_SIDE = 256


def _batched(x: torch.Tensor) -> torch.Tensor:
    return x[None] if x.dim() == 3 else x


# ---------------------------------------------------------------------------------------------------
# Gaussian filtering, separably: a 2-D Gaussian window is the outer product of two 1-D ones, so filtering
# the rows and then the columns is the same filter at 2k instead of k^2 multiplications a pixel. Shifted
# slices summed in place, because PyTorch's CPU convolutions are slow on one-channel maps (6x here); a
# megapixel map alone, because it stays in cache through all its passes (several at once do not: 5x slower
# on the 2-core machine of docs/performance.md), small maps together (fewer operations).


MAP_BLOCK = 1 << 20  # pixels filtered in one pass


def gaussian_window(size: int, sigma: float) -> list[float]:
    """The 1-D Gaussian of `size` taps, normalised to sum 1 (in float64)."""
    g = [math.exp(-((i - (size - 1) / 2) ** 2) / (2 * sigma**2)) for i in range(size)]
    total = sum(g)
    return [v / total for v in g]


def _filter_map(x: torch.Tensor, window: Sequence[float], stride: int, out: torch.Tensor) -> None:
    n = len(window)
    for dim in (-1, -2):
        span = (x.shape[dim] - n) // stride * stride + 1
        taps = [x.narrow(dim, i, span) for i in range(n)]
        if stride > 1:
            taps = [t[..., ::stride] if dim == -1 else t[..., ::stride, :] for t in taps]
        acc = torch.mul(taps[0], window[0], out=out if dim == -2 else None)
        for t, w in zip(taps[1:], window[1:]):
            acc.add_(t, alpha=w)
        x = acc


def maps_at_once(size: Sequence[int]) -> int:
    """How many maps of (H, W) are filtered together: small ones in one pass (fewer, larger operations),
    a megapixel one alone."""
    return max(1, MAP_BLOCK // (size[-2] * size[-1]))


def gaussian_filter(x: torch.Tensor, window: Sequence[float], stride: int = 1) -> torch.Tensor:
    """'Valid' correlation of x's last two dimensions with outer(window, window), keeping every
    stride-th output row and column."""
    (h, w), n, k = x.shape[-2:], len(window), maps_at_once(x.shape)
    out = x.new_empty(*x.shape[:-2], (h - n) // stride + 1, (w - n) // stride + 1)
    for m, o in zip(x.reshape(-1, h, w).split(k), out.view(-1, *out.shape[-2:]).split(k)):
        _filter_map(m, window, stride, o)
    return out


# ---------------------------------------------------------------------------------------------------
# The truth's side of every metric, computed once per truth

SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (K1 * data range)^2, (K2 * data range)^2
VIF_MIN_SIDE = 41
VIF_WINDOWS = (17, 9, 5, 3)  # one per scale, sigma a fifth of the window (Sheikh & Bovik's vifp_mscale)
VIF_SIGMA_N_SQ, VIF_EPS = 2.0, 1e-10


def _ssim_window(shape: Sequence[int]) -> list[float]:
    """11 taps, sigma 1.5; images under 11 pixels a side get the largest odd window that fits, sigma scaled."""
    h, w = shape[-2:]
    side = min(h, w)
    kernel = min(11, side if side % 2 else side - 1)
    if kernel < 3:
        raise ValueError(f"SSIM needs images at least 3 pixels on a side, got {w}x{h} (width x height)")
    return gaussian_window(kernel, 1.5 * kernel / 11)


def _luma(x: torch.Tensor) -> torch.Tensor:
    x = _batched(x).float()
    return x if x.shape[-3] == 1 else luminance(x)


class Truth:
    """A ground truth, (N, C, H, W) or (C, H, W) in [0, 1], with what each metric needs of it alone (local
    means and variances, VIF's pyramid and denominator, gradients), computed on first use and kept: every
    prediction scored against it reuses them. A page scores five methods against one truth."""

    def __init__(self, target: torch.Tensor):
        self.image = _batched(target).float().contiguous()  # decoded images are channels-last

    @property
    def shape(self) -> torch.Size:
        return self.image.shape

    @cached_property
    def ssim(self) -> tuple:
        """(window, the truth reflect-padded by half the window, its local mean, mean^2 + C1, variance)."""
        window = _ssim_window(self.shape)
        padded = F.pad(self.image, (len(window) // 2,) * 4, mode="reflect")
        mu, sq = gaussian_filter(padded, window), gaussian_filter(padded * padded, window)
        mu_sq = mu * mu
        return window, padded, mu, mu_sq + SSIM_C1, sq.sub_(mu_sq).clamp_(min=0)

    @cached_property
    def gradient(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean Sobel gradient magnitude (N,), the magnitude map less its mean (N, HW), that map's norm (N,))."""
        g = gradient_magnitude(self.image)
        return (g.mean(dim=(1, 2, 3)), *centred_gradients(g))

    @cached_property
    def vif(self) -> tuple[list[tuple], torch.Tensor]:
        """([(window, luma at this scale, its local mean, variance, 1 / variance (0 where flat)) per scale],
        the denominator (N,), float64): VIF's whole truth side. Luma on [0, 255]."""
        t, scales, den = _luma(self.image) * 255, [], 0
        for n in VIF_WINDOWS:
            window = gaussian_window(n, n / 5)
            if scales:  # the next scale: filtered with this scale's window, every second pixel
                t = gaussian_filter(t, window, stride=2)
            mu, sq = gaussian_filter(t, window), gaussian_filter(t * t, window)
            var = sq.sub_(mu * mu).clamp_(min=0)
            flat = var < VIF_EPS
            var.masked_fill_(flat, 0)
            den = den + torch.log10(var / VIF_SIGMA_N_SQ + 1).sum(dim=(1, 2, 3), dtype=torch.float64)
            scales.append((window, t, mu, var, (var + VIF_EPS).reciprocal_().masked_fill_(flat, 0)))
        return scales, den


def _pair(pred: torch.Tensor, target: torch.Tensor | Truth, luma: bool = False) -> tuple[torch.Tensor, Truth]:
    """pred batched, float and contiguous, and target as a Truth; luma: the metric compares lumas, so the
    channels may differ (a visible frame against an infrared truth)."""
    truth = target if isinstance(target, Truth) else Truth(target)
    pred = _batched(pred).float().contiguous()
    if (pred.shape[:1] + pred.shape[2:] != truth.shape[:1] + truth.shape[2:]) if luma else pred.shape != truth.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and truth {tuple(truth.shape)} differ in shape")
    return pred, truth


# ---------------------------------------------------------------------------------------------------
# Metrics: each takes the truth as a tensor or a Truth (whose statistics it then reuses)


def psnr(pred: torch.Tensor, target: torch.Tensor | Truth) -> torch.Tensor:
    """Per-image PSNR in dB of (N, C, H, W) or (C, H, W) tensors in [0, 1]; identical images give inf."""
    pred, truth = _pair(pred, target)
    return peak_signal_noise_ratio(pred, truth.image, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(pred: torch.Tensor, target: torch.Tensor | Truth) -> torch.Tensor:
    """Per-image SSIM, reflect-padded so the map covers every pixel (torchmetrics' convention); images
    smaller than the 11-pixel window use the largest odd window that fits."""
    pred, truth = _pair(pred, target)
    window, *truth_maps = truth.ssim
    (n, c, h, w), pad = pred.shape, (len(window) // 2,) * 4
    sums = torch.empty(n * c, dtype=torch.float64, device=pred.device)
    # one megapixel channel at a time, so its maps stay in cache between the passes (small ones together)
    p_all = F.pad(pred, pad, mode="reflect")
    k = maps_at_once(p_all.shape)
    maps = (x.reshape(n * c, *x.shape[-2:]).split(k) for x in (p_all, *truth_maps))
    last, i = None, 0
    for p, t, mu_t, mu_t_sq_c1, var_t in zip(*maps):
        if last is None or last[0].shape != p.shape or not torch.equal(p, last[0]):  # a gray prediction's
            flat = bool(p.amin() == p.amax())  # channels: filtered once; a constant one: its mean is itself, var 0
            if flat:
                mu_p, var_p = torch.full_like(mu_t, float(p.flatten()[0])), torch.zeros_like(var_t)
            else:
                mu_p = gaussian_filter(p, window)
                var_p = gaussian_filter(p * p, window).sub_(mu_p * mu_p).clamp_(min=0)
            last = (p, flat, mu_p, mu_p * mu_p, var_p.add_(SSIM_C2))
        _, flat, mu_p, mu_p_sq, var_p_c2 = last
        mu_pt = mu_p * mu_t
        cov = torch.zeros_like(mu_pt) if flat else gaussian_filter(p * t, window).sub_(mu_pt)
        contrast = cov.mul_(2).add_(SSIM_C2).div_(var_t + var_p_c2)
        luminance_term = mu_pt.mul_(2).add_(SSIM_C1).div_(mu_p_sq + mu_t_sq_c1)
        sums[i:i + len(p)] = contrast.mul_(luminance_term).sum(dim=(-2, -1), dtype=torch.float64)
        i += len(p)
    return (sums.view(n, c).sum(dim=1) / (c * h * w)).float()


def gradient_magnitude(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Sobel gradient magnitude of the luma, (N, 1, H, W), border replicated. eps > 0 keeps the square root
    differentiable where the image is flat (for use in a loss). Sobel's kernels are separable (a difference
    across, a [1, 2, 1] smoothing along), so it runs as shifted slices, like gaussian_filter."""
    y = F.pad(_luma(x), (1, 1, 1, 1), mode="replicate")

    def smooth(v, dim):
        return v.narrow(dim, 0, v.shape[dim] - 2) + 2 * v.narrow(dim, 1, v.shape[dim] - 2) + v.narrow(dim, 2, v.shape[dim] - 2)

    def diff(v, dim):
        return v.narrow(dim, 2, v.shape[dim] - 2) - v.narrow(dim, 0, v.shape[dim] - 2)

    gx, gy = smooth(diff(y, -1), -2), smooth(diff(y, -2), -1)
    return (gx.square() + gy.square() + eps).sqrt()


def _sharpness(gp: torch.Tensor, truth: Truth) -> torch.Tensor:
    gp, gt = gp.mean(dim=(1, 2, 3)), truth.gradient[0]
    return torch.where(gt > 1e-8, gp / gt.clamp_min(1e-8), torch.full_like(gt, float("nan")))


def centred_gradients(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A gradient-magnitude map (N, 1, H, W) flattened less its per-image mean (N, HW), and its norm (N,): each
    side of the gradient correlation (the metric here, train.losses' loss)."""
    centred = g.flatten(1) - g.flatten(1).mean(dim=1, keepdim=True)
    return centred, centred.norm(dim=1)


def _gradient_correlation(gp: torch.Tensor, truth: Truth) -> torch.Tensor:
    _, gt, gt_norm = truth.gradient
    gp, gp_norm = centred_gradients(gp)
    denom = gp_norm * gt_norm
    return torch.where(denom > 1e-12, (gp * gt).sum(dim=1) / denom.clamp_min(1e-12), torch.zeros_like(denom))


def sharpness(pred: torch.Tensor, target: torch.Tensor | Truth) -> torch.Tensor:
    """Per-image mean gradient magnitude of pred / of target; NaN where the target is flat."""
    pred, truth = _pair(pred, target, luma=True)
    return _sharpness(gradient_magnitude(pred), truth)


def gradient_correlation(pred: torch.Tensor, target: torch.Tensor | Truth) -> torch.Tensor:
    """Per-image Pearson correlation of the gradient-magnitude maps; 0 where either is constant."""
    pred, truth = _pair(pred, target, luma=True)
    return _gradient_correlation(gradient_magnitude(pred), truth)


def vif(pred: torch.Tensor, target: torch.Tensor | Truth) -> torch.Tensor:
    """Per-image pixel-domain VIF of the lumas on a [0, 255] scale (torchmetrics' formulation, masks in its
    order); NaN for images under 41 pixels a side."""
    pred, truth = _pair(pred, target, luma=True)
    p = _luma(pred) * 255
    if min(p.shape[-2:]) < VIF_MIN_SIDE:
        return torch.full((p.shape[0],), float("nan"), device=p.device)
    scales, den = truth.vif
    if bool((p.flatten(1).amin(dim=1) == p.flatten(1).amax(dim=1)).all()):  # flat: no gain at any scale, VIF 0
        return (torch.zeros_like(den) / den).float()
    num = 0
    for i, (window, t, mu_t, var_t, inv_var_t) in enumerate(scales):
        if i:
            p = gaussian_filter(p, window, stride=2)
        if maps_at_once(p.shape) >= 3:  # small: the three maps in one pass
            mu_p, pp, pt = gaussian_filter(torch.stack([p, p * p, p * t]), window)
        else:
            mu_p, pp, pt = (gaussian_filter(x, window) for x in (p, p * p, p * t))
        var_p = pp.sub_(mu_p * mu_p).clamp_(min=0)
        cov = pt.sub_(mu_p.mul_(mu_t))
        gain = cov * inv_var_t  # a flat truth: no gain, all of the prediction is noise
        noise = var_p - gain * cov
        flat_p = var_p < VIF_EPS  # a flat prediction: no gain, no noise
        gain.masked_fill_(flat_p, 0)
        noise.masked_fill_(flat_p, 0)
        noise = torch.where(gain < 0, var_p, noise).clamp_(min=VIF_EPS)  # a negative gain carries nothing
        gain.clamp_(min=0)
        ratio = gain.square_().mul_(var_t).div_(noise.add_(VIF_SIGMA_N_SQ))
        num = num + torch.log10(ratio.add_(1)).sum(dim=(1, 2, 3), dtype=torch.float64)
    return (num / den).float()


# Identical images have infinite PSNR; reports cap it so that means stay numbers.
PSNR_CAP_DB = 100.0


# ---------------------------------------------------------------------------------------------------
# The metric registry: the one place a metric is declared. Every list of metrics is derived from it: what
# score() computes, the evaluation JSON's protocol, the tables' columns, labels and rounding (irvis.tables),
# the app's table, the CLI's printed line, the model card's metrics and model-index, training's validation.


@dataclass(frozen=True)
class Metric:
    name: str  # the key in every metrics dict and evaluation JSON
    label: str  # column header of reports, cards and the app
    digits: int = 3  # decimals a table shows
    higher_is_better: bool | None = True  # None: a target value is right (sharpness: 1)
    on: str = "pixels"  # what it compares: "pixels" (every channel), "luma", "gradients" (Sobel magnitude of the
    #                     luma, computed once for every such metric), "features" (a network's), "set" (one per method)
    fn: Callable | None = None  # (pred (N, C, H, W), Truth) -> (N,); on "gradients": (pred's gradient_magnitude,
    #                             Truth); None: computed elsewhere (irvis.perceptual), not by score()
    protocol: str | None = None  # how it is computed, in words (evaluation JSON); None: its module's PROTOCOL
    short_label: str | None = None  # narrow tables with many columns (default: label)
    cli_label: str | None = None  # `irvis evaluate`'s printed line (default: label)
    cli_format: str = ".4f"
    hub_label: str | None = None  # the model card's model-index metric name; None: not in the model-index
    in_training: bool = True  # scored by training's validation (set False where it costs too much)
    headline: bool = False  # in every table and margin sentence, even where a method lacks it
    unit: str = ""  # said before the label in sentences ("+1.20 dB PSNR")

    def better(self, a: float, b: float) -> bool:
        """Whether score a is strictly better than score b (a target-valued metric: nearer its target, 1)."""
        if self.higher_is_better is None:
            return abs(a - 1) < abs(b - 1)
        return a > b if self.higher_is_better else a < b

    def best(self, scores: dict[str, float]) -> str:
        """The key of the best of these scores (the first of equals)."""
        names = iter(scores)
        best = next(names)
        for name in names:
            if self.better(scores[name], scores[best]):
                best = name
        return best

    def lead(self, a: float, b: float) -> float:
        """How far a is ahead of b, positive when a is better (a - b for higher-is-better)."""
        if self.higher_is_better is None:
            return abs(b - 1) - abs(a - 1)
        return a - b if self.higher_is_better else b - a

    def said(self, value: float, sign: bool = False) -> str:
        """The figure in a sentence: "+1.20 dB PSNR", "0.3900 SSIM"."""
        return f"{value:{'+' if sign else ''}.{self.digits}f} {self.unit + ' ' if self.unit else ''}{self.short_label or self.label}"


REGISTRY: dict[str, Metric] = {m.name: m for m in (
    Metric("psnr", "PSNR (dB)", digits=2, fn=psnr, short_label="PSNR", cli_label="PSNR", cli_format="7.3f",
           hub_label="PSNR (dB)", headline=True, unit="dB",
           protocol="10*log10(1/MSE) over all pixels and channels, per image, then the mean over images"),
    Metric("ssim", "SSIM", digits=4, fn=ssim, hub_label="SSIM", headline=True,
           protocol="Gaussian window 11, sigma 1.5, K1=0.01, K2=0.03, mean over channels and pixels, per image"),
    Metric("sharpness", "sharpness (1 = truth's)", higher_is_better=None, on="gradients", fn=_sharpness,
           short_label="sharpness", cli_label="sharpness", hub_label="sharpness (1 = truth's)",
           protocol="mean Sobel gradient magnitude of the prediction's luma / the truth's, per image (1 is right)"),
    Metric("gradient_correlation", "gradient corr.", on="gradients", fn=_gradient_correlation, cli_label="grad-corr",
           hub_label="gradient correlation",
           protocol="Pearson correlation of the Sobel gradient-magnitude maps of the two lumas, per image"),
    Metric("vif", "VIF", on="luma", fn=vif, in_training=False,  # left to the exported report: it costs
           protocol="pixel-domain VIF (torchmetrics, sigma_n^2 = 2) on luma in [0, 255], per image; images >= 41 px a side"),
    Metric("lpips", "LPIPS", higher_is_better=False, on="features", in_training=False),
    Metric("fid", "FID (set)", higher_is_better=False, on="set", cli_label="FID", in_training=False),
)}


def registered(scored: bool = False, training: bool = False) -> list[Metric]:
    """The registry's metrics in its order; scored: only those score() computes; training: only those training's
    validation scores."""
    return [m for m in REGISTRY.values() if (m.fn is not None or not scored) and (m.in_training or not training)]


def metric_names(scored: bool = True, training: bool = False) -> tuple[str, ...]:
    return tuple(m.name for m in registered(scored, training))


def in_words(scores: dict, metrics: Sequence[Metric] | None = None) -> str:
    """"15.23 dB PSNR, 0.5120 SSIM, ...": each of these metrics (default: the scored ones) the scores hold."""
    chosen = registered(scored=True) if metrics is None else metrics
    return ", ".join(m.said(scores[m.name]) for m in chosen if scores.get(m.name) is not None)


def headline() -> list[Metric]:
    """The metrics every table and margin sentence leads with (PSNR and SSIM)."""
    return [m for m in REGISTRY.values() if m.headline]


def protocol() -> dict:
    """The conventions, then each scored metric's line: the evaluation JSON's protocol."""
    return {**CONVENTIONS, **{m.name: m.protocol for m in registered(scored=True) if m.protocol}}


def __getattr__(name: str):  # derived from the registry when read, so they follow it
    if name == "METRICS":
        return metric_names()
    if name == "PROTOCOL":
        return protocol()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def score(pred: torch.Tensor, target: torch.Tensor | Truth, structure: bool = True,
          metrics: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """{"psnr": (N,), "ssim": (N,), and with structure "sharpness", "gradient_correlation", "vif"}
    for a batch; the unit every report is built from. NaN marks a metric undefined for that image.
    metrics: just these (of METRICS: the registry's scored metrics), in this order, e.g. without VIF where it costs too much.
    target: a Truth to score several predictions against one truth (its statistics are computed once)."""
    pred, target = _pair(pred, target)
    names = metric_names()
    if metrics is None:
        metrics = names if structure else tuple(m.name for m in headline())
    unknown = set(metrics) - set(names)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}: use {', '.join(names)}")
    chosen = [REGISTRY[name] for name in metrics]
    gp = gradient_magnitude(pred) if any(m.on == "gradients" for m in chosen) else None  # once for them all
    return {m.name: m.fn(gp if m.on == "gradients" else pred, target) for m in chosen}


# ---------------------------------------------------------------------------------------------------
# Baselines: what a trivial rule scores, so no model number stands alone. Each maps the source image
# (batch, [0, 1]) to a prediction of the target modality, with no access to the truth.

def as_gray(source: torch.Tensor) -> torch.Tensor:
    """(..., 1, H, W): a gray image as it is, an RGB one's luma."""
    return source if source.shape[-3] == 1 else luminance(source)


def as_rgb(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W): a gray image repeated in three channels (an RGB one as it is)."""
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:])


BASELINES: dict[str, dict[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "vis2ir": {
        # "bright in visible is hot": the rule the original experiment tested
        "luminance": lambda v: luminance(v),
        # "dark is hot": people and engines at night are dark in visible, bright in thermal
        "inverted_luminance": lambda v: 1 - luminance(v),
        "mid_gray": lambda v: torch.full_like(v[..., :1, :, :], 0.5),
    },
    "ir2vis": {
        "infrared_as_rgb": lambda ir: as_rgb(as_gray(ir)),
        "inverted_infrared_as_rgb": lambda ir: as_rgb(1 - as_gray(ir)),
        "mid_gray": lambda ir: torch.full((*ir.shape[:-3], 3, *ir.shape[-2:]), 0.5, dtype=ir.dtype, device=ir.device),
    },
}


def baseline_predictions(direction: str, source: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: fn(source) for name, fn in BASELINES[get_direction(direction).name].items()}


def oracle_affine(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The best per-image affine map from the source's channels to each target channel (least squares
    on the image itself). It sees the truth, so it is an oracle, not a baseline: an upper bound for
    any global 'brightness/colour predicts temperature' rule. A model beating it has learned more
    than a global intensity rule."""
    x, y = _batched(source).float(), _batched(target).float()
    n, c_in, h, w = x.shape
    design = torch.cat([x.flatten(2), torch.ones(n, 1, h * w, device=x.device)], dim=1).transpose(1, 2)  # (N, HW, C_in+1)
    coef = torch.linalg.lstsq(design, y.flatten(2).transpose(1, 2)).solution  # (N, C_in+1, C_out)
    pred = (design @ coef).transpose(1, 2).reshape(n, -1, h, w)
    return pred.clamp(0, 1)


def score_image(pred: torch.Tensor, target: torch.Tensor | Truth) -> dict[str, float]:
    """score() of one (C, H, W) image as plain numbers, PSNR capped at PSNR_CAP_DB; a metric that is
    undefined for this image (NaN) is left out."""
    m = {k: float(v[0]) for k, v in score(pred, target).items()}
    m["psnr"] = min(m["psnr"], PSNR_CAP_DB)
    return {k: v for k, v in m.items() if v == v}


def margin_line(model: dict, baselines: dict) -> str:
    """The model against the best baseline of each headline metric, in one sentence (often different rules: a
    constant mid-gray image wins SSIM on flat thermal frames while an intensity rule wins PSNR)."""
    parts, behind = [], []
    for m in headline():
        name = m.best({k: b[m.name] for k, b in baselines.items()})
        best = baselines[name][m.name]
        parts.append(f"{m.said(m.lead(model[m.name], best), sign=True)} ({name}, {best:.{m.digits}f})")
        if not m.better(model[m.name], best):
            behind.append(m.short_label or m.label)
    verdict = "ahead of every baseline" if not behind else f"behind a baseline on {' and '.join(behind)}"
    return f"Margin against the best baseline: {'; '.join(parts)}: {verdict}."


def method_predictions(direction: str, source: torch.Tensor, truth: torch.Tensor,
                       prediction: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Everything a report scores for one (C, H, W) image, by name: "model" (when given), then
    "baseline:NAME" for each baseline of the direction, then "oracle:affine"."""
    methods = {"model": prediction} if prediction is not None else {}
    methods.update({f"baseline:{k}": v[0] for k, v in baseline_predictions(direction, source[None]).items()})
    methods["oracle:affine"] = oracle_affine(source, truth)[0]
    return methods


def method_label(method: str, model: str = "model") -> str:
    """How a table shows a method of method_predictions: `model` for "model", "baseline: NAME", and
    "oracle: NAME (sees the truth)"."""
    kind, _, name = method.partition(":")
    if not name:
        return model if method == "model" else method
    return f"{kind}: {name}" + (" (sees the truth)" if kind == "oracle" else "")
