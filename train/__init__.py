"""The irvis trainer: `python -m train` or `accelerate launch -m train` (see train/__main__.py)."""

from train.config import TrainConfig
from train.loop import Trainer, train

__all__ = ["TrainConfig", "Trainer", "train"]
