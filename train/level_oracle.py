"""How much of a generator's error is the frame's level? Each prediction scored as it is, with the per-frame gain
and offset that fit it best to its truth (an oracle: it sees the truth, so it bounds what a perfect level branch
could add), and beside a flat image of its set's mean training colour (what drawing nothing but the set's usual
level scores). By the evaluation protocol (shorter side 256). docs/generators.md reports it.

    python -m train.level_oracle --data ../shared/data --split val weights/vis2ir weights/ir2vis
"""

from __future__ import annotations

import torch

from irvis.data import load_pair, load_pairs
from irvis.directions import get_direction
from irvis.evaluate import Means
from irvis.metrics import SCORING_SHORT_SIDE, oracle_affine
from irvis.translate import Translator
from train import variant_scores

METHODS = ("plain", "level oracle", "set's mean colour")


def mean_colours(data: list[str], direction: str) -> dict[str, torch.Tensor]:
    """Each set's mean target colour (C,) over its training split, frames weighted equally."""
    d, sums, counts = get_direction(direction), {}, {}
    for pair in load_pairs(data, "train"):
        _, truth = d.arrange(*load_pair(pair, short_side=SCORING_SHORT_SIDE))
        sums[pair.set_name] = sums.get(pair.set_name, 0) + truth.mean(dim=(1, 2))
        counts[pair.set_name] = counts.get(pair.set_name, 0) + 1
    return {k: v / counts[k] for k, v in sums.items()}


def measure(weights: str, data: list[str], split: str) -> dict[str, dict]:
    """{method: {"overall": means, "llvip": means or None}} for METHODS."""
    translator = Translator.from_pretrained(weights, device="cpu")
    d = translator.direction
    colours = mean_colours(data, d.name)
    means = {m: Means() for m in METHODS}
    for pair in load_pairs(data, split):
        source, truth = d.arrange(*load_pair(pair, short_side=SCORING_SHORT_SIDE))
        plain = translator.translate_tensor(source)
        flat = colours[pair.set_name][:, None, None].expand_as(truth) if pair.set_name in colours else None
        for name, prediction in zip(METHODS, (plain, oracle_affine(plain, truth)[0], flat)):
            if prediction is not None:
                variant_scores.add(means[name], pair.set_name, prediction, truth)
    return {name: variant_scores.summary(m) for name, m in means.items()}


def main(argv: list[str] | None = None) -> None:
    variant_scores.main(__doc__, measure, argv)


if __name__ == "__main__":
    main()
