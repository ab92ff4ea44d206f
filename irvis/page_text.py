"""What the app's page says: its introduction, the help beside each tab and the legends, in one place, so
app.py is the page's wiring and the wording can be read (and changed) as text."""

from __future__ import annotations

from irvis.compare import ERROR_MAP_MAX
from irvis.directions import Direction
from irvis.handlers import a
from irvis.metrics import registered
from irvis.serving import VIDEO_MAX_SECONDS

LLVIP_URL = "https://bupt-ai-cz.github.io/LLVIP/"

INTRO = """# irvis: thermal infrared ⇄ visible
Translate a **thermal-infrared** photograph into a **visible-light** one, or the reverse, with Pix2Pix-style
generators trained on registered infrared/visible pairs (LLVIP and similar). Upload your own image in the first
two tabs (optionally with its ground truth, to score the result) or click one of the examples under them, or pick
a paired sample in **Gallery**. Infrared images can be shown in a thermal palette (white-hot, black-hot, ironbow,
inferno); scores are always computed on the gray data."""



def legend() -> str:
    """Under each score table: which way each metric is better (the registry's), what baselines and the oracle are."""
    exceptions = [f"{m.short_label or m.label}: {'lower' if m.higher_is_better is False else 'nearest 1, the truth’s'}"
                  for m in registered(scored=True) if m.higher_is_better is not True]
    better = "Higher is better" + (f" ({'; '.join(exceptions)})" if exceptions else "") + "."
    return f"""{better} **Baselines** are simple rules that see only the input (e.g. *infrared_as_rgb*: the
infrared image itself shown as gray); a model is worth something where it beats them. The **oracle** fits the best
global brightness/colour map on the truth itself: an upper bound for any such rule. Error map: |prediction − truth|,
black = 0, pale yellow = {ERROR_MAP_MAX} or more."""

NO_GALLERY = f"""**No gallery data.** The gallery shows registered infrared/visible pairs from a
folder in LLVIP's layout (`DIR/infrared/test/NAME.jpg` ↔ `DIR/visible/test/NAME.jpg`); by default the sample
pairs in the project's `samples/` folder.

1. Get LLVIP from [{LLVIP_URL}]({LLVIP_URL}) (free for non-commercial research; cite Jia et al., ICCV-W 2021)
   and unpack it, or use any dataset in the same layout.
2. Start the app with `python app.py --gallery /path/to/LLVIP`, or set `IRVIS_GALLERY=/path/to/LLVIP`.
   A Hugging Face dataset in that layout works too: `--gallery hf://datasets/OWNER/NAME`."""

GALLERY_HELP = ("Each thumbnail shows a pair split down the middle: **infrared left, visible right**; test-split pairs "
                "come first (the generators never saw them). Pick one to translate it in the chosen direction and "
                "compare with its ground truth.")

ABOUT_FOOTER = ("Source, training and evaluation commands: the project README. Per-image scores in this app use the same "
                "metrics as the evaluation (irvis.metrics: PSNR and SSIM, data range 1, infrared in one channel, visible "
                "in RGB; sharpness is the prediction's mean Sobel gradient over the truth's, 1 being right and near 0 a "
                "blur; gradient correlation says whether edges are in the right places; VIF is the visual information "
                "fidelity).")

STUDY_INTRO = ("Does a pixel's visible appearance (brightness, colour) predict its thermal intensity, and how much does "
               "context add? Measured on the sample sets by `python -m irvis analyze` (see the README); 95% intervals "
               "are bootstrap over images, resampled within sets.")

STUDY_PAIR = ("### Your pair\nUpload a registered infrared/visible pair of one scene to see its own joint histograms and "
              "correlations.")


def translate_help(d: Direction) -> str:
    return (f"Give {a(d.source).split()[0]} **{d.source}** image (upload, paste, or webcam) and press **Translate**. "
            f"Optionally add the registered **{d.target}** image of the same scene as ground truth, to see where and "
            "by how much the prediction errs.")


def video_help(d: Direction) -> str:
    return (f"Upload {a(d.source)} video (MP4, AVI, MKV, MOV or WebM) of at most {VIDEO_MAX_SECONDS} seconds and at "
            "most Full HD (1920x1080): every frame is translated and you get an MP4 at the same frame rate (sound is "
            "dropped). Longer or larger videos: `python -m irvis translate VIDEO` (see the README).")


def no_study(folder_name: str) -> str:
    return (f"No study in `{folder_name}`: write one with `python -m irvis analyze --data ../shared/data "
            "--out results/study`.")
