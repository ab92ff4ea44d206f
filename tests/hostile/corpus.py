"""A hostile corpus: files a careless or malicious user may hand the app or the CLI, generated on the fly
from one real frame of the sample data (nothing here is committed but this code).

Each case says what must happen: "ok" (a translation at the stated size) or a phrase of the message that
refuses it. `python tests/hostile/corpus.py` prints the table input -> outcome, through irvis.images.

    python tests/hostile/corpus.py [--out DIR]
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # irvis, when run as a script
FRAME = REPO.parent / "shared" / "data" / "llvip" / "infrared" / "test"  # any LLVIP frame: the first one
W, H = 64, 48  # valid cases are small: the corpus tests handling, not the generator's speed
BIG_SIDE = 4000  # 16 MP: the app's default limit, reached by a 35 kB PNG


@dataclass(frozen=True)
class Case:
    name: str  # file name in the corpus folder
    expect: str  # "ok", or a phrase the refusal message must contain
    what: str  # one line for the table
    size: tuple[int, int] | None = None  # (w, h) of the output, for "ok"
    truth: str | None = None  # name of a file given as ground truth with it (the app only)
    cli: bool = True  # also run through the CLI (cases about ground truths are the app's alone)


def _frame() -> Image.Image:
    first = sorted(FRAME.glob("*.jpg"))[0]
    with Image.open(first) as img:
        return img.convert("RGB").resize((W, H), Image.BICUBIC)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_with_chunk(png: bytes, chunk: bytes) -> bytes:
    return png[:33] + chunk + png[33:]  # after the signature and IHDR


def _png_header(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h, with a tiny IDAT: refused before any decoding."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def _jpeg_claiming(jpeg: bytes, w: int, h: int) -> bytes:
    data = bytearray(jpeg)
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def _save(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def build(folder: Path) -> list[Case]:
    """Write every file of the corpus into folder; return the cases."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _frame()
    gray = rgb.convert("L")
    files: dict[str, bytes] = {}
    cases: list[Case] = []

    def ok(name: str, data: bytes, what: str, size=(W, H), **kw):
        files[name] = data
        cases.append(Case(name, "ok", what, size, **kw))

    def refused(name: str, data: bytes, expect: str, what: str, **kw):
        files[name] = data
        cases.append(Case(name, expect, what, **kw))

    # --- the formats docs/datasets.md lists, in every mode they come in: a translation at the input's size
    for mode in ("RGB", "L", "CMYK"):
        ok(f"jpeg_{mode.lower()}.jpg", _save(rgb.convert(mode), "JPEG", quality=90), f"JPEG {mode}")
    ok("jpeg_progressive.jpg", _save(rgb, "JPEG", progressive=True), "progressive JPEG")
    ok("jpeg_444.jpg", _save(rgb, "JPEG", subsampling=0, quality=100), "JPEG 4:4:4, quality 100")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the output is upright, so its size is swapped
    ok("jpeg_exif_rotated.jpg", _save(rgb, "JPEG", exif=exif), "JPEG with EXIF orientation 6", size=(H, W))
    ok("jpeg_broken_exif.jpg", _save(rgb, "JPEG", exif=b"Exif\x00\x00MM\x00*garbage"), "JPEG with a broken EXIF block")
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        if mode == "I":  # the 16-bit PNG Pillow 12 writes for mode I (values 0-255); Pillow 13 no longer converts
            img = Image.fromarray(np.asarray(gray, dtype=np.uint16))
        elif mode == "I;16":
            img = Image.fromarray((np.asarray(gray, dtype=np.uint16) * 200 + 3000).astype(np.uint16))
        else:
            img = gray.convert(mode) if mode in ("1", "LA") else rgb.convert(mode)
        ok(f"png_{mode.replace(';', '').lower()}.png", _save(img, "PNG"), f"PNG {mode}")
    pal = rgb.convert("P")
    ok("png_p_transparent.png", _save(pal, "PNG", transparency=0), "PNG palette with transparency")
    for mode in ("1", "L", "P", "RGB", "RGBA"):
        ok(f"bmp_{mode.lower()}.bmp", _save(rgb.convert(mode), "BMP"), f"BMP {mode}")
    for mode in ("1", "L", "RGB", "RGBA", "CMYK", "I;16", "I", "F"):
        if mode in ("I;16", "I", "F"):
            arr = np.asarray(gray, dtype=np.float32) * 37.5 + 1000
            img = Image.fromarray(arr.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
        else:
            img = rgb.convert(mode)
        ok(f"tiff_{mode.replace(';', '').lower()}.tif", _save(img, "TIFF"), f"TIFF {mode}")
    ok("tiff_lzw.tif", _save(rgb, "TIFF", compression="tiff_lzw"), "TIFF RGB, LZW")
    ok("tiff_deflate.tiff", _save(gray, "TIFF", compression="tiff_adobe_deflate"), "TIFF L, deflate")
    ok("tiff_two_pages.tif", _save(rgb, "TIFF", save_all=True, append_images=[gray.convert("RGB")]),
       "TIFF with two pages (the first is used)")
    ok("png_named.jpg", _save(rgb, "PNG"), "PNG named .jpg")
    ok("jpeg_named.png", _save(rgb, "JPEG"), "JPEG named .png")
    ok("jpeg_named.tiff", _save(rgb, "JPEG"), "JPEG named .tiff")
    # odd sizes
    ok("one_pixel.png", _save(rgb.resize((1, 1)), "PNG"), "1x1 PNG", size=(1, 1))
    ok("two_by_two.png", _save(rgb.resize((2, 2)), "PNG"), "2x2 PNG", size=(2, 2))
    ok("three_by_three.bmp", _save(rgb.resize((3, 3)), "BMP"), "3x3 BMP", size=(3, 3))
    ok("one_row_wide.png", _save(gray.resize((100_000, 1)), "PNG"), "100000x1 PNG (wider than JPEG allows)",
       size=(100_000, 1))
    ok("one_column.png", _save(gray.resize((1, 3000)), "PNG"), "1x3000 PNG", size=(1, 3000))
    big = _save(Image.new("RGB", (BIG_SIDE, BIG_SIDE), (40, 90, 160)), "PNG", optimize=True)
    ok("sixteen_mp.png", big, f"{BIG_SIDE}x{BIG_SIDE} PNG, {len(big) // 1000} kB: at the app's 16 MP limit",
       size=(BIG_SIDE, BIG_SIDE), cli=False)
    cases.append(Case("sixteen_mp.png", "ok", "the same 16 MP file as input and ground truth (scored at 1 MP)",
                      (BIG_SIDE, BIG_SIDE), truth="sixteen_mp.png", cli=False))

    # --- not images, or not in the formats docs/datasets.md lists, whatever their names say
    jpeg = _save(rgb, "JPEG")
    png = _save(rgb, "PNG")
    not_image = "not an image this tool can read"
    refused("notes.jpg", b"this is a text file, not a photograph\n", not_image, "text named .jpg")
    refused("empty.png", b"", not_image, "empty file")
    refused("random.bmp", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()[2:], not_image,
            "random bytes")
    refused("page.jpg", b"<!DOCTYPE html><html><body><img src=x></body></html>", not_image, "HTML named .jpg")
    refused("data.png", b'{"path": "/etc/passwd"}', not_image, "JSON named .png")
    refused("document.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "a PDF document", "PDF named .jpg")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 48\n0 0 moveto 64 48 lineto stroke\nshowpage\n"
    refused("drawing.jpg", eps, "PostScript", "EPS named .jpg (never reaches Ghostscript)")
    refused("drawing_binary.jpg", b"\xc5\xd0\xd3\xc6" + b"\x00" * 28 + eps, "PostScript", "binary EPS named .jpg")
    refused("animation.jpg", _save(rgb.convert("P"), "GIF"), "a GIF file", "GIF named .jpg")
    refused("photo.webp.jpg", _save(rgb, "WEBP"), "a WebP image", "WebP named .jpg")
    refused("vector.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"/>', "an SVG drawing",
            "SVG named .png")
    refused("icon.png", _save(rgb.resize((32, 32)), "ICO"), "an icon", "ICO named .png")
    refused("archive.tif", b"PK\x03\x04" + b"\x00" * 60, "a ZIP archive", "ZIP named .tif")
    refused("phone.jpg", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, "HEIC", "HEIC named .jpg")
    refused("j2k.jpg", b"\xff\x4f\xff\x51" + b"\x00" * 60, "JPEG 2000", "JPEG 2000 codestream named .jpg")
    refused("netpbm.png", _save(gray, "PPM"), not_image, "PGM (a format Pillow reads, not one irvis accepts)")
    refused("targa.bmp", _save(rgb, "TGA"), not_image, "TGA named .bmp")
    refused("spider.tif", b"\x00" * 1024, not_image, "zeros named .tif")

    # --- corrupt files of the right formats
    corrupt = "corrupt"
    for cut in (2, 3, 10):
        refused(f"jpeg_cut_{cut}.jpg", jpeg[: len(jpeg) // cut], corrupt, f"JPEG cut to 1/{cut}")
    refused("jpeg_header_only.jpg", jpeg[:20], corrupt, "JPEG: the first 20 bytes")
    refused("jpeg_soi_only.jpg", b"\xff\xd8\xff", corrupt, "JPEG: SOI marker only")
    refused("png_cut.png", png[: len(png) // 2], corrupt, "PNG cut in half")
    bad_ihdr = bytearray(png)
    bad_ihdr[29] ^= 0xFF
    refused("png_bad_header_crc.png", bytes(bad_ihdr), "corrupt PNG", "PNG with a broken IHDR checksum")
    bad_idat = bytearray(png)
    idat = png.find(b"IDAT")
    bad_idat[idat + 8] ^= 0xFF
    refused("png_bad_data.png", bytes(bad_idat), corrupt, "PNG with damaged image data")
    refused("png_zero_size.png", _png_header(0, 0), "corrupt PNG", "PNG claiming 0x0")
    refused("png_signature_only.png", b"\x89PNG\r\n\x1a\n", corrupt, "PNG signature only")
    bmp = bytearray(_save(rgb, "BMP"))
    bmp[18:26] = struct.pack("<ii", 50_000, 50_000)
    refused("bmp_claims_huge.bmp", bytes(bmp), "over the limit", "BMP claiming 50000x50000")
    bmp_bad = bytearray(_save(rgb, "BMP"))
    bmp_bad[28:30] = struct.pack("<H", 7)  # 7 bits per pixel does not exist
    refused("bmp_bad_depth.bmp", bytes(bmp_bad), corrupt, "BMP with 7 bits per pixel")
    refused("bmp_cut.bmp", _save(rgb, "BMP")[:200], corrupt, "BMP cut short")
    tiff = bytearray(_save(rgb, "TIFF"))
    tiff[4:8] = struct.pack("<I", 0x7FFFFFF0)  # first directory far past the end
    refused("tiff_bad_offset.tif", bytes(tiff), corrupt, "TIFF whose directory lies past the end")
    refused("tiff_cut.tif", _save(rgb, "TIFF")[:300], corrupt, "TIFF cut short")

    # --- bombs: decompression and dimensions
    bomb = zlib.compress(b"\0" * 30_000_000, 9)
    bomb_msg = "decompression bomb"
    refused("png_ztxt_bomb.png", _png_with_chunk(png, _png_chunk(b"zTXt", b"Comment\0\0" + bomb)), bomb_msg,
            f"PNG zTXt chunk: {len(bomb) // 1000} kB inflating to 30 MB")
    refused("png_iccp_bomb.png", _png_with_chunk(png, _png_chunk(b"iCCP", b"icc\0\0" + bomb)), bomb_msg,
            "PNG iCCP colour profile bomb")
    refused("png_itxt_bomb.png", _png_with_chunk(png, _png_chunk(b"iTXt", b"Comment\0\1\0\0\0" + bomb)), bomb_msg,
            "PNG compressed iTXt bomb")
    claims = _jpeg_claiming(_save(Image.new("L", (8, 8)), "JPEG"), 6000, 6000)
    refused("jpeg_claims_36mp.jpg", claims, "over the limit", f"{len(claims)}-byte JPEG claiming 6000x6000")
    refused("png_claims_10gp.png", _png_header(100_000, 100_000), "over the limit", "PNG claiming 100000x100000")
    refused("png_claims_wide.png", _png_header(2**31 - 1, 1), "over the limit", "PNG claiming 2147483647x1")
    tiff_huge = bytearray(_save(Image.new("L", (8, 8)), "TIFF"))
    refused("tiff_claims_huge.tif", _tiff_claiming(bytes(tiff_huge), 60_000, 60_000), "over the limit",
            "TIFF claiming 60000x60000")

    # --- float images without numbers
    for label, value in (("nan", np.nan), ("posinf", np.inf), ("neginf", -np.inf)):
        arr = np.asarray(gray, dtype=np.float32)
        arr[10:20, 10:20] = value
        refused(f"float_{label}.tif", _save(Image.fromarray(arr), "TIFF"), "NaN or infinite",
                f"float TIFF with {label} pixels")
    refused("float_all_nan.tif", _save(Image.fromarray(np.full((H, W), np.nan, np.float32)), "TIFF"),
            "NaN or infinite", "float TIFF, every pixel NaN")

    # --- ground truths (the app only): tiny pairs, another size
    files["tiny_truth.png"] = _save(rgb.resize((2, 2)), "PNG")
    cases.append(Case("two_by_two.png", "too small to score", "2x2 input with a 2x2 ground truth",
                      truth="tiny_truth.png", cli=False))
    files["other_size_truth.png"] = _save(rgb.resize((32, 24)), "PNG")
    cases.append(Case("jpeg_rgb.jpg", "the ground truth is 32x24 but the input is 64x48",
                      "ground truth of another size", truth="other_size_truth.png", cli=False))
    cases.append(Case("jpeg_rgb.jpg", "Ground truth: notes.jpg: not an image", "a text file as ground truth",
                      truth="notes.jpg", cli=False))
    cases.append(Case("jpeg_rgb.jpg", "NaN or infinite", "a float TIFF with NaN as ground truth",
                      truth="float_nan.tif", cli=False))
    cases.append(Case("jpeg_rgb.jpg", "decompression bomb", "a zTXt bomb as ground truth",
                      truth="png_ztxt_bomb.png", cli=False))

    for name, data in files.items():
        (folder / name).write_bytes(data)
    return cases


def _tiff_claiming(tiff: bytes, w: int, h: int) -> bytes:
    """Rewrite ImageWidth (256) and ImageLength (257) of a little-endian TIFF's first directory."""
    data = bytearray(tiff)
    ifd = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, ifd)[0]
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):
            value = w if tag == 256 else h
            if kind == 3:  # SHORT: widen to LONG
                struct.pack_into("<HHII", data, entry, tag, 4, 1, value)
            else:
                struct.pack_into("<I", data, entry + 8, value)
    return bytes(data)


def outcome(path: Path, modality: str = "visible") -> str:
    """What irvis.images makes of a file: "ok WxH" or the refusal message (with the file's name only)."""
    from irvis.images import ImageError, load_image

    try:
        t = load_image(path, modality, limit=16_000_000)
        return f"ok {t.shape[-1]}x{t.shape[-2]}"
    except ImageError as e:
        return str(e).replace(str(path), path.name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="folder for the corpus (default: a temporary one)")
    args = p.parse_args(argv)
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="irvis-hostile-"))
    cases = build(folder)
    print(f"{len({c.name for c in cases})} files, {len(cases)} cases in {folder}\n")
    print("| input | what it is | outcome |\n|---|---|---|")
    for c in cases:
        result = outcome(folder / c.name)
        if c.truth:
            result = f"(with ground truth {c.truth}) expected: {c.expect}"
        print(f"| `{c.name}` | {c.what} | {result} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
