"""PNG writing for translated frames: about 2x faster than Pillow's encoder at its fastest setting.

Pillow chooses a PNG filter for every row by trying all five (libpng's heuristic), which costs more than
the compression itself on a 1280x1024 RGB frame. A translated frame is smooth from row to row, so the
"Up" filter alone (each row minus the one above, one numpy subtraction for the whole image) does as well
or better, and zlib's level 1 with its run-length strategy compresses the result. The files are ordinary
8-bit PNGs (Pillow, browsers and every viewer read them; the tests decode them back exactly), slightly
smaller than Pillow's level-1 files, and zlib releases the GIL, so encoding overlaps translation.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO

import numpy as np

COMPRESS_LEVEL = 1  # zlib level 1 (with Z_RLE): the speed a frame pipeline needs; 6+ gains a few % of size
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type: grayscale, truecolour


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(arr: np.ndarray, level: int = COMPRESS_LEVEL) -> bytes:
    """(H, W), (H, W, 1) or (H, W, 3) uint8 -> the bytes of an 8-bit grayscale or RGB PNG."""
    if arr.dtype != np.uint8:
        raise ValueError(f"PNG frames are uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in _COLOUR_TYPES or 0 in arr.shape:
        raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got shape {tuple(arr.shape)}")
    h, w, c = arr.shape
    flat = np.ascontiguousarray(arr).reshape(h, w * c)
    rows = np.empty((h, 1 + w * c), np.uint8)
    rows[:, 0] = 2  # filter type "Up" on every row (the first row's "above" is zero: the row itself)
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])  # modulo 256, as PNG defines it
    deflate = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = deflate.compress(rows.data) + deflate.flush()
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPES[c], 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def save_png(arr: np.ndarray, path: str | os.PathLike | BinaryIO, level: int = COMPRESS_LEVEL) -> None:
    """Write `encode_png(arr)` to a path or a binary file object."""
    data = encode_png(arr, level)
    if hasattr(path, "write"):
        path.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
