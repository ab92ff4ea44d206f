"""Is flip averaging worth it at inference? Each generator's prediction beside the mean of it and the mirrored
prediction of the mirrored input, scored on a split by the evaluation protocol (shorter side 256), with the
seconds each took. docs/generators.md reports it; flip averaging is not in the product because it did not pay.

    python -m train.flip_average --data ../shared/data --split val weights/vis2ir weights/ir2vis
"""

from __future__ import annotations

import time

from irvis.data import load_pair, load_pairs
from irvis.evaluate import Means
from irvis.metrics import SCORING_SHORT_SIDE
from irvis.translate import Translator
from train import variant_scores


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
            variant_scores.add(means[name], pair.set_name, prediction, truth)
    return {name: {**variant_scores.summary(m), "seconds": seconds[name]} for name, m in means.items()}


def main(argv: list[str] | None = None) -> None:
    variant_scores.main(__doc__, measure, argv)


if __name__ == "__main__":
    main()
