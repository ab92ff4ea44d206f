"""What a generator's whole-frame level branch reads: the scene, or the camera's grain. For each frame of the split,
the level branch's gain and offset (its coefficients) from the frame's view; how far frames lie from their mean
(the spread: what the level is for) and each set's mean from the overall mean; and how far the coefficients move
when the view gets changes nobody would call another scene: Gaussian noise of 2/255, and a Gaussian blur of 0.8 px
(at the view's scale), each as a share of the spread. A level that reads the scene moves little under both; one
that reads the camera's grain moves under them about as far as one frame lies from another.

    python -m train.level_probe --data ../shared/data --split val runs/ir2vis-coarse-gc/step750
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2.functional import gaussian_blur

from irvis.context import frame_view
from irvis.data import load_pair, load_pairs
from irvis.directions import Direction, get_direction
from irvis.metrics import SCORING_SHORT_SIDE
from irvis.nets import load_generator
from train import variant_scores

NOISE = 2 / 255
BLUR_SIGMA = 0.8
CHANGES = {f"noise {NOISE * 255:g}/255": lambda v, g: (v + torch.randn(v.shape, generator=g) * NOISE).clamp(0, 1),
           f"blur {BLUR_SIGMA:g} px": lambda v, g: gaussian_blur(v, kernel_size=5, sigma=BLUR_SIGMA)}


class NoFrameLevel(ValueError):
    pass


def views_of(data: list[str], split: str, direction: Direction) -> tuple[torch.Tensor, list[str]]:
    """Each frame's view (N, C, 128, 160) in [0, 1] as the level branch sees it, by the evaluation's size, and its set."""
    views, sets = [], []
    for pair in load_pairs(data, split):
        source, _ = direction.arrange(*load_pair(pair, short_side=SCORING_SHORT_SIDE))
        views.append(frame_view(source[None]))
        sets.append(pair.set_name)
    return torch.cat(views), sets


def probe(weights: str, data: list[str], split: str) -> dict:
    """{"frames", "spread", "sets": {set: distance of its mean from the mean}, "moves": {change: share of spread}}."""
    generator = load_generator(weights).float().eval()
    net = generator.net
    if getattr(net, "level", None) is None or not generator.wants_frame:
        raise NoFrameLevel(f"{weights}: its level branch does not read the whole frame (level_view frame, coarse or "
                           "histogram); nothing to probe")
    views, sets = views_of(data, split, get_direction(generator.direction))
    with torch.no_grad():
        clean = net.frame_level(views * 2 - 1).float()
        mean = clean.mean(dim=0)
        spread = (clean - mean).norm(dim=1).mean().item()
        by_set = {s: (clean[[i for i, t in enumerate(sets) if t == s]].mean(dim=0) - mean).norm().item()
                  for s in sorted(set(sets))}
        rng = torch.Generator().manual_seed(0)
        moves = {name: (net.frame_level(change(views, rng) * 2 - 1).float() - clean).norm(dim=1).mean().item()
                 / max(spread, 1e-12) for name, change in CHANGES.items()}
    return {"frames": len(sets), "spread": spread, "sets": by_set, "moves": moves}


def in_words(r: dict) -> str:
    sets = ", ".join(f"{s} {d:.2f}" for s, d in r["sets"].items())
    moves = ", ".join(f"{name} {share:.0%}" for name, share in r["moves"].items())
    return (f"{r['frames']} frames, spread of the level {r['spread']:.2f} (each set's mean from the mean: {sets}); "
            f"moved by {moves} of the spread")


def main(argv: list[str] | None = None) -> None:
    parser = variant_scores.command_line(__doc__)
    args = parser.parse_args(argv)
    for weights in args.weights:
        try:
            print(f"{weights}: {in_words(probe(weights, args.data, args.split))}")
        except NoFrameLevel as e:
            parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
