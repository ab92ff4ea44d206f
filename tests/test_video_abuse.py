"""Videos built to abuse the reader: playlists that name other files, containers that announce small frames
and carry huge ones, frame rates that make ten seconds into thousands of frames. Each is refused with a
sentence, before the work it would cause, and nothing is left behind."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from irvis.translate import Translator
from irvis.video import UNREADABLE, VideoError, probe_video, read_frames, translate_video

REPO = Path(__file__).resolve().parents[1]


def _llvip_frame(llvip, size=(64, 48)) -> np.ndarray:
    return np.asarray(Image.open(llvip / "infrared/test/200002.jpg").convert("RGB").resize(size))


def write_h264(path: Path, frames: list[np.ndarray], rate: int, fmt: str | None = None) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for arr in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_size_hiding_mjpeg(path: Path, small: np.ndarray, later: tuple[int, int], n_small: int = 4,
                            n_later: int = 2) -> Path:
    """An MJPEG Matroska whose header (and first frames) say small.shape, then frames of size `later` (w, h):
    each JPEG carries its own size, so a container may mix them."""
    h, w = small.shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuvj420p"
        big = av.CodecContext.create("mjpeg", "w")
        big.width, big.height, big.pix_fmt, big.time_base = later[0], later[1], "yuvj420p", Fraction(1, 25)
        frames = [(s.codec_context, small)] * n_small + [(big, np.zeros((later[1], later[0], 3), np.uint8))] * n_later
        for pts, (ctx, arr) in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuvj420p")
            frame.pts, frame.time_base = pts, Fraction(1, 25)
            for p in ctx.encode(frame):
                p.stream = s
                c.mux(p)
    return path


@pytest.fixture(scope="module")
def translator(generators):
    return Translator.from_pretrained(generators["ir2vis"], device="cpu")


@pytest.fixture(scope="module")
def outside_video(llvip, tmp_path_factory) -> Path:
    """A real video outside the uploads: what a playlist would try to make the reader open."""
    return write_h264(tmp_path_factory.mktemp("server") / "private.mp4", [_llvip_frame(llvip)] * 4, rate=10)


def playlist(path: Path, target: str) -> Path:
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n")
    return path


@pytest.mark.parametrize("name", ["list.m3u8", "list.mp4"])
def test_a_playlist_naming_another_file_is_refused_with_the_unreadable_sentence(outside_video, translator, tmp_path,
                                                                              name):
    """FFmpeg would follow an HLS playlist to any file on the server (absolute or ../ paths); only the listed
    container formats are read, so it is refused, and in the same words as a missing or a junk file: the
    answer tells nothing about which paths exist."""
    relative = Path("..") / ".." / outside_video.relative_to(outside_video.anchor)
    for target in (str(outside_video), "../" * 12 + str(relative)):
        src = playlist(tmp_path / name, target)
        with pytest.raises(VideoError) as refused:
            translate_video(translator, src, tmp_path / "out.mp4", progress=False)
        assert str(refused.value) == f"{src}: {UNREADABLE}"
        assert not (tmp_path / "out.mp4").exists()
    for other in (tmp_path / "missing.mp4", tmp_path):
        with pytest.raises(VideoError) as refused:
            probe_video(other)
        assert str(refused.value) == f"{other}: {UNREADABLE}"


def test_an_mpegts_stream_named_mp4_is_refused(llvip, translator, tmp_path):
    src = write_h264(tmp_path / "stream.mp4", [_llvip_frame(llvip)] * 3, rate=10, fmt="mpegts")
    with pytest.raises(VideoError, match="not a video this tool can read"):
        translate_video(translator, src, tmp_path / "out.mp4", progress=False)


def test_frames_larger_than_the_header_says_are_refused_before_they_are_decoded(llvip, tmp_path):
    """The header and first 4 frames say 64x48, then 8192x8192 frames: the decoder refuses them before
    allocating (in a child process whose peak memory is measured), nothing is written, and no corner of a huge
    frame passes for an answer."""
    src = write_size_hiding_mjpeg(tmp_path / "hiding.mkv", _llvip_frame(llvip), (8192, 8192))
    info = probe_video(src)
    assert (info.width, info.height) == (64, 48)
    code = ("import re\n"
            "from irvis.translate import Translator\n"
            "from irvis.video import VideoError, translate_video\n"
            f"t = Translator.from_pretrained({str(REPO / 'weights/ir2vis')!r}, device='cpu')\n"
            "try:\n"
            f"    translate_video(t, {str(src)!r}, {str(tmp_path / 'out.mp4')!r}, progress=False)\n"
            "    print('ACCEPTED')\n"
            "except VideoError as e:\n"
            "    print('REFUSED', e)\n"
            # VmHWM: this process's own peak (ru_maxrss would carry the parent's over the exec)
            "print('PEAK_MB', int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) // 1024)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "REFUSED" in run.stdout and "larger than it says" in run.stdout, run.stdout
    peak = int(run.stdout.split("PEAK_MB")[1])
    assert peak < 1500, run.stdout  # one 8192x8192 frame alone would be 100 MB of YUV per decoder thread
    assert not (tmp_path / "out.mp4").exists()


def test_frames_smaller_than_the_header_says_get_a_sentence(llvip, tmp_path):
    src = write_size_hiding_mjpeg(tmp_path / "shrinking.mkv", _llvip_frame(llvip, (96, 64)), (32, 24))
    frames = read_frames(src, 1)
    assert [next(frames).shape for _ in range(4)] == [(64, 96, 1)] * 4
    with pytest.raises(VideoError, match=r"frame 5 is 32x24, but the video says 96x64"):
        next(frames)


def test_a_high_frame_rate_is_refused_by_its_frame_count(llvip, translator, tmp_path):
    """Under a second long, but 400 frames at 1000 frames/s: over a 300-frame budget however short it is."""
    src = write_h264(tmp_path / "fast.mp4", [_llvip_frame(llvip, (32, 32))] * 400, rate=1000)
    info = probe_video(src)
    assert info.rate == 1000 and info.seconds < 1
    with pytest.raises(VideoError, match="400 frames .* more than the limit of 300 frames"):
        translate_video(translator, src, tmp_path / "out.mp4", max_seconds=10, max_frames=300, progress=False)
    assert not (tmp_path / "out.mp4").exists()


def test_a_cancelled_translation_stops_and_leaves_nothing(llvip, translator, tmp_path):
    from irvis.video import VideoCancelled

    src = write_h264(tmp_path / "clip.mp4", [_llvip_frame(llvip)] * 40, rate=10)
    polls = []

    def cancelled():
        polls.append(1)
        return len(polls) > 2

    with pytest.raises(VideoCancelled):
        translate_video(translator, src, tmp_path / "out.mp4", batch_size=4, cancelled=cancelled, progress=False)
    assert len(polls) == 3 and not (tmp_path / "out.mp4").exists()


def test_the_live_app_refuses_a_playlist_and_a_size_hiding_video(generators, outside_video, llvip, tmp_path):
    """Through /vis2ir_video as a visitor would send them: the playlist naming a server file gets the
    unreadable sentence (its name only, no server path), the size-hiding video its own, and the app still
    translates a real clip afterwards."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from test_app import running_app

    hiding = write_size_hiding_mjpeg(tmp_path / "hiding.mkv", _llvip_frame(llvip), (4096, 4096))
    args = ["--weights-ir2vis", str(generators["ir2vis"]), "--weights-vis2ir", str(generators["vis2ir"])]
    with running_app(args) as (url, _):
        c = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        for target in (str(outside_video), "../" * 12 + str(outside_video).lstrip("/")):
            with pytest.raises(AppError) as refused:
                c.predict(handle_file(str(playlist(tmp_path / "list.m3u8", target))), api_name="/vis2ir_video")
            assert UNREADABLE in str(refused.value) and str(tmp_path) not in str(refused.value)
        with pytest.raises(AppError, match="larger than it says"):
            c.predict(handle_file(str(hiding)), api_name="/vis2ir_video")
        real = write_h264(tmp_path / "real.mp4", [_llvip_frame(llvip)] * 3, rate=10)
        _, summary = c.predict(handle_file(str(real)), api_name="/vis2ir_video")
        assert "Translated 3 frames" in summary
