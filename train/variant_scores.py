"""What the inference-time measurements (train.flip_average, train.level_oracle, train.stability) share: variants of a generator's
prediction scored by the evaluation protocol, summarised overall and on LLVIP, and one command line for each."""

from __future__ import annotations

import argparse
from typing import Callable

import torch

from irvis.evaluate import Means
from irvis.metrics import in_words, score


def add(means: Means, set_name: str, prediction: torch.Tensor, truth: torch.Tensor) -> None:
    """One (C, H, W) prediction's scores against its truth, into means."""
    scores = score(prediction[None].float(), truth[None].float())
    means.add(set_name, "model", {k: float(v[0]) for k, v in scores.items()})


def summary(means: Means) -> dict:
    """{"overall": means, "llvip": means or None}."""
    return {"overall": means.means()["model"], "llvip": means.means("llvip")["model"] if "llvip" in means.sums else None}


def command_line(doc: str) -> argparse.ArgumentParser:
    """What each of these measurements takes: generator folders, dataset roots and a split."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="generator folders")
    parser.add_argument("--data", nargs="+", required=True, help="dataset roots in LLVIP's layout")
    parser.add_argument("--split", default="val")
    return parser


def main(doc: str, measure: Callable[[str, list[str], str], dict[str, dict]], argv: list[str] | None = None,
         words: Callable[[dict], str] = in_words) -> None:
    """The command line of a measurement: measure(weights, data, split) -> {variant: summary (+ "seconds")}, each
    summary's figures said by words."""
    args = command_line(doc).parse_args(argv)
    for weights in args.weights:
        for name, r in measure(weights, args.data, args.split).items():
            llvip = f"; LLVIP {words(r['llvip'])}" if r["llvip"] else ""
            seconds = f"; {r['seconds']:.2f} s" if "seconds" in r else ""
            print(f"{weights} {name}: {words(r['overall'])}{llvip}{seconds}")
