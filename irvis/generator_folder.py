"""A generator folder: its file names (one home for them) and what its files may say, checked as data before
anything is built from them: a folder comes from wherever the weights came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INFERENCE_FILE = "inference.json"  # how to run it: the working size chosen when it was published (irvis.translate)
CARD_FILE = "README.md"  # the model card
TRAINING_CONFIG_FILE = "training_config.json"  # the run's settings (train.config), read for its validation size
EVALUATION_FILE = "evaluation.json"  # `irvis evaluate`'s result on the test split (the app's About tab, the card)
EVALUATION_REPORT = "evaluation.md"  # the same as a Markdown report
FIT_FILE = "fit.json"  # the published card's fit on the training split beside the test split


class WeightsError(ValueError):
    """Weights that cannot be loaded as asked, with the reason."""


# What a config.json may say, checked before anything is built: a config is data from wherever the weights came
# from, and `"depth": 60` would otherwise allocate until the kernel kills the process.
INT_RANGES = {"ngf": (4, 256), "depth": (2, 8), "n_res": (0, 16)}
MAX_PARAMETERS = 200_000_000  # 800 MB in float32: no generator of this project comes near


def check_config(config: object, source: str, settings: tuple[str, ...]) -> dict[str, Any]:
    """config.json's content as Generator's arguments, or WeightsError naming the first wrong setting."""
    if not isinstance(config, dict):
        raise WeightsError(f"{source}: expected a JSON object of settings, got {json.dumps(config)[:40]}")
    known = {"direction", "arch", *settings}
    unknown = set(config) - known
    if unknown:
        raise WeightsError(f"{source}: unknown settings {sorted(unknown)}; this irvis understands {sorted(known)}")
    for key in ("direction", "arch", "norm", "head"):
        if key in config and not isinstance(config[key], str):
            raise WeightsError(f"{source}: {key} must be a string, got {config[key]!r}")
    for key, (low, high) in INT_RANGES.items():
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise WeightsError(f"{source}: {key} must be a whole number from {low} to {high}, got {value!r}")
    if config.get("level") is not None and not isinstance(config["level"], bool):
        raise WeightsError(f"{source}: level must be true or false, got {config['level']!r}")
    return config


def header_shapes(weights_path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape from the safetensors header, without reading the tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # a truncated or foreign file
        raise WeightsError(f"{weights_path}: cannot be read as safetensors ({e})") from None
