"""Can the frame's level be predicted from the input frame alone? Closed-form level heads fitted beside a trained
generator on the train split's frames, reading the input frame's layout (brightness histogram, quantiles, a coarse
thumbnail), its layout and grain, or ImageNet's features of its whole-frame view: ridge regression to the truth's
per-channel mean and spread, the level of the set of the nearest train frames, and a camera classifier (the sets'
levels weighted by their probabilities). The generator's prediction is moved to the predicted level (its mean
alone, or mean and spread). Each head is scored on val; the one with the highest mean of val PSNR overall and on
LLVIP is the rule's choice, stated before the reported split is read. Beside them, the frame's own set's level (an
oracle of camera identity, never chosen). By the evaluation protocol (shorter side 256); docs/generators.md (stage
4k) reports it beside train.level_oracle, which bounds what any per-frame level could add.

    python -m train.level_fit weights/ir2vis weights/vis2ir --data ../shared/data --features encoder
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass

import torch
from torchvision.transforms.functional import gaussian_blur

from irvis.backbones import pretrained_lite0
from irvis.context import frame_view
from irvis.data import load_pair, load_pairs
from irvis.directions import Direction
from irvis.evaluate import Means
from irvis.metrics import SCORING_SHORT_SIDE, as_gray, as_rgb, in_words
from irvis.translate import Translator
from train import variant_scores

QUANTILES = torch.tensor([0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98])
HISTOGRAM_BINS = 16
THUMBNAIL = (6, 8)  # a frame's layout: sky, street, lit patches; far coarser than any camera's grain
ALPHAS = (1.0, 10.0, 100.0, 1000.0, 10000.0, float("inf"))  # inf: the train frames' mean level, whatever the frame
CORRECTIONS = ("mean", "mean and spread")
NEIGHBOURS = (1, 5, 15)
PENALTIES = (0.001, 0.01, 0.1)


def layout_features(source: torch.Tensor) -> torch.Tensor:
    """(F,) what the input frame's layout says of its level: histogram, quantiles and coarse thumbnail of its luma,
    and its mean colour."""
    luma = as_gray(source)
    values = luma.flatten()
    histogram = torch.histc(values, bins=HISTOGRAM_BINS, min=0.0, max=1.0) / values.numel()
    thumbnail = torch.nn.functional.adaptive_avg_pool2d(luma[None], THUMBNAIL).flatten()
    colour = as_rgb(source).mean(dim=(1, 2))
    return torch.cat([histogram, torch.quantile(values, QUANTILES), thumbnail, colour, values.std()[None]])


def grain_features(source: torch.Tensor) -> torch.Tensor:
    """(F,) the input frame's finest texture: what is left of its luma after a small blur (noise, compression, the
    camera's own grain), at the scoring size and at half of it. It tells one camera from another, not one scene's
    light from another's."""
    luma = as_gray(source)
    out = []
    for image in (luma, torch.nn.functional.avg_pool2d(luma[None], 2)[0]):
        residual = (image - gaussian_blur(image[None], kernel_size=5, sigma=1.0)[0]).abs().flatten()
        out += [residual.mean(), residual.std(), torch.quantile(residual, 0.5), torch.quantile(residual, 0.9)]
    return torch.stack(out)


@functools.cache
def _imagenet_encoder() -> torch.nn.Module:
    return pretrained_lite0().eval()


@torch.no_grad()
def encoder_features(source: torch.Tensor) -> torch.Tensor:
    """(432,) what ImageNet's EfficientNet-Lite0 makes of the frame's view (128x160, the whole-frame level branches'
    view): its pooled stride-16 and stride-32 features. It reads the scene and the camera's grain alike (stage 4j)."""
    pyramid = _imagenet_encoder().features(frame_view(as_rgb(source)[None]))
    return torch.cat([pyramid[-2].mean(dim=(0, 2, 3)), pyramid[-1].mean(dim=(0, 2, 3))])


FEATURES = {"layout": layout_features, "layout and grain": lambda s: torch.cat([layout_features(s), grain_features(s)]),
            "encoder": encoder_features}


def level(image: torch.Tensor) -> torch.Tensor:
    """(2C,) per-channel mean and spread of a (C, H, W) image."""
    return torch.cat([image.mean(dim=(1, 2)), image.std(dim=(1, 2))])


@dataclass
class Standardiser:
    """Features less their train mean, over their train spread: what every head reads."""
    centre: torch.Tensor
    scale: torch.Tensor

    @classmethod
    def of(cls, features: torch.Tensor) -> "Standardiser":
        return cls(features.mean(0), features.std(0).clamp_min(1e-6))

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.centre) / self.scale


def set_levels(levels: torch.Tensor, set_names: list[str]) -> dict[str, torch.Tensor]:
    """Each set's mean level over its train frames, by set name in sorted order."""
    return {n: levels[[i for i, m in enumerate(set_names) if m == n]].mean(0) for n in sorted(set(set_names))}


@dataclass
class RidgeLevel:
    """Ridge regression from the standardised features to level(truth) (weight alpha; at infinity, the mean level)."""
    standard: Standardiser
    coef: torch.Tensor

    @classmethod
    def fit(cls, features: torch.Tensor, levels: torch.Tensor, alpha: float) -> "RidgeLevel":
        standard = Standardiser.of(features)
        if alpha == float("inf"):
            coef = torch.zeros(features.shape[1] + 1, levels.shape[1])
            coef[-1] = levels.mean(0)
            return cls(standard, coef)
        x = torch.cat([standard(features), torch.ones(len(features), 1)], dim=1).double()
        penalty = alpha * torch.eye(x.shape[1], dtype=x.dtype)
        penalty[-1, -1] = 0  # the intercept is not shrunk
        coef = torch.linalg.solve(x.T @ x + penalty, x.T @ levels.double())
        return cls(standard, coef.float())

    def predict(self, features: torch.Tensor, set_name: str) -> torch.Tensor:
        return torch.cat([self.standard(features), torch.ones(1)]) @ self.coef


@dataclass
class SetLevel:
    """The level of the set a frame is from: its train frames' mean level. With k, the set is guessed from the k
    nearest train frames in the standardised features (each neighbour votes its set's level: which camera a frame
    looks like); without, it is the frame's true set (an oracle of camera identity: it bounds what knowing the
    camera can add)."""
    standard: Standardiser
    inputs: torch.Tensor
    set_names: list[str]
    levels: dict[str, torch.Tensor]
    k: int | None

    @classmethod
    def fit(cls, features: torch.Tensor, levels: torch.Tensor, set_names: list[str], k: int | None) -> "SetLevel":
        standard = Standardiser.of(features)
        return cls(standard, standard(features), set_names, set_levels(levels, set_names), k)

    def predict(self, features: torch.Tensor, set_name: str) -> torch.Tensor:
        if self.k is None:
            return self.levels[set_name]
        distances = ((self.inputs - self.standard(features)) ** 2).sum(1)
        nearest = distances.topk(min(self.k, len(distances)), largest=False).indices
        return torch.stack([self.levels[self.set_names[i]] for i in nearest]).mean(0)


@dataclass
class SetClassifier:
    """A camera classifier: multinomial logistic regression from the standardised features to the set a train frame
    is from (L2 weight `penalty`); a frame's level is its sets' train mean levels weighted by their probabilities."""
    standard: Standardiser
    weight: torch.Tensor
    bias: torch.Tensor
    levels: torch.Tensor  # (S, 2C), in the classifier's order

    @classmethod
    def fit(cls, features: torch.Tensor, levels: torch.Tensor, set_names: list[str], penalty: float) -> "SetClassifier":
        standard = Standardiser.of(features)
        x, by_set = standard(features), set_levels(levels, set_names)
        names = list(by_set)
        labels = torch.tensor([names.index(n) for n in set_names])
        weight = torch.zeros(x.shape[1], len(names), requires_grad=True)
        bias = torch.zeros(len(names), requires_grad=True)
        optimiser = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe")

        def loss() -> torch.Tensor:
            optimiser.zero_grad()
            value = torch.nn.functional.cross_entropy(x @ weight + bias, labels) + penalty * weight.square().sum()
            value.backward()
            return value

        optimiser.step(loss)
        return cls(standard, weight.detach(), bias.detach(), torch.stack(list(by_set.values())))

    def predict(self, features: torch.Tensor, set_name: str) -> torch.Tensor:
        return torch.softmax(self.standard(features) @ self.weight + self.bias, dim=0) @ self.levels


def relevel(prediction: torch.Tensor, target_level: torch.Tensor, correction: str) -> torch.Tensor:
    """The prediction moved to target_level: its per-channel mean, and with "mean and spread" its spread too."""
    c = prediction.shape[0]
    mean, spread = prediction.mean(dim=(1, 2), keepdim=True), prediction.std(dim=(1, 2), keepdim=True)
    new_mean, new_spread = target_level[:c, None, None], target_level[c:, None, None].clamp_min(0)
    if correction == "mean":
        return (prediction - mean + new_mean).clamp(0, 1)
    return ((prediction - mean) * (new_spread / spread.clamp_min(1e-4)) + new_mean).clamp(0, 1)


Frame = tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]


def frames(direction: Direction, data: list[str], split: str, features: str) -> list[Frame]:
    """(set, features, source, truth) for each pair of a split, at the scoring size."""
    out = []
    for pair in load_pairs(data, split):
        source, truth = direction.arrange(*load_pair(pair, short_side=SCORING_SHORT_SIDE))
        out.append((pair.set_name, FEATURES[features](source), source, truth))
    return out


def scores(translator: Translator, heads: dict, split_frames: list[Frame]) -> dict[str, dict]:
    """{variant: summary} for the plain prediction and each head's (head, correction)."""
    means = {"plain": Means()} | {name: Means() for name in heads}
    for set_name, features, source, truth in split_frames:
        prediction = translator.translate_tensor(source)
        variant_scores.add(means["plain"], set_name, prediction, truth)
        for name, (head, correction) in heads.items():
            variant_scores.add(means[name], set_name, relevel(prediction, head.predict(features, set_name), correction), truth)
    return {name: variant_scores.summary(m) for name, m in means.items()}


def rule(summary: dict) -> float:
    """The choosing rule on val: the mean of PSNR overall and on LLVIP."""
    return (summary["overall"]["psnr"] + summary["llvip"]["psnr"]) / 2


def measure(weights: str, data: list[str], splits: list[str], features: str) -> dict[str, dict[str, dict]]:
    """{split: {variant: summary}}, val first (the choice), then the other splits."""
    translator = Translator.from_pretrained(weights, device="cpu")
    train = frames(translator.direction, data, "train", features)
    inputs = torch.stack([f for _, f, _, _ in train])
    levels = torch.stack([level(t) for *_, t in train])
    heads = {f"alpha {a:g}, {c}": (RidgeLevel.fit(inputs, levels, a), c) for a in ALPHAS for c in CORRECTIONS}
    set_names = [n for n, *_ in train]
    heads |= {f"set of the {k} nearest, mean": (SetLevel.fit(inputs, levels, set_names, k), "mean") for k in NEIGHBOURS}
    heads |= {f"set classifier, penalty {p:g}, mean": (SetClassifier.fit(inputs, levels, set_names, p), "mean")
              for p in PENALTIES}
    oracle = {"the frame's own set (oracle), mean": (SetLevel.fit(inputs, levels, set_names, None), "mean")}
    return {split: scores(translator, heads | oracle, frames(translator.direction, data, split, features))
            for split in splits}


def main(argv: list[str] | None = None) -> None:
    parser = variant_scores.command_line(__doc__)
    parser.set_defaults(split="test")  # the split reported after the choice on val
    parser.add_argument("--features", choices=sorted(FEATURES), default="layout", help="what the level head reads")
    args: argparse.Namespace = parser.parse_args(argv)
    for weights in args.weights:
        results = measure(weights, args.data, ["val", args.split], args.features)
        val = results["val"]
        chosen = max((n for n in val if n != "plain" and "oracle" not in n), key=lambda n: rule(val[n]))
        for split, variants in results.items():
            for name, r in variants.items():
                mark = " (chosen on val)" if name == chosen else ""
                print(f"{weights} {split} {name}{mark}: {in_words(r['overall'])}; LLVIP {in_words(r['llvip'])}")


if __name__ == "__main__":
    main()
