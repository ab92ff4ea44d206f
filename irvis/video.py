"""Videos: decode with PyAV (FFmpeg), translate frame by frame, encode an H.264 MP4 at the input's frame rate.

Decoding, translation and encoding run as three overlapped stages (see `irvis.translate.overlapped`), so
the slowest of them sets the pace. Audio and subtitles are dropped: the output holds one video stream.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from irvis.images import max_pixels

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
DEFAULT_RATE = Fraction(25)


class VideoError(ValueError):
    """A video that cannot be read or written, with a message fit to show a user."""


class VideoCancelled(VideoError):
    """The caller withdrew the request (translate_video's `cancelled`): the work stopped, nothing was kept."""


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class VideoInfo:
    width: int
    height: int
    rate: Fraction  # frames per second
    frames: int  # from the container's header; 0 when it does not say
    seconds: float  # duration, 0.0 when unknown


# Read only as these containers (FFmpeg's demuxer names), from local files only: a playlist (HLS, DASH), a
# concat list or an image sequence would make FFmpeg open other files or URLs that the caller never named.
CONTAINER_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi"
PROTOCOLS = "file"
UNREADABLE = "not a video this tool can read (MP4, AVI, MKV, MOV or WebM)"


def _open(path: str | os.PathLike):
    """The container, opened under the whitelists. Every failure gives the same words, so an error never
    tells a caller whether some other path exists or what it holds."""
    import av

    try:
        container = av.open(str(path), options={"format_whitelist": CONTAINER_FORMATS,
                                                "protocol_whitelist": PROTOCOLS})
    except (av.FFmpegError, OSError, ValueError):
        raise VideoError(f"{path}: {UNREADABLE}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: holds no video stream")
    return container


def _info(container, path) -> VideoInfo:
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width < 1 or height < 1:
        raise VideoError(f"{path}: video stream without a frame size")
    if width * height > max_pixels():
        raise VideoError(f"{path}: {width}x{height} frames are over the limit of {max_pixels() / 1e6:.0f} megapixels")
    rate = stream.average_rate or stream.guessed_rate or DEFAULT_RATE
    seconds = 0.0
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    frames = stream.frames or (round(seconds * rate) if seconds else 0)
    return VideoInfo(width, height, Fraction(rate), int(frames), seconds)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame size, rate, frame count and duration from the header (nothing is decoded)."""
    container = _open(path)
    try:
        return _info(container, path)
    finally:
        container.close()


def read_frames(path: str | os.PathLike, channels: int, max_frames: int | None = None,
                size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Decoded frames as (H, W, channels) uint8 arrays: gray (ITU-R 601 luma) for 1, RGB for 3.

    Every frame must have the header's size (or `size`, as (width, height)): a container may announce small
    frames and carry huge ones. The decoder itself refuses frames over that area before allocating them
    (FFmpeg's max_pixels), and a frame of another size is refused before it is converted."""
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        width, height = size or (stream.codec_context.width, stream.codec_context.height)
        # FFmpeg's decoders check max_pixels against their padded buffers: a margin of 64 px a side
        stream.codec_context.options = {"max_pixels": str((width + 64) * (height + 64))}
        stream.thread_type = "AUTO"  # FFmpeg's own frame/slice threads
        fmt = "gray" if channels == 1 else "rgb24"
        for i, frame in enumerate(container.decode(stream)):
            if max_frames is not None and i >= max_frames:
                break
            if (frame.width, frame.height) != (width, height):
                raise VideoError(f"{path}: frame {i + 1} is {frame.width}x{frame.height}, but the video says "
                                 f"{width}x{height}; a video whose frame size changes cannot be translated")
            arr = frame.to_ndarray(format=fmt)
            yield arr[..., None] if arr.ndim == 2 else arr
    except av.FFmpegError:
        raise VideoError(f"{path}: corrupt video, or frames larger than it says; decoding stopped") from None
    finally:
        container.close()


class VideoWriter:
    """H.264 (libx264, yuv420p: plays in browsers and players) in an MP4 at a given frame rate. yuv420p
    needs even sides: an odd width or height loses its last column or row."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, rate: Fraction, crf: int = 18,
                 preset: str = "veryfast"):
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width - width % 2, height - height % 2
        if self.width < 2 or self.height < 2:
            raise VideoError(f"{width}x{height} frames are too small to encode")
        self.container = av.open(str(self.path), "w")
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        self.stream.options = {"crf": str(crf), "preset": preset}
        self.stream.thread_type = "AUTO"
        self.frames = 0

    def write(self, arr: np.ndarray) -> None:
        """(H, W, 1) gray or (H, W, 3) RGB uint8."""
        import av

        arr = arr[: self.height, : self.width]
        fmt = "gray" if arr.shape[-1] == 1 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr[..., 0] if fmt == "gray" else arr), format=fmt)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():  # flush the encoder
            self.container.mux(packet)
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self.container.close()


def frame_budget(info: VideoInfo, src, max_seconds: float | None, max_frames: int | None) -> int | None:
    """The most frames a video may hold under both limits (None: unlimited), or VideoError when its header
    already says it holds more. Seconds alone are not a bound: ten seconds at 1000 frames/s is 10,000 frames."""
    budget = max_frames
    if max_seconds is not None:
        if info.seconds > max_seconds:
            raise VideoError(f"{src}: {info.seconds:.1f} s is longer than the limit of {max_seconds:g} s; trim it first")
        by_time = int(max_seconds * info.rate) + 1
        budget = by_time if budget is None else min(budget, by_time)
    if budget is not None and info.frames > budget:
        raise VideoError(f"{src}: {info.frames} frames ({float(info.rate):g} frames/s) is more than the limit of "
                         f"{budget} frames" + (f" ({max_seconds:g} s)" if max_seconds is not None else "")
                         + "; trim it or lower its frame rate first")
    return budget


def translate_video(translator, src: str | os.PathLike, dst: str | os.PathLike, batch_size: int = 4,
                    max_seconds: float | None = None, max_frame_pixels: int | None = None,
                    max_frames: int | None = None, progress: bool | Callable[[int, int], None] = True,
                    cancelled: Callable[[], bool] | None = None) -> dict:
    """Translate every frame of a video into an MP4 at the same frame rate and size (audio dropped).

    max_seconds, max_frames: refuse (VideoError) a video its header says is longer before decoding anything,
    and stop (VideoError, nothing written) one whose header does not say and turns out longer while decoding.
    max_frame_pixels: refuse larger frames (width x height) before decoding; every frame is held to the
    header's size while decoding. progress: True for a tqdm bar (frames/s), or a callable(done, total).
    cancelled: polled before each batch; when it answers True the work stops (VideoCancelled, nothing
    written). Returns frames, seconds, frames_per_second, rate."""
    from irvis.translate import overlapped

    info = probe_video(src)
    if max_frame_pixels is not None and info.width * info.height > max_frame_pixels:
        raise VideoError(f"{src}: {info.width}x{info.height} frames are over the limit of "
                         f"{max_frame_pixels / 1e6:.1f} megapixels per frame; scale the video down first")
    max_frames = frame_budget(info, src, max_seconds, max_frames)
    d = translator.direction
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=info.frames or None, unit="frame", desc=f"{Path(src).name} {d.name}", dynamic_ncols=True)

    def batches():
        chunk = []
        for i, arr in enumerate(read_frames(src, d.in_channels, size=(info.width, info.height))):
            if max_frames is not None and i >= max_frames:  # a header that did not tell the length
                raise VideoError(f"{src}: more than the limit of {max_frames} frames"
                                 + (f" ({max_seconds:g} s at {float(info.rate):g} frames/s)" if max_seconds else "")
                                 + "; trim it first")
            if cancelled is not None and i % batch_size == 0 and cancelled():
                raise VideoCancelled(f"{src}: cancelled")
            chunk.append(arr)
            if len(chunk) == batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def work(chunk):
        x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2)  # NHWC memory: channels-last already
        return translator.translate_uint8(x)

    start = time.perf_counter()
    try:
        with VideoWriter(dst, info.width, info.height, info.rate) as writer:
            def sink(out):
                for arr in out:
                    writer.write(arr)
                if bar is not None:
                    bar.update(len(out))
                elif callable(progress):
                    progress(writer.frames, info.frames)

            overlapped(batches(), work, sink)
    except BaseException:  # no half-written video left behind
        Path(dst).unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    if writer.frames == 0:
        Path(dst).unlink(missing_ok=True)
        raise VideoError(f"{src}: no frame could be decoded")
    return {"frames": writer.frames, "seconds": seconds, "frames_per_second": writer.frames / seconds,
            "rate": info.rate, "size": (writer.width, writer.height)}
