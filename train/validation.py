"""What the trainer looks at while it runs: validation scores on whole frames (the library's metrics and
means, each process a share) and sample grids (the library's grid). The exported generator's full report
is irvis.evaluate's, run by train.export."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image

from irvis.data import Pair
from irvis.evaluate import Means, sample_grid
from irvis.metrics import BASELINES, PSNR_CAP_DB, baseline_predictions, in_words, metric_names, registered, score
from irvis.nets import Generator
from irvis.translate import pad_to_multiple
from train.data import ValFrames


def val_metrics() -> tuple[str, ...]:
    """What validation scores: the registry's metrics marked in_training (VIF is left to the exported report)."""
    return metric_names(training=True)


@torch.no_grad()
def predict(model: Generator, source: torch.Tensor) -> torch.Tensor:
    """A whole frame through the generator being trained: padded to its size multiple, cropped back, in [0, 1].
    Not irvis.Translator, which takes the module over (eval, channels-last, a reduced-precision copy): here it
    runs as trained, under the Accelerator's autocast."""
    padded, (h, w) = pad_to_multiple(source, model.size_multiple)
    return model(padded)[..., :h, :w].float().clamp(0, 1)


def metric_columns(pred: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
    """val_metrics() of a batch, one (N,) column each; PSNR capped as irvis.evaluate caps it."""
    names = val_metrics()
    m = score(pred.float(), target.float(), metrics=names)
    m["psnr"] = m["psnr"].clamp(max=PSNR_CAP_DB)
    return [m[k] for k in names]


def score_batches(model: Generator, batches, direction: str, autocast: Callable[[], AbstractContextManager],
                  gather: Callable[[torch.Tensor], torch.Tensor], with_baselines: bool) -> torch.Tensor:
    """Rows of (pair index, val_metrics() of the model, then of each baseline if asked), gathered over processes."""
    was_training = model.training
    model.eval()
    rows = []
    for batch in batches:
        source, target = batch["source"], batch["target"]
        with autocast():
            pred = predict(model, source)
        columns = [batch["index"].float(), *metric_columns(pred, target)]
        if with_baselines:
            for guess in baseline_predictions(direction, source).values():
                columns += metric_columns(guess.to(target.device), target)
        rows.append(gather(torch.stack(columns, dim=1)))
    model.train(was_training)
    return torch.cat(rows).cpu()


def summarise(table: torch.Tensor, pairs: Sequence[Pair], direction: str, step: int, with_baselines: bool) -> dict:
    """{"step", "n_images", "val/METRIC", "val/SET/METRIC" (with more than one set),
    "val_baseline/NAME/METRIC"}: means over the frames where a metric is defined (irvis.evaluate.Means)."""
    methods = ["model", *(BASELINES[direction] if with_baselines else ())]
    means, names = Means(), val_metrics()
    k = len(names)
    for row in table.tolist():
        set_name = pairs[int(row[0])].set_name
        for j, method in enumerate(methods):
            means.add(set_name, method, dict(zip(names, row[1 + k * j:1 + k * (j + 1)])))
        means.count(set_name)
    summary: dict = {"step": step, "n_images": len(table)}
    overall = means.means(digits=None)
    sets = sorted(s for s in means.counts if s != "__all__")
    for method in methods:
        prefix = "val" if method == "model" else f"val_baseline/{method}"
        summary.update({f"{prefix}/{name}": overall[method].get(name, float("nan")) for name in names})
    for s in sets if len(sets) > 1 else ():
        per_set = means.means(s, digits=None)["model"]
        summary.update({f"val/{s}/{name}": per_set.get(name, float("nan")) for name in names})
    return summary


def append_summary(path: Path, summary: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(summary) + "\n")


def summary_line(summary: dict) -> str:
    """"step 500: validation 15.23 dB PSNR, 0.5120 SSIM, ... on 24 frames": every metric validation scored."""
    scores = {k.removeprefix("val/"): v for k, v in summary.items() if k.startswith("val/")}
    return (f"step {summary['step']}: validation {in_words(scores, registered(scored=True, training=True))} on "
            f"{summary['n_images']} frames")


def sample_image(model: Generator, pairs: Sequence[Pair], direction: str, short_side: int, device: torch.device,
                 autocast: Callable[[], AbstractContextManager]) -> Image.Image:
    """input | prediction | truth | first baseline, one row per pair (irvis.evaluate.sample_grid)."""
    was_training = model.training
    model.eval()
    rows = []
    frames = ValFrames(pairs, direction, short_side)
    for i, pair in enumerate(pairs):
        item = frames[i]
        with autocast():
            pred = predict(model, item["source"][None].to(device))[0].cpu()
        baseline = next(iter(baseline_predictions(direction, item["source"][None]).values()))[0]
        rows.append((f"{pair.set_name}/{pair.name}", item["source"], pred, item["target"], baseline))
    model.train(was_training)
    return sample_grid(rows, direction)
