"""Fast paths match plain float32; folders and videos through the translate command; the bench runs.
No timings are asserted: speed is measured by `python -m irvis bench`, correctness here."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from irvis.images import load_image
from irvis.cpu import cpu_has_native_bf16, keep_freed_memory
from irvis.probe import probe_image
from irvis.translate import FAST_PATH_MIN_PSNR, Translator, overlapped, psnr

av = pytest.importorskip("av")

SHIPPED = {d: REPO / "weights" / d for d in ("ir2vis", "vis2ir")}


def _frame(llvip, direction: str, name: str = "200002") -> Image.Image:
    modality = "infrared" if direction == "ir2vis" else "visible"
    return Image.open(llvip / modality / "test" / f"{name}.jpg")


@pytest.mark.parametrize("direction", ["ir2vis", "vis2ir"])
def test_auto_path_matches_plain_fp32_at_native_resolution(direction, llvip):
    """The shipped generators on a real 1280x1024 LLVIP frame: whatever path auto picks is within the
    stated tolerance of plain float32, and on a CPU with native bf16 that path is bf16."""
    fast = Translator.from_pretrained(SHIPPED[direction], device="cpu", working_size=None)
    plain = Translator.from_pretrained(SHIPPED[direction], device="cpu", working_size=None, precision="fp32")
    assert plain.precision == "fp32" and plain.probe_psnr is None
    if cpu_has_native_bf16():
        assert fast.precision == "bf16", fast.path
    x = fast.load(llvip / ("infrared" if direction == "ir2vis" else "visible") / "test/200002.jpg")
    assert x.shape[-2:] == (1024, 1280)
    a, b = fast.translate_tensor(x), plain.translate_tensor(x)
    assert a.shape == b.shape
    assert psnr(a, b) >= FAST_PATH_MIN_PSNR


def test_affine_head_fast_path_matches_plain_fp32(llvip):
    """New generators use the affine head (a per-pixel map of the input): the fast path holds for it too."""
    from irvis.nets import build_generator

    torch.manual_seed(0)
    g = build_generator("vis2ir", head="affine")
    torch.nn.init.normal_(g.net.coefficients.weight, std=0.05)  # as after training: coefficients at work
    fast = Translator(g, device="cpu", working_size=256)
    plain = Translator(build_generator("vis2ir", head="affine"), device="cpu", working_size=256, precision="fp32")
    plain.generator.load_state_dict(g.state_dict())
    x = fast.load(_frame(llvip, "vis2ir"))
    assert psnr(fast.translate_tensor(x), plain.translate_tensor(x)) >= FAST_PATH_MIN_PSNR


@pytest.mark.parametrize("direction,head", [("vis2ir", "affine"), ("ir2vis", "affine"), ("ir2vis", "conv")])
def test_fused_network_is_the_plain_network(direction, head, llvip):
    """The fast path's folded full-resolution tail (irvis.fused) computes the same function as the plain
    network, frame pixels included, on a batch of real frames whose size needs padding; in float32 the two agree
    to rounding, so any difference the fast path shows comes from its dtype alone."""
    from irvis.fused import FusedIrvisUNet, fuse
    from irvis.nets import build_generator

    torch.manual_seed(0)
    g = build_generator(direction, head=head).eval()
    for p in g.parameters():  # trained-like weights: every coefficient and head tap at work
        torch.nn.init.normal_(p, std=0.1) if p.dim() > 1 else torch.nn.init.normal_(p, std=0.02)
    fused = copy.deepcopy(g)
    assert fuse(fused) and isinstance(fused.net, FusedIrvisUNet)
    x = load_image(_frame(llvip, direction), "infrared" if direction == "ir2vis" else "visible")
    x = torch.nn.functional.interpolate(x[None], size=(250, 330), mode="area")  # padded to 256x352 below
    x = torch.nn.functional.pad(x, (0, 22, 0, 6), mode="reflect")
    x = torch.cat([x, x.flip(-1)])  # a batch: the in-place skip additions stay within their own frame
    with torch.inference_mode():
        plain_out, fused_out = g(x), fused(x)
    assert (plain_out - fused_out).abs().max() < 1e-4
    # the frame (outermost rows and columns) too, where the folded head alone would differ
    assert (plain_out - fused_out)[..., [0, -1], :].abs().max() < 1e-4
    assert (plain_out - fused_out)[..., :, [0, -1]].abs().max() < 1e-4


def test_phase_maps_are_pytorchs_own_upsampling_and_shuffles():
    """The fused network's building blocks against the PyTorch operations they stand for: phase maps hold
    pixel_unshuffle's values in phase-major order and round-trip in any memory layout, and the phase
    convolution of a decoder level is its 1x1 reduction followed by bilinear x2, borders included."""
    from irvis.fused import as_phases, copy_to_phases, from_phases, phase_view, to_phases, upsample_to_phases

    torch.manual_seed(0)
    x = torch.randn(2, 3, 10, 14)
    for layout in (torch.contiguous_format, torch.channels_last):
        phases = to_phases(x.contiguous(memory_format=layout))
        assert phases.shape == (2, 12, 5, 7)
        assert torch.equal(copy_to_phases(x.contiguous(memory_format=layout)), phases)  # a GPU's float32 route
        assert torch.equal(to_phases(x[:, :1]), torch.nn.functional.pixel_unshuffle(x[:, :1], 2))
        assert torch.equal(phases.unflatten(1, (4, 3)).transpose(1, 2).flatten(1, 2),
                           torch.nn.functional.pixel_unshuffle(x, 2))  # (phase, c) <-> pixel_unshuffle's (c, phase)
        assert torch.equal(from_phases(phases, 3), x)
        assert torch.equal(as_phases(phases, 3), phase_view(x))
    reduce = torch.nn.Conv2d(5, 3, 1)
    z = torch.randn(1, 5, 7, 9)
    conv = upsample_to_phases(reduce.weight[:, :, 0, 0].detach(), reduce.bias.detach())
    with torch.no_grad():
        folded = from_phases(conv(torch.nn.functional.pad(z, (1, 1, 1, 1), mode="replicate")), 3)
        plain = torch.nn.functional.interpolate(reduce(z), scale_factor=2, mode="bilinear")
    assert torch.allclose(folded, plain, atol=1e-6)


def test_fused_network_stays_on_the_generators_device():
    """Its new kernels are built on the CPU: they must follow the network (a GPU's Translator runs it)."""
    from irvis.fused import fuse
    from irvis.nets import build_generator

    g = build_generator("vis2ir").to("meta")
    assert fuse(g)
    assert {t.device.type for t in g.state_dict().values()} == {"meta"}


def test_reference_architecture_is_not_fused():
    from irvis.fused import fuse
    from irvis.nets import build_generator

    g = build_generator("vis2ir", "pix2pix-unet256", ngf=8)
    assert not fuse(g) and type(g.net).__name__ == "Pix2PixUNet256"


def test_forced_fp32_is_the_bare_generator(generators):
    t = Translator.from_pretrained(generators["vis2ir"], device="cpu", precision="fp32")
    x = probe_image(3, (64, 96))
    with torch.inference_mode():
        expected = t.generator(x).clamp(0, 1)
    assert torch.equal(t.translate_tensor(x[0]), expected[0])
    with pytest.raises(ValueError, match="precision"):
        Translator.from_pretrained(generators["vis2ir"], device="cpu", precision="int4")


def test_uint8_route_rounds_like_to_pil(generators, llvip):
    from irvis.images import to_pil

    t = Translator.from_pretrained(generators["ir2vis"], device="cpu")
    x = t.load(_frame(llvip, "ir2vis").resize((200, 150)))
    via_pil = np.asarray(to_pil(t.translate_tensor(x)))
    assert np.array_equal(np.asarray(t(_frame(llvip, "ir2vis").resize((200, 150)))), via_pil)


def test_load_keeps_8_bit_frames_uint8_and_translates_them_as_floats(generators, llvip, tmp_path):
    """Translator.load hands an 8-bit frame over as uint8 in the decoder's layout (converted once, in the
    network's first pass): the same translation as from the float frame; a 16-bit frame stays float."""
    from irvis.images import load_image

    t = Translator.from_pretrained(generators["vis2ir"], device="cpu", precision="fp32")
    frame = _frame(llvip, "vis2ir").resize((320, 256))
    x = t.load(frame)
    assert x.dtype == torch.uint8 and x.shape == (3, 256, 320) and x.permute(1, 2, 0).is_contiguous()
    assert torch.equal(t.translate_tensor(x), t.translate_tensor(load_image(frame, "visible")))
    sixteen = tmp_path / "ir16.png"
    Image.fromarray((np.asarray(frame.convert("L"), np.uint16) * 257)).save(sixteen)
    ir = Translator.from_pretrained(generators["ir2vis"], device="cpu")
    assert ir.load(sixteen).dtype == torch.float32
    assert len(ir.translate_batch([sixteen, frame.convert("L")])) == 2  # one 16-bit, one 8-bit: two batches


def test_overlapped_keeps_order_and_raises_the_first_error():
    seen = []
    overlapped(iter(range(20)), lambda i: i * i, seen.append)
    assert seen == [i * i for i in range(20)]

    def bad(i):
        if i == 3:
            raise RuntimeError("stage failed")
        return i

    with pytest.raises(RuntimeError, match="stage failed"):
        overlapped(iter(range(100)), bad, lambda _: None)


def test_cli_translates_a_folder_recursively_into_a_mirrored_layout(generators, llvip, tmp_path):
    src = tmp_path / "in"
    names = sorted(p.name for p in (llvip / "visible/test").iterdir())[:3]
    layout = {"a.jpg": names[0], "night/b.png": names[1], "night/deeper/c.jpg": names[2]}
    for rel, name in layout.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.open(llvip / "visible/test" / name).resize((96, 80)).save(src / rel)
    (src / "notes.txt").write_text("not an image")
    (src / ".hidden.jpg").write_bytes(b"")
    run = subprocess.run([sys.executable, "-m", "irvis", "translate", str(src), "--weights",
                          str(generators["vis2ir"]), "--out", str(tmp_path / "out")],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "3 image(s)" in run.stdout and "frames/s" in run.stdout
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a_vis2ir.png", "night/b_vis2ir.png", "night/deeper/c_vis2ir.png"]
    out = Image.open(tmp_path / "out/night/deeper/c_vis2ir.png")
    assert (out.size, out.mode) == ((96, 80), "L")


def make_clip(path, frames: list[Image.Image], rate: int = 10, audio: bool = True) -> None:
    """A short H.264 clip of real frames, with a silent audio track the translation must drop."""
    w, h = frames[0].size
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("aac", rate=16000) if audio else None
        for img in frames:
            for packet in v.encode(av.VideoFrame.from_ndarray(np.asarray(img.convert("RGB")), format="rgb24")):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
        if a is not None:
            silence = av.AudioFrame.from_ndarray(np.zeros((1, 16000 * len(frames) // rate), np.float32),
                                                 format="fltp", layout="mono")
            silence.sample_rate = 16000
            for packet in [*a.encode(silence), *a.encode()]:
                c.mux(packet)


def _decode_all(path):
    with av.open(str(path)) as c:
        streams = (len(c.streams.video), len(c.streams.audio))
        rate = c.streams.video[0].average_rate
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return streams, rate, frames


@pytest.fixture(scope="module")
def clip(llvip, tmp_path_factory):
    names = sorted(p.stem for p in (llvip / "infrared/test").iterdir())[:4]
    frames = [_frame(llvip, "ir2vis", n).resize((160, 128)) for n in names for _ in range(2)]  # 8 frames
    path = tmp_path_factory.mktemp("clip") / "clip.mkv"
    make_clip(path, frames, rate=10)
    return path


def test_cli_translates_a_video_keeping_frame_count_and_rate(generators, clip, tmp_path):
    (streams, rate, frames) = _decode_all(clip)
    assert streams == (1, 1) and len(frames) == 8
    run = subprocess.run([sys.executable, "-m", "irvis", "translate", str(clip), "--direction", "ir2vis",
                          "--weights", str(generators["ir2vis"]), "--out", str(tmp_path / "out"), "--batch-size", "3"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out/clip_ir2vis.mp4"
    (out_streams, out_rate, out_frames) = _decode_all(out)
    assert out_streams == (1, 0)  # audio dropped
    assert len(out_frames) == 8 and out_rate == rate == Fraction(10)
    assert out_frames[0].shape == (128, 160, 3)
    # each output frame is the translation of its own input frame (order kept, up to H.264 loss)
    t = Translator.from_pretrained(generators["ir2vis"], device="cpu")
    for i in (0, 7):
        decoded_input = Image.fromarray(frames[i]).convert("L")
        expected = torch.from_numpy(np.asarray(t(decoded_input), np.float32) / 255)
        got = torch.from_numpy(out_frames[i].astype(np.float32) / 255)
        assert psnr(got, expected) > 30


def test_video_over_the_length_limit_is_refused(generators, clip, tmp_path):
    from irvis.video import VideoError, probe_video, translate_video

    info = probe_video(clip)
    assert (info.width, info.height, info.rate) == (160, 128, Fraction(10))
    t = Translator.from_pretrained(generators["ir2vis"], device="cpu")
    with pytest.raises(VideoError, match="limit"):
        translate_video(t, clip, tmp_path / "o.mp4", max_seconds=0.3, progress=False)
    with pytest.raises(VideoError, match="megapixels per frame"):
        translate_video(t, clip, tmp_path / "o.mp4", max_frame_pixels=160 * 127, progress=False)
    assert not (tmp_path / "o.mp4").exists()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="not a video"):
        translate_video(t, junk, tmp_path / "o.mp4", progress=False)


def test_video_whose_header_hides_its_length_is_stopped_at_the_limit(generators, clip, tmp_path, monkeypatch):
    """A stream without duration or frame count in its header (raw streams, some muxers) passes the header
    check; decoding stops at the limit and nothing is left behind, instead of translating an endless video."""
    import irvis.video
    from irvis.video import VideoError, VideoInfo, probe_video, translate_video

    info = probe_video(clip)
    monkeypatch.setattr(irvis.video, "probe_video", lambda src: VideoInfo(info.width, info.height, info.rate, 0, 0.0))
    t = Translator.from_pretrained(generators["ir2vis"], device="cpu")
    with pytest.raises(VideoError, match=r"more than the limit of 4 frames \(0.3 s at 10 frames/s\)"):
        translate_video(t, clip, tmp_path / "o.mp4", max_seconds=0.3, progress=False)  # 8 frames at 10/s
    assert not (tmp_path / "o.mp4").exists()
    r = translate_video(t, clip, tmp_path / "o.mp4", max_seconds=1, progress=False)  # 8 frames fit in 1 s
    assert r["frames"] == 8


def test_bench_runs_and_writes_json(llvip, tmp_path):
    """The bench's inference, folder, video and scoring sections on a small frame: it runs, the automatic path is
    within tolerance of plain float32, and its JSON holds each figure (no timing is asserted)."""
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "irvis", "bench", "--size", "160x128", "--quick", "--repeats", "1",
                          "--frames", "3", "--batch", "2", "--data", str(llvip), "--skip", "training", "loader",
                          "--json", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "end to end" in run.stdout and "frames/s" in run.stdout
    r = json.loads(out.read_text())
    e2e = r["inference"]["end_to_end"]
    assert e2e["plain_seconds"] > 0 and e2e["fast_seconds"] > 0
    assert e2e["psnr_fast_vs_plain"] >= FAST_PATH_MIN_PSNR
    assert r["inference"]["reference"]["forward_seconds"] > 0
    assert r["throughput"]["folder"]["frames_per_second"] > 0 and r["throughput"]["video"]["frames"] == 3
    levers = {row["lever"]: row for row in r["batch"]["levers"]}
    assert not [row for row in levers.values() if "error" in row]
    assert levers["bf16 weights, channels-last, folded tail (auto)"]["psnr_vs_fp32"] >= FAST_PATH_MIN_PSNR
    assert r["batch"]["reference"]["frames_per_second"] > 0
    # scoring: the app's request with and without a truth, a gallery pair again, evaluate before and now
    assert "with truth, end to end" in run.stdout and "evaluate, 2 pairs" in run.stdout
    for figures in r["scoring"]["directions"].values():
        request, evaluate = figures["request"], figures["evaluate"]
        assert request["size"] == "160x128" and request["with_truth_seconds"] > 0 and request["without_truth_seconds"] > 0
        # the gallery request as the page makes it: the pair at the size the shipped generator was evaluated at
        assert figures["gallery"]["size"] == "320x256" and figures["gallery"]["again_seconds"] > 0
        assert evaluate["seconds_per_pair"] > 0 and evaluate["reference_seconds_per_pair"] > 0


def test_training_throughput_uses_the_trainer_step(llvip):
    """The bench's training rows come from the trainer itself (tiny batches here), fp32 and bf16, with and
    without a discriminator, each beside the loader's pairs/s; the report prints them."""
    from irvis.bench import format_report, machine
    from train.bench import DISCRIMINATORS, training_throughput

    rows = training_throughput([str(llvip)], "vis2ir", batch_size=2, crop_size=64, steps=1,
                               discriminators=[DISCRIMINATORS[0], DISCRIMINATORS[2]])
    assert [(r["setup"].split(" (")[0], r["precision"]) for r in rows] == [
        ("generator only", "fp32"), ("generator only", "bf16"), ("+ PatchGAN small", "fp32"), ("+ PatchGAN small", "bf16")]
    assert all(r["images_per_second"] > 0 and r["loader_pairs_per_second"] > 0 for r in rows)
    text = "\n".join(format_report({"machine": machine(), "training": {"rows": rows}}))
    assert "images/s" in text and "loader pairs/s" in text


def test_the_library_bench_runs_the_trainers_bench_as_a_command_and_says_why_it_failed(tmp_path, monkeypatch):
    """irvis never imports the trainer: its training section is `python -m train bench` in a child process, found
    from any working folder, whose failure is reported, not hidden."""
    from irvis.bench import bench_training, format_report, machine

    monkeypatch.chdir(tmp_path)
    result = bench_training([str(tmp_path / "no-such-root")])
    assert result["skipped"].startswith("python -m train bench failed") and "no-such-root: no such folder" in result["skipped"]
    assert "training: skipped (python -m train bench failed" in "\n".join(format_report({"machine": machine(),
                                                                                        "training": result}))


def test_app_translates_a_short_video_and_refuses_a_long_one(generators, clip, llvip, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from test_app import running_app

    long_clip = tmp_path / "long.mp4"  # 12 s at 1 frame/s: over the page's 10 s limit
    make_clip(long_clip, [_frame(llvip, "ir2vis").resize((64, 48))] * 12, rate=1, audio=False)
    args = ["--weights-ir2vis", str(generators["ir2vis"]), "--weights-vis2ir", str(generators["vis2ir"])]
    with running_app(args) as (url, _):
        c = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        video, summary = c.predict(handle_file(str(clip)), api_name="/ir2vis_video")
        path = video["video"] if isinstance(video, dict) else video
        (streams, rate, frames) = _decode_all(path)
        assert streams == (1, 0) and len(frames) == 8 and rate == Fraction(10)
        assert "Translated 8 frames" in summary
        with pytest.raises(AppError, match="limit of 10 s"):
            c.predict(handle_file(str(long_clip)), api_name="/ir2vis_video")


@pytest.mark.parametrize("compressor", ["isal", "zlib"])
@pytest.mark.parametrize("channels", [1, 3])
def test_png_writer_round_trips_real_frames_exactly(llvip, tmp_path, channels, compressor):
    """irvis.png's files are ordinary PNGs: Pillow decodes them to exactly the frame written (gray and RGB, an
    odd size, a (H, W) array too), and they are no larger than Pillow's own level-1 files, with ISA-L (the
    default, a dependency) and with zlib (where ISA-L has no wheel)."""
    import io

    from irvis.png import COMPRESSORS, encode_png, save_png

    assert COMPRESSORS[0] == "isal"  # requirements.txt installs it: the default everywhere it installs
    img = _frame(llvip, "vis2ir").convert("RGB" if channels == 3 else "L").resize((321, 257))
    arr = np.asarray(img)
    for a in (arr, arr[..., None]) if channels == 1 else (arr,):
        data = encode_png(a, compressor=compressor)
        back = Image.open(io.BytesIO(data))
        assert back.mode == img.mode and np.array_equal(np.asarray(back), arr)
    pillow = io.BytesIO()
    img.save(pillow, format="PNG", compress_level=1)
    assert len(data) <= len(pillow.getvalue())
    save_png(arr, tmp_path / "f.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "f.png")), arr)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(arr.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="not available"):
        encode_png(arr, compressor="brotli")


@pytest.mark.parametrize("compressor", ["isal", "zlib"])
@pytest.mark.parametrize("channels", [1, 3])
def test_png_writer_strips_make_one_valid_stream(llvip, channels, compressor):
    """A full frame compressed in strips on several threads is one valid zlib stream (its Adler-32 checked by
    zlib itself) that decodes to the frame, whatever the number of strips, and costs no size."""
    import io
    import zlib

    from irvis.png import _adler32_combine, encode_png

    img = _frame(llvip, "vis2ir").convert("RGB" if channels == 3 else "L")
    arr = np.asarray(img)
    sizes = []
    for threads in (1, 2, 3):
        data = encode_png(arr, threads=threads, compressor=compressor)
        idat = data.index(b"IDAT")
        length = int.from_bytes(data[idat - 4:idat], "big")
        raw = zlib.decompress(data[idat + 4:idat + 4 + length])  # raises on a bad stream or checksum
        assert len(raw) == arr.shape[0] * (1 + arr.shape[1] * channels)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)
        sizes.append(len(data))
    assert max(sizes) <= min(sizes) * 1.01
    rng = np.random.default_rng(0)
    for n1, n2 in ((0, 5), (7, 0), (1000, 70000), (65521, 3)):
        a, b = rng.integers(0, 256, n1, np.uint8).tobytes(), rng.integers(0, 256, n2, np.uint8).tobytes()
        assert _adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc settings")
def test_cpu_translator_keeps_freed_memory_so_frames_do_not_fault_pages_afresh(llvip):
    """A 1280x1024 frame maps about 10,000 fresh pages per translation under glibc's default malloc; with the
    setting every CPU Translator makes, the second frame reuses the first one's memory."""
    import resource

    t = Translator.from_pretrained(SHIPPED["ir2vis"], device="cpu", working_size=None)
    assert keep_freed_memory()  # this process set nothing of its own: the Translator applied it
    x = t.load(_frame(llvip, "ir2vis"))[None]
    t.translate_uint8(x)
    t.translate_uint8(x)
    faults = []
    for _ in range(3):  # the float32 path (no native bf16) varies frame to frame (0-18,000 measured); glibc's
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt  # default maps ~33,000 pages every frame
        t.translate_uint8(x)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    assert min(faults) < 2000, faults


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc settings")
def test_a_process_own_malloc_settings_are_left_alone():
    code = ("from irvis.cpu import keep_freed_memory; from irvis.translate import Translator; from irvis.nets import build_generator; "
            "Translator(build_generator('vis2ir'), device='cpu'); print(keep_freed_memory())")
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_decoded_frame_runs_channels_last_through_the_network(llvip):
    """Translator.load(...)[None] has a batch stride of C (a view of the decoder's pixels), which PyTorch's
    convolutions took for NCHW: the whole network then ran in the slow layout (vis2ir 20% slower)."""
    t = Translator.from_pretrained(SHIPPED["vis2ir"], device="cpu", working_size=None)
    x = t.load(_frame(llvip, "vis2ir"))[None]
    layouts = []
    convs = [m for m in t._forward.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks = [m.register_forward_hook(lambda m, i, o: layouts.append(o.is_contiguous(memory_format=torch.channels_last)))
             for m in convs]
    try:
        t.translate_uint8(x)
    finally:
        for h in hooks:
            h.remove()
    assert layouts and all(layouts)


def test_the_fast_path_is_probed_at_the_level_of_real_thermal_frames_and_judged_by_its_worst(llvip):
    """A trained per-frame level raises its gain on dark frames, where a reduced-precision copy drifts first: the
    probe includes an exposure as dark as LLVIP's thermal frames, and the worst exposure decides."""
    from irvis.fused import low_precision_copy
    from irvis.probe import PROBE_EXPOSURES, probe_exposures

    levels = [load_image(p, "infrared").mean().item() for p in sorted((llvip / "infrared" / "test").glob("*.jpg"))]
    probes = probe_exposures(1, multiple=32)
    assert len(probes) == len(PROBE_EXPOSURES)
    # the probes span the real frames' levels, the darkest included
    assert min(p.mean().item() for p in probes) < min(levels) and max(p.mean().item() for p in probes) > max(levels)

    t = Translator.from_pretrained(SHIPPED["ir2vis"], device="cpu", precision="bf16")
    low, _ = low_precision_copy(t.generator, torch.bfloat16)
    with torch.inference_mode():
        x = probes.contiguous(memory_format=torch.channels_last)
        each = psnr(low(x.to(torch.bfloat16)).float().clamp(0, 1), t.generator(x).float().clamp(0, 1))
    assert t.probe_psnr == pytest.approx(each.min().item(), abs=1e-3) and each.max() > each.min()
    assert "worst exposure" in t.path
