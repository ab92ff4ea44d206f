"""Translation at the input's own size, any mode, batched, from the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from irvis.hub import resolve_weights, upload_plan
from irvis.images import ImageError
from irvis.nets import WeightsError
from irvis.translate import Translator, pad_to_multiple, resolve_device


@pytest.fixture(scope="module")
def ir2vis(generators):
    return Translator.from_pretrained(generators["ir2vis"], device="cpu")


@pytest.fixture(scope="module")
def vis2ir(generators):
    return Translator.from_pretrained(generators["vis2ir"], device="cpu")


@pytest.mark.parametrize("size", [(333, 517), (17, 9), (1, 1), (1280, 1024)])
def test_output_keeps_the_input_size(ir2vis, vis2ir, llvip, size):
    ir = Image.open(llvip / "infrared/test/200002.jpg").resize(size)
    vis = Image.open(llvip / "visible/test/200002.jpg").resize(size)
    a, b = ir2vis(ir), vis2ir(vis)
    assert (a.size, a.mode) == (size, "RGB")
    assert (b.size, b.mode) == (size, "L")  # infrared output is single-channel


def test_one_and_three_channel_infrared_give_the_same_result(ir2vis, llvip):
    rgb = Image.open(llvip / "infrared/test/200002.jpg").resize((320, 256))
    assert rgb.mode == "RGB"
    a = torch.from_numpy(np.asarray(ir2vis(rgb), dtype=np.float32))
    b = torch.from_numpy(np.asarray(ir2vis(rgb.convert("L")), dtype=np.float32))
    assert (a - b).abs().mean() < 1.0


def test_batch_matches_single_and_mixes_sizes(vis2ir, llvip):
    imgs = [Image.open(p).resize(s) for p, s in zip(sorted((llvip / "visible/test").iterdir())[:3],
                                                     [(96, 64), (96, 64), (50, 70)])]
    batch = vis2ir.translate_batch(imgs, batch_size=2)
    for img, out in zip(imgs, batch):
        single = vis2ir(img)
        assert out.size == img.size
        diff = torch.from_numpy(np.asarray(out, dtype=np.int16) - np.asarray(single, dtype=np.int16))
        assert diff.abs().max() <= 1


def test_the_pix2pix_reference_translates_any_size_in_either_precision(llvip):
    """The reference needs sides of 256 (its maps halve 8 times, and each frame is normalised by its own
    statistics): the precision probe and any frame are padded to that, never passed smaller."""
    from irvis.nets import build_generator

    torch.manual_seed(0)
    for precision in ("fp32", "bf16"):
        t = Translator(build_generator("vis2ir", "pix2pix-unet256", ngf=8), device="cpu", precision=precision)
        out = t(Image.open(llvip / "visible/test/200002.jpg").resize((150, 100)))
        assert (out.size, out.mode) == ((150, 100), "L") and np.asarray(out).std() > 0


def test_padding_is_cropped_back():
    x = torch.rand(1, 3, 17, 9)
    padded, (h, w) = pad_to_multiple(x, 32)
    assert padded.shape[-2:] == (32, 32) and (h, w) == (17, 9)
    assert torch.equal(padded[..., :17, :9], x)


def test_bad_input_is_refused_clearly(ir2vis):
    with pytest.raises(ImageError):
        ir2vis(b"GIF89a broken")


def test_device_auto_prefers_cuda_then_mps_then_the_cpu(monkeypatch):
    mps = torch.backends.mps
    for cuda, apple, expected in ((True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(mps, "is_available", lambda: apple)
        assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"  # an explicit device is taken as given
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_cli_translates_and_checks_direction(generators, llvip, tmp_path):
    src = llvip / "infrared/test/200002.jpg"
    small = tmp_path / "small.png"
    Image.open(src).resize((333, 267)).save(small)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    run = subprocess.run([sys.executable, "-m", "irvis", "translate", "--direction", "ir2vis", "--weights",
                          str(generators["ir2vis"]), str(small), str(bad), "--out", str(tmp_path / "out")],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr  # one input was bad
    assert "bad.jpg" in run.stderr and "not an image" in run.stderr
    out = Image.open(tmp_path / "out/small_ir2vis.png")
    assert (out.size, out.mode) == ((333, 267), "RGB")
    wrong = subprocess.run([sys.executable, "-m", "irvis", "translate", "--direction", "vis2ir", "--weights",
                            str(generators["ir2vis"]), str(small), "--out", str(tmp_path / "o2")],
                           cwd=REPO, capture_output=True, text=True)
    assert wrong.returncode != 0 and "holds a ir2vis generator" in wrong.stderr


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("native", None), ("128", 128)])
def test_cli_working_size_values(value, expected):
    from irvis.__main__ import build_parser

    args = build_parser().parse_args(["translate", "x.png", "--weights", "w", "--out", "o", "--working-size", value])
    assert args.working_size == expected


def test_cli_refuses_a_bad_working_size(generators, llvip, tmp_path):
    run = subprocess.run([sys.executable, "-m", "irvis", "translate", "--weights", str(generators["ir2vis"]),
                          str(llvip / "infrared/test/200002.jpg"), "--out", str(tmp_path / "o"), "--working-size", "0"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 2 and "positive number of pixels" in run.stderr and "Traceback" not in run.stderr


def test_hub_ids_offline_fail_clearly(tmp_path):
    with pytest.raises(WeightsError, match="cannot be reached"):
        resolve_weights("irvis/does-not-exist-here")
    with pytest.raises(WeightsError, match="no such folder"):
        resolve_weights(str(tmp_path / "a/b/c"))


def test_upload_plan_is_weights_and_card_only(generators, tmp_path):
    import shutil

    folder = tmp_path / "export"
    shutil.copytree(generators["vis2ir"], folder)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints/optimizer.bin").write_bytes(b"state")
    assert upload_plan(folder) == ["README.md", "config.json", "model.safetensors"]


def test_working_size_translates_large_inputs_at_the_trained_scale(generators, llvip, tmp_path):
    import json
    import shutil

    folder = tmp_path / "trained"
    shutil.copytree(generators["vis2ir"], folder)
    (folder / "training_config.json").write_text(json.dumps({"val_short_side": 64}))
    auto = Translator.from_pretrained(folder, device="cpu")
    native = Translator.from_pretrained(folder, device="cpu", working_size=None)
    assert (auto.working_size, native.working_size) == (64, None)
    frame = Image.open(llvip / "visible/test/200002.jpg").resize((320, 256))
    out = auto(frame)
    assert (out.size, out.mode) == ((320, 256), "L")
    # the same as translating a 64-pixel-high copy and enlarging it
    small = native(frame.resize((80, 64), Image.BICUBIC))
    ref = np.asarray(small.resize((320, 256), Image.BICUBIC), dtype=np.float32)
    assert np.abs(np.asarray(out, dtype=np.float32) - ref).mean() < 4
    tiny = auto(frame.resize((40, 32)))  # smaller than the working size: native
    assert tiny.size == (40, 32)


def test_lite0s_fast_path_folds_its_encoder_and_keeps_it_in_float32():
    """irvis-lite0 in bfloat16: the U-Net in bfloat16, the context encoder's BatchNorm folded into its
    convolutions in float32 (folded in bfloat16, a fine-tuned ir2vis encoder measured 36 dB against float32;
    irvis.context.ContextBranch.encode); the copy passes the probe and the translator keeps it."""
    import irvis.translate as translate
    from irvis.cpu import cpu_has_native_bf16
    from irvis.nets import build_generator, initialise_generator

    if not cpu_has_native_bf16():
        pytest.skip("the automatic path tries bfloat16 only where the CPU runs it natively")
    torch.manual_seed(0)
    g = initialise_generator(build_generator("ir2vis", "irvis-lite0", n_res=2))
    t = Translator(g, device="cpu", precision="auto")
    assert t.precision == "bf16" and t.probe_psnr >= translate.FAST_PATH_MIN_PSNR and t.folded
    encoder = t._forward.net.net.context.encoder
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules())
    assert {p.dtype for p in encoder.parameters()} == {torch.float32}
    assert t._forward.net.net.stem[1][0].weight.dtype == torch.bfloat16
