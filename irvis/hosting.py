"""Serving translations to strangers: what a request may read, how many bytes it may send, where its results
go and for how long, and the headers every response carries. The app (app.py) wires these into Gradio; they
know nothing of Gradio themselves, so they are tested on their own.

The bounds, each stated in the README's "Hosting it safely":
- a request names files only inside the folders the server chose (`is_within`);
- every image arrives under one byte limit, a pasted data: URL included, checked before it is decoded or
  stored (`decode_data_url`), and request bodies other than file uploads are small (`BodyLimit`), so a full queue
  holds a bounded amount of memory;
- results live in one folder bounded by bytes and by age (`OutputStore`);
- responses say what they are (`SecurityHeaders`: no MIME sniffing, no framing by other sites).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable


class RequestRefused(ValueError):
    """Input a visitor sent that the server will not take, with a sentence for them."""


def parse_size(text: str | int) -> int:
    """'50mb', '20 MB', '1gb', '512kb' or a number of bytes -> bytes (as Gradio reads --max-file-size)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?b?)\s*", str(text).lower())
    if not match:
        raise ValueError(f"not a size: {text!r} (e.g. 50mb)")
    unit = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}
    return int(float(match[1]) * unit[match[2]])


def megabytes(n: int) -> str:
    return f"{n / 2**20:.3g} MB"


def is_within(path: str | os.PathLike, folders: Iterable[str | os.PathLike]) -> bool:
    """Whether a path a request names lies inside one of these folders once every link is resolved (the
    folder itself does not count)."""
    real = os.path.realpath(path)
    for folder in folders:
        folder = os.path.realpath(folder)
        if real != folder and os.path.commonpath([real, folder]) == folder:
            return True
    return False


def decode_data_url(url: str, max_bytes: int) -> bytes:
    """The bytes of a base64 data: URL (how some API clients send a pasted image). Its decoded size is known
    from its length: one over max_bytes is refused before anything is decoded."""
    header, sep, encoded = url.partition(",")
    if not sep or not header.startswith("data:") or ";base64" not in header:
        raise RequestRefused("The pasted image is not a base64 data: URL.")
    encoded = encoded.strip()
    if len(encoded) // 4 * 3 - len(encoded[-2:]) + len(encoded[-2:].rstrip("=")) > max_bytes:
        raise RequestRefused(f"The pasted image is larger than the limit of {megabytes(max_bytes)}.")
    try:
        return base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise RequestRefused("The pasted image is not valid base64 data.") from None


class OutputStore:
    """Where every file a request returns is written: one folder shared by every run of the app. Each file gets
    a folder of its own, written under a temporary name and renamed (a response never serves a half-written
    file). Around each write, entries older than max_age_s go, then the oldest until the folder holds at most
    max_bytes; entries younger than busy_s are spared (their client may still be downloading them)."""

    def __init__(self, root: Path, max_bytes: int = 2 * 1024**3, max_age_s: float = 3600, busy_s: float = 5):
        self.root, self.max_bytes, self.max_age_s, self.busy_s = Path(root), max_bytes, max_age_s, busy_s
        self.root.mkdir(parents=True, exist_ok=True)

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(modified, bytes, folder) of every entry, oldest first; entries another instance removed are skipped."""
        found = []
        for entry in self.root.iterdir():
            try:
                files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file()]
                found.append((entry.stat().st_mtime, sum(f.stat().st_size for f in files), entry))
            except FileNotFoundError:
                continue
        return sorted(found, key=lambda e: e[0])

    def prune(self, keep: Path | None = None) -> None:
        """Remove entries past max_age_s, then the oldest until the rest fit in max_bytes (never `keep`, the entry
        just written, nor entries younger than busy_s)."""
        now = time.time()
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        for modified, size, entry in entries:
            old = now - modified > self.max_age_s
            if entry == keep or not old and (total <= self.max_bytes or now - modified < self.busy_s):
                continue
            _remove(entry)
            total -= size

    def folder(self) -> Path:
        """A new, empty folder of its own (remove it with discard if the request fails)."""
        self.prune()
        return Path(tempfile.mkdtemp(dir=self.root))

    def discard(self, folder: Path) -> None:
        if is_within(folder, [self.root]):
            _remove(folder)

    def write(self, name: str, write: Callable[[Path], None]) -> str:
        """A new file `name` in its own folder, written by write(staging_path) and renamed into place."""
        folder = self.folder()
        staging = folder / f".{name}.part"
        try:
            write(staging)
            path = folder / name
            os.replace(staging, path)
        except BaseException:
            _remove(folder)
            raise
        self.prune(keep=folder)
        return str(path)

    def used_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def save_png(self, image, name: str) -> str:
        """Lossless at the input's resolution; gray and RGB through irvis.png (about 2x faster than Pillow's level 1)."""
        import numpy as np

        from irvis.png import save_png

        if image.mode in ("L", "RGB"):
            return self.write(name, lambda staging: save_png(np.asarray(image), staging))
        return self.write(name, lambda staging: image.save(staging, format="PNG", compress_level=1))

    def save_preview(self, image, name: str) -> str:
        """A picture to look at: JPEG, or PNG where a side is longer than JPEG allows."""
        if max(image.size) <= JPEG_MAX_SIDE:
            rgb = image if image.mode in ("L", "RGB") else image.convert("RGB")
            return self.write(f"{name}.jpg", lambda staging: rgb.save(staging, format="JPEG", quality=90))
        return self.save_png(image, f"{name}.png")


JPEG_MAX_SIDE = 65_500  # previews wider or taller than JPEG allows are written as PNG


def _remove(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


class BodyLimit:
    """ASGI middleware: a request body over its route's limit is answered 413 before it is read. File uploads
    (paths starting with one of `upload_paths`) may be up to upload_bytes (Gradio streams them to disk and
    applies its own --max-file-size); every other body (JSON calls, queue joins) at most other_bytes, because
    those are held in memory while they wait in the queue. A body without a Content-Length is counted as it
    arrives and the request dropped where it passes its limit."""

    def __init__(self, app, other_bytes: int, upload_bytes: int, upload_paths: tuple[str, ...] = ("/gradio_api/upload",)):
        self.app, self.other_bytes, self.upload_bytes, self.upload_paths = app, other_bytes, upload_bytes, upload_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit = self.upload_bytes if path.startswith(self.upload_paths) else self.other_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _too_large(send, limit)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    return {"type": "http.disconnect"}
            return message

        return await self.app(scope, counted, send)


async def _too_large(send, limit: int) -> None:
    body = (f"Request body over the limit of {megabytes(limit)}. Send images as file uploads "
            "(gradio_client's handle_file does).").encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),  # an HTML file named .jpg is served as an image, never run as a page
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    # framing only by this site and Hugging Face (a Space is shown inside huggingface.co); no plugins, no <base>
    (b"content-security-policy", b"frame-ancestors 'self' https://huggingface.co https://*.hf.space; "
                                 b"object-src 'none'; base-uri 'self'"),
]


class SecurityHeaders:
    """ASGI middleware: SECURITY_HEADERS on every HTTP response, replacing any of the same name."""

    def __init__(self, app, headers: list[tuple[bytes, bytes]] = SECURITY_HEADERS):
        self.app, self.headers = app, headers
        self.names = {name for name, _ in headers}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self.names]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        return await self.app(scope, receive, with_headers)
