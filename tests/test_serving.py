"""irvis.serving on its own: each direction's generator or why there is none, the gallery, the page's text
about them, with no server path shown."""

from __future__ import annotations

import json

import pytest

from irvis import serving
from irvis.directions import get_direction
from irvis.serving import Loaded, about, gallery_name, load_direction, load_gallery, status_line
from irvis.uploads import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "weights"


def test_a_missing_folder_is_a_problem_without_its_path(tmp_path):
    loaded = load_direction("ir2vis", tmp_path / "nowhere")
    assert loaded.translator is None and str(tmp_path) not in loaded.problem and "nowhere" in loaded.problem
    text = about(loaded)
    assert text.problem == loaded.problem and text.title == "## " + f"{get_direction('ir2vis').label} (`ir2vis`)"
    assert status_line(loaded).endswith("not loaded")


def test_default_weights_that_do_not_exist_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setitem(serving.DEFAULT_WEIGHTS, "vis2ir", PROJECT_ROOT / "weights" / "not-trained-yet")
    loaded = load_direction("vis2ir", None)
    assert loaded.problem.startswith("No ") and "`weights/not-trained-yet` does not exist" in loaded.problem
    assert "--weights-vis2ir" in loaded.problem


@pytest.mark.skipif(not (SHIPPED / "ir2vis").is_dir(), reason="no shipped generators")
def test_shipped_generator_is_served_bounded_and_described():
    loaded = load_direction("ir2vis", None, max_pixels=123_456)
    assert loaded.problem is None and loaded.translator.max_pixels == 123_456
    assert loaded.translator.source == "weights/ir2vis"
    text = about(loaded)
    assert "Weights: `weights/ir2vis`" in text.summary and "M parameters" in text.summary
    assert (text.evaluation is None) != (text.no_evaluation is None)
    # the shipped report predates the interval in its JSON: the page computes it from the report's per-image scores
    assert "How sure: the model against the best baseline" in text.evaluation
    assert "| llvip (12) | PSNR | +3.88 (infrared_as_rgb) | +1.92 to +5.56 | 10 of 12 | ahead |" in text.evaluation
    for part in (text.summary, text.evaluation or "", text.card or ""):
        assert str(PROJECT_ROOT) not in part
    assert "weights/ir2vis" in status_line(loaded)
    wrong = load_direction("vis2ir", SHIPPED / "ir2vis")
    assert wrong.translator is None and "--weights-ir2vis" in wrong.problem


def test_short_side_follows_the_evaluation_else_the_default():
    class Card:
        def __init__(self, evaluation):
            self.evaluation = evaluation

    d = get_direction("ir2vis")
    assert Loaded(d).short_side == 256
    assert Loaded(d, default_short_side=128).short_side == 128
    assert Loaded(d, card=Card({"protocol": {"short_side": 512}})).short_side == 512
    assert Loaded(d, card=Card({"protocol": {"short_side": "native"}})).short_side is None


def test_gallery_problems_name_the_gallery_not_its_path(tmp_path):
    assert load_gallery(None) == (None, [], None) and load_gallery("") == (None, [], None)
    empty = tmp_path / "empty-gallery"
    empty.mkdir()
    gallery, thumbs, problem = load_gallery(str(empty))
    assert gallery is None and thumbs == [] and problem and str(tmp_path) not in problem
    assert gallery_name(str(empty)) == "empty-gallery"
    assert gallery_name("hf://datasets/someone/pairs") == "hf://datasets/someone/pairs"


@pytest.mark.skipif(not (PROJECT_ROOT / "samples").is_dir(), reason="no shipped samples")
def test_shipped_samples_open_as_a_gallery():
    gallery, thumbs, problem = load_gallery(str(PROJECT_ROOT / "samples"))
    assert problem is None and len(thumbs) == len(gallery.samples) > 0


def test_limits_are_ordered():
    assert serving.TRANSLATE_MAX_PIXELS <= serving.APP_MAX_PIXELS
    assert serving.MAX_BODY_BYTES < serving.MAX_FILE_BYTES < serving.MAX_TEMP_BYTES
    assert serving.VIDEO_MAX_FRAME_PIXELS >= 1920 * 1080 and json.dumps(serving.OUTPUT_MAX_AGE_S)


def test_command_line_defaults_and_refusals(monkeypatch):
    monkeypatch.delenv("IRVIS_GALLERY", raising=False)
    monkeypatch.delenv("IRVIS_MAX_PIXELS", raising=False)
    args = serving.parse_args([])
    assert args.gallery == str(serving.DEFAULT_GALLERY) and args.max_pixels == serving.APP_MAX_PIXELS
    assert args.max_file_size == 50 * 2**20 and args.weights_ir2vis is None
    assert serving.parse_args(["--max-file-size", "20mb", "--concurrency", "2"]).max_file_size == 20 * 2**20
    for bad in (["--max-file-size", "lots"], ["--concurrency", "0"]):
        with pytest.raises(SystemExit):
            serving.parse_args(bad)


def test_examples_are_spread_over_the_test_split():
    assert serving.example_samples(None, 4) == []
    gallery, _, _ = load_gallery(str(serving.DEFAULT_GALLERY))
    if gallery is None:
        pytest.skip("no shipped samples")
    chosen = serving.example_samples(gallery, 4)
    assert 0 < len(chosen) <= 4 and len({s.key for s in chosen}) == len(chosen)
    ir, truth = serving.example_files(chosen[0], get_direction("ir2vis"))
    assert ir == str(chosen[0].pair.infrared) and truth == str(chosen[0].pair.visible)
