"""What a served app holds: each direction's generator (or why there is none), the gallery, the text the page
shows about them, and the limits of one request. Plain values, no Gradio: app.py lays them out on the page.

The limits (docs/app.md, "Hosting it safely"): an upload over APP_MAX_PIXELS is refused from its header, before
decoding (IRVIS_MAX_PIXELS or --max-pixels change it); the generator runs on at most TRANSLATE_MAX_PIXELS (an
input larger at its working size is translated smaller and resized back, by irvis.translate.Translator); scores
and error maps are computed at most at irvis.compare.SCORE_MAX_PIXELS.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from irvis.compare import Gallery, GalleryError, GeneratorCard, open_gallery, read_card, thumbnails
from irvis.directions import DIRECTIONS, Direction, get_direction
from irvis.evaluate import markdown_report
from irvis.hub import resolve_weights
from irvis.metrics import SCORING_SHORT_SIDE
from irvis.nets import WeightsError, count_parameters
from irvis.hosting import parse_size
from irvis.translate import Translator
from irvis.uploads import PROJECT_ROOT, hide_paths, public_name, scrub_paths

APP_MAX_PIXELS = 16_000_000
TRANSLATE_MAX_PIXELS = 2_000_000
MAX_FILE_BYTES = 50 * 2**20  # every image, however it arrives (--max-file-size)
MAX_BODY_BYTES = 4 * 2**20  # a request body that is not a file upload: what a full queue holds in memory
MAX_TEMP_BYTES = 2 * 2**30  # all results on disk together (--max-temp-size), besides their age (OUTPUT_MAX_AGE_S)
OUTPUT_MAX_AGE_S = 3600
VIDEO_MAX_SECONDS = 10  # per request: a short clip, translated at the generator's working size
VIDEO_MAX_FRAME_PIXELS = 1920 * 1088  # Full HD: each frame is decoded, translated and encoded: the area sets the cost
VIDEO_MAX_FRAMES = 300  # 10 s at 30 frames/s: the frame count sets the cost too, whatever the header's rate

DEFAULT_WEIGHTS = {name: PROJECT_ROOT / "weights" / name for name in DIRECTIONS}
DEFAULT_GALLERY = PROJECT_ROOT / "samples"  # test pairs that ship with the project (samples/README.md: sources, terms)


@dataclass
class Loaded:
    """One direction's generator, or why there is none (shown in the page instead of failing).
    default_short_side: the size gallery pairs are scored at when the generator has no evaluation.json."""

    direction: Direction
    translator: Translator | None = None
    card: GeneratorCard | None = None
    problem: str | None = None
    default_short_side: int | None = SCORING_SHORT_SIDE

    @property
    def short_side(self) -> int | None:
        """The size the generator was evaluated at, so gallery scores compare with the About figures."""
        protocol = (self.card.evaluation or {}).get("protocol", {}) if self.card else {}
        side = protocol.get("short_side", self.default_short_side)
        return None if side in ("native", None) else int(side)


def load_direction(name: str, spec: str | os.PathLike | None, max_pixels: int = TRANSLATE_MAX_PIXELS,
                   default_short_side: int | None = SCORING_SHORT_SIDE) -> Loaded:
    """One direction's generator from a folder or Hub repo (default: the project's weights/NAME), run on at most
    max_pixels; any problem, paths hidden, is returned in Loaded.problem rather than raised."""
    d = get_direction(name)
    spec = spec or DEFAULT_WEIGHTS[name]
    if spec == DEFAULT_WEIGHTS[name] and not Path(spec).is_dir():
        return Loaded(d, problem=f"No {d.label} generator yet: `{spec.relative_to(PROJECT_ROOT)}` does not exist. "
                                 f"Train one (see the README), or start the app with `--weights-{name} "
                                 "FOLDER_OR_HUB_REPO`.", default_short_side=default_short_side)
    try:
        folder = resolve_weights(spec)
        translator = Translator.from_pretrained(folder, device="auto", max_pixels=max_pixels)
    except (WeightsError, OSError) as e:
        return Loaded(d, problem=hide_paths(f"No {d.label} generator: {e}", spec), default_short_side=default_short_side)
    problem = translator.direction.mismatch(d, f"`{public_name(spec)}`")
    if problem:
        return Loaded(d, problem=f"{problem}: give it to `--weights-{translator.direction.name}`.",
                      default_short_side=default_short_side)
    translator.source = public_name(spec)
    return Loaded(d, translator, read_card(folder, name), default_short_side=default_short_side)


def load_gallery(spec: str | None) -> tuple[Gallery | None, list, str | None]:
    """(gallery, thumbnails, problem); no spec is no gallery, not a problem."""
    if not spec:
        return None, [], None
    try:
        gallery = open_gallery(spec)
        return gallery, thumbnails(gallery), None
    except (GalleryError, OSError) as e:  # the app starts whatever the gallery holds, and says why it is empty
        return None, [], str(e).replace(str(spec), gallery_name(spec))


def gallery_name(spec: str) -> str:
    """A gallery as the page names it: a Hub dataset by its address, a folder by its own name only."""
    return spec if spec.startswith("hf://") else (Path(spec).name or spec)


def status_line(loaded: Loaded) -> str:
    """One direction in the page's status line (Markdown)."""
    if loaded.translator is None:
        return f"**{loaded.direction.label}**: not loaded"
    g = loaded.translator.generator
    return f"**{loaded.direction.label}**: `{loaded.translator.source}` ({g.arch}) on {loaded.translator.device}"


@dataclass
class About:
    """What the page says about one direction's generator, in Markdown, server paths scrubbed."""

    title: str
    problem: str | None = None  # no generator: only this is shown
    summary: str = ""  # weights, architecture, size, device, training data, license
    evaluation_title: str | None = None  # the evaluation report's heading, when there is an evaluation.json
    evaluation: str | None = None  # the report, its headings one level lower
    no_evaluation: str | None = None  # how to write one, when there is none
    card: str | None = None  # the model card's text


def about(loaded: Loaded) -> About:
    d = loaded.direction
    title = f"## {d.label} (`{d.name}`)"
    if loaded.translator is None:
        return About(title, problem=loaded.problem)
    t, card = loaded.translator, loaded.card
    data, license_ = card.metadata.get("datasets"), card.metadata.get("license")
    lines = [f"Weights: `{t.source}`, architecture {t.generator.arch}, "
             f"{count_parameters(t.generator) / 1e6:.2f} M parameters, running on {t.device}.",
             f"Trained on: {', '.join(map(str, data)) if isinstance(data, list) else data}." if data
             else "Training data: not stated in the model card.",
             f"License: {license_}." if license_ else ""]
    result = About(title, summary="  \n".join(line for line in lines if line),
                   card=scrub_paths(card.text) if card.text else None)
    if card.evaluation:
        report = scrub_paths(markdown_report(card.evaluation))
        result.evaluation = "\n".join("###" + line if line.startswith("#") else line for line in report.splitlines())
        result.evaluation_title = f"Evaluation against the baselines (from {card.evaluation_file})"
    else:
        result.no_evaluation = ("No evaluation.json beside these weights: write one with "
                                f"`python -m irvis evaluate --direction {d.name} --weights WEIGHTS --data ROOT "
                                "--json WEIGHTS/evaluation.json`.")
    return result


def example_samples(gallery: Gallery | None, n: int) -> list:
    """n gallery pairs to offer as examples, spread over the test split: consecutive frames look alike."""
    if gallery is None:
        return []
    pool = [s for s in gallery.samples if s.split == "test"] or gallery.samples
    return pool[::max(1, len(pool) // n)][:n]


def example_files(sample, d: Direction) -> list[str]:
    """(input, truth) files of a gallery pair in direction d."""
    files = {"infrared": str(sample.pair.infrared), "visible": str(sample.pair.visible)}
    return [files[d.source], files[d.target]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of app.py (python app.py --help); defaults from the environment, as a Space sets it."""
    p = argparse.ArgumentParser(description="irvis web app: thermal infrared <-> visible translation.")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (0.0.0.0 to serve the network)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--gallery", default=os.environ.get("IRVIS_GALLERY", str(DEFAULT_GALLERY)),
                   help="folder in LLVIP layout (or holding such folders), or hf://datasets/OWNER/NAME; '' for "
                        "none (default: $IRVIS_GALLERY, else the shipped samples/)")
    for name in DIRECTIONS:
        env = f"IRVIS_WEIGHTS_{name.upper()}"
        p.add_argument(f"--weights-{name}", dest=f"weights_{name}", default=os.environ.get(env) or None,
                       help=f"{name} generator folder or Hub repo id (default: ${env}, else weights/{name})")
    p.add_argument("--concurrency", type=positive_argument, default=1,
                   help="translations run at once (each uses every CPU core; raise it on a GPU)")
    p.add_argument("--max-file-size", default="50mb", type=size_argument,
                   help="largest image or video accepted, however it arrives (upload, paste, API), e.g. 20mb")
    p.add_argument("--max-temp-size", default="2gb", type=size_argument,
                   help="disk the results of requests may use together (oldest removed first; each at most an hour)")
    p.add_argument("--max-pixels", type=positive_argument, default=int(os.environ.get("IRVIS_MAX_PIXELS", APP_MAX_PIXELS)),
                   help=f"largest image accepted, in pixels, checked before decoding (default: $IRVIS_MAX_PIXELS, "
                        f"else {APP_MAX_PIXELS})")
    p.add_argument("--max-queue", type=positive_argument, default=64, help="requests waiting at most; more are refused")
    return p.parse_args(argv)


def size_argument(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_argument(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)
