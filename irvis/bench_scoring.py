"""The "scoring" section of `python -m irvis bench`: what comparing with the truth costs.

- one upload with its truth, end to end as the app serves it (decode both, translate, previews, score every
  method at the scoring size, error map), beside the same upload without its truth, in both directions, with
  the stages of the request with truth and the same request scored the reference way (irvis.reference_metrics,
  as before the fast path);
- a gallery pair at the generators' evaluation size, first shown and shown again (the baselines' rows cached);
- `irvis evaluate` seconds per pair, the reference scores vs these.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Sequence
from unittest import mock

import torch
from PIL import Image

import irvis.compare
import irvis.evaluate
from irvis import reference_metrics
from irvis.compare import Gallery, Sample, at_scoring_size, compare, error_map, load_truth, read_card
from irvis.data import Pair, load_pairs
from irvis.directions import DIRECTIONS, get_direction
from irvis.handlers import SampleShower
from irvis.hosting import OutputStore
from irvis.images import load_image, to_pil
from irvis.nets import build_generator, load_generator
from irvis.serving import Loaded
from irvis.timing import median_seconds, once_seconds
from irvis.translate import Translator

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "llvip"  # real LLVIP test pairs, shipped


def _scored_the_reference_way(module):
    """Within this, `module` (irvis.compare or irvis.evaluate) scores as before the fast path."""
    return mock.patch.object(module, "score_image", reference_metrics.score_image)


def _pair_of_size(pairs: Sequence[Pair], size: tuple[int, int]) -> Pair:
    for p in pairs:
        with Image.open(p.infrared) as img:
            if img.size == (size[1], size[0]):
                return p
    return pairs[0]


def _jpeg(path: str | Path, size: tuple[int, int]) -> bytes:
    """The file's bytes, or the image resized to (H, W) as a JPEG where its size differs."""
    with Image.open(path) as img:
        if img.size == (size[1], size[0]):
            return Path(path).read_bytes()
        buf = io.BytesIO()
        img.convert("RGB").resize((size[1], size[0]), Image.BICUBIC).save(buf, format="JPEG", quality=95)
        return buf.getvalue()


def bench_request(translator: Translator, pair: Pair, outputs: OutputStore, size: tuple[int, int], repeats: int) -> dict:
    """The app's upload request (app.py, translate) on one pair at (H, W), with and without its truth."""
    d = translator.direction
    source_bytes, truth_bytes = _jpeg(getattr(pair, d.source), size), _jpeg(getattr(pair, d.target), size)
    staged: dict = {}

    def decode():
        staged["source"] = load_image(source_bytes, d.source)

    def decode_truth():
        staged["truth"] = load_truth(truth_bytes, d.name, staged["source"].shape[-2:])

    def translate():
        staged["prediction"] = translator.translate_tensor(staged["source"])

    def previews():
        outputs.save_preview(to_pil(staged["source"]), "input")
        outputs.save_png(to_pil(staged["prediction"]), "prediction.png")

    def score():
        staged["scored"] = at_scoring_size(staged["source"], staged["truth"], staged["prediction"])
        staged["rows"] = compare(d.name, *staged["scored"])

    def emap():
        _, truth, prediction = staged["scored"]
        outputs.save_preview(error_map(prediction, truth), "error")

    def without_truth():
        for step in (decode, translate, previews):
            step()

    def with_truth():
        for step in (decode, decode_truth, translate, previews, score, emap):
            step()

    h, w = load_image(source_bytes, d.source).shape[-2:]
    result = {"size": f"{w}x{h}", "pair": pair.name,
              "without_truth_seconds": median_seconds(without_truth, repeats),
              "with_truth_seconds": median_seconds(with_truth, repeats)}
    sh, sw = staged["scored"][1].shape[-2:]
    result["scored_at"] = f"{sw}x{sh}"
    result["stages"] = {name: median_seconds(fn, repeats) for name, fn in
                        (("decode input", decode), ("decode truth", decode_truth), ("translate", translate),
                         ("previews (JPEG input, PNG prediction)", previews),
                         (f"score {len(staged['rows'])} methods (resize to {sw}x{sh}, metrics)", score),
                         ("error map (JPEG)", emap))}
    with _scored_the_reference_way(irvis.compare):
        result["with_truth_reference_seconds"] = once_seconds(with_truth)  # seconds: one run
    return result


def bench_gallery(loaded: Loaded, pair: Pair, outputs: OutputStore, repeats: int) -> dict:
    """The app's gallery request (irvis.handlers.SampleShower, as the page calls it) on one pair, at the size the
    generator was evaluated at: first shown (nothing cached), and shown again (the baselines' rows cached)."""
    sample = Sample(pair, "test")
    gallery = Gallery("bench", [sample])
    name = loaded.direction.name

    def first():
        return SampleShower({name: loaded}, gallery, outputs).show(sample.key, name)

    again = SampleShower({name: loaded}, gallery, outputs)
    w, h = _size(first().gray[0][0])  # the input as shown
    return {"size": f"{w}x{h}", "first_seconds": median_seconds(first, repeats),
            "again_seconds": median_seconds(lambda: again.show(sample.key, name), repeats)}


def _size(path: str) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def bench_evaluate(translator: Translator, pairs: Sequence[Pair], short_side: int, repeats: int) -> dict:
    """`irvis evaluate` on these pairs (no LPIPS or FID), seconds per pair: with the reference scores, and these."""
    def run():
        irvis.evaluate.evaluate(translator, pairs, short_side=short_side, progress=False, lpips=False, fid=False)

    with _scored_the_reference_way(irvis.evaluate):
        reference = median_seconds(run, repeats) / len(pairs)
    return {"pairs": len(pairs), "short_side": short_side, "reference_seconds_per_pair": reference,
            "seconds_per_pair": median_seconds(run, repeats) / len(pairs)}


def bench_scoring(weights: dict[str, str | None], data: Sequence[str] | None = None, size: tuple[int, int] = (1024, 1280),
                  repeats: int = 3, device: str = "cpu", evaluate_pairs: int = 6) -> dict:
    """Every figure of the section, both directions; pairs from the test split of `data`, else the shipped samples."""
    if not data and not SAMPLES.is_dir():  # an installed package ships no samples
        return {"skipped": "give --data ROOT (LLVIP layout, with a test split) to measure scoring"}
    pairs = load_pairs(data or [SAMPLES], "test")
    pair = _pair_of_size(pairs, size)
    out: dict = {"pair": f"{pair.set_name}/{pair.name}", "directions": {}}
    with tempfile.TemporaryDirectory() as folder:
        outputs = OutputStore(Path(folder))
        for name in DIRECTIONS:
            torch.manual_seed(0)
            path = weights.get(name)
            translator = Translator(load_generator(path) if path else build_generator(name), device=device)
            loaded = Loaded(get_direction(name), translator, read_card(path, name) if path else None)
            out["directions"][name] = {
                "weights": path or "random weights", "request": bench_request(translator, pair, outputs, size, repeats),
                "gallery": bench_gallery(loaded, pair, outputs, repeats),
                "evaluate": bench_evaluate(translator, pairs[:evaluate_pairs], loaded.short_side, repeats)}
    return out


def scoring_lines(sc: dict) -> list[str]:
    if "skipped" in sc:
        return [f"\nscoring: skipped ({sc['skipped']})"]
    lines = [f"\nscoring against the truth, {sc['pair']} (the app's requests; scores as before the fast path "
             "beside them):"]
    for name, r in sc["directions"].items():
        rq, gl, ev = r["request"], r["gallery"], r["evaluate"]
        lines.append(f"  {get_direction(name).label} ({r['weights']}):")
        lines.append(f"    upload {rq['size']} without truth: {rq['without_truth_seconds']:.3f} s; with truth, "
                     f"end to end: {rq['with_truth_seconds']:.3f} s (scored at {rq['scored_at']}); before: "
                     f"{rq['with_truth_reference_seconds']:.2f} s, {rq['with_truth_reference_seconds'] / rq['with_truth_seconds']:.1f}x")
        for stage, s in rq["stages"].items():
            lines.append(f"      {stage:52s} {s:7.3f} s")
        lines.append(f"    gallery pair at {gl['size']}: first shown {gl['first_seconds']:.3f} s, shown again "
                     f"{gl['again_seconds']:.3f} s")
        lines.append(f"    evaluate, {ev['pairs']} pairs at shorter side {ev['short_side']}: "
                     f"{ev['seconds_per_pair']:.3f} s a pair, before {ev['reference_seconds_per_pair']:.3f} s, "
                     f"{ev['reference_seconds_per_pair'] / ev['seconds_per_pair']:.1f}x faster")
    return lines
