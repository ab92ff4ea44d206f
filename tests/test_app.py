"""The Gradio app through its public API (gradio_client), on the real sample data, plus the irvis.compare
computations behind it. Generators are real but randomly initialised: these tests check wiring, sizes,
modes, scores and messages, never image quality."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from irvis.compare import (GalleryError, compare, error_map, gallery_roots, load_truth, open_gallery, read_card,
                           score_headers, score_table, thumbnail, verdict)
from irvis.data import discover_pairs
from irvis.images import ImageError, load_image, luminance
from irvis.metrics import psnr, score_image, ssim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile.server import serve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]  # app.py lives here; conftest.py puts it on sys.path
DATA = ROOT.parent / "shared" / "data"
LLVIP = DATA / "llvip"
PIXEL_LIMIT = 2_000_000  # the app under test refuses more; LLVIP's 1280x1024 (1.3 MP) passes
MAX_FILE_SIZE = "1mb"
EVAL_SHORT_SIDE = 64  # the test generators' evaluation protocol, which the gallery follows


# ---------------------------------------------------------------------------------------------------
# Helpers shared with test_browser.py


def make_weights(folder: Path) -> dict[str, Path]:
    """Both generators, seeded, with a model card and an evaluation.json written by irvis.evaluate on
    two LLVIP test pairs, so the About tab and the gallery's size protocol have real files to read."""
    from irvis.evaluate import evaluate
    from irvis.nets import build_generator, save_generator
    from irvis.translate import Translator

    pairs = discover_pairs([LLVIP], "test").pairs[:2]
    out = {}
    for direction in ("ir2vis", "vis2ir"):
        torch.manual_seed(0)
        path = save_generator(build_generator(direction), folder / direction)
        result, _ = evaluate(Translator.from_pretrained(path, device="cpu"), pairs, short_side=EVAL_SHORT_SIDE,
                             progress=False, lpips=False, fid=False)
        (path / "evaluation.json").write_text(json.dumps(result))
        (path / "README.md").write_text(f"---\nlicense: cc-by-nc-4.0\ndatasets:\n- llvip\n---\n# Test {direction}\n"
                                        "Randomly initialised, for wiring tests.\n")
        out[direction] = path
    return out


@contextlib.contextmanager
def running_app(args: list[str], timeout: float = 180.0):
    """`python app.py ARGS` through tests/hostile/server.serve, with this file's pixel limit; yields
    (url, seconds from start to ready); always stops it."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir, serve(args, Path(workdir), env={"IRVIS_MAX_PIXELS": str(PIXEL_LIMIT)},
                                                         timeout=timeout) as server:
        yield server.url, time.perf_counter() - start


def first_pair(root: Path, split: str = "test"):
    return discover_pairs([root], split).pairs[0]


# ---------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    return make_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def app_url(weights):
    args = ["--weights-ir2vis", str(weights["ir2vis"]), "--weights-vis2ir", str(weights["vis2ir"]),
            "--gallery", str(LLVIP), "--max-file-size", MAX_FILE_SIZE]
    with running_app(args) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(app_url, tmp_path_factory):
    from gradio_client import Client

    return Client(app_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def upload(path):
    from gradio_client import handle_file

    return handle_file(str(path)) if path is not None else None


def table_rows(table: dict) -> dict[str, tuple[float, float]]:
    assert table["headers"][:3] == ["method", "PSNR (dB)", "SSIM"]
    return {row[0]: (float(row[1]), float(row[2])) for row in table["data"]}


# ---------------------------------------------------------------------------------------------------
# Translate endpoints


def test_ir2vis_llvip_frame_gives_full_resolution_png(client):
    source = first_pair(LLVIP).infrared  # 1280x1024, stored as 3-channel gray JPEG
    prediction, slider, download, emap, table, summary = client.predict(upload(source), None, api_name="/ir2vis")
    with Image.open(prediction) as img:
        assert (img.format, img.size, img.mode) == ("PNG", (1280, 1024), "RGB")
    with Image.open(download) as img:
        assert (img.format, img.size) == ("PNG", (1280, 1024))
    assert Path(download).name == f"{source.stem}_ir2vis.png"
    before, after = slider
    with Image.open(before) as img:
        assert img.size == (1280, 1024)
    assert emap is None and table["data"] == []
    assert "1280x1024 infrared to visible" in summary


def test_vis2ir_with_truth_scores_model_and_baselines_at_full_resolution(client):
    pair = first_pair(DATA / "msrs")  # 640x480
    prediction, _, _, emap, table, summary = client.predict(upload(pair.visible), upload(pair.infrared),
                                                            api_name="/vis2ir")
    with Image.open(prediction) as img:
        assert (img.size, img.mode) == ((640, 480), "L")
        predicted = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255)[None]
    with Image.open(emap) as img:
        assert (img.size, img.mode) == ((640, 480), "RGB")
    rows = table_rows(table)
    assert list(rows) == ["model (this generator)", "baseline: luminance", "baseline: inverted_luminance",
                          "baseline: mid_gray", "oracle: affine (sees the truth)"]
    # independent check of the wiring: the app compared against this truth, at native size
    truth = load_image(pair.infrared, "infrared")
    visible = load_image(pair.visible, "visible")
    assert rows["baseline: luminance"][0] == pytest.approx(float(psnr(luminance(visible), truth)[0]), abs=0.01)
    assert rows["baseline: luminance"][1] == pytest.approx(float(ssim(luminance(visible), truth)[0]), abs=1e-4)
    assert rows["model (this generator)"][0] == pytest.approx(float(psnr(predicted, truth)[0]), abs=0.05)
    assert "best baseline" in summary
    # the model row scores the very prediction returned: given as the truth, it is (up to the 8-bit
    # rounding of its PNG) a perfect score, and every baseline falls short of it
    *_, table, summary = client.predict(upload(pair.visible), upload(prediction), api_name="/vis2ir")
    rows = table_rows(table)
    assert rows["model (this generator)"][0] > 50 and rows["model (this generator)"][1] > 0.99
    assert all(psnr_ < 50 for name, (psnr_, _) in rows.items() if name.startswith("baseline"))


def test_ir2vis_with_truth_single_channel_infrared(client):
    pair = first_pair(DATA / "roadscene")  # infrared stored as 1-channel JPEG, odd size 507x346
    prediction, _, _, emap, table, _ = client.predict(upload(pair.infrared), upload(pair.visible),
                                                      api_name="/ir2vis")
    with Image.open(prediction) as img:
        assert (img.size, img.mode) == ((507, 346), "RGB")
    with Image.open(emap) as img:
        assert img.size == (507, 346)
    rows = table_rows(table)
    assert {"baseline: infrared_as_rgb", "oracle: affine (sees the truth)"} <= set(rows)
    oracle_psnr, oracle_ssim = rows["oracle: affine (sees the truth)"]
    assert 0 < oracle_psnr < 100 and -1 <= oracle_ssim <= 1


def test_16_bit_infrared_is_accepted(client, tmp_path):
    raw = np.linspace(20000, 24000, 96 * 128, dtype=np.float64).reshape(96, 128).astype(np.uint16)
    Image.fromarray(raw).save(tmp_path / "radiometric.png")  # mode I;16, as thermal cameras write
    prediction, *_, summary = client.predict(upload(tmp_path / "radiometric.png"), None, api_name="/ir2vis")
    with Image.open(prediction) as img:
        assert (img.size, img.mode) == ((128, 96), "RGB")
    assert "128x96" in summary


# ---------------------------------------------------------------------------------------------------
# Gallery endpoint


def test_gallery_pair_in_both_directions(client):
    key = "llvip/test/" + first_pair(LLVIP).name
    source, prediction, truth, emap, table, summary = client.predict(key, "vis2ir", api_name="/gallery")
    with Image.open(source) as a, Image.open(prediction) as b, Image.open(truth) as c:
        # shorter side as in the generators' evaluation.json; visible in, infrared out
        assert (a.size, a.mode, b.mode, c.mode) == ((80, EVAL_SHORT_SIDE), "RGB", "L", "L")
        assert b.size == c.size == a.size
    assert len(table["data"]) == 5 and key in summary and "test split" in summary
    *_, again, summary_again = client.predict(key, "vis2ir", api_name="/gallery")  # baselines' rows from its cache
    assert (again, summary_again) == (table, summary)
    source, prediction, *_ = client.predict(key, "ir2vis", api_name="/gallery")
    with Image.open(source) as a, Image.open(prediction) as b:
        assert (a.mode, b.mode) == ("L", "RGB")


# ---------------------------------------------------------------------------------------------------
# Bad inputs get a message


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.jpg").write_text("this is a text file, not a photograph")
    data = first_pair(LLVIP).infrared.read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.new("L", (1600, 1300)).save(d / "too_many_pixels.png")  # 2.08 MP > PIXEL_LIMIT, a small file
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    Image.fromarray(noise).save(d / "too_large.png")  # ~1.5 MB, over MAX_FILE_SIZE
    Image.new("RGB", (64, 48)).save(d / "small_truth.png")
    return d


@pytest.mark.parametrize("name, message", [
    ("notes.jpg", "Input: notes.jpg: not an image this tool can read"),
    ("truncated.jpg", "Input: truncated.jpg: corrupt or truncated image"),
    ("too_many_pixels.png", "1600x1300 is 2.1 megapixels, over the limit of 2 megapixels"),
])
def test_bad_upload_gets_its_message(client, bad_files, name, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(upload(bad_files / name), None, api_name="/ir2vis")
    assert message in str(err.value)
    assert "/tmp" not in str(err.value) and "Traceback" not in str(err.value)


def test_truth_of_another_size_is_refused(client, bad_files):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="the ground truth is 64x48 but the input is 640x480"):
        client.predict(upload(first_pair(DATA / "msrs").infrared), upload(bad_files / "small_truth.png"),
                       api_name="/ir2vis")


def test_missing_input_and_unknown_sample(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Upload, paste or capture a visible image first"):
        client.predict(None, None, api_name="/vis2ir")
    with pytest.raises((AppError, ValueError), match="no sample|not in the list of choices"):
        client.predict("llvip/test/nope", "ir2vis", api_name="/gallery")


def test_upload_over_the_size_limit_is_refused(client, bad_files):
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(upload(bad_files / "too_large.png"), None, api_name="/ir2vis")


# ---------------------------------------------------------------------------------------------------
# The page itself: what a first-time visitor reads


def test_page_lists_tabs_generators_and_about_figures(app_url, weights):
    with urllib.request.urlopen(app_url + "config", timeout=10) as r:
        config = json.loads(r.read())
    texts = json.dumps(config)
    for tab in ("Infrared -> Visible", "Visible -> Infrared", "Gallery", "About"):
        assert f'"label": "{tab}"' in texts or f'"{tab}"' in texts
    names = {d.get("api_name") for d in config["dependencies"]}
    assert {"ir2vis", "vis2ir", "gallery"} <= names
    assert "Trained on: llvip" in texts
    # weights are named, never located: no server path in the page a visitor gets
    assert "`…/ir2vis`" in json.dumps(config, ensure_ascii=False) and str(weights["ir2vis"].parent) not in texts and str(LLVIP) not in texts
    # About shows the evaluation figures of evaluation.json, model against the baselines
    result = json.loads((weights["vis2ir"] / "evaluation.json").read_text())
    assert f"| **model** | {result['model']['psnr']:.2f} |" in texts
    assert "baseline: inverted_luminance" in texts


def test_app_without_weights_or_gallery_explains_itself(tmp_path):
    """Started with weights that are not there and no gallery (--gallery ''): the page says so per direction
    and the endpoints answer with the same message instead of failing."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    missing = tmp_path / "nothing-here"
    with running_app(["--weights-ir2vis", str(missing), "--weights-vis2ir", str(missing), "--gallery", ""]) as (url, _):
        with urllib.request.urlopen(url + "config", timeout=10) as r:
            page = r.read().decode()
        assert page.count("nothing-here: no such folder") >= 2 and str(tmp_path) not in page
        assert "No gallery data" in page and "IRVIS_GALLERY" in page and "--gallery" in page
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="No Visible -> Infrared generator"):
            client.predict(upload(first_pair(LLVIP).visible), None, api_name="/vis2ir")


def test_weights_of_the_other_direction_are_refused(weights):
    import app

    loaded = app.load_direction("ir2vis", weights["vis2ir"])
    assert loaded.translator is None
    assert "holds a vis2ir generator, not ir2vis" in loaded.problem and "--weights-vis2ir" in loaded.problem


# ---------------------------------------------------------------------------------------------------
# irvis.compare on its own


def test_error_map_uses_a_fixed_scale():
    truth = torch.full((3, 8, 10), 0.5)
    same = np.asarray(error_map(truth.clone(), truth))
    assert same.shape == (8, 10, 3) and (same == same[0, 0]).all() and same[0, 0].max() < 10  # black
    off = truth.clone()
    off[:, :, 5:] = 1.0  # right half off by 0.5: the top of the scale
    colors = np.asarray(error_map(off, truth))
    assert (colors[:, :5] == same[0, 0]).all() and colors[0, 9].min() > 150  # pale yellow


def test_compare_rows_match_irvis_metrics():
    pair = first_pair(DATA / "msrs")
    ir = load_image(pair.infrared, "infrared")
    vis = load_image(pair.visible, "visible")
    rows = {r.method: r for r in compare("ir2vis", ir, vis, prediction=None)}
    # the methods as every report names them (irvis.metrics.method_predictions), scores as score_image gives them
    assert list(rows) == ["baseline:infrared_as_rgb", "baseline:inverted_infrared_as_rgb", "baseline:mid_gray",
                          "oracle:affine"]
    gray = ir.expand(3, -1, -1)
    assert rows["baseline:infrared_as_rgb"].psnr == pytest.approx(float(psnr(gray, vis)[0]))
    assert rows["baseline:infrared_as_rgb"].scores == score_image(gray, vis)
    assert rows["oracle:affine"].psnr > rows["baseline:mid_gray"].psnr
    perfect = compare("ir2vis", ir, vis, prediction=vis)[0]
    assert (perfect.method, perfect.psnr, perfect.ssim) == ("model", 100.0, pytest.approx(1.0))
    # the baselines' rows of an earlier call: only the model is scored, the table is the same
    assert compare("ir2vis", ir, vis, vis, baseline_rows=list(rows.values())) == compare("ir2vis", ir, vis, vis)


def test_the_apps_table_and_verdict_show_compares_rows():

    pair = first_pair(DATA / "msrs")
    ir = load_image(pair.infrared, "infrared")
    vis = load_image(pair.visible, "visible")
    rows = compare("ir2vis", ir, vis, prediction=ir.expand(3, -1, -1).clone())
    table = score_table(rows)
    assert [r[0] for r in table] == ["model (this generator)", "baseline: infrared_as_rgb",
                                     "baseline: inverted_infrared_as_rgb", "baseline: mid_gray",
                                     "oracle: affine (sees the truth)"]
    assert score_headers() == ["method", "PSNR (dB)", "SSIM", "sharpness (1 = truth's)", "gradient corr.", "VIF"]
    assert table[1][1:3] == [round(rows[1].psnr, 2), round(rows[1].ssim, 4)] and all(len(r) == 6 for r in table)
    said = verdict(rows)  # the "model" predicts what the first baseline does: it cannot lead it on PSNR
    assert said.startswith(f"On this image the model scores {rows[0].psnr:.2f} dB PSNR")
    assert "Margin against the best baseline: " in said and "behind a baseline on PSNR" in said
    assert verdict(rows[1:]).startswith("Best baseline on this image: ")
    assert "baseline:" not in verdict(rows[1:])


def test_load_truth_checks_modality_and_size():
    pair = first_pair(DATA / "msrs")
    truth = load_truth(pair.visible, "ir2vis", (480, 640))
    assert truth.shape == (3, 480, 640)
    assert load_truth(pair.visible, "vis2ir", (480, 640)).shape == (1, 480, 640)  # folded to one channel
    with pytest.raises(ImageError, match="the ground truth is 640x480 but the input is 320x240"):
        load_truth(pair.visible, "ir2vis", (240, 320))


def test_gallery_of_all_sets_puts_test_pairs_first_and_covers_every_set():
    roots = gallery_roots(DATA)
    assert {r.name for r in roots} >= {"llvip", "roadscene", "msrs", "tno"}
    gallery = open_gallery(DATA, limit=20)
    splits = [s.split for s in gallery.samples]
    assert splits == sorted(splits, key=["test", "train"].index)  # test first
    assert len({s.pair.set_name for s in gallery.samples}) >= 5  # round-robin, not the first set only
    assert any("showing 20 of" in n for n in gallery.notes)
    assert gallery.get(gallery.samples[3].key) is gallery.samples[3]


def test_gallery_thumbnail_keeps_the_pair_aspect_ratio():
    sample = open_gallery(LLVIP).samples[0]
    thumb = thumbnail(sample, height=128)
    assert thumb.size == (160, 128) and thumb.mode == "RGB"
    left, right = np.asarray(thumb)[:, :70], np.asarray(thumb)[:, 90:]
    assert (left[..., 0] == left[..., 2]).all()  # infrared half is gray
    assert not (right[..., 0] == right[..., 2]).all()  # visible half has colour


def test_gallery_sources_that_cannot_be_used(tmp_path, monkeypatch):
    import huggingface_hub.constants

    with pytest.raises(GalleryError, match="no such folder"):
        gallery_roots(tmp_path / "absent")
    (tmp_path / "photos").mkdir()
    with pytest.raises(GalleryError, match="not in LLVIP layout"):
        gallery_roots(tmp_path / "photos")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(GalleryError, match="Hub cannot be reached"):
        gallery_roots("hf://datasets/someone/llvip-sample")
    with pytest.raises(GalleryError, match="hf://datasets/OWNER/NAME"):
        gallery_roots("hf://datasets/just-a-name")


def test_read_card_gives_front_matter_and_evaluation(weights):
    card = read_card(weights["ir2vis"], "ir2vis")
    assert card.metadata["datasets"] == ["llvip"] and "Randomly initialised" in card.text
    assert card.evaluation["direction"] == "ir2vis" and card.evaluation_file == "evaluation.json"
    assert read_card(weights["ir2vis"], "vis2ir").evaluation is None  # another direction's report is not used


def test_study_tab_shows_the_shipped_study_and_measures_an_uploaded_pair(client, app_url, bad_files):
    from gradio_client.exceptions import AppError

    from irvis.analysis.view import pair_study

    with urllib.request.urlopen(app_url + "config", timeout=10) as r:
        texts = r.read().decode()
    assert '"Study"' in texts and "r(infrared, luminance), all pixels" in texts  # the committed results/study
    assert "receptive field 65 px" in texts
    pair = first_pair(DATA / "m3fd")
    figure, summary = client.predict(upload(pair.infrared), upload(pair.visible), api_name="/study_pair")
    assert Image.open(figure).width >= 3 * 150
    _, stats = pair_study(pair.infrared, pair.visible)  # the library's numbers on the same pair
    assert f"correlate at r = {stats['r_luminance']:.2f}" in summary and "x chance" in summary
    with pytest.raises(AppError, match="a registered pair has one size"):
        client.predict(upload(pair.infrared), upload(bad_files / "small_truth.png"), api_name="/study_pair")
