"""Decoding and validation of images: files on disk, uploads, PIL images.

One place turns anything a user hands us into a float tensor in [0, 1] with the channel count of its
modality (infrared: 1, visible: 3), or refuses it with a message that says what is wrong.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from irvis.directions import MODALITY_CHANNELS

ImageSource = Union[str, os.PathLike, bytes, Image.Image]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# 40 megapixels: a 1280x1024 LLVIP frame is 1.3 MP; beyond this a CPU translation takes minutes and
# gigabytes. Override with IRVIS_MAX_PIXELS.
DEFAULT_MAX_PIXELS = 40_000_000
# PIL's own bomb check would fire before ours with a less useful message.
Image.MAX_IMAGE_PIXELS = None


class ImageError(ValueError):
    """An image that cannot be used, with a message fit to show a user."""


def max_pixels() -> int:
    return int(os.environ.get("IRVIS_MAX_PIXELS", DEFAULT_MAX_PIXELS))


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, bytes):
        return "uploaded image"
    return "image"


# What the decoder may be: the formats docs/datasets.md lists (MPO is how Pillow names a JPEG with extra
# frames, as phones write). Nothing else reaches a Pillow plugin, however a file is named.
Image.init()  # register every plugin, so that Image.open(formats=...) knows each name
FORMATS = tuple(f for f in ("JPEG", "MPO", "PNG", "BMP", "TIFF") if f in Image.OPEN)
# Magic numbers: to tell a broken file of a supported format from a file of another format.
_SUPPORTED_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"),
                    (b"MM\x00*", "TIFF"), (b"BM", "BMP"))
_OTHER_MAGIC = ((b"GIF8", "a GIF file"), (b"%PDF", "a PDF document"), (b"%!PS", "a PostScript (EPS) file"),
                (b"\xc5\xd0\xd3\xc6", "a PostScript (EPS) file"), (b"<svg", "an SVG drawing"), (b"<?xml", "an XML file"),
                (b"\x00\x00\x00\x0cjP", "a JPEG 2000 file"), (b"\xff\x4f\xff\x51", "a JPEG 2000 file"),
                (b"PK\x03\x04", "a ZIP archive"), (b"\x00\x00\x01\x00", "an icon (ICO) file"))
USE_FORMATS = "use JPEG, PNG, BMP or TIFF"


def _head(source) -> bytes:
    try:
        if isinstance(source, bytes):
            return source[:16]
        with open(source, "rb") as f:
            return f.read(16)
    except OSError:
        return b""


def _unreadable(name: str, source) -> ImageError:
    """A file Pillow could not identify among FORMATS: say what it is when its first bytes tell."""
    head = _head(source) if isinstance(source, (bytes, str, os.PathLike)) else b""
    for magic, fmt in _SUPPORTED_MAGIC:
        if head.startswith(magic):
            return ImageError(f"{name}: corrupt {fmt} file: its header or a checksum is broken, it cannot be read")
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return ImageError(f"{name}: a HEIC/AVIF photo, not a format this tool reads ({USE_FORMATS})")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return ImageError(f"{name}: a WebP image, not a format this tool reads ({USE_FORMATS})")
    for magic, what in _OTHER_MAGIC:
        if head.lstrip().startswith(magic):
            return ImageError(f"{name}: {what}, not an image this tool can read ({USE_FORMATS})")
    return ImageError(f"{name}: not an image this tool can read ({USE_FORMATS})")


def _open(source: ImageSource, name: str) -> Image.Image:
    """Image.open limited to FORMATS, every failure an ImageError with a message for a person."""
    if isinstance(source, Image.Image):
        return source
    try:
        if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
            raise ImageError(f"{name}: a folder, not an image file")
        fp = io.BytesIO(source) if isinstance(source, bytes) else source
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" and the like: the pixels decide, below
            return Image.open(fp, formats=FORMATS)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: file not found") from None
    except PermissionError:
        raise ImageError(f"{name}: cannot be read (permission denied)") from None
    except UnidentifiedImageError:
        raise _unreadable(name, source) from None
    except ValueError as e:
        if "decompressed data too large" in str(e).lower():
            raise _bomb(name) from None
        raise ImageError(f"{name}: corrupt image, cannot be read ({e})") from None
    except Exception as e:  # OSError, struct.error, SyntaxError...: a broken file, whatever the plugin says
        raise ImageError(f"{name}: corrupt or truncated image, cannot be read ({e})") from None


def _bomb(name: str) -> ImageError:
    return ImageError(f"{name}: refused: a compressed block in the file (text or colour profile) expands far beyond "
                      "any real image's (a decompression bomb)")


def image_size(source: ImageSource) -> tuple[int, int]:
    """(width, height) from the header alone, with the same checks and messages as open_image."""
    name = _describe(source)
    img = _open(source, name)
    try:
        return img.size
    finally:
        if not isinstance(source, Image.Image):
            img.close()


def open_image(source: ImageSource, draft_size: tuple[int, int] | None = None, limit: int | None = None,
               luma: bool = False) -> Image.Image:
    """Open and fully decode an image, checking its size from the header before decoding.

    Only JPEG, PNG, BMP and TIFF are decoded (whatever the file's name); limit: most pixels accepted
    (default: max_pixels()), so decoding never takes more than about 4 bytes a pixel of that limit.
    draft_size: for JPEGs, let the decoder scale down by 1/2, 1/4 or 1/8 while staying at least this
    (width, height): a 1280x1024 LLVIP frame wanted at 320x256 then decodes about 8x faster.
    luma: for a colour JPEG, decode its luma (Y) plane alone, as an "L" image: 2-3x faster than decoding
    colour and converting, and the same pixels on LLVIP's gray-replicated infrared (on a colour photo, within
    rounding of Pillow's RGB-to-L; its Y is the encoder's own ITU-R 601 luma).
    """
    name = _describe(source)
    limit = max_pixels() if limit is None else limit
    img = _open(source, name)
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: empty image ({w}x{h})")
    if w * h > limit:
        raise ImageError(
            f"{name}: {w}x{h} is {w * h / 1e6:.1f} megapixels, over the limit of {limit / 1e6:.0f} megapixels; "
            "resize it first (or raise IRVIS_MAX_PIXELS)"
        )
    if (draft_size is not None or luma) and img.format in ("JPEG", "MPO"):
        img.draft("L" if luma else img.mode, draft_size or img.size)  # Pillow drafts only YCbCr to L
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except ValueError as e:
        if "decompressed data too large" in str(e).lower():
            raise _bomb(name) from None
        raise ImageError(f"{name}: corrupt or truncated image ({e})") from None
    except MemoryError:
        raise ImageError(f"{name}: too large to decode in the memory available") from None
    except Exception as e:  # OSError, SyntaxError, struct.error...: whatever a broken file makes a plugin raise
        raise ImageError(f"{name}: corrupt or truncated image ({e})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": the image itself is fine
            img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not lose an otherwise good image
        pass
    return img


def _high_bit_depth_to_unit(arr: np.ndarray) -> np.ndarray:
    """16-bit and float frames (raw radiometric infrared) use a narrow part of their range, so they are
    stretched per image from the 0.1th to the 99.9th percentile, as thermal cameras' AGC does."""
    arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - finite.sum())
        raise ImageError(f"{bad} of its {arr.size} pixels are NaN or infinite (a float image with missing "
                         "measurements); replace them with numbers first")
    lo, hi = np.percentile(arr, [0.1, 99.9])
    if hi - lo < 1e-6:
        return np.zeros_like(arr)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def to_tensor(img: Image.Image, modality: str, uint8: bool = False) -> torch.Tensor:
    """PIL image of any supported mode -> float tensor (C, H, W) in [0, 1] for this modality. uint8=True keeps
    an 8-bit image's values 0-255 as uint8, in the decoder's pixel-interleaved memory (a channels-last view: the
    layout the fast inference path wants, with no conversion pass); high-bit-depth images stay float."""
    if modality not in MODALITY_CHANNELS:
        raise ValueError(f"unknown modality {modality!r}")
    channels = MODALITY_CHANNELS[modality]
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        unit = torch.from_numpy(_high_bit_depth_to_unit(np.asarray(img)))[None]
        return unit.expand(channels, -1, -1).contiguous()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA").convert("RGB")  # alpha carries nothing we translate
    if channels == 1:
        img = img.convert("L")  # ITU-R 601 luma; exact for LLVIP's gray-replicated infrared
    else:
        img = img.convert("RGB")  # a gray visible image is replicated (TNO's are gray)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    pixels = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    return pixels if uint8 else pixels.float().div_(255.0)


def load_image(source: ImageSource, modality: str, draft_size: tuple[int, int] | None = None,
               limit: int | None = None, uint8: bool = False) -> torch.Tensor:
    """Open, validate and convert in one call: the entry point for files and uploads (uint8: see to_tensor)."""
    img = open_image(source, draft_size=draft_size, limit=limit, luma=MODALITY_CHANNELS.get(modality) == 1)
    try:
        return to_tensor(img, modality, uint8=uint8)
    except ImageError as e:
        raise ImageError(f"{_describe(source)}: {e}") from None


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """Tensor (C, H, W) in [0, 1] -> PIL 'L' (C=1) or 'RGB' (C=3)."""
    arr = tensor.detach().float().clamp(0, 1).mul_(255).round_().byte().cpu()  # one float copy, not three
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0].numpy())  # uint8 (H, W): "L"
    return Image.fromarray(arr.permute(1, 2, 0).numpy())  # uint8 (H, W, 3): "RGB"


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of (..., 3, H, W) -> (..., 1, H, W), the same weights PIL uses for 'L'."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * weights).sum(dim=-3, keepdim=True)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS
