"""The library side of "safe to host", fast: what is decoded and how it is refused, gallery confinement, the
bounded scoring size, upload confinement, output files, and what the page says about the server. The live
app and the whole hostile corpus are in test_hostile.py."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import copy_pairs
from irvis.compare import at_scoring_size, compare, load_truth, open_gallery, scoring_size, thumbnails
from irvis.data import check_data, load_pair
from irvis.images import FORMATS, ImageError, image_size, load_image


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@pytest.fixture(scope="module")
def frame(llvip) -> Image.Image:
    return Image.open(sorted((llvip / "visible" / "test").glob("*.jpg"))[0]).convert("RGB").resize((64, 48))


def test_only_the_readme_formats_are_decoded(frame, tmp_path):
    assert set(FORMATS) <= {"JPEG", "MPO", "PNG", "BMP", "TIFF"}
    eps = tmp_path / "drawing.jpg"  # Pillow would hand this to Ghostscript
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageError, match="a PostScript .EPS. file, not an image this tool can read"):
        load_image(eps, "visible")
    gif = io.BytesIO()
    frame.save(gif, format="GIF")
    with pytest.raises(ImageError, match="a GIF file"):
        load_image(gif.getvalue(), "visible")


@pytest.mark.parametrize("kind, payload", [(b"zTXt", b"Comment\0\0"), (b"iCCP", b"icc\0\0")])
def test_png_decompression_bombs_are_refused_as_such(frame, kind, payload):
    png = _png(frame)
    bomb = png[:33] + _chunk(kind, payload + zlib.compress(b"\0" * 20_000_000, 9)) + png[33:]
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(bomb, "visible")


def test_a_png_with_a_broken_checksum_is_corrupt_not_an_unknown_format(frame):
    png = bytearray(_png(frame))
    png[29] ^= 0xFF
    with pytest.raises(ImageError, match="corrupt PNG file"):
        load_image(bytes(png), "visible")


def test_the_pixel_limit_is_read_from_the_header(frame):
    jpeg = io.BytesIO()
    Image.new("L", (8, 8)).save(jpeg, format="JPEG")
    data = bytearray(jpeg.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 6000, 6000)  # a few hundred bytes claiming 36 MP
    with pytest.raises(ImageError, match="6000x6000 is 36.0 megapixels, over the limit of 16 megapixels"):
        load_image(bytes(data), "visible", limit=16_000_000)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_float_images_without_numbers_are_refused(tmp_path, value):
    arr = np.linspace(0, 100, 48 * 64, dtype=np.float32).reshape(48, 64)
    arr[5, 5] = value
    path = tmp_path / "radiometric.tif"
    Image.fromarray(arr).save(path)
    with pytest.raises(ImageError, match="radiometric.tif: 1 of its 3072 pixels are NaN or infinite"):
        load_image(path, "infrared")


def test_a_folder_is_named_a_folder(tmp_path):
    with pytest.raises(ImageError, match="a folder, not an image file"):
        load_image(tmp_path, "visible")
    with pytest.raises(ImageError, match="a folder, not an image file"):
        image_size(tmp_path)


def test_tiny_images_with_a_truth_are_refused_before_scoring(frame):
    with pytest.raises(ImageError, match="the input is 2x1 pixels, too small to score"):
        load_truth(frame, "vis2ir", (1, 2))


def test_large_pairs_are_scored_at_a_bounded_size():
    assert scoring_size((480, 640)) == (480, 640)
    h, w = scoring_size((4000, 4000))
    assert h * w <= 1_000_000 and h == w
    source, truth = torch.rand(3, 1200, 1000), torch.rand(1, 1200, 1000)
    s, t, p = at_scoring_size(source, truth, None)
    assert p is None and s.shape[-2:] == t.shape[-2:] and s.shape[-2] * s.shape[-1] <= 1_000_000
    assert {r.method for r in compare("vis2ir", s, t)} >= {"baseline:mid_gray", "oracle:affine"}


def test_gallery_never_follows_links_out_and_survives_a_broken_file(llvip, data_dir, tmp_path):
    names = sorted(p.name for p in (llvip / "infrared" / "test").glob("*.jpg"))
    root = copy_pairs(llvip, tmp_path / "gallery" / "mine", names[:2], "test")
    (root / "infrared/test/broken.jpg").write_text("not an image")
    (root / "visible/test/broken.jpg").write_bytes((llvip / "visible/test" / names[0]).read_bytes())
    for modality in ("infrared", "visible"):
        os.symlink(llvip / modality / "test" / names[3], root / modality / "test" / "linked.jpg")
    os.symlink(data_dir / "msrs", tmp_path / "gallery" / "elsewhere")
    gallery = open_gallery(tmp_path / "gallery")
    assert {s.key for s in gallery.samples} == {f"mine/test/{Path(n).stem}" for n in names[:2]} | {"mine/test/broken"}
    assert any("link to files outside the gallery folder" in n for n in gallery.notes)
    thumbs = thumbnails(gallery)  # the broken file is left out with a note, it raises nothing
    assert len(thumbs) == 2 and any(n.startswith("left out mine/test/broken") for n in gallery.notes)
    # a pair whose file is swapped for a link to outside after start is refused when shown
    victim = gallery.samples[0].pair.infrared
    victim.unlink()
    os.symlink(llvip / "infrared" / "test" / names[5], victim)
    with pytest.raises(ValueError, match="lead outside the gallery folder"):
        gallery.get(gallery.samples[0].key)


def test_a_file_that_is_not_an_image_is_an_image_error_for_pairs(llvip, tmp_path):
    names = sorted(p.name for p in (llvip / "infrared" / "test").glob("*.jpg"))[:1]
    root = copy_pairs(llvip, tmp_path / "set", names, "test")
    (root / "infrared/test" / names[0]).write_text("not an image")
    pair = check_data([root], "test").pairs[0]
    with pytest.raises(ImageError, match="not an image"):
        load_pair(pair, short_side=64)


# ---------------------------------------------------------------------------------------------------
# app.py's own checks


def test_only_uploads_are_inputs(tmp_path, monkeypatch, llvip):
    import app

    uploads = tmp_path / "uploads"
    (uploads / "abc").mkdir(parents=True)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    inside = uploads / "abc" / "street.jpg"
    inside.write_bytes(b"x")
    outside = next((llvip / "visible" / "test").glob("*.jpg"))
    os.symlink(outside, uploads / "abc" / "link.jpg")
    assert app.is_upload(str(inside))
    for path in (outside, uploads / "abc" / "link.jpg", uploads / ".." / outside.name, uploads, "/etc/passwd"):
        assert not app.is_upload(str(path)), path


def test_outputs_are_unique_files_written_whole(tmp_path, frame):
    from irvis.hosting import OutputStore

    outputs = OutputStore(tmp_path)
    a, b = outputs.save_png(frame, "same.png"), outputs.save_png(frame, "same.png")
    assert a != b and Path(a).name == Path(b).name == "same.png"
    assert not list(tmp_path.rglob("*.part"))
    wide = outputs.save_preview(frame.resize((70_000, 1)), "wide")  # wider than a JPEG can be
    assert wide.endswith(".png") and Image.open(wide).size == (70_000, 1)
    assert outputs.save_preview(frame, "small").endswith(".jpg")


def test_the_page_names_weights_without_server_paths(tmp_path):
    import app

    assert app.public_name(app.ROOT / "weights" / "vis2ir") == "weights/vis2ir"
    assert app.public_name(tmp_path / "my-run") == "…/my-run"
    assert app.public_name("someone/irvis-vis2ir") == "someone/irvis-vis2ir"
    assert app.scrub_paths(f"weights: {tmp_path}/my-run; see https://example.org/a/b") == \
        "weights: …/my-run; see https://example.org/a/b"


def test_translation_runs_on_a_bounded_size(generators):
    """The app's translators run the network on at most TRANSLATE_MAX_PIXELS: a 2.4 MP strip is translated
    smaller and its prediction resized back to the input's size."""
    import app
    from irvis.translate import Translator

    translator = Translator.from_pretrained(generators["vis2ir"], device="cpu", working_size=None,
                                            max_pixels=app.TRANSLATE_MAX_PIXELS)
    seen = []
    original = translator._forward
    translator._forward = lambda x: (seen.append(tuple(x.shape[-2:])), original(x))[1]
    y = translator.translate_tensor(torch.rand(3, 40, 60_000))  # 2.4 MP: over the 2 MP the app allows
    assert y.shape == (1, 40, 60_000)
    (h, w), multiple = seen[0], translator.generator.size_multiple
    assert (h - multiple + 1) * (w - multiple + 1) <= app.TRANSLATE_MAX_PIXELS < h * w  # before padding to 32: bounded
