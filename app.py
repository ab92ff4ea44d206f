"""irvis in the browser: thermal infrared <-> visible translation, compared with the truth, on a gallery.

    python app.py [--host H] [--port P] [--gallery DIR] [--weights-ir2vis W] [--weights-vis2ir W]

With no flags it serves the shipped generators (weights/) and the shipped sample pairs (samples/), as a
Hugging Face Space does.

UI wiring only: decoding, translation, scores and their tables, error maps, the gallery and the model cards all
come from irvis; what a request may read is irvis.uploads, what is served and its limits irvis.serving, where
results go irvis.hosting, what the page says irvis.page_text. Scripts use the endpoints /ir2vis, /vis2ir and
/gallery through gradio_client.

Why one file: it is the Space's app_file and holds one page; its sections (handlers, the tabs, the command
line) share the page's components and the per-request limits (from irvis.serving, set by the command line).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from pathlib import Path

try:  # On a Hugging Face ZeroGPU Space, spaces.GPU lends a GPU per call; it must be imported before torch.
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn

import gradio as gr

from irvis import page_text as text
from irvis import serving, uploads
from irvis.colormap import DEFAULT_PALETTE, PALETTES
from irvis.compare import Gallery, score_headers, score_table, verdict
from irvis.directions import DIRECTIONS
from irvis.handlers import (Refusal, SampleShower, check_video, measure_pair, painted, translate_clip,
                            translate_image)
from irvis.hosting import BodyLimit, OutputStore, RequestRefused, SecurityHeaders
from irvis.metrics import SCORING_SHORT_SIDE
from irvis.serving import (MAX_BODY_BYTES, MAX_FILE_BYTES, MAX_TEMP_BYTES, OUTPUT_MAX_AGE_S,
                           TRANSLATE_MAX_PIXELS, VIDEO_MAX_SECONDS, Loaded, about, example_files, example_samples,
                           gallery_name, load_gallery, parse_args, status_line)
from irvis.uploads import accept_image, scrub_paths
from irvis.uploads import public_name  # noqa: F401 (named by tests and hosting scripts as app.public_name)

ROOT = Path(__file__).resolve().parent
EXAMPLES = 4  # per upload tab, spread over the gallery's test pairs
DEFAULT_SHORT_SIDE = SCORING_SHORT_SIDE  # irvis.evaluate's default protocol, used when a generator has no evaluation.json


# ---------------------------------------------------------------------------------------------------
# Loading


def load_direction(name: str, spec: str | os.PathLike | None) -> Loaded:
    """One direction's generator as this app serves it (irvis.serving.load_direction with the app's limits)."""
    return serving.load_direction(name, spec, TRANSLATE_MAX_PIXELS, DEFAULT_SHORT_SIDE)


# ---------------------------------------------------------------------------------------------------
# Handlers: decode, call irvis, shape the results for the components


def refusal(message: str, title: str) -> gr.Error:
    """The message a visitor reads for input the app cannot use. Not a server fault: no traceback in the log."""
    return gr.Error(message, title=title, print_exception=False)


def upload_folders() -> list[str]:
    """The only folders an input may be read from: Gradio's upload folder (uploads, pasted and webcam images,
    copies of the examples) and its examples cache."""
    from gradio.utils import get_cache_folder, get_upload_folder

    return [get_upload_folder(), get_cache_folder()]


def is_upload(path: str) -> bool:
    """Whether a path a request names is a file uploaded to this server (not any other file on it)."""
    return uploads.is_upload(path, upload_folders())


def upload_image(outputs: OutputStore, **kwargs) -> gr.Image:
    """A gr.Image whose upload reaches irvis untouched: Gradio's own decoding would fail on a non-image
    with a bare PIL message and would squash 16-bit infrared to 8 bits; irvis.images handles both.
    A request may name any path, so every path is checked to be an upload of this server before anything
    opens it. (Not a subclass: Gradio writes a .pyi stub beside any module that defines a component class.)"""
    component = gr.Image(type="filepath", image_mode=None, **kwargs)

    def preprocess(payload):
        if payload is None:
            return None
        try:  # a data: URL is held to the upload limit before it is decoded or stored
            return accept_image(payload.url, payload.path, upload_folders(), MAX_FILE_BYTES, outputs)
        except RequestRefused as e:
            raise refusal(str(e), "This image cannot be used") from None

    component.preprocess = preprocess
    return component


def refused(fn):
    """fn with irvis.handlers' Refusal shown to the visitor as a refusal (the same sentence and title)."""
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Refusal as e:
            raise refusal(str(e), e.title) from None

    return call


def make_translate(loaded: Loaded, outputs: OutputStore):
    @gpu
    def translate(image: str | None, truth: str | None = None, palette: str = DEFAULT_PALETTE,
                  progress=gr.Progress()):
        """Translate one image; with a ground truth, also score it against the truth and the baselines.
        Returns (prediction PNG, before/after pair, download PNG, error map, scores table, summary, the gray
        files for a later palette); infrared images are shown in `palette`."""
        r = refused(translate_image)(loaded, outputs, image, truth, palette, progress)
        summary = r.summary + (" " + verdict(r.rows) if r.rows else "")
        return r.png, (r.before, r.png), r.png, r.emap, score_table(r.rows) if r.rows else [], summary, r.gray

    return translate


def make_show_sample(generators: dict[str, Loaded], gallery: Gallery, outputs: OutputStore):
    shower = SampleShower(generators, gallery, outputs)

    @gpu
    def show_sample(key: str | None, direction: str = "ir2vis", palette: str = DEFAULT_PALETTE,
                    progress=gr.Progress()):
        """One gallery pair in one direction: (input, prediction, truth, error map, scores table, summary, the
        gray files for a later palette); infrared images are shown in `palette`."""
        r = refused(shower.show)(key, direction, palette, progress)
        return (*r.files, r.emap, score_table(r.rows), r.head + verdict(r.rows) + r.tail, r.gray)

    return show_sample


# ---------------------------------------------------------------------------------------------------
# Page


def make_translate_video(loaded: Loaded, outputs: OutputStore):
    from irvis.video import VideoCancelled, VideoError

    translate_file = gpu(translate_clip)

    async def translate_video_clip(video: str | None, progress=gr.Progress()):
        """The work runs in a thread; when the request is cancelled or its client goes away, Gradio cancels
        this coroutine, and the thread is told to stop at its next batch of frames (its decoder, memory and
        the translator's slot freed within one batch), instead of running on unseen."""
        video = refused(check_video)(loaded, video, upload_folders())
        stop = threading.Event()
        context = contextvars.copy_context()  # Gradio's progress reporting reads the request from context variables
        work = asyncio.get_running_loop().run_in_executor(None, context.run, translate_file, loaded, outputs, video,
                                                          stop, progress)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            raise
        except VideoCancelled:
            raise refusal("The video was cancelled.", title="Cancelled") from None
        except VideoError as e:
            raise refusal(str(e), title="This video cannot be used") from None

    return translate_video_clip


def translate_tab(loaded: Loaded, outputs: OutputStore, examples: list[list[str]]):
    d = loaded.direction
    with gr.Tab(d.label, id=d.name):
        if loaded.problem:
            gr.Markdown(f"⚠️ {loaded.problem}")
        gr.Markdown(text.translate_help(d))
        with gr.Row(equal_height=True):
            image = upload_image(outputs, label=f"Input ({d.source})", height=340, elem_id=f"{d.name}-input")
            prediction = gr.Image(label=f"Prediction ({d.target})", type="filepath", format="png", interactive=False,
                                  height=340, elem_id=f"{d.name}-prediction")
            truth = upload_image(outputs, label=f"Ground truth ({d.target}, optional)", sources=["upload", "clipboard"],
                                 height=340, elem_id=f"{d.name}-truth")
        with gr.Row():
            button = gr.Button("Translate", variant="primary", elem_id=f"{d.name}-translate")
            palette = palette_choice(f"the infrared {'input' if d.source == 'infrared' else 'prediction'}",
                                     f"{d.name}-palette", scale=2)
            download = gr.DownloadButton("Download prediction (PNG, full resolution)", elem_id=f"{d.name}-download")
        if examples:  # on the first screen, so a first visit has something to click; the truth comes along
            gr.Examples(examples, inputs=[image, truth], visible_columns=[0], elem_id=f"{d.name}-examples",
                        label="Examples: click one to load it with its ground truth, then Translate")
        summary = gr.Markdown(elem_id=f"{d.name}-summary")
        slider = gr.ImageSlider(label="Before / after: drag the handle", type="filepath", format="jpeg",
                                max_height=520, elem_id=f"{d.name}-slider")
        with gr.Row():
            emap = gr.Image(label="Error map (needs a ground truth)", interactive=False, format="jpeg", height=300)
            with gr.Column():
                table = gr.Dataframe(headers=score_headers(), label="Scores on this image (needs a ground truth)",
                                     interactive=False, elem_id=f"{d.name}-table")
                gr.Markdown(text.legend())
        gray = gr.State()  # the shown images' gray files, drawn again when the palette changes
        results = [prediction, slider, download, emap, table, summary, gray]
        button.click(make_translate(loaded, outputs), inputs=[image, truth, palette], outputs=results,
                     api_name=d.name, concurrency_id="generator")
        # a new input makes the old results wrong: clear them rather than show them beside it
        image.change(lambda: (None, None, None, None, [], "", None), outputs=results, api_visibility="private",
                     queue=False)

        def repaint(shown, name):
            if not shown:
                return [gr.skip()] * 3
            before, png = painted(outputs, shown, name)
            return png, (before, png), png

        palette.change(repaint, inputs=[gray, palette], outputs=[prediction, slider, download],
                       api_visibility="private")
        with gr.Accordion(f"Short video ({d.source} → {d.target}, at most {VIDEO_MAX_SECONDS} s)", open=False):
            gr.Markdown(text.video_help(d))
            with gr.Row(equal_height=True):
                clip = gr.Video(label=f"Input video ({d.source})", sources=["upload"], height=300,
                                elem_id=f"{d.name}-video-input")
                clip_out = gr.Video(label=f"Prediction ({d.target})", interactive=False, height=300,
                                    elem_id=f"{d.name}-video-prediction")
            clip_button = gr.Button("Translate video", elem_id=f"{d.name}-video-translate")
            clip_summary = gr.Markdown(elem_id=f"{d.name}-video-summary")
        clip_button.click(make_translate_video(loaded, outputs), inputs=[clip], outputs=[clip_out, clip_summary],
                          api_name=f"{d.name}_video", concurrency_id="generator")


def palette_choice(what: str, elem_id: str, **layout) -> gr.Radio:
    return gr.Radio(list(PALETTES), value=DEFAULT_PALETTE, label=f"Thermal palette for {what}", elem_id=elem_id,
                    **layout)


def gallery_tab(generators: dict[str, Loaded], gallery: Gallery | None, thumbs: list, problem: str | None,
                outputs: OutputStore):
    with gr.Tab("Gallery", id="gallery"):
        if gallery is None:
            why = f"⚠️ The gallery source cannot be shown: {problem}\n\n" if problem else ""
            gr.Markdown(why + text.NO_GALLERY, elem_id="gallery-help")
            return
        notes = scrub_paths("; ".join(gallery.notes))
        gr.Markdown(f"{len(gallery.samples)} pairs from `{gallery_name(gallery.source)}`" + (f" ({notes})" if notes else "")
                    + ". " + text.GALLERY_HELP)
        with gr.Row():
            direction = gr.Radio([(g.direction.label, name) for name, g in generators.items()], value="ir2vis",
                                 label="Direction", elem_id="gallery-direction", scale=2)
            key = gr.Dropdown([s.key for s in gallery.samples], value=None, label="Sample", elem_id="gallery-sample",
                              allow_custom_value=True)  # an unknown key gets the gallery's message, not a traceback
            palette = palette_choice("infrared images", "gallery-palette", scale=2)
        thumbs_view = gr.Gallery(thumbs, label="Pairs (left half infrared, right half visible)", columns=6,
                                 height=380, allow_preview=False, object_fit="contain", elem_id="gallery-thumbs")
        summary = gr.Markdown(elem_id="gallery-summary")
        with gr.Row(equal_height=True):
            shown = [gr.Image(label=label, interactive=False, format="png", height=300, elem_id=f"gallery-{eid}")
                     for label, eid in (("Input", "input"), ("Prediction", "prediction"), ("Ground truth", "truth"))]
        with gr.Row():
            emap = gr.Image(label="Error map", interactive=False, format="jpeg", height=300)
            with gr.Column():
                table = gr.Dataframe(headers=score_headers(), label="Scores on this pair", interactive=False,
                                     elem_id="gallery-table")
                gr.Markdown(text.legend())
        thumbs_view.select(_pick(gallery), outputs=key, api_visibility="private", queue=False)
        show = make_show_sample(generators, gallery, outputs)
        gray = gr.State()
        results = [*shown, emap, table, summary, gray]
        key.change(show, inputs=[key, direction, palette], outputs=results, api_name="gallery",
                   concurrency_id="generator")
        direction.change(_unless_no_key(show), inputs=[key, direction, palette], outputs=results,
                         api_visibility="private", concurrency_id="generator")
        palette.change(lambda files, name: painted(outputs, files, name) if files else [gr.skip()] * 3,
                       inputs=[gray, palette], outputs=shown, api_visibility="private")


def _unless_no_key(show):
    """Switching direction before any pair is picked changes nothing (and raises no error)."""

    def on_direction(key: str | None, direction: str, palette: str, progress=gr.Progress()):
        return show(key, direction, palette, progress) if key else [gr.skip()] * 7

    return on_direction


def _pick(gallery: Gallery):
    def pick(evt: gr.SelectData) -> str:
        return gallery.samples[evt.index].key

    return pick


def generator_about(loaded: Loaded):
    text = about(loaded)
    gr.Markdown(text.title)
    if text.problem is not None:
        gr.Markdown(f"⚠️ {text.problem}")
        return
    gr.Markdown(text.summary)
    if text.evaluation is not None:
        with gr.Accordion(text.evaluation_title, open=True):
            gr.Markdown(text.evaluation)
    else:
        gr.Markdown(text.no_evaluation)
    if text.card:
        with gr.Accordion("Model card", open=False):
            gr.Markdown(text.card)


def about_tab(generators: dict[str, Loaded]):
    with gr.Tab("About", id="about"):
        with gr.Row():
            for loaded in generators.values():
                with gr.Column():
                    generator_about(loaded)
        gr.Markdown(text.ABOUT_FOOTER)


STUDY_DIR = ROOT / "results" / "study"


def study_tab(outputs: OutputStore, folder: Path = STUDY_DIR):
    """Does visible appearance predict infrared? The study of the shipped data, read from the folder
    `python -m irvis analyze` wrote (numbers and plots, no image of the data), and the same measurements
    for a registered pair the visitor brings (endpoint /study_pair: figure, sentences)."""
    from irvis.analysis.view import headline_rows, read_study

    study = read_study(folder)
    with gr.Tab("Study", id="study"):
        if study is None:
            gr.Markdown(text.no_study(folder.name), elem_id="study-missing")
        else:
            gr.Markdown(text.STUDY_INTRO)
            gr.Dataframe(headline_rows(study.result), headers=["quantity", "value", "95% interval"],
                         interactive=False, label="Headline numbers, all sets", elem_id="study-table")
            with gr.Accordion("Conclusions", open=False):
                gr.Markdown("\n".join(f"- {line}" for line in study.result["conclusions"]), elem_id="study-conclusions")
            for path, label in ((study.receptive_field, "Test scores vs receptive field, both directions"),
                                (study.histograms, "Joint histograms per set (log pixel count; white: mean per column)"),
                                (study.per_image, "Within-image correlation of infrared and luminance, per image")):
                if path is not None:
                    gr.Image(str(path), label=label, interactive=False, format="png")
        gr.Markdown(text.STUDY_PAIR)
        with gr.Row(equal_height=True):
            infrared = upload_image(outputs, label="Infrared", sources=["upload", "clipboard"], height=260, elem_id="study-ir")
            visible = upload_image(outputs, label="Visible", sources=["upload", "clipboard"], height=260, elem_id="study-vis")
        button = gr.Button("Measure this pair", variant="primary", elem_id="study-measure")
        figure = gr.Image(label="This pair: x luminance / redness / visible gradient, y infrared / infrared gradient",
                          interactive=False, format="png", elem_id="study-pair-figure")
        summary = gr.Markdown(elem_id="study-pair-summary")

        def measure(ir_path: str | None, vis_path: str | None):
            return refused(measure_pair)(outputs, ir_path, vis_path, study.result if study else None)

        button.click(measure, inputs=[infrared, visible], outputs=[figure, summary], api_name="study_pair")


def build_demo(generators: dict[str, Loaded], gallery_spec: str | None = None) -> gr.Blocks:
    gallery, thumbs, problem = load_gallery(gallery_spec)
    examples = example_samples(gallery, EXAMPLES)
    from gradio.utils import get_upload_folder

    # inside Gradio's own upload folder, so Gradio serves results where they are instead of copying each one
    outputs = OutputStore(Path(get_upload_folder()) / "irvis-outputs", max_bytes=MAX_TEMP_BYTES,
                          max_age_s=OUTPUT_MAX_AGE_S)
    with gr.Blocks(title="irvis: infrared ⇄ visible", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(text.INTRO)
        gr.Markdown("Generators: " + " · ".join(status_line(g) for g in generators.values()), elem_id="status")
        with gr.Tabs():
            for loaded in generators.values():
                translate_tab(loaded, outputs, [example_files(s, loaded.direction) for s in examples])
            gallery_tab(generators, gallery, thumbs, problem, outputs)
            about_tab(generators)
            study_tab(outputs)
    return demo


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    global MAX_FILE_BYTES, MAX_TEMP_BYTES
    os.environ["IRVIS_MAX_PIXELS"] = str(args.max_pixels)  # every decode in this process: uploads and gallery
    MAX_FILE_BYTES, MAX_TEMP_BYTES = args.max_file_size, args.max_temp_size
    generators = {name: load_direction(name, getattr(args, f"weights_{name}")) for name in DIRECTIONS}
    for g in generators.values():
        print(status_line(g).replace("**", "") + (f" ({g.problem})" if g.problem else ""), flush=True)
    demo = build_demo(generators, args.gallery)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)
    from starlette.middleware import Middleware

    middleware = [Middleware(SecurityHeaders),  # outermost: refusals carry the headers too
                  Middleware(BodyLimit, other_bytes=MAX_BODY_BYTES, upload_bytes=args.max_file_size + 2**20)]
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=args.max_file_size, show_error=True,
                footer_links=["api"], app_kwargs={"middleware": middleware})


if __name__ == "__main__":
    main()
