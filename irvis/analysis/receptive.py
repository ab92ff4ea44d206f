"""The receptive-field ablation: how well can a predictor recover one modality from the other when it
sees a fixed neighbourhood of each pixel, from the pixel alone to the whole frame? Both directions.

Predictors, one family so that only the context differs:
- `rf1`, `rf5`, `rf17`, `rf65`: fully convolutional, no normalisation (GroupNorm's per-image statistics
  would let every pixel see the whole frame), the same depth (6 convolutions of `width` channels with
  LeakyReLU, then a 1x1 head) and width. The first k convolutions are 3x3 with dilations 1, 1, 2, 4, 8,
  16, the rest 1x1, so the receptive field is 1 + 2 * (sum of the k dilations): 1, 5, 17, 65 pixels
  (k = 0, 2, 4, 6), every pixel of that square counting (tests check it by the gradient). Borders are
  replicated.
- `full`: irvis's default generator (irvis-unet, GroupNorm, a 1/32 bottleneck): the whole frame.

Protocol (stored in ablation.json): frames resized so their shorter side is `short_side`; every predictor
of a direction is trained from the same seed on the same sequence of random crops (`steps` batches of
`batch` crops of `crop` pixels, random horizontal flips) with the same loss (L1) and optimiser (Adam,
cosine decay), on the train split of every set. The checkpoint is chosen among `evaluations` evenly
spaced steps by the mean L1 on the val split (the sets that have one; the last step where none does),
then scored once on whole test frames: PSNR, SSIM, the structure metrics of irvis.metrics.score, and
R^2 of the target (1 - SSE/SST pooled over test pixels and channels, as the rules of the study).
Intervals: bootstrap over test images resampled within sets, paired across predictors.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from irvis.analysis.stats import interval, pooled_r2, resample_indices
from irvis.data import Pair, load_pair, load_pairs
from irvis.directions import get_direction
from irvis.metrics import score
from irvis.nets import build_generator, count_parameters

ABLATION_VERSION = 1
DILATIONS = (1, 1, 2, 4, 8, 16)
RECEPTIVE_FIELDS = (1, 5, 17, 65)
METRICS = ("r2", "psnr", "ssim", "sharpness", "gradient_correlation", "vif")
DEFAULTS = {"short_side": 96, "crop": 64, "steps": 300, "batch": 8, "width": 16, "lr": 1e-3, "evaluations": 4,
            "seed": 0}


def dilations_for(receptive_field: int) -> tuple[int, ...]:
    """The leading dilations whose 3x3 stack has this receptive field (1 + 2 * their sum)."""
    for k in range(len(DILATIONS) + 1):
        if 1 + 2 * sum(DILATIONS[:k]) == receptive_field:
            return DILATIONS[:k]
    valid = [1 + 2 * sum(DILATIONS[:k]) for k in range(len(DILATIONS) + 1)]
    raise ValueError(f"receptive field {receptive_field} is not one of {valid}")


class FixedField(nn.Module):
    """A fully convolutional predictor whose output pixel depends on exactly the receptive_field x
    receptive_field square of input pixels around it. Images in [0, 1] in and out, any size."""

    size_multiple = 1

    def __init__(self, in_channels: int, out_channels: int, receptive_field: int, width: int = 16,
                 depth: int = len(DILATIONS)):
        super().__init__()
        dilations = dilations_for(receptive_field)
        layers, c = [], in_channels
        for i in range(depth):
            d = dilations[i] if i < len(dilations) else 0
            layers += [nn.Conv2d(c, width, 3, padding=d, dilation=d, padding_mode="replicate") if d else
                       nn.Conv2d(c, width, 1), nn.LeakyReLU(0.2)]
            c = width
        layers.append(nn.Conv2d(width, out_channels, 1))
        self.body = nn.Sequential(*layers)
        self.receptive_field = receptive_field

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(self.body(x * 2 - 1)) + 1) / 2


def build_predictors(direction: str, receptive_fields: Sequence[int] = RECEPTIVE_FIELDS, width: int = 16,
                     full: bool = True) -> dict[str, nn.Module]:
    """name -> untrained predictor: rf1, rf5, ... then 'full' (irvis-unet). Seed torch before calling
    (each predictor is built by its own call in run_ablation, from the same seed)."""
    d = get_direction(direction)
    out: dict[str, nn.Module] = {f"rf{rf}": FixedField(d.in_channels, d.out_channels, rf, width)
                                 for rf in receptive_fields}
    if full:
        out["full"] = build_generator(d.name)
    return out


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a predictor on (N, C, H, W) of any size: padded (replicated) to its size multiple and cropped back."""
    m = getattr(model, "size_multiple", 1)
    h, w = x.shape[-2:]
    ph, pw = -h % m, -w % m
    y = model(F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x)
    return y[..., :h, :w]


# ---------------------------------------------------------------------------------------------------
# Frames in memory, and the crops every predictor is trained on


@dataclass
class Frames:
    sets: list[str]
    names: list[str]
    infrared: list[torch.Tensor]
    visible: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.names)

    def source_target(self, direction: str, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ir, vis = self.infrared[i], self.visible[i]
        return (vis, ir) if get_direction(direction).name == "vis2ir" else (ir, vis)


def load_frames(pairs: Sequence[Pair], short_side: int) -> Frames:
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        loaded = list(pool.map(lambda p: load_pair(p, short_side=short_side), pairs))
    return Frames([p.set_name for p in pairs], [p.name for p in pairs], [ir for ir, _ in loaded],
                  [vis for _, vis in loaded])


def crop_plan(n_frames: int, steps: int, batch: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per step: frame indices, crop positions (fractions of the free range) and flips; one draw shared
    by every predictor, so each sees exactly the same pixels in the same order."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, n_frames, batch), rng.random((batch, 2)), rng.random(batch) < 0.5) for _ in range(steps)]


def make_batch(frames: Frames, direction: str, step_plan, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    sources, targets = [], []
    for i, (fy, fx), flip in zip(*step_plan):
        src, tgt = frames.source_target(direction, int(i))
        h, w = src.shape[-2:]
        if min(h, w) < crop:
            raise ValueError(f"{frames.sets[i]}/{frames.names[i]} is {w}x{h}, smaller than the {crop}-pixel crop")
        y, x = int(fy * (h - crop + 1)), int(fx * (w - crop + 1))
        s, t = src[:, y:y + crop, x:x + crop], tgt[:, y:y + crop, x:x + crop]
        if flip:
            s, t = s.flip(-1), t.flip(-1)
        sources.append(s)
        targets.append(t)
    return torch.stack(sources), torch.stack(targets)


@torch.no_grad()
def mean_l1(model: nn.Module, frames: Frames, direction: str) -> float:
    """Mean over frames of each whole frame's L1 error (every frame weighs the same)."""
    model.eval()
    losses = []
    for i in range(len(frames)):
        src, tgt = frames.source_target(direction, i)
        losses.append(float((predict(model, src[None])[0] - tgt).abs().mean()))
    model.train()
    return float(np.mean(losses))


def train_predictor(model: nn.Module, frames: Frames, val: Frames | None, direction: str, plan, crop: int,
                    lr: float, evaluations: int, progress: bool = True, desc: str = "") -> dict:
    """Train in place on the plan; leaves the model at the checkpoint with the lowest val L1 (the last
    one without val frames). Returns the history and the chosen step."""
    from tqdm.auto import tqdm

    steps = len(plan)
    eval_at = sorted({round(steps * (k + 1) / evaluations) for k in range(evaluations)})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    best, chosen, history = None, steps, {}
    model.train()
    for step, step_plan in enumerate(tqdm(plan, desc=desc, disable=not progress, leave=False), 1):
        source, target = make_batch(frames, direction, step_plan, crop)
        loss = F.l1_loss(predict(model, source), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if val is not None and len(val) and step in eval_at:
            history[step] = round(mean_l1(model, val, direction), 6)
            if best is None or history[step] < best[0]:
                best = (history[step], {k: v.detach().clone() for k, v in model.state_dict().items()})
                chosen = step
    if best is not None:
        model.load_state_dict(best[1])
    model.eval()
    return {"chosen_step": chosen, "val_l1": {str(k): v for k, v in history.items()}}


@torch.no_grad()
def score_frames(model: nn.Module, frames: Frames, direction: str) -> list[dict]:
    """Per test frame: the metrics of irvis.metrics.score and the sums R^2 is pooled from."""
    rows = []
    for i in range(len(frames)):
        src, tgt = frames.source_target(direction, i)
        pred = predict(model, src[None])[0].clamp(0, 1)
        m = {k: float(v[0]) for k, v in score(pred[None], tgt[None]).items()}
        y, err = tgt.double().flatten(1), (pred.double() - tgt.double()).flatten(1)
        rows.append({"set": frames.sets[i], "name": frames.names[i],
                     **{k: (round(v, 6) if np.isfinite(v) else None) for k, v in m.items()},
                     "sse": float((err ** 2).sum()), "n": int(y.shape[1]),
                     "sum": [float(s) for s in y.sum(1)], "sumsq": [float(s) for s in (y ** 2).sum(1)]})
    return rows


# ---------------------------------------------------------------------------------------------------
# The ablation: train, choose on val, score on test; then intervals from the per-image scores


def protocol(roots: Sequence[str | os.PathLike], **settings) -> dict:
    s = {**DEFAULTS, **settings}
    if s["crop"] > s["short_side"]:
        raise ValueError(f"the crop ({s['crop']}) must fit in frames of shorter side {s['short_side']}")
    return {"version": ABLATION_VERSION, "roots": [str(r) for r in roots], **s,
            "receptive_fields": list(RECEPTIVE_FIELDS), "full": "irvis-unet (default generator), whole frame",
            "loss": "L1", "optimizer": "Adam, cosine decay to 0", "train_split": "train", "choose_split": "val",
            "test_split": "test", "predictors": "see irvis/analysis/receptive.py"}


def run_ablation(roots: Sequence[str | os.PathLike], directions: Sequence[str] = ("vis2ir", "ir2vis"),
                 progress: bool = True, **settings) -> dict:
    """Train every predictor in both directions and score it; returns what ablation.json holds (per-image
    scores included, so intervals can be recomputed without training)."""
    p = protocol(roots, **settings)
    train_pairs = load_pairs(roots, "train")
    val_pairs = load_pairs(roots, "val", required=False)
    test_pairs = load_pairs(roots, "test", required=False)
    if not test_pairs:
        raise ValueError("the receptive-field ablation needs test pairs: none of the roots has a test split")
    train, val, test = (load_frames(x, p["short_side"]) for x in (train_pairs, val_pairs, test_pairs))
    plan = crop_plan(len(train), p["steps"], p["batch"], p["seed"])
    out = {"protocol": p, "n_train": len(train), "val_sets": sorted(set(val.sets)), "n_val": len(val),
           "n_test": len(test), "directions": {}}
    for direction in directions:
        torch.manual_seed(p["seed"])
        names = list(build_predictors(direction, width=p["width"]))
        results = {}
        for name in names:
            torch.manual_seed(p["seed"])
            model = build_predictors(direction, width=p["width"])[name]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            chosen = train_predictor(model, train, val if len(val) else None, direction, plan, p["crop"], p["lr"],
                                     p["evaluations"], progress, desc=f"{direction} {name}")
            results[name] = {"receptive_field": getattr(model, "receptive_field", None),
                             "parameters": count_parameters(model), **chosen,
                             "cpu_seconds": round(time.process_time() - cpu0, 1),
                             "wall_seconds": round(time.perf_counter() - wall0, 1),
                             "images": score_frames(model, test, direction)}
        out["directions"][direction] = results
    return out


def _table(images: list[dict]) -> dict[str, np.ndarray]:
    cols = {m: np.array([np.nan if im.get(m) is None else im[m] for im in images], float)
            for m in METRICS if m != "r2"}
    cols.update(sse=np.array([im["sse"] for im in images]), n=np.array([im["n"] for im in images], float),
                sum=np.array([im["sum"] for im in images]), sumsq=np.array([im["sumsq"] for im in images]))
    return cols


def _metric_values(t: dict, metric: str, idx: np.ndarray) -> np.ndarray:
    """(replicates,) of the statistic: the mean over images, or pooled R^2."""
    if metric == "r2":
        return pooled_r2(t["sse"], t["sum"], t["sumsq"], t["n"], idx)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(t[metric][idx], axis=1)


def summarize(ablation: dict, n_boot: int = 2000, seed: int = 0) -> dict:
    """Means with 95% bootstrap intervals per direction, predictor and metric (all test images and each
    set), and paired differences between consecutive predictors (and full - rf1)."""
    out = {"n_boot": n_boot, "level": 0.95, "protocol": ablation["protocol"], "directions": {},
           **{k: ablation.get(k) for k in ("n_train", "n_val", "val_sets", "n_test", "cpu_seconds")},
           "parameters": {d: {n: r["parameters"] for n, r in res.items()} for d, res in ablation["directions"].items()},
           "cpu_seconds_per_predictor": {d: {n: r["cpu_seconds"] for n, r in res.items()}
                                         for d, res in ablation["directions"].items()}}
    for direction, results in ablation["directions"].items():
        names = list(results)
        images = results[names[0]]["images"]
        sets = [im["set"] for im in images]
        groups = {"all": np.arange(len(images)), **{s: np.flatnonzero(np.array(sets) == s) for s in sorted(set(sets))}}
        tables = {n: _table(results[n]["images"]) for n in names}
        d = {"predictors": {}, "differences": []}
        for name in names:
            entry = {"receptive_field": results[name]["receptive_field"], "chosen_step": results[name]["chosen_step"]}
            for g, members in groups.items():
                idx = resample_indices([sets[i] for i in members], n_boot, seed)
                idx = members[idx]
                entry[g] = {m: _summary(tables[name], m, members, idx) for m in METRICS}
            d["predictors"][name] = entry
        idx = resample_indices(sets, n_boot, seed)
        everyone = np.arange(len(images))[None]
        pairs = list(zip(names[:-1], names[1:])) + ([(names[0], names[-1])] if len(names) > 2 else [])
        for a, b in pairs:
            diff = {"from": a, "to": b}
            for m in METRICS:
                point = _metric_values(tables[b], m, everyone)[0] - _metric_values(tables[a], m, everyone)[0]
                reps = _metric_values(tables[b], m, idx) - _metric_values(tables[a], m, idx)
                diff[m] = {"mean": _r(point), "ci": interval(reps)}
            d["differences"].append(diff)
        out["directions"][direction] = d
    return out


def _summary(table: dict, metric: str, members: np.ndarray, idx: np.ndarray) -> dict:
    point = _metric_values(table, metric, members[None])[0]
    return {"mean": _r(point), "ci": interval(_metric_values(table, metric, idx))}


def _r(v: float) -> float | None:
    return round(float(v), 4) if np.isfinite(v) else None
