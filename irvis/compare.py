"""One image at a time, as a person looks at it: a prediction against its truth and the baselines, an
error map, the paired samples a gallery shows, and what a generator folder says about itself.

The app (app.py) is a view on these; the numbers come from irvis.metrics, the pairs from irvis.data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torchvision.transforms import v2

from irvis.colormap import INFERNO
from irvis.data import Pair, discover_pairs, expand_roots, load_pair
from irvis.directions import get_direction
from irvis.images import ImageError, ImageSource, load_image, to_pil
from irvis.metrics import Truth, headline, margin_line, method_label, method_predictions, registered, score_image
from irvis.generator_folder import CARD_FILE, EVALUATION_FILE

# Error maps share one fixed scale, so a colour means the same error on every image: an absolute
# error of ERROR_MAP_MAX (half the range) or more is the brightest colour.
ERROR_MAP_MAX = 0.5
# Scoring memory grows with the pixels scored (SSIM and VIF keep several full-size float maps, about
# 0.6 GB a megapixel): larger pairs are scored, and their error map drawn, at a size of at most this many
# pixels (aspect ratio kept, antialiased). LLVIP's 1280x1024 frames are scored at 1118x894.
SCORE_MAX_PIXELS = 1_000_000
MIN_SCORED_SIDE = 3
GALLERY_LIMIT = 60
GALLERY_SPLITS = ("test", "train")  # pairs the model never saw come first
HUB_DATASET_PREFIX = "hf://datasets/"


# ---------------------------------------------------------------------------------------------------
# One prediction against its truth


@dataclass(frozen=True)
class MethodScore:
    """One method's row: its name as every report keys it (irvis.metrics.method_predictions: "model",
    "baseline:NAME", "oracle:affine") and its scores as every report holds them (score_image's plain mapping,
    metric name -> number, every metric of the registry that is defined for this image)."""

    method: str
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def psnr(self) -> float:
        return self.scores["psnr"]

    @property
    def ssim(self) -> float:
        return self.scores["ssim"]

    def get(self, metric: str) -> float | None:
        """A metric of the registry (irvis.metrics.REGISTRY); None where undefined (sharpness against a flat truth,
        VIF under 41 pixels a side)."""
        return self.scores.get(metric)


def load_truth(image: ImageSource, direction: str, size: Sequence[int]) -> torch.Tensor:
    """Decode a ground truth for `direction` (it is of the target modality) and check that it is
    registered with an input of `size` (H, W): a truth of another size is another scene."""
    d = get_direction(direction)
    h, w = size
    if min(h, w) < MIN_SCORED_SIDE:
        raise ImageError(f"the input is {w}x{h} pixels, too small to score against a ground truth (SSIM needs "
                         f"{MIN_SCORED_SIDE} pixels a side): translate it without one")
    truth = load_image(image, d.target)
    if tuple(truth.shape[-2:]) != (h, w):
        th, tw = truth.shape[-2:]
        raise ImageError(
            f"the ground truth is {tw}x{th} but the input is {w}x{h}: give the {d.target} image of the same "
            "scene, registered with the input at the same size"
        )
    return truth


def scoring_size(size: Sequence[int], max_pixels: int = SCORE_MAX_PIXELS) -> tuple[int, int]:
    """(H, W) a pair of this size (H, W) is scored at: itself, or scaled down to at most max_pixels."""
    h, w = size
    if h * w <= max_pixels:
        return h, w
    scale = (max_pixels / (h * w)) ** 0.5
    return max(1, int(h * scale)), max(1, int(w * scale))


def at_scoring_size(*images: torch.Tensor | None, max_pixels: int = SCORE_MAX_PIXELS) -> list[torch.Tensor | None]:
    """The (C, H, W) images of one pair, resized together to scoring_size (None stays None): the one
    place that bounds the memory of scoring a large upload."""
    size = next(t for t in images if t is not None).shape[-2:]
    target = scoring_size(size, max_pixels)
    if target == tuple(size):
        return list(images)
    return [None if t is None else v2.functional.resize(t[None], list(target), antialias=True)[0].clamp_(0, 1)
            for t in images]


def compare(direction: str, source: torch.Tensor, truth: torch.Tensor, prediction: torch.Tensor | None = None,
            baseline_rows: Sequence[MethodScore] | None = None) -> list[MethodScore]:
    """Every metric of the registry (irvis.metrics.REGISTRY) of the prediction (if any), every baseline of the
    direction and the affine oracle, each against the truth, at the resolution given: the per-image view of
    irvis.evaluate.

    source (C_in, H, W), truth and prediction (C_out, H, W), all in [0, 1]. baseline_rows: the baselines' and
    the oracle's rows of an earlier call on this pair and direction (they depend on nothing else): only the
    prediction is scored, and they follow it."""
    d = get_direction(direction)
    if truth.shape[0] != d.out_channels or source.shape[0] != d.in_channels:
        raise ValueError(f"{d.name} compares {d.in_channels}-channel sources with {d.out_channels}-channel truths, "
                         f"got {tuple(source.shape)} and {tuple(truth.shape)}")
    if baseline_rows is None:
        methods = method_predictions(d.name, source, truth, prediction)
    else:
        methods = {"model": prediction} if prediction is not None else {}
    rows, scored = [], Truth(truth)  # the truth's statistics once, for every method
    for name, pred in methods.items():
        rows.append(MethodScore(name, score_image(pred, scored)))
    return rows + list(baseline_rows or ())


def best_baseline(rows: Sequence[MethodScore]) -> MethodScore:
    """The baseline best on the first headline metric (PSNR)."""
    first = headline()[0]
    baselines = {r.method: r for r in rows if r.method.startswith("baseline:")}
    return baselines[first.best({k: r.scores[first.name] for k, r in baselines.items()})]


def score_headers() -> list[str]:
    """The app's comparison table's columns: the method, then every per-image metric of the registry."""
    return ["method", *(m.label for m in registered(scored=True))]


def score_table(rows: list[MethodScore]) -> list[list]:
    """score_headers()' rows: each method, then every per-image metric of the registry, rounded as reports round it."""
    metrics = registered(scored=True)

    def cell(value: float | None, digits: int):
        return "-" if value is None else round(value, digits)

    return [[method_label(r.method, model="model (this generator)"), *(cell(r.get(m.name), m.digits) for m in metrics)]
            for r in rows]


def verdict(rows: list[MethodScore]) -> str:
    """The per-image counterpart of the reports' margin sentence (irvis.metrics.margin_line)."""
    model = next((r for r in rows if r.method == "model"), None)
    baselines = {r.method.removeprefix("baseline:"): r.scores for r in rows if r.method.startswith("baseline:")}
    if model is None:
        base, first = best_baseline(rows), headline()[0]
        return f"Best baseline on this image: {base.method.removeprefix('baseline:')} ({first.said(base.scores[first.name])})."
    return (f"On this image the model scores {' / '.join(m.said(model.scores[m.name]) for m in headline())}. "
            + margin_line(model.scores, baselines))


def error_map(prediction: torch.Tensor, truth: torch.Tensor, vmax: float = ERROR_MAP_MAX) -> Image.Image:
    """|prediction - truth| averaged over channels, coloured with inferno on the fixed scale [0, vmax]."""
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and truth {tuple(truth.shape)} differ in shape")
    err = (prediction.float() - truth.float()).abs().mean(dim=0)
    index = (err / vmax).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return Image.fromarray(INFERNO[index])  # uint8 (H, W, 3): "RGB"


# ---------------------------------------------------------------------------------------------------
# Gallery: paired samples from a folder in LLVIP layout, or from a Hub dataset repo in that layout


class GalleryError(ValueError):
    """A gallery source that cannot be shown, with the reason."""


@dataclass(frozen=True)
class Sample:
    pair: Pair
    split: str

    @property
    def key(self) -> str:
        return f"{self.pair.set_name}/{self.split}/{self.pair.name}"


def _inside(path: Path, folder: Path) -> bool:
    """Whether path, every link resolved, is folder or lies in it (folder already resolved)."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(folder)
    except (OSError, ValueError):
        return False


@dataclass
class Gallery:
    source: str
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folder: Path | None = None  # resolved; no file outside it is ever read (links are resolved first)

    def get(self, key: str) -> Sample:
        for s in self.samples:
            if s.key == key:
                if self.folder is not None and not all(_inside(p, self.folder) for p in (s.pair.infrared,
                                                                                           s.pair.visible)):
                    raise GalleryError(f"{key}: its files now lead outside the gallery folder; not shown")
                return s
        raise GalleryError(f"no sample {key!r} in the gallery")


def _download_dataset(spec: str) -> Path:
    """hf://datasets/owner/name[/sub/folder] -> a local snapshot folder (the cache when offline)."""
    parts = spec[len(HUB_DATASET_PREFIX):].strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise GalleryError(f"{spec}: a Hub dataset is written hf://datasets/OWNER/NAME[/FOLDER]")
    from irvis.hub import snapshot

    repo_id, sub = "/".join(parts[:2]), "/".join(parts[2:])
    folder = snapshot(repo_id, GalleryError, repo_type="dataset", name=spec)
    return folder / sub if sub else folder


def _gallery_folder(spec: str) -> tuple[Path, Path]:
    """(folder, confinement): the folder a source names and the folder no file may resolve outside of.
    A Hub snapshot's files are links into its repository's cache folder (blobs/), so that folder
    confines a Hub gallery."""
    if spec.startswith(HUB_DATASET_PREFIX):
        folder = _download_dataset(spec)
        snapshot = Path(os.path.realpath(folder))
        while snapshot.parent.name != "snapshots" and snapshot.parent != snapshot:
            snapshot = snapshot.parent
        return folder, snapshot.parent.parent if snapshot.parent.name == "snapshots" else snapshot
    folder = Path(spec).expanduser()
    return folder, Path(os.path.realpath(folder))


def gallery_roots(spec: str | os.PathLike) -> list[Path]:
    """The LLVIP-layout roots of a gallery source: the folder itself when it has infrared/ and visible/,
    else its subfolders that do (so ../shared/data shows every set)."""
    spec = str(spec)
    folder, _ = _gallery_folder(spec)
    if not folder.is_dir():
        raise GalleryError(f"{spec}: no such folder")
    roots = [r for r in expand_roots([folder]) if (r / "infrared").is_dir() and (r / "visible").is_dir()]
    if not roots:
        raise GalleryError(f"{spec}: not in LLVIP layout: expected {spec}/infrared/<split>/NAME.jpg and "
                           f"{spec}/visible/<split>/NAME.jpg (or subfolders laid out so)")
    return roots


def _interleave_sets(samples: list[Sample]) -> list[Sample]:
    """Round-robin over sets (keeping split order), so a limit still shows every set."""
    rank: dict[tuple[str, str], int] = {}
    keyed = []
    for s in samples:
        k = (s.split, s.pair.set_name)
        rank[k] = rank.get(k, -1) + 1
        keyed.append((GALLERY_SPLITS.index(s.split) if s.split in GALLERY_SPLITS else len(GALLERY_SPLITS), rank[k], s))
    return [s for *_, s in sorted(keyed, key=lambda t: (t[0], t[1]))]


def open_gallery(spec: str | os.PathLike, limit: int = GALLERY_LIMIT,
                 splits: Sequence[str] = GALLERY_SPLITS) -> Gallery:
    """The samples a gallery shows, test split first; pairs with problems are left out and noted."""
    roots = gallery_roots(spec)
    _, confine = _gallery_folder(str(spec))
    gallery = Gallery(source=str(spec), folder=confine)
    found, outside = [], 0
    for split in splits:
        report = discover_pairs(roots, split)
        for p in report.pairs:  # a link to a file or folder outside the gallery is never followed
            if _inside(p.infrared, confine) and _inside(p.visible, confine):
                found.append(Sample(p, split))
            else:
                outside += 1
        if report.problems:
            gallery.notes.append(f"{len(report.problems)} problem(s) in the {split} split; those files are not shown")
    if outside:
        gallery.notes.append(f"{outside} pair(s) link to files outside the gallery folder; not shown")
    if not found:
        raise GalleryError(f"{spec}: no infrared/visible pairs in the {' or '.join(splits)} split")
    # round-robin over sets only where the limit cuts (so it still shows every set); a gallery that fits is
    # shown set by set, in its folders' order
    ordered = _interleave_sets(found) if len(found) > limit else found
    if len(ordered) > limit:
        gallery.notes.append(f"showing {limit} of {len(ordered)} pairs")
    gallery.samples = ordered[:limit]
    return gallery


def thumbnail(sample: Sample, height: int = 128, gap: int = 2) -> Image.Image:
    """The pair in one frame: infrared on the left half, visible on the right, split by a white line.
    The frame keeps the pair's aspect ratio, so it fills a gallery tile. JPEGs decode at reduced size."""
    ir, vis = load_pair(sample.pair, short_side=height)
    left, right = to_pil(ir).convert("RGB"), to_pil(vis)
    scale = height / left.height
    size = (max(2, round(left.width * scale)), height)
    left, right = left.resize(size, Image.BICUBIC), right.resize(size, Image.BICUBIC)
    half = size[0] // 2
    out = left.copy()
    out.paste(right.crop((half, 0, size[0], height)), (half, 0))
    out.paste((255, 255, 255), (max(0, half - gap // 2), 0, min(size[0], half + (gap + 1) // 2), height))
    return out


def thumbnails(gallery: Gallery, height: int = 128) -> list[tuple[Image.Image, str]]:
    """(image, caption) for every sample that decodes; broken ones are dropped from the gallery, noted."""
    shown, kept = [], []
    for s in gallery.samples:
        try:
            shown.append((thumbnail(s, height), s.key))
            kept.append(s)
        except (ValueError, OSError) as e:  # ImageError, DataError, GalleryError, an unreadable file
            gallery.notes.append(f"left out {s.key}: {e}")
    gallery.samples = kept
    return shown


def sample_tensors(sample: Sample, direction: str, short_side: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(source, truth) of a sample for `direction`, resized as the evaluation protocol does."""
    ir, vis = load_pair(sample.pair, short_side=short_side)
    return get_direction(direction).arrange(ir, vis)


# ---------------------------------------------------------------------------------------------------
# What a generator folder says about itself: model card and evaluation


@dataclass
class GeneratorCard:
    metadata: dict  # the model card's front matter
    text: str  # the model card's body (Markdown)
    evaluation: dict | None  # the JSON `python -m irvis evaluate` wrote, when it is beside the weights
    evaluation_file: str | None = None


def read_evaluation(folder: str | os.PathLike, direction: str) -> tuple[dict | None, str | None]:
    """evaluation.json beside the weights (or eval/*.json), for this direction; None when absent."""
    folder = Path(folder)
    candidates = [folder / EVALUATION_FILE, *sorted((folder / "eval").glob("*.json"))]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(result, dict) and result.get("direction") == direction and "baselines" in result:
            return result, path.name if path.parent == folder else f"eval/{path.name}"
    return None, None


def read_card(folder: str | os.PathLike, direction: str) -> GeneratorCard:
    from huggingface_hub import ModelCard

    folder = Path(folder)
    metadata, text = {}, ""
    readme = folder / CARD_FILE
    if readme.is_file():
        try:
            card = ModelCard(readme.read_text(encoding="utf-8"), ignore_metadata_errors=True)
            metadata, text = card.data.to_dict(), card.text
        except Exception:  # broken YAML or encoding: the card is decoration, the weights still load
            metadata, text = {}, ""
    evaluation, name = read_evaluation(folder, direction)
    return GeneratorCard(metadata, text.strip(), evaluation, name)
