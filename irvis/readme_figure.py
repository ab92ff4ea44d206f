"""The README's picture: input | prediction | truth in each direction, on one of the sample pairs, translated
at full resolution by the generators the project ships. Rerun it whenever weights/ change:

    python -m irvis.readme_figure                  # writes docs/demo.jpg from samples/ and weights/

The rows are labelled as `python -m irvis evaluate` labels its sample grids (irvis.evaluate.sample_grid).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

from irvis.compare import open_gallery
from irvis.data import load_pair
from irvis.directions import DIRECTIONS, get_direction
from irvis.evaluate import sample_grid
from irvis.translate import Translator

ROOT = Path(__file__).resolve().parents[1]
PAIR = "llvip/test/200004"  # two people at a crossing at night: a test pair, never trained on
ROW_HEIGHT = 300
MAX_BYTES = 400_000  # the README's picture stays small: JPEG, quality lowered until it fits
GAP = 6


def readme_figure(samples: str | Path, key: str, weights: dict[str, str | Path], device: str = "auto",
                  height: int = ROW_HEIGHT) -> Image.Image:
    """One row per direction (ir2vis above vis2ir) for the pair `key` of the gallery folder `samples`."""
    pair = open_gallery(samples).get(key).pair
    ir, vis = load_pair(pair)
    rows = []
    for name in DIRECTIONS:
        translator = Translator.from_pretrained(weights[name], device=device)
        source, truth = get_direction(name).arrange(ir, vis)
        prediction = translator.translate_tensor(source)
        rows.append(sample_grid([(key, source, prediction, truth, None)], name, height=height))
    figure = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows) + GAP * (len(rows) - 1)),
                       (255, 255, 255))
    for i, row in enumerate(rows):
        figure.paste(row, (0, i * (height + GAP)))
    return figure


def save_small_jpeg(image: Image.Image, path: str | Path, max_bytes: int = MAX_BYTES) -> int:
    """Write the highest JPEG quality (90 down to 50) that keeps the file under max_bytes; returns its size."""
    for quality in range(90, 45, -5):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
        if buffer.tell() <= max_bytes or quality == 50:
            break
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(buffer.getvalue())
    return buffer.tell()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m irvis.readme_figure", description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", default=str(ROOT / "samples"), help="gallery folder the pair is taken from")
    p.add_argument("--pair", default=PAIR, help="the pair's key, SET/SPLIT/NAME, as the app's gallery names it")
    for name in DIRECTIONS:
        p.add_argument(f"--weights-{name}", dest=f"weights_{name}", default=str(ROOT / "weights" / name))
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=str(ROOT / "docs" / "demo.jpg"))
    args = p.parse_args(argv)
    weights = {name: getattr(args, f"weights_{name}") for name in DIRECTIONS}
    figure = readme_figure(args.samples, args.pair, weights, device=args.device)
    size = save_small_jpeg(figure, args.out)
    print(f"wrote {args.out}: {figure.width}x{figure.height}, {size / 1000:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
