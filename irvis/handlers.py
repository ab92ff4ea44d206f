"""The work behind the app's endpoints, without Gradio: each takes paths and names, writes its files into an
OutputStore, and returns plain data (files, score rows, sentences) or raises Refusal (a RequestRefused with a
sentence and a title for the visitor). app.py only adapts these to its components.

progress: any callable progress(fraction, desc=...) (Gradio's gr.Progress is one); the default does nothing.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from irvis.colormap import DEFAULT_PALETTE, palette_image
from irvis.compare import (Gallery, MethodScore, at_scoring_size, compare, error_map, load_truth,
                           sample_tensors)
from irvis.directions import get_direction
from irvis.hosting import OutputStore, RequestRefused
from irvis.images import ImageError, load_image, to_pil
from irvis.serving import VIDEO_MAX_FRAME_PIXELS, VIDEO_MAX_FRAMES, VIDEO_MAX_SECONDS, Loaded
from irvis.uploads import name_files, uploaded_file

BAD_IMAGE = "This image cannot be used"


class Refusal(RequestRefused):
    """A request these handlers will not serve: a sentence for the visitor and a title for its message box
    (not a server fault: the app logs no traceback)."""

    def __init__(self, message: str, title: str = BAD_IMAGE):
        super().__init__(message)
        self.title = title


def no_progress(*args, **kwargs) -> None:
    return None


def a(word: str) -> str:
    """'an infrared', 'a visible'."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def paint(outputs: OutputStore, path: str, palette: str) -> str:
    """A gray image this app wrote, drawn in a thermal palette: the file itself for white-hot, else a copy
    named by its palette (NAME_ironbow.png), so a download says how it was drawn. Only the picture
    changes: scores were computed on the gray data before."""
    if palette == DEFAULT_PALETTE:
        return path
    with Image.open(path) as gray:
        drawn = palette_image(gray, palette)
    name = f"{Path(path).stem}_{palette}"
    return outputs.save_png(drawn, f"{name}.png") if path.endswith(".png") else outputs.save_preview(drawn, name)


def painted(outputs: OutputStore, shown: list[tuple[str | None, str]], palette: str) -> list[str | None]:
    """Each (file, modality) a view shows: infrared in the palette, visible as it is."""
    return [paint(outputs, f, palette) if f and modality == "infrared" else f for f, modality in shown]


def decode(what: str, fn: Callable, path: str):
    """Run a decoder; an ImageError becomes a refusal naming the upload by its file name, not its temp path."""
    try:
        return fn()
    except ImageError as e:
        raise Refusal(f"{what}: {name_files(str(e), path)}", BAD_IMAGE) from None


@dataclass
class Translation:
    """One translated image: the files shown (input preview and prediction PNG, painted), the error map and
    score rows when there was a truth, a summary (the app adds its verdict on rows), and the gray files."""

    before: str
    png: str
    summary: str
    gray: list[tuple[str, str]]
    emap: str | None = None
    rows: list[MethodScore] = field(default_factory=list)


def translate_image(loaded: Loaded, outputs: OutputStore, image: str | None, truth: str | None = None,
                    palette: str = DEFAULT_PALETTE, progress: Callable = no_progress) -> Translation:
    """Translate one image; with a ground truth, also score it against the truth and the baselines."""
    d = loaded.direction
    if image is None:
        raise Refusal(f"Upload, paste or capture {a(d.source)} image first.", "No input")
    if loaded.translator is None:
        raise Refusal(loaded.problem, "No generator")
    progress(0.05, desc="decoding")
    source = decode("Input", lambda: load_image(image, d.source), image)
    target = None
    if truth is not None:
        target = decode("Ground truth", lambda: load_truth(truth, d.name, source.shape[-2:]), truth)
    h, w = source.shape[-2:]
    progress(0.2, desc=f"translating {w}x{h} on {loaded.translator.device}")
    start = time.perf_counter()
    prediction = loaded.translator.translate_tensor(source)  # at most its max_pixels (irvis.serving.load_direction)
    seconds = time.perf_counter() - start
    stem = Path(image).stem
    gray = [(outputs.save_preview(to_pil(source), f"{stem}_input"), d.source),
            (outputs.save_png(to_pil(prediction), f"{stem}_{d.name}.png"), d.target)]
    before, png = painted(outputs, gray, palette)
    result = Translation(before, png, f"Translated {w}x{h} {d.source} to {d.target} in {seconds:.1f} s on "
                                      f"{loaded.translator.device}.", gray)
    if target is not None:
        progress(0.6, desc="scoring against the ground truth and the baselines")
        source, target, prediction = at_scoring_size(source, target, prediction)
        result.rows = compare(d.name, source, target, prediction)
        result.emap = outputs.save_preview(error_map(prediction, target), f"{stem}_error")
        sh, sw = target.shape[-2:]
        result.summary += f" Scored at {sw}x{sh} (a large pair is scored scaled down)." if (sh, sw) != (h, w) else ""
    return result


@dataclass
class Shown:
    """One gallery pair in one direction: (input, prediction, truth) files painted, the error map, score rows,
    the summary's head and tail (the app puts its verdict on rows between them), and the gray files."""

    files: list[str | None]
    emap: str | None
    rows: list[MethodScore]
    head: str
    tail: str
    gray: list[tuple[str | None, str]]


class SampleShower:
    """Shows gallery pairs. The baselines' and the oracle's rows of each (pair, direction) seen depend on
    nothing else while the pair's files stay as they were, so a pair shown again scores only the model; bounded
    by the gallery's pairs, times two."""

    def __init__(self, generators: dict[str, Loaded], gallery: Gallery, outputs: OutputStore):
        self.generators, self.gallery, self.outputs = generators, gallery, outputs
        # (key, direction) -> (the files' size and modification time when scored, the rows)
        self.baseline_rows: dict[tuple[str, str], tuple[tuple, list[MethodScore]]] = {}

    def show(self, key: str | None, direction: str = "ir2vis", palette: str = DEFAULT_PALETTE,
             progress: Callable = no_progress) -> Shown:
        if not key:
            raise Refusal("Pick a pair in the gallery first.", "No sample")
        loaded = self.generators[get_direction(direction).name]
        try:
            sample = self.gallery.get(key)
            progress(0.1, desc="loading the pair")
            source, truth = sample_tensors(sample, direction, loaded.short_side)
        except ValueError as e:  # GalleryError, ImageError, DataError: a message for the page
            raise Refusal(str(e), "This sample cannot be shown") from None
        prediction = None
        if loaded.translator is not None:
            progress(0.3, desc="translating")
            prediction = loaded.translator.translate_tensor(source)
        progress(0.6, desc="scoring")
        seen, files = (key, loaded.direction.name), _file_state(sample)
        cached = self.baseline_rows.get(seen)
        rows = compare(direction, source, truth, prediction, cached[1] if cached and cached[0] == files else None)
        self.baseline_rows[seen] = (files, [r for r in rows if r.method != "model"])
        h, w = source.shape[-2:]
        size = (f"at {w}x{h}, native size" if loaded.short_side is None
                else f"at {w}x{h} (shorter side {loaded.short_side}, as evaluated)")
        head = f"**{key}** ({sample.split} split), {loaded.direction.label} {size}. "
        tail = f" {loaded.problem}" if prediction is None else ""
        name = key.replace("/", "_")
        d, outputs = loaded.direction, self.outputs
        gray = [(outputs.save_png(to_pil(t), f"{name}_{what}.png") if t is not None else None, modality)
                for t, what, modality in ((source, "input", d.source), (prediction, "prediction", d.target),
                                          (truth, "truth", d.target))]
        emap = outputs.save_preview(error_map(prediction, truth), f"{name}_error") if prediction is not None else None
        return Shown(painted(outputs, gray, palette), emap, rows, head, tail, gray)


def _file_state(sample) -> tuple:
    """The pair's files as they are now (size, modification time): a pair replaced on disk is scored again."""
    try:
        return tuple((st.st_size, st.st_mtime_ns) for st in (os.stat(sample.pair.infrared), os.stat(sample.pair.visible)))
    except OSError:
        return ()


def check_video(loaded: Loaded, video: str | None, folders) -> str:
    """The video a request names, if it can be translated: a generator, a video, an upload of this server."""
    if loaded.translator is None:
        raise Refusal(loaded.problem or "This direction's generator is not loaded.", "No generator")
    if not video:
        raise Refusal(f"Upload {a(loaded.direction.source)} video first.", "No video")
    try:  # a request may name any path: only uploads are read
        return uploaded_file(video, folders, "videos")
    except RequestRefused as e:
        raise Refusal(str(e), "This video cannot be used") from None


def translate_clip(loaded: Loaded, outputs: OutputStore, video: str, stop: threading.Event,
                   progress: Callable = no_progress) -> tuple[str, str]:
    """(MP4 path, summary) of a short video translated frame by frame within the VIDEO_MAX_* limits; stops at
    the next batch of frames once `stop` is set. A refused or cancelled video leaves nothing behind. Raises
    irvis.video's VideoError and VideoCancelled (their messages name the video by its file name)."""
    from irvis.video import VideoError, translate_video

    d = loaded.direction
    folder = outputs.folder()
    dst = folder / f"{Path(video).stem}_{d.name}.mp4"
    try:
        r = translate_video(loaded.translator, video, dst, max_seconds=VIDEO_MAX_SECONDS,
                            max_frame_pixels=VIDEO_MAX_FRAME_PIXELS, max_frames=VIDEO_MAX_FRAMES,
                            progress=lambda done, total: progress((done, total or None), desc="frames"),
                            cancelled=stop.is_set)
    except VideoError as e:
        outputs.discard(folder)
        raise type(e)(name_files(str(e), video)) from None
    except BaseException:
        outputs.discard(folder)  # not even its folder
        raise
    w, h = r["size"]
    return str(dst), (f"Translated {r['frames']} frames ({w}x{h}, {float(r['rate']):g} frames/s) in "
                      f"{r['seconds']:.1f} s ({r['frames_per_second']:.1f} frames/s) on {loaded.translator.device}.")


def measure_pair(outputs: OutputStore, infrared: str | None, visible: str | None,
                 study: dict | None = None) -> tuple[str, str]:
    """(figure PNG, sentences) of one registered pair a visitor brings, beside the shipped study's result."""
    from irvis.analysis.view import pair_study, pair_summary

    if not infrared or not visible:
        raise Refusal("Give both images of the pair, infrared and visible.", "A pair is needed")
    try:
        image, stats = pair_study(infrared, visible)
    except ValueError as e:  # ImageError included: the message names files, not server paths
        raise Refusal(name_files(str(e), infrared, visible), "This pair cannot be measured") from None
    return outputs.save_png(image, "pair_histograms.png"), pair_summary(stats, study)

