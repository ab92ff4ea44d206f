"""Decoding of every image kind users bring, and clear refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from irvis.images import ImageError, load_image, to_pil


@pytest.fixture(scope="module")
def llvip_ir(llvip) -> Image.Image:
    return Image.open(llvip / "infrared/test/200002.jpg").convert("RGB")


def test_llvip_three_channel_gray_infrared_is_folded_to_one(llvip_ir):
    t = load_image(llvip_ir, "infrared")
    assert t.shape == (1, 1024, 1280)
    one = load_image(llvip_ir.convert("L"), "infrared")
    assert torch.allclose(t, one, atol=1 / 255)


def test_infrared_jpegs_decode_their_luma_plane_as_the_colour_route_would(llvip):
    """Infrared JPEGs decode only their luma plane (2-3x faster): on LLVIP's colour-coded gray infrared that is
    exactly the colour decode converted to L; a colour photo handed in as infrared stays within rounding."""
    path = llvip / "infrared/test/200002.jpg"
    colour_route = torch.from_numpy(np.array(Image.open(path).convert("L")))[None]
    assert Image.open(path).mode == "RGB"  # stored as a 3-channel JPEG
    assert torch.equal(load_image(path, "infrared", uint8=True), colour_route)
    photo = llvip / "visible/test/200002.jpg"
    luma = load_image(photo, "infrared", uint8=True).float()
    reference = torch.from_numpy(np.asarray(Image.open(photo).convert("L"), np.float32))[None]
    assert luma.shape == reference.shape and (luma - reference).abs().mean() < 0.1
    half = load_image(path, "infrared", draft_size=(640, 512))  # with the draft scaling too
    assert half.shape == (1, 512, 640)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "JPEG"])
def test_formats_round_trip(llvip_ir, fmt):
    buf = io.BytesIO()
    llvip_ir.convert("L").resize((160, 128)).save(buf, format=fmt)
    t = load_image(buf.getvalue(), "infrared")
    assert t.shape == (1, 128, 160)


def test_sixteen_bit_infrared_is_stretched(llvip_ir, tmp_path):
    raw = np.asarray(llvip_ir.convert("L"), dtype=np.uint16) * 8 + 7000  # raw-radiometric-like counts
    path = tmp_path / "raw16.png"
    Image.fromarray(raw).save(path)
    assert Image.open(path).mode.startswith("I")
    t = load_image(path, "infrared")
    assert t.shape == (1, 1024, 1280)
    assert float(t.min()) == 0.0 and float(t.max()) == 1.0
    eight = load_image(llvip_ir, "infrared")
    assert np.corrcoef(t.flatten().numpy(), eight.flatten().numpy())[0, 1] > 0.99


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16"])
def test_odd_modes_become_the_modality(llvip_ir, mode):
    small = llvip_ir.resize((64, 48))
    img = small.convert("L").convert(mode) if mode in ("1", "I;16") else small.convert(mode)
    for modality, channels in (("infrared", 1), ("visible", 3)):
        t = load_image(img, modality)
        assert t.shape == (channels, 48, 64) and t.dtype == torch.float32
        assert 0 <= float(t.min()) and float(t.max()) <= 1


def test_corrupt_and_non_images_are_refused(tmp_path):
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"%PDF-1.4 definitely not an image", "visible")
    path = tmp_path / "cut.jpg"
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (10, 200, 30)).save(buf, format="JPEG")
    path.write_bytes(buf.getvalue()[:300])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(path, "visible")
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "nope.png", "visible")


def test_huge_images_are_refused_before_decoding(monkeypatch):
    monkeypatch.setenv("IRVIS_MAX_PIXELS", "10000")
    with pytest.raises(ImageError, match="over the limit"):
        load_image(Image.new("L", (200, 100)), "infrared")


def test_to_pil_modes():
    assert to_pil(torch.rand(1, 9, 17)).mode == "L"
    assert to_pil(torch.rand(3, 9, 17)).size == (17, 9)
