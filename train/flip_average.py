"""Is flip averaging worth it at inference? Each generator's prediction beside the mean of it and the mirrored
prediction of the mirrored input, scored on a split by the evaluation protocol (shorter side 256), with the
seconds each took. docs/generators.md reports it; flip averaging is not in the product because it did not pay.

    python -m train.flip_average --data ../shared/data --split val weights/vis2ir weights/ir2vis
"""

from __future__ import annotations

import argparse
import time

from irvis.data import load_pair, load_pairs
from irvis.evaluate import Means
from irvis.metrics import SCORING_SHORT_SIDE, in_words, score
from irvis.translate import Translator


def measure(weights: str, data: list[str], split: str) -> dict[str, dict]:
    """{"plain" | "flip averaged": {"overall": means, "llvip": means, "seconds": total}}."""
    translator = Translator.from_pretrained(weights, device="cpu")
    d = translator.direction
    means, seconds = {"plain": Means(), "flip averaged": Means()}, {"plain": 0.0, "flip averaged": 0.0}
    for pair in load_pairs(data, split):
        source, truth = d.arrange(*load_pair(pair, short_side=SCORING_SHORT_SIDE))
        start = time.perf_counter()
        plain = translator.translate_tensor(source)
        middle = time.perf_counter()
        mirrored = translator.translate_tensor(source.flip(-1)).flip(-1)
        seconds["plain"] += middle - start
        seconds["flip averaged"] += time.perf_counter() - start
        for name, prediction in (("plain", plain), ("flip averaged", (plain + mirrored) / 2)):
            scores = score(prediction[None].float(), truth[None].float())
            means[name].add(pair.set_name, "model", {k: float(v[0]) for k, v in scores.items()})
    return {name: {"overall": m.means()["model"], "llvip": m.means("llvip")["model"] if "llvip" in m.sums else None,
                   "seconds": seconds[name]} for name, m in means.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="generator folders")
    parser.add_argument("--data", nargs="+", required=True, help="dataset roots in LLVIP's layout")
    parser.add_argument("--split", default="val")
    args = parser.parse_args(argv)
    for weights in args.weights:
        for name, r in measure(weights, args.data, args.split).items():
            llvip = f"; LLVIP {in_words(r['llvip'])}" if r["llvip"] else ""
            print(f"{weights} {name}: {in_words(r['overall'])}{llvip}; {r['seconds']:.2f} s")


if __name__ == "__main__":
    main()
