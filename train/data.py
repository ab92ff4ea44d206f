"""What the trainer reads: training pairs as (source, target) crops drawn from (seed, epoch, index), the
sampler that orders them, and whole validation frames. Nothing here depends on how many DataLoader
workers or processes run, or on where a run resumed."""

from __future__ import annotations

import os

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from irvis.data import Pair, PairedDataset, count_sets, load_pair, load_pairs, photometric_jitter
from irvis.directions import get_direction
from train.config import ConfigError, TrainConfig


def derived_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from small integers (seed, epoch, index, ...)."""
    return int(np.random.SeedSequence([k % 2**32 for k in keys]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


class EpochSampler(Sampler[int]):
    """A permutation of the dataset drawn from (seed, epoch): reproducible, and restartable mid-epoch."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch, 0x5A3))
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def loader_workers(asked: int | None, device_type: str, processes: int, cores: int | None = None) -> int:
    """DataLoader workers per training process: as asked, else 2 on a CPU (the cores train), and on a GPU the
    cores each process can have less one for itself, at most 8."""
    if asked is not None:
        return asked
    cores = cores or os.cpu_count() or 1
    if device_type == "cpu":
        return min(2, cores)
    return max(1, min(8, cores // max(1, processes) - 1))


class TrainPairs(Dataset):
    """irvis's PairedDataset as (source, target) for one direction; each sample's random scale, crop and
    flip are drawn from its own seed, so they do not depend on worker processes or on where a run resumed."""

    def __init__(self, pairs: Sequence[Pair], config: TrainConfig, frame_views: bool = False):
        """frame_views: each sample also carries its source's whole-frame view ("frame"), for a generator whose
        level branch reads the frame (Generator.wants_frame)."""
        self.direction = get_direction(config.direction)
        self.base = PairedDataset(pairs, load_size=config.load_size, crop_size=config.crop_size, train=True,
                                  min_load_size=config.min_load_size, no_upscale=config.no_upscale,
                                  frame_view_of=self.direction.source if frame_views else None)
        self.frame_views = frame_views
        self.seed, self.epoch = config.seed, 0
        self.jitter, self.view_noise = config.source_jitter, config.view_noise

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        # the torchvision transforms draw from torch's CPU generator: seed it for this sample only
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derived_seed(self.seed, self.epoch, i))
            item = self.base[i]
            source, target = self.direction.arrange(item["infrared"], item["visible"])
            if not self.frame_views:
                return {"source": photometric_jitter(source, self.jitter), "target": target}
            frame = item["frame"]
            if torch.rand(()) < 0.5:  # its own flip: the frame's level does not depend on left and right
                frame = frame.flip(-1)
            source, frame = photometric_jitter(source, self.jitter, frame)
            if self.view_noise:
                frame = (frame + torch.randn(frame.shape) * (torch.rand(()) * self.view_noise)).clamp(0, 1)
        return {"source": source, "target": target, "frame": frame}


class ValFrames(Dataset):
    """Whole validation frames, shorter side resized, as the evaluation protocol scores them."""

    def __init__(self, pairs: Sequence[Pair], direction: str, short_side: int):
        self.pairs, self.short_side = list(pairs), short_side
        self.direction = get_direction(direction)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        source, target = self.direction.arrange(*load_pair(self.pairs[i], short_side=self.short_side))
        return {"source": source, "target": target, "index": torch.tensor(i)}


def spread(pairs: list[Pair], k: int) -> list[Pair]:
    """k pairs evenly spaced through the list, so a capped validation set still covers every set."""
    if not k or k >= len(pairs):
        return pairs
    return [pairs[i * len(pairs) // k] for i in range(k)]


def validation_pairs(config: TrainConfig) -> list[Pair]:
    """The --val-split of --val-data, or of --data where it has one; problems raise DataError."""
    explicit = config.val_data is not None
    pairs = load_pairs(config.val_data if explicit else config.data, config.val_split, required=explicit)
    return spread(pairs, config.val_max_pairs)


def repeat_sets(pairs: list[Pair], repeats: dict[str, int]) -> list[Pair]:
    """Each pair of a set listed in repeats appears that many times per epoch (each draw gets its own crop)."""
    unknown = set(repeats) - {p.set_name for p in pairs}
    if unknown:
        raise ConfigError(f"--repeat-sets names {sorted(unknown)}, but the training sets are {sorted(count_sets(pairs))}")
    return [p for p in pairs for _ in range(repeats.get(p.set_name, 1))]
