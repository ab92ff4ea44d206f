"""Datasets in LLVIP's layout: discovery, pairing by file stem, checks, paired transforms, cache.

    ROOT/infrared/<split>/NAME.ext   <->   ROOT/visible/<split>/NAME.ext

Several roots can be mixed in one dataset; each pair remembers its root's name ("set") so reports can
break results down per set. Problems are collected over the whole dataset and reported at once,
before any training starts.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from irvis.images import ImageError, image_size, is_image_file, load_image, max_pixels, open_image


class DataError(ValueError):
    """A dataset that cannot be used; the message lists every offending file."""


@dataclass(frozen=True)
class Pair:
    infrared: Path
    visible: Path
    set_name: str
    name: str


def count_sets(pairs: Iterable[Pair]) -> dict[str, int]:
    """Pairs per set, in the order the sets first appear."""
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.set_name] = counts.get(p.set_name, 0) + 1
    return counts


@dataclass
class DataReport:
    roots: list[str]
    split: str
    pairs: list[Pair] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.pairs)

    def sets(self) -> dict[str, int]:
        return count_sets(self.pairs)

    def text(self) -> str:
        lines = [f"split '{self.split}': {len(self.pairs)} pairs in {len(self.sets())} set(s)"]
        lines += [f"  {name}: {n} pairs" for name, n in self.sets().items()]
        lines += [f"note: {n}" for n in self.notes]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  - {p}" for p in self.problems]
        elif not self.pairs:
            lines.append("problem: no pairs found")
        return "\n".join(lines)

    def raise_if_problems(self) -> "DataReport":
        if not self.ok:
            raise DataError("the dataset cannot be used:\n" + self.text())
        return self


def _set_name(root: Path, taken: set[str]) -> str:
    name = root.resolve().name or "data"
    base, i = name, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def _images_by_stem(folder: Path, problems: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not is_image_file(path):
            continue
        if path.stem in found:
            problems.append(f"two files share the name {path.stem!r}: {found[path.stem]} and {path}")
            continue
        found[path.stem] = path
    return found


def discover_pairs(roots: Iterable[str | os.PathLike], split: str = "train") -> DataReport:
    """Pair files by stem under each root's infrared/<split> and visible/<split>; no decoding. A folder
    of such roots (e.g. ../shared/data) stands for all of them (see expand_roots)."""
    roots = expand_roots(roots)
    report = DataReport(roots=[str(r) for r in roots], split=split)
    taken: set[str] = set()
    for root in roots:
        if not root.is_dir():
            report.problems.append(f"{root}: " + ("a file, not a dataset folder" if root.exists() else "no such folder"))
            continue
        ir_dir, vis_dir = root / "infrared" / split, root / "visible" / split
        if not ir_dir.is_dir() and not vis_dir.is_dir():
            if not (root / "infrared").is_dir() or not (root / "visible").is_dir():
                report.problems.append(f"{root}: not in LLVIP layout (expected {root}/infrared/{split} and {root}/visible/{split})")
            else:
                report.notes.append(f"{root} has no '{split}' split; skipped")
            continue
        for have, missing in ((ir_dir, vis_dir), (vis_dir, ir_dir)):
            if not missing.is_dir():
                report.problems.append(f"{have} exists but {missing} does not")
        if not (ir_dir.is_dir() and vis_dir.is_dir()):
            continue
        set_name = _set_name(root, taken)
        ir, vis = _images_by_stem(ir_dir, report.problems), _images_by_stem(vis_dir, report.problems)
        for stem in sorted(ir.keys() - vis.keys()):
            report.problems.append(f"{ir[stem]}: no visible image named {stem}.* in {vis_dir}")
        for stem in sorted(vis.keys() - ir.keys()):
            report.problems.append(f"{vis[stem]}: no infrared image named {stem}.* in {ir_dir}")
        report.pairs += [Pair(ir[s], vis[s], set_name, s) for s in sorted(ir.keys() & vis.keys())]
    return report


def expand_roots(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """A folder that is not itself in LLVIP layout but holds LLVIP-layout folders (such as ../shared/data)
    stands for those folders, in name order; any other path is kept as given for discover_pairs to judge."""
    expanded: list[Path] = []
    for root in map(Path, roots):
        if root.is_dir() and not (root / "infrared").exists() and not (root / "visible").exists():
            sets = sorted(p for p in root.iterdir() if (p / "infrared").is_dir() and (p / "visible").is_dir())
            if sets:
                expanded += sets
                continue
        expanded.append(root)
    return expanded


def _check_pair(pair: Pair) -> list[str]:
    sizes, problems = [], []
    for path in (pair.infrared, pair.visible):
        try:
            # draft decoding still reads every entropy-coded block, so truncation is caught, quickly
            open_image(path, draft_size=(64, 64))
            sizes.append(image_size(path))
        except ImageError as e:
            problems.append(str(e))
    if not problems and sizes[0] != sizes[1]:
        problems.append(
            f"{pair.infrared} is {sizes[0][0]}x{sizes[0][1]} but {pair.visible} is {sizes[1][0]}x{sizes[1][1]}: "
            "a pair must be registered at one size"
        )
    return problems


def check_data(roots: Iterable[str | os.PathLike], split: str = "train", decode: bool = True) -> DataReport:
    """discover_pairs, then open every file: the full report a user sees before training."""
    report = discover_pairs(roots, split)
    if decode and report.pairs:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            results = list(pool.map(_check_pair, report.pairs))
        report.problems += [p for problems in results for p in problems]
    return report


def load_pairs(roots: Iterable[str | os.PathLike], split: str = "train", decode: bool = True,
               required: bool = True) -> list[Pair]:
    """The pairs of a dataset, or DataError with every problem listed; required=False accepts a split
    with no pairs at all (an optional test split), never a broken one."""
    report = check_data(roots, split, decode=decode)
    if report.problems or (required and not report.pairs):
        report.raise_if_problems()
    return report.pairs


def oversized(pairs: Iterable[Pair], short_side: int) -> list[str]:
    """Pairs whose frames, resized to this shorter side, would exceed the pixel limit (from headers only)."""
    problems = []
    for pair in pairs:
        w, h = image_size(pair.infrared)
        scale = short_side / min(w, h)
        if round(w * scale) * round(h * scale) > max_pixels():
            problems.append(f"{pair.infrared}: {w}x{h} becomes {round(w * scale)}x{round(h * scale)} at a shorter side "
                            f"of {short_side}, over the limit of {max_pixels() / 1e6:.0f} megapixels")
    return problems


def load_pair(pair: Pair, short_side: int | None = None, uint8: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one pair as (infrared (1,H,W), visible (3,H,W)) in [0, 1], optionally with its shorter
    side resized to short_side (antialiased), as the evaluation protocol and the loader want. uint8=True
    keeps 8-bit images as uint8 0-255 (resized in uint8: torchvision's fast path), 16-bit ones float."""
    draft = None
    if short_side is not None:
        w, h = image_size(pair.infrared)  # ImageError, not Pillow's own, for a file that is not an image
        scale = short_side / min(w, h)
        draft = (max(1, round(w * scale)), max(1, round(h * scale)))
        if draft[0] * draft[1] > max_pixels():  # a 4000x2 strip at a shorter side of 256 is 131 megapixels
            raise DataError(f"{pair.infrared}: {w}x{h} becomes {draft[0]}x{draft[1]} at a shorter side of {short_side}, "
                            f"over the limit of {max_pixels() / 1e6:.0f} megapixels")
    ir = load_image(pair.infrared, "infrared", draft_size=draft, uint8=uint8)
    vis = load_image(pair.visible, "visible", draft_size=draft, uint8=uint8)
    if ir.shape[-2:] != vis.shape[-2:]:
        raise DataError(f"{pair.infrared} and {pair.visible} differ in size")
    if short_side is not None:
        ir, vis = resize_short_side(ir, short_side), resize_short_side(vis, short_side)
    return ir, vis


def resize_short_side(t: torch.Tensor, short_side: int) -> torch.Tensor:
    h, w = t.shape[-2:]
    if min(h, w) == short_side:
        return t
    resized = v2.functional.resize(t, [short_side], antialias=True)
    return resized if resized.dtype == torch.uint8 else resized.clamp_(0, 1)


class PairedDataset(Dataset):
    """Pairs as training samples. train=True draws one random scale/crop/flip for both images, so
    they stay registered; train=False only resizes (whole frames, for validation)."""

    def __init__(self, pairs: Sequence[Pair], load_size: int = 286, crop_size: int = 256, train: bool = True,
                 min_load_size: int | None = None, no_upscale: bool = False, frame_view_of: str | None = None):
        min_load_size = crop_size if min_load_size is None else min_load_size
        if not crop_size <= min_load_size <= load_size:
            raise ValueError(f"need crop size {crop_size} <= smallest load size {min_load_size} <= load size {load_size}")
        self.pairs = list(pairs)
        self.load_size, self.min_load_size, self.crop_size = load_size, min_load_size, crop_size
        self.train = train
        self.no_upscale = no_upscale
        self.frame_view_of = frame_view_of  # "infrared" or "visible": that image's whole frame also comes as "frame"
        # scale: shorter side drawn in [min_load_size, load_size] (small crops can thus keep the scale
        # frames are translated at); then crop and flip, one draw for both. no_upscale: the draw is made
        # here, capped at the frame's native size, and the frame decoded straight to it
        resize = [] if no_upscale else [v2.RandomResize(min_load_size, load_size + 1, antialias=True)]
        ops = [*resize, v2.RandomCrop(crop_size), v2.RandomHorizontalFlip()] if train else []
        self.transform = v2.Compose(ops)

    def draw_short_side(self, pair: Pair) -> int:
        """A shorter side in [min_load_size, min(load_size, native)], never below the crop (torch's generator)."""
        native = min(image_size(pair.infrared))
        high = max(self.crop_size, min(self.load_size, native))
        low = min(self.min_load_size, high)
        return int(torch.randint(low, high + 1, ()).item())

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        pair = self.pairs[i]
        # training: decoded, resized and cropped in uint8 (its resize 4x cheaper than in float; 1.4-1.9x the pairs/s),
        # floats only at the end
        short_side = self.draw_short_side(pair) if self.train and self.no_upscale else self.load_size
        ir, vis = load_pair(pair, short_side=short_side, uint8=self.train)
        views = {}
        if self.frame_view_of:  # the whole frame, before the crop, as the level branch sees it (irvis.context)
            from irvis.context import frame_view

            whole = ir if self.frame_view_of == "infrared" else vis
            views = {"frame": frame_view(_unit(whole)[None])[0].clamp(0, 1)}
        ir, vis = self.transform(tv_tensors.Image(ir), tv_tensors.Image(vis))
        return {
            "infrared": _unit(ir.as_subclass(torch.Tensor)),
            "visible": _unit(vis.as_subclass(torch.Tensor)),
            "name": pair.name,
            "set": pair.set_name,
            **views,
        }


def _unit(t: torch.Tensor) -> torch.Tensor:
    """uint8 0-255 or float -> contiguous float32 in [0, 1]."""
    return t.contiguous().float().div_(255) if t.dtype == torch.uint8 else t.clamp(0, 1).contiguous()


def photometric_jitter(x: torch.Tensor, strength: float, *also: torch.Tensor) -> torch.Tensor | tuple:
    """A random exposure change of one (C, H, W) image in [0, 1]: gain, contrast about the mean and gamma,
    each drawn within +-strength (gamma in [exp(-s), exp(s)]) from torch's generator. Applied to the
    source image only, it teaches a generator that a darker street lamp or another camera gain is the
    same scene, instead of a different temperature or colour. also: more images of the same scene (a crop's
    frame view) changed by the same draw, about x's mean; then the result is the tuple of all."""
    if strength <= 0:
        return (x, *also) if also else x
    gain, contrast, log_gamma = ((torch.rand(3) * 2 - 1) * strength).tolist()
    mean = x.mean()

    def change(t):
        return (((t - mean) * (1 + contrast) + mean) * (1 + gain)).clamp(0, 1).pow(math.exp(log_gamma))

    return tuple(change(t) for t in (x, *also)) if also else change(x)


# ---------------------------------------------------------------------------------------------------
# Prepared cache: LLVIP frames are 1280x1024 JPEGs whose decoding dominates loading. `prepare` writes
# resized lossless copies in the same layout, so a cache root is used exactly like the original.


def _prepare_pair(pair: Pair, split: str, out: Path, size: int, jpeg_quality: int | None = None,
                  no_upscale: bool = False) -> None:
    if no_upscale:
        size = min(size, min(image_size(pair.infrared)))
    ir, vis = load_pair(pair, short_side=size)
    from irvis.images import to_pil

    suffix = ".png" if jpeg_quality is None else ".jpg"
    for modality, t in (("infrared", ir), ("visible", vis)):
        dst = out / pair.set_name / modality / split / f"{pair.name}{suffix}"
        tmp = dst.with_suffix(".tmp" + suffix)
        image = to_pil(t)
        if jpeg_quality is None:
            image.save(tmp, compress_level=1)
        else:  # 4:2:2 chroma for colour: a sharper colour edge than JPEG's usual 4:2:0, for little size
            image.save(tmp, format="JPEG", quality=jpeg_quality, subsampling=0 if image.mode == "L" else 1)
        os.replace(tmp, dst)  # a killed prepare never leaves a half-written image


def prepare_cache(
    roots: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    size: int = 286,
    splits: Sequence[str] = ("train", "val", "test"),
    progress: bool = True,
    max_pairs: int | None = None,
    jpeg_quality: int | None = None,
    no_upscale: bool = False,
) -> list[Path]:
    """Write resized copies (shorter side = size; no_upscale: never more than the frame's own) of every pair (or
    the first max_pairs of each split); return the cache roots, one per set. Lossless PNG, or JPEG at jpeg_quality
    (a third of the size: a cache to copy to a remote GPU machine; training then sees JPEG's small errors, about
    40 dB at 90)."""
    from tqdm.auto import tqdm

    out = Path(out)
    roots = list(roots)
    made: dict[str, Path] = {}
    for split in splits:
        report = check_data(roots, split)
        if not report.pairs and not report.problems:
            continue
        report.raise_if_problems()
        report.pairs = report.pairs[:max_pairs]
        for pair in report.pairs:
            for modality in ("infrared", "visible"):
                (out / pair.set_name / modality / split).mkdir(parents=True, exist_ok=True)
            made[pair.set_name] = out / pair.set_name
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            jobs = pool.map(lambda p: _prepare_pair(p, split, out, size, jpeg_quality, no_upscale), report.pairs)
            for _ in tqdm(jobs, total=len(report.pairs), desc=f"prepare {split}", disable=not progress):
                pass
    return list(made.values())


def loader_throughput(pairs: Sequence[Pair], n: int = 64, load_size: int = 286, crop_size: int = 256,
                      batch_size: int = 4, num_workers: int = 0) -> float:
    """Images (pairs) per second through PairedDataset + DataLoader: what training sees."""
    ds = PairedDataset(list(pairs)[:n], load_size=load_size, crop_size=crop_size)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=num_workers)
    start = time.perf_counter()
    count = sum(batch["infrared"].shape[0] for batch in dl)
    return count / (time.perf_counter() - start)
