"""irvis.handlers on their own: the work behind the app's endpoints returns plain data, and refuses with a
sentence and a title, no server path in either."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image

from irvis.directions import get_direction
from irvis.handlers import (Refusal, SampleShower, check_video, measure_pair, painted, translate_clip, translate_image)
from irvis.hosting import OutputStore
from irvis.serving import Loaded, load_direction, load_gallery
from irvis.uploads import PROJECT_ROOT

SHIPPED = (PROJECT_ROOT / "weights" / "ir2vis").is_dir() and (PROJECT_ROOT / "samples").is_dir()
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="no shipped generators or samples")


@pytest.fixture
def outputs(tmp_path):
    return OutputStore(tmp_path / "out")


def test_refusals_carry_a_title(tmp_path, outputs):
    missing = Loaded(get_direction("ir2vis"), problem="No generator here.")
    with pytest.raises(Refusal, match="Upload, paste or capture an infrared image first") as e:
        translate_image(missing, outputs, None)
    assert e.value.title == "No input"
    with pytest.raises(Refusal, match="No generator here") as e:
        translate_image(missing, outputs, str(tmp_path / "x.jpg"))
    assert e.value.title == "No generator"
    with pytest.raises(Refusal, match="No generator here"):
        check_video(missing, "clip.mp4", [tmp_path])
    with pytest.raises(Refusal, match="Give both images") as e:
        measure_pair(outputs, None, str(tmp_path / "v.jpg"))
    assert e.value.title == "A pair is needed"


def test_a_broken_pair_is_named_by_its_file_names(tmp_path, outputs):
    ir, vis = tmp_path / "up" / "ir.jpg", tmp_path / "up" / "vis.jpg"
    ir.parent.mkdir()
    ir.write_bytes(b"not an image")
    vis.write_bytes(b"not an image")
    with pytest.raises(Refusal) as e:
        measure_pair(outputs, str(ir), str(vis))
    assert str(tmp_path) not in str(e.value) and e.value.title == "This pair cannot be measured"


@needs_shipped
def test_an_image_is_translated_and_scored(tmp_path, outputs):
    loaded = load_direction("ir2vis", None)
    gallery, _, _ = load_gallery(str(PROJECT_ROOT / "samples"))
    pair = gallery.samples[0].pair
    small_ir, small_vis = tmp_path / "ir.png", tmp_path / "vis.png"
    Image.open(pair.infrared).resize((128, 96)).save(small_ir)
    Image.open(pair.visible).resize((128, 96)).save(small_vis)
    alone = translate_image(loaded, outputs, str(small_ir), palette="ironbow")
    assert alone.rows == [] and alone.emap is None and alone.summary.startswith("Translated 128x96 infrared")
    assert alone.before.endswith("_ironbow.jpg") and Image.open(alone.png).size == (128, 96)
    scored = translate_image(loaded, outputs, str(small_ir), str(small_vis))
    assert {r.method for r in scored.rows} >= {"model"} and scored.emap
    with pytest.raises(Refusal) as e:
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"nope")
        translate_image(loaded, outputs, str(bad))
    assert e.value.title == "This image cannot be used" and str(tmp_path) not in str(e.value)


@needs_shipped
def test_a_gallery_pair_scores_its_baselines_once(outputs):
    generators = {name: load_direction(name, None) for name in ("ir2vis", "vis2ir")}
    gallery, _, _ = load_gallery(str(PROJECT_ROOT / "samples"))
    shower = SampleShower(generators, gallery, outputs)
    key = gallery.samples[0].key
    first = shower.show(key, "ir2vis")
    assert len(first.files) == 3 and all(first.files) and first.head.startswith(f"**{key}**")
    assert (key, "ir2vis") in shower.baseline_rows
    again = shower.show(key, "ir2vis")  # the baselines' rows come from the first showing
    assert [r for r in again.rows if r.method != "model"] == [r for r in first.rows if r.method != "model"]
    with pytest.raises(Refusal) as e:
        shower.show(None)
    assert e.value.title == "No sample"
    with pytest.raises(Refusal) as e:
        shower.show("no-such-pair", "ir2vis")
    assert e.value.title == "This sample cannot be shown"
    assert painted(outputs, first.gray, "ironbow")[1] == first.gray[1][0]  # visible as is


@needs_shipped
def test_a_video_that_is_not_one_leaves_nothing_behind(tmp_path, outputs):
    from irvis.video import VideoError

    loaded = load_direction("ir2vis", None)
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"not a video")
    assert check_video(loaded, str(fake), [tmp_path]) == str(fake)
    with pytest.raises(Refusal, match="Only videos uploaded") as e:
        check_video(loaded, str(fake), [tmp_path / "elsewhere"])
    assert e.value.title == "This video cannot be used"
    with pytest.raises(VideoError) as e:
        translate_clip(loaded, outputs, str(fake), threading.Event())
    assert str(tmp_path) not in str(e.value) and outputs.used_bytes() == 0 and not list(outputs.root.iterdir())


@needs_shipped
def test_a_gallery_pair_replaced_on_disk_is_scored_again(tmp_path, outputs):
    """The cached baseline rows belong to the files as they were: a truth replaced while the app runs is scored
    against as it is now."""
    import shutil

    from irvis.data import load_pairs

    pair = load_pairs([PROJECT_ROOT / "samples" / "llvip"], "test")[0]
    for kind in ("infrared", "visible"):
        (tmp_path / "g" / kind / "test").mkdir(parents=True)
        shutil.copy(getattr(pair, kind), tmp_path / "g" / kind / "test" / Path(getattr(pair, kind)).name)
    gallery, _, _ = load_gallery(str(tmp_path / "g"))
    shower = SampleShower({"ir2vis": load_direction("ir2vis", None)}, gallery, outputs)
    key = gallery.samples[0].key
    before = {r.method: r.psnr for r in shower.show(key, "ir2vis").rows}
    truth = gallery.samples[0].pair.visible
    Image.open(truth).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(truth, quality=95)
    after = {r.method: r.psnr for r in shower.show(key, "ir2vis").rows}
    assert after["baseline:infrared_as_rgb"] != before["baseline:infrared_as_rgb"]
