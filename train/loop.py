"""The Accelerate training loop: Pix2Pix (conditional PatchGAN + L1) for one direction.

One `Trainer` owns the Accelerator. Everything a resumed run needs to continue exactly is in each
checkpoint: both networks (the generator in save_pretrained form, loadable by irvis), optimizers,
learning-rate schedules, the EMA, every process's RNG states and the position in the data. The data
order and each sample's augmentation are drawn from (seed, epoch, index), so the n-th batch of an
epoch is the same whatever the number of DataLoader workers, and after a resume.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch.utils.data import DataLoader, Dataset, Sampler

import irvis
from irvis.data import Pair, PairedDataset, count_sets, load_pair, load_pairs, photometric_jitter
from irvis.directions import get_direction
from irvis.metrics import (PSNR_CAP_DB, baseline_predictions, gradient_correlation, gradient_magnitude, score,
                           sharpness)
from irvis.nets import Generator, PatchDiscriminator, build_generator, count_parameters
from irvis.translate import pad_to_multiple
from train.config import CONFIG_FILE, ConfigError, TrainConfig, resume_conflicts

CHECKPOINTS = "checkpoints"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
GENERATOR_DIR, EMA_DIR, DISCRIMINATOR_FILE = "generator", "generator_ema", "discriminator.safetensors"
METRICS_FILE = "metrics.jsonl"
DEFAULT_MAX_STEPS = 10_000
SAMPLE_ROWS = 4


def _derived_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from small integers (seed, epoch, index, ...)."""
    return int(np.random.SeedSequence([k % 2**32 for k in keys]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def _print(*args) -> None:
    """Print once per machine: before the Accelerator exists, ranks are only known from the launcher's env."""
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(*args, flush=True)


# ---------------------------------------------------------------------------------------------------
# Data


class EpochSampler(Sampler[int]):
    """A permutation of the dataset drawn from (seed, epoch): reproducible, and restartable mid-epoch."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(_derived_seed(self.seed, self.epoch, 0x5A3))
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class TrainPairs(Dataset):
    """irvis's PairedDataset as (source, target) for one direction; each sample's random scale, crop and
    flip are drawn from its own seed, so they do not depend on worker processes or on where a run resumed."""

    def __init__(self, pairs: Sequence[Pair], config: TrainConfig):
        self.base = PairedDataset(pairs, load_size=config.load_size, crop_size=config.crop_size, train=True,
                                  min_load_size=config.min_load_size)
        d = get_direction(config.direction)
        self.source, self.target = d.source, d.target
        self.seed, self.epoch = config.seed, 0
        self.jitter = config.source_jitter

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        # the torchvision transforms draw from torch's CPU generator: seed it for this sample only
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(_derived_seed(self.seed, self.epoch, i))
            item = self.base[i]
            source = photometric_jitter(item[self.source], self.jitter)
        return {"source": source, "target": item[self.target]}


class ValFrames(Dataset):
    """Whole validation frames, shorter side resized, as the evaluation protocol scores them."""

    def __init__(self, pairs: Sequence[Pair], direction: str, short_side: int):
        self.pairs, self.short_side = list(pairs), short_side
        d = get_direction(direction)
        self.source_is_ir = d.source == "infrared"

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        ir, vis = load_pair(self.pairs[i], short_side=self.short_side)
        source, target = (ir, vis) if self.source_is_ir else (vis, ir)
        return {"source": source, "target": target, "index": torch.tensor(i)}


def _spread(pairs: list[Pair], k: int) -> list[Pair]:
    """k pairs evenly spaced through the list, so a capped validation set still covers every set."""
    if not k or k >= len(pairs):
        return pairs
    return [pairs[i * len(pairs) // k] for i in range(k)]


def validation_pairs(config: TrainConfig) -> list[Pair]:
    """The --val-split of --val-data, or of --data where it has one; problems raise DataError."""
    explicit = config.val_data is not None
    pairs = load_pairs(config.val_data if explicit else config.data, config.val_split, required=explicit)
    return _spread(pairs, config.val_max_pairs)


def initial_weights(config: TrainConfig, like: Generator) -> Generator:
    """The --init-from generator, checked to be the same network as the one this run trains."""
    from irvis.hub import resolve_weights
    from irvis.nets import WeightsError, load_generator

    try:
        loaded = load_generator(resolve_weights(config.init_from))
    except WeightsError as e:
        raise ConfigError(f"--init-from: {e}") from None
    ours, theirs = like.state_dict(), loaded.state_dict()
    if loaded.direction != like.direction or loaded.arch != like.arch or ours.keys() != theirs.keys() or any(
            theirs[k].shape != v.shape for k, v in ours.items()):
        raise ConfigError(f"--init-from {config.init_from} holds a {loaded.direction} {loaded.arch} generator of another "
                          f"shape; this run trains {like.direction} {like.arch} (set --arch/--ngf to match)")
    return loaded


def repeat_sets(pairs: list[Pair], repeats: dict[str, int]) -> list[Pair]:
    """Each pair of a set listed in repeats appears that many times per epoch (each draw gets its own crop)."""
    unknown = set(repeats) - {p.set_name for p in pairs}
    if unknown:
        raise ConfigError(f"--repeat-sets names {sorted(unknown)}, but the training sets are {sorted(count_sets(pairs))}")
    return [p for p in pairs for _ in range(repeats.get(p.set_name, 1))]


# ---------------------------------------------------------------------------------------------------
# Models, losses, schedules


def init_pix2pix(model: torch.nn.Module, gain: float = 0.02) -> None:
    """Pix2Pix's initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d, torch.nn.GroupNorm)) and m.weight is not None:
            torch.nn.init.normal_(m.weight, 1.0, gain)
            torch.nn.init.zeros_(m.bias)


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits.float(), target.float())
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-x.pow(2) / (2 * sigma**2))
    return g / g.sum()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, c1: float = 0.01**2, c2: float = 0.03**2) -> torch.Tensor:
    """1 - SSIM with the metric's Gaussian window (11, sigma 1.5) and constants, over the valid region. The
    window is separable, so two 1-D passes replace torchmetrics' 11x11 one: the same loss, 4-5x cheaper on a
    CPU, where a 2-D SSIM on RGB crops cost more than the generator's own backward pass."""
    x, y = pred.float(), target.float()
    c = x.shape[1]
    g = _gaussian_window().to(x)
    rows, cols = g.view(1, 1, 1, -1).repeat(5 * c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(5 * c, 1, 1, 1)
    with torch.autocast(x.device.type, enabled=False):  # variances are differences of moments: bf16 loses them
        moments = F.conv2d(F.conv2d(torch.cat([x, y, x * x, y * y, x * y], dim=1), rows, groups=5 * c), cols,
                           groups=5 * c)
    mx, my, exx, eyy, exy = moments.chunk(5, dim=1)
    vx, vy, cov = exx - mx.pow(2), eyy - my.pow(2), exy - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx.pow(2) + my.pow(2) + c1) * (vx + vy + c2))
    return 1 - ssim_map.mean()


def edge_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |(|grad pred| - |grad truth|)|: Sobel gradient magnitudes of the lumas, compared without their
    sign. Between modalities the sign of an edge depends on the scene (a pedestrian is darker than the street
    in visible, brighter in thermal) while its place does not, so a pixel loss alone is lowest for a blur
    that averages both signs to nothing; this term is lowest for an edge of the right strength in the right
    place, whichever its sign, and is blind to each frame's overall level."""
    with torch.autocast(pred.device.type, enabled=False):  # the metric's own Sobel magnitudes, in float32
        return (gradient_magnitude(pred, eps=1e-6) - gradient_magnitude(target, eps=1e-6)).abs().mean()


def lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if schedule == "linear":  # Pix2Pix: constant for the first half, then linearly to zero
            half = total_steps // 2
            return 1.0 if step < half else max(0.0, 1.0 - (step - half) / max(1, total_steps - half))
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        return 1.0

    return factor


class EMA:
    """An exponential moving average of the generator's weights; the decay ramps up from about 0.1
    ((1 + n) / (10 + n)), so short runs are not dominated by the random initialisation."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


@torch.no_grad()
def predict(model: Generator, source: torch.Tensor) -> torch.Tensor:
    """A whole frame through the generator: padded to its size multiple, cropped back, in [0, 1]."""
    padded, (h, w) = pad_to_multiple(source, model.size_multiple)
    return model(padded)[..., :h, :w].float().clamp(0, 1)


# ---------------------------------------------------------------------------------------------------
# Checkpoints


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints (their state file is written last, before the atomic rename), oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if CHECKPOINT_RE.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))


def resolve_resume(config: TrainConfig) -> Path | None:
    """The checkpoint to resume from, or None to start fresh; refuses to overwrite an existing run."""
    run_dir = config.run_dir
    if config.resume is None:
        if list_checkpoints(run_dir):
            raise ConfigError(f"{run_dir} already holds checkpoints of a run: continue it with --resume latest, "
                              "or choose another --output-dir")
        return None
    if config.resume == "latest":
        found = list_checkpoints(run_dir)
        if not found:
            _print(f"--resume latest: no checkpoint in {run_dir / CHECKPOINTS} yet; starting fresh")
            return None
        return found[-1]
    path = Path(config.resume)
    if not (path / STATE_FILE).is_file() or not (path / CONFIG_FILE).is_file():
        raise ConfigError(f"--resume {path}: not a complete checkpoint (no {STATE_FILE} or {CONFIG_FILE})")
    return path


def read_checkpoint(path: Path) -> tuple[TrainConfig, dict]:
    state = json.loads((path / STATE_FILE).read_text())
    return TrainConfig.load(path / CONFIG_FILE), state


# ---------------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """Build everything from a TrainConfig, then `train()`. Data is checked before anything is built,
    so a broken dataset fails in seconds with the full report."""

    def __init__(self, config: TrainConfig, callbacks: Sequence[Callable[["Trainer", int], None]] = ()):
        self.cfg = config
        self.run_dir = config.run_dir
        self.callbacks = list(callbacks)
        self.push_failed = False
        self.direction = get_direction(config.direction)
        # 1. data and resume target first: nothing is built for a run that cannot start
        self.train_pairs = repeat_sets(load_pairs(config.data, "train"), config.set_repeats())
        self.val_pairs = validation_pairs(config)
        self.resume_dir = resolve_resume(config)
        if self.resume_dir is not None:
            saved, _ = read_checkpoint(self.resume_dir)
            conflicts = resume_conflicts(saved, config)
            if conflicts:
                raise ConfigError(f"cannot resume {self.resume_dir} with different settings:\n  " + "\n  ".join(conflicts))
        if config.push_to_hub:
            _check_hub_ready(config.push_to_hub)
        self._build()

    # -- construction ------------------------------------------------------------------------------
    def _build(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration, set_seed

        cfg = self.cfg
        try:
            self.accelerator = Accelerator(
                gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                mixed_precision=cfg.mixed_precision,
                cpu=cfg.cpu,
                log_with="tensorboard" if cfg.report_to == "tensorboard" else None,
                project_config=ProjectConfiguration(project_dir=str(self.run_dir), logging_dir=str(self.run_dir)),
            )
        except (ValueError, RuntimeError) as e:  # e.g. fp16 without a GPU
            raise ConfigError(f"cannot set up training as asked: {e}") from None
        acc = self.accelerator
        # identical initial weights on every process (and in the EMA copy); per-process randomness later
        set_seed(cfg.seed)
        generator = build_generator(cfg.direction, cfg.arch, **cfg.generator_overrides())
        if cfg.init_from:
            generator.load_state_dict(initial_weights(cfg, generator).state_dict())
        elif cfg.arch == "pix2pix-unet256":
            init_pix2pix(generator)
        self.ema = EMA(generator, cfg.ema_decay) if cfg.ema_decay > 0 else None
        betas = (cfg.beta1, cfg.beta2)
        opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=betas)
        self.train_set = TrainPairs(self.train_pairs, cfg)
        self.sampler = EpochSampler(len(self.train_set), cfg.seed)
        loader = DataLoader(self.train_set, batch_size=cfg.batch_size, sampler=self.sampler, drop_last=True,
                            num_workers=cfg.num_workers, pin_memory=acc.device.type == "cuda",
                            # its own generator, so creating an iterator does not consume the global RNG
                            generator=torch.Generator().manual_seed(cfg.seed))
        objects = [generator, opt_g, loader]
        if cfg.gan_weight > 0:
            d = self.direction
            discriminator = PatchDiscriminator(d.in_channels + d.out_channels, ndf=cfg.ndf, n_layers=cfg.d_layers)
            init_pix2pix(discriminator)
            objects += [discriminator, torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_d, betas=betas)]
        if self.val_pairs:
            objects.append(DataLoader(ValFrames(self.val_pairs, cfg.direction, cfg.val_short_side), batch_size=1,
                                      num_workers=min(cfg.num_workers, len(self.val_pairs))))
        prepared = list(acc.prepare(*objects))
        self.generator, self.opt_g, self.train_loader = prepared[:3]
        self.discriminator, self.opt_d = prepared[3:5] if cfg.gan_weight > 0 else (None, None)
        self.val_loader = prepared[-1] if self.val_pairs else None
        if len(self.train_loader) == 0:
            raise ConfigError(f"{len(self.train_pairs)} training pairs cannot fill one batch of {cfg.batch_size} "
                              f"on each of {acc.num_processes} process(es): lower --batch-size")
        if self.ema is not None:
            self.ema.model.to(acc.device)
        set_seed(cfg.seed, device_specific=True)  # dropout etc. differ between processes
        # schedules step once per optimizer step; not prepared, as Accelerate would step them once per process
        self.steps_per_epoch = math.ceil(len(self.train_loader) / cfg.gradient_accumulation_steps)
        self.total_steps = cfg.max_steps or (cfg.epochs * self.steps_per_epoch if cfg.epochs else DEFAULT_MAX_STEPS)
        factor = lr_factor(cfg.lr_schedule, self.total_steps)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g.optimizer, factor)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d.optimizer, factor) if self.opt_d else None
        acc.register_save_state_pre_hook(self._save_models_hook)
        acc.register_load_state_pre_hook(self._load_models_hook)
        self.step, self.epoch, self.batch_in_epoch, self.train_seconds = 0, 0, 0, 0.0
        if self.resume_dir is not None:
            self._resume(self.resume_dir)
        self._start_run_folder()

    def _start_run_folder(self) -> None:
        acc, cfg = self.accelerator, self.cfg
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / CONFIG_FILE)
            for stale in (self.run_dir / CHECKPOINTS).glob(".tmp-*"):  # left by a run killed while saving
                shutil.rmtree(stale, ignore_errors=True)
            _truncate_metrics(self.run_dir / METRICS_FILE, self.step)
            # resumed from an older checkpoint: the newer ones belong to the abandoned trajectory; kept, they would
            # be rotated out before this run's own and picked by a later --resume latest
            for newer in list_checkpoints(self.run_dir):
                if int(CHECKPOINT_RE.match(newer.name).group(1)) > self.step:
                    print(f"removing {newer}: newer than the checkpoint this run resumed from", flush=True)
                    shutil.rmtree(newer)
        acc.wait_for_everyone()
        if cfg.report_to == "tensorboard":
            # purge_step drops events an interrupted run logged after the point this run starts from
            acc.init_trackers("tensorboard", config=_flat_config(cfg),
                              init_kwargs={"tensorboard": {"purge_step": self.step}})

    # -- checkpoints -------------------------------------------------------------------------------
    def _save_models_hook(self, models, weights, output_dir) -> None:
        """Store both networks ourselves, unwrapped: the generator as an irvis folder (config.json +
        model.safetensors), so checkpoints load anywhere and resume under any number of processes."""
        acc = self.accelerator
        if acc.is_main_process:
            for model in models:
                plain = acc.unwrap_model(model)
                if isinstance(plain, Generator):
                    plain.save_pretrained(Path(output_dir) / GENERATOR_DIR)
                else:
                    save_model(plain, str(Path(output_dir) / DISCRIMINATOR_FILE))
        weights.clear()

    def _load_models_hook(self, models, input_dir) -> None:
        acc = self.accelerator
        for model in models:
            plain = acc.unwrap_model(model)
            path = Path(input_dir) / (f"{GENERATOR_DIR}/model.safetensors" if isinstance(plain, Generator) else DISCRIMINATOR_FILE)
            load_model(plain, path, strict=True, device=str(acc.device))
        models.clear()

    def save_checkpoint(self) -> Path:
        """Write into a hidden folder, then rename: a checkpoint is complete or absent, never half-written."""
        acc = self.accelerator
        root = self.run_dir / CHECKPOINTS
        final, tmp = root / f"checkpoint-{self.step:06d}", root / f".tmp-checkpoint-{self.step:06d}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))  # every process writes its own RNG state
        acc.wait_for_everyone()
        if acc.is_main_process:
            if self.ema is not None:
                self.ema.model.save_pretrained(tmp / EMA_DIR)
            self.cfg.save(tmp / CONFIG_FILE)
            (tmp / STATE_FILE).write_text(json.dumps(self._state(), indent=2) + "\n")  # last: marks it complete
            if final.exists():  # the same step saved by an earlier run of this trajectory
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in list_checkpoints(self.run_dir)[:-self.cfg.checkpoints_total_limit]:
                shutil.rmtree(old)
        acc.wait_for_everyone()
        return final

    def _state(self) -> dict:
        acc = self.accelerator
        return {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "total_steps": self.total_steps, "num_processes": acc.num_processes,
            "scheduler_g": self.sched_g.state_dict(),
            "scheduler_d": self.sched_d.state_dict() if self.sched_d else None,
            "ema_updates": self.ema.updates if self.ema else None,
            "train_seconds": round(self.train_seconds + self._elapsed(), 1),
            "hardware": _hardware(acc), "mixed_precision": self.cfg.mixed_precision,
            "train_sets": count_sets(self.train_pairs), "val_sets": count_sets(self.val_pairs),
            "versions": _versions(),
        }

    def _resume(self, path: Path) -> None:
        acc = self.accelerator
        _, state = read_checkpoint(path)
        acc.load_state(str(path))
        self.sched_g.load_state_dict(state["scheduler_g"])
        if self.sched_d is not None:
            self.sched_d.load_state_dict(state["scheduler_d"])
        if self.ema is not None:
            load_model(self.ema.model, path / EMA_DIR / "model.safetensors", strict=True, device=str(acc.device))
            self.ema.updates = state["ema_updates"]
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.train_seconds = state.get("train_seconds", 0.0)
        if state["num_processes"] != acc.num_processes:
            # positions within an epoch count per-process batches: they mean nothing under another split
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            acc.print(f"warning: {path} was written by {state['num_processes']} process(es), this run has "
                      f"{acc.num_processes}: it continues from the start of epoch {self.epoch}, with another total "
                      "batch size; not an exact continuation")
        acc.print(f"resumed from {path} at step {self.step} (epoch {self.epoch}, batch {self.batch_in_epoch})")
        if state["total_steps"] != self.total_steps:
            acc.print(f"note: the run now ends at step {self.total_steps} (was {state['total_steps']}); the "
                      f"{self.cfg.lr_schedule} learning-rate schedule is stretched to match from here on")

    # -- one step ----------------------------------------------------------------------------------
    def train_batch(self, batch: dict) -> dict[str, torch.Tensor]:
        acc, cfg = self.accelerator, self.cfg
        source, target = batch["source"], batch["target"]
        models = (self.generator,) if self.discriminator is None else (self.generator, self.discriminator)
        logs = {}
        with acc.accumulate(*models), acc.autocast():
            fake = self.generator(source)
            gan_g = torch.zeros((), device=source.device)
            if self.discriminator is not None and self.step >= cfg.gan_warmup:
                # D: real and fake in one forward (one DDP pass; instance norm keeps samples independent)
                logits = self.discriminator(torch.cat([source, source]), torch.cat([target, fake.detach()]))
                real_logits, fake_logits = logits.chunk(2)
                loss_d = 0.5 * (gan_loss(real_logits, True, cfg.gan_mode) + gan_loss(fake_logits, False, cfg.gan_mode))
                acc.backward(loss_d)
                self.opt_d.step()
                self.opt_d.zero_grad(set_to_none=True)
                # G's adversarial term through the bare D, frozen: D gets no gradient and no DDP reduction
                plain_d = acc.unwrap_model(self.discriminator).requires_grad_(False)
                gan_g = gan_loss(plain_d(source, fake), True, cfg.gan_mode)
                plain_d.requires_grad_(True)
                logs["loss/d"] = loss_d.detach()
                logs["loss/g_gan"] = gan_g.detach()
            l1 = F.l1_loss(fake.float(), target.float())
            ssim_term = torch.zeros((), device=source.device)
            if cfg.ssim_weight > 0:
                ssim_term = ssim_loss(fake, target)
                logs["loss/ssim"] = ssim_term.detach()
            edge_term = torch.zeros((), device=source.device)
            if cfg.edge_weight > 0:
                edge_term = edge_loss(fake, target)
                logs["loss/edge"] = edge_term.detach()
            # Pix2Pix's weight 100 is for L1 on images in [-1, 1], twice our [0, 1] difference
            acc.backward(cfg.l1_weight * 2 * l1 + cfg.gan_weight * gan_g + cfg.ssim_weight * ssim_term
                         + cfg.edge_weight * edge_term)
            self.opt_g.step()
            self.opt_g.zero_grad(set_to_none=True)
        logs["loss/l1"] = l1.detach()
        return logs

    # -- the loop ----------------------------------------------------------------------------------
    def train(self) -> Path | None:
        """Train to total_steps, then export OUTPUT_DIR/final (and push it if asked). Returns final/."""
        from tqdm.auto import tqdm

        acc = self.accelerator
        acc.print(self._banner())
        self._t0 = time.perf_counter()
        self._bar = tqdm(total=self.total_steps, initial=self.step, desc=f"train {self.cfg.direction}", unit="step",
                         disable=not acc.is_local_main_process, dynamic_ncols=True)
        self._sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=acc.device))
        self._count, self._last_log = 0, (time.perf_counter(), self.step)
        try:
            while self.step < self.total_steps:
                self._train_epoch()
        except KeyboardInterrupt:
            self._bar.close()
            found = list_checkpoints(self.run_dir)
            where = f"the last checkpoint is {found[-1]}" if found else "no checkpoint was written yet"
            acc.print(f"\ninterrupted at step {self.step}; {where}. Continue with the same command and --resume latest.")
            acc.end_training()
            raise
        self._bar.close()
        final = self.finish()
        acc.end_training()
        return final

    def _train_epoch(self) -> None:
        """The rest of the current epoch (all of it unless resuming mid-epoch), or up to total_steps."""
        acc = self.accelerator
        for part in (self.train_set, self.sampler, self.train_loader):  # augmentation, order, Accelerate's count
            part.set_epoch(self.epoch)
        loader = self.train_loader
        if self.batch_in_epoch:  # resuming mid-epoch: skip what was trained on, without loading it
            loader = acc.skip_first_batches(self.train_loader, self.batch_in_epoch)
        for batch in loader:
            for k, v in self.train_batch(batch).items():
                self._sums[k] += v
            self._count += 1
            self.batch_in_epoch += 1
            if acc.sync_gradients:
                self._after_optimizer_step()
                if self.step >= self.total_steps:
                    return
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def _after_optimizer_step(self) -> None:
        self.step += 1
        self.sched_g.step()
        if self.sched_d is not None:
            self.sched_d.step()
        if self.ema is not None:
            self.ema.update(self.accelerator.unwrap_model(self.generator))
        self._bar.update(1)
        if self.step % self.cfg.log_every == 0 or self.step == self.total_steps:
            self._log()
        self._periodic()
        for callback in self.callbacks:
            callback(self, self.step)

    def _periodic(self) -> None:
        cfg, step = self.cfg, self.step
        if cfg.sample_every and step % cfg.sample_every == 0:
            self.log_samples()
        if cfg.eval_every and step % cfg.eval_every == 0 and step != self.total_steps:
            self.validate()
        if step % cfg.checkpoint_every == 0 or step == self.total_steps:
            self.save_checkpoint()

    def _log(self) -> None:
        """Mean losses since the last log over all processes, learning rates, speed."""
        acc = self.accelerator
        names = sorted(self._sums)
        means = acc.reduce(torch.stack([self._sums[k] for k in names]) / max(1, self._count), reduction="mean")
        values = {k: float(v) for k, v in zip(names, means)}
        now, (then, then_step) = time.perf_counter(), self._last_log
        values["perf/steps_per_s"] = (self.step - then_step) / max(1e-9, now - then)
        values["lr/g"] = self.sched_g.get_last_lr()[0]
        if self.sched_d is not None:
            values["lr/d"] = self.sched_d.get_last_lr()[0]
        values["epoch"] = self.epoch
        acc.log(values, step=self.step)
        self._bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in values.items() if k.startswith("loss/")})
        self._sums.clear()
        self._count, self._last_log = 0, (now, self.step)

    def _eval_model(self) -> Generator:
        return self.ema.model if self.ema is not None else self.accelerator.unwrap_model(self.generator)

    # -- samples and validation --------------------------------------------------------------------
    def log_samples(self) -> Path | None:
        """input | prediction | truth | baseline rows for a few fixed frames (validation ones if any)."""
        acc = self.accelerator
        if not acc.is_main_process:
            return None
        from irvis.evaluate import sample_grid

        pairs = _spread(self.val_pairs or self.train_pairs, SAMPLE_ROWS)  # rows from across the sets
        model = self._eval_model()
        was_training = model.training
        model.eval()
        rows = []
        frames = ValFrames(pairs, self.cfg.direction, self.cfg.val_short_side)
        for i, pair in enumerate(pairs):
            item = frames[i]
            source = item["source"][None].to(acc.device)
            with acc.autocast():
                pred = predict(model, source)[0].cpu()
            baseline = next(iter(baseline_predictions(self.cfg.direction, item["source"][None]).values()))[0]
            rows.append((f"{pair.set_name}/{pair.name}", item["source"], pred, item["target"], baseline))
        model.train(was_training)
        grid = sample_grid(rows, self.cfg.direction)
        path = self.run_dir / "samples" / f"step-{self.step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        tracker = self._tensorboard()
        if tracker is not None:
            tracker.log_images({"samples": np.asarray(grid)[None]}, step=self.step, dataformats="NHWC")
        return path

    def validate(self) -> dict | None:
        """Per-image PSNR/SSIM on whole validation frames, each process a share, gathered without the
        padding duplicates (gather_for_metrics). Baselines are logged with the first validation."""
        acc = self.accelerator
        if not self.val_pairs:
            return None
        with_baselines = not getattr(self, "_baselines_logged", False)
        baseline_names = list(baseline_predictions(self.cfg.direction, torch.zeros(1, self.direction.in_channels, 4, 4)))
        model = self._eval_model()
        was_training = model.training
        model.eval()
        rows = []
        for batch in self.val_loader:
            source, target = batch["source"], batch["target"]
            with acc.autocast():
                pred = predict(model, source)
            columns = [batch["index"].float(), *_metric_columns(pred, target)]
            if with_baselines:
                for guess in baseline_predictions(self.cfg.direction, source).values():
                    columns += _metric_columns(guess.to(target.device), target)
            rows.append(acc.gather_for_metrics(torch.stack(columns, dim=1)))
        model.train(was_training)
        table = torch.cat(rows).cpu()
        summary = self._summarise(table, baseline_names if with_baselines else [])
        self._baselines_logged = True
        if acc.is_main_process:
            acc.log({k: v for k, v in summary.items() if isinstance(v, float)}, step=self.step)
            with open(self.run_dir / METRICS_FILE, "a") as f:
                f.write(json.dumps(summary) + "\n")
            acc.print(f"step {self.step}: validation PSNR {summary['val/psnr']:.2f} dB, SSIM {summary['val/ssim']:.4f}, "
                      f"sharpness {summary['val/sharpness']:.3f}, gradient correlation "
                      f"{summary['val/gradient_correlation']:.3f} on {summary['n_images']} frames")
        return summary

    def _summarise(self, table: torch.Tensor, baseline_names: list[str]) -> dict:
        names = ["val"] + [f"val_baseline/{b}" for b in baseline_names]
        summary: dict = {"step": self.step, "n_images": len(table)}
        set_of = [self.val_pairs[int(i)].set_name for i in table[:, 0]]
        k = len(VAL_METRICS)
        for j, prefix in enumerate(names):
            for m, name in enumerate(VAL_METRICS):
                column = table[:, 1 + k * j + m]
                summary[f"{prefix}/{name}"] = float(column.nanmean())
                if prefix == "val" and len(set(set_of)) > 1:
                    for s in sorted(set(set_of)):
                        mask = torch.tensor([x == s for x in set_of])
                        summary[f"val/{s}/{name}"] = float(column[mask].nanmean())
        return summary

    def _tensorboard(self):
        if self.cfg.report_to != "tensorboard":
            return None
        return self.accelerator.get_tracker("tensorboard")

    # -- the end -----------------------------------------------------------------------------------
    def finish(self) -> Path | None:
        """Export the generator (EMA if kept) with its evaluation and card; push it if asked."""
        acc, cfg = self.accelerator, self.cfg
        acc.wait_for_everyone()
        final = self.run_dir / "final"
        if acc.is_main_process:
            from train.export import export_generator

            result = export_generator(self._eval_model(), final, cfg, self._state(), self.val_pairs,
                                      half=cfg.export_half, device=acc.device)
            if result is not None and result.get("model"):
                m = result["model"]
                acc.log({"val/psnr": m["psnr"], "val/ssim": m["ssim"]}, step=self.step)
            acc.print(f"exported the generator to {final}")
            if cfg.push_to_hub:
                self.push_failed = not push(final, cfg.push_to_hub, cfg.hub_private)
        acc.wait_for_everyone()
        return final

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0 if hasattr(self, "_t0") else 0.0

    def _banner(self) -> str:
        acc, cfg = self.accelerator, self.cfg
        g = self.accelerator.unwrap_model(self.generator)
        total_batch = cfg.batch_size * acc.num_processes * cfg.gradient_accumulation_steps
        lines = [
            f"irvis trainer: {self.direction.name} ({self.direction.label}), {cfg.arch}, "
            f"{count_parameters(g) / 1e6:.2f} M parameters, "
            + ("L1" if self.discriminator is None else f"PatchGAN ({cfg.gan_mode}) + L1")
            + (" + SSIM" if cfg.ssim_weight > 0 else "") + (" (no discriminator)" if self.discriminator is None else ""),
            f"  data: {len(self.train_pairs)} training pairs {count_sets(self.train_pairs)}; "
            f"{len(self.val_pairs)} validation pairs {count_sets(self.val_pairs) or '(none: no test split)'}",
            f"  {self.total_steps} steps of batch {total_batch} ({cfg.batch_size} x {acc.num_processes} process(es) "
            f"x {cfg.gradient_accumulation_steps} accumulation); {self.steps_per_epoch} steps per epoch; "
            f"{_hardware(acc)}, mixed precision {cfg.mixed_precision}",
            f"  run folder: {self.run_dir}" + (f"  (TensorBoard: tensorboard --logdir {self.run_dir / 'tensorboard'})"
                                               if cfg.report_to == "tensorboard" else ""),
        ]
        return "\n".join(lines)


VAL_METRICS = ("psnr", "ssim", "sharpness", "gradient_correlation")  # VIF is left to the exported report


def _metric_columns(pred: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
    m = score(pred.float(), target.float(), structure=False)
    # identical images: inf dB, capped as irvis.evaluate does
    return [m["psnr"].clamp(max=PSNR_CAP_DB), m["ssim"], sharpness(pred.float(), target.float()),
            gradient_correlation(pred.float(), target.float())]


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop validation lines an interrupted run wrote after the step it resumes from."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def _flat_config(cfg: TrainConfig) -> dict:
    """TensorBoard's hparams take scalars and strings only."""
    flat = {}
    for k, v in cfg.to_dict().items():
        flat[k] = " ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
    return flat


def _hardware(acc) -> str:
    device = acc.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({os.cpu_count()} cores; torch threads per process: {torch.get_num_threads()})"
    return f"{acc.num_processes} x {name}" if acc.num_processes > 1 else name


def _versions() -> dict:
    import accelerate

    return {"irvis": irvis.__version__, "torch": torch.__version__, "accelerate": accelerate.__version__,
            "python": sys.version.split()[0]}


# ---------------------------------------------------------------------------------------------------
# The Hub


def _check_hub_ready(repo_id: str) -> None:
    """Fail before training, not after hours of it, when the push at the end cannot work."""
    from huggingface_hub import constants, get_token

    if repo_id.count("/") != 1:
        raise ConfigError(f"--push-to-hub {repo_id}: give a repo id of the form owner/name")
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ConfigError("--push-to-hub needs the network, but HF_HUB_OFFLINE is set; unset it or push later with "
                          "python -m irvis push --weights OUTPUT_DIR/final --repo-id " + repo_id)
    if get_token() is None:
        raise ConfigError("--push-to-hub needs a Hugging Face token: run `hf auth login` or set HF_TOKEN")


def push(folder: Path, repo_id: str, private: bool = False) -> bool:
    """Upload an exported folder; a failure is reported, and the local export stays usable."""
    from irvis.hub import push_folder, upload_plan

    print(f"pushing to {repo_id}: {', '.join(upload_plan(folder))}")
    try:
        print(push_folder(folder, repo_id, private=private))
        return True
    except Exception as e:  # network, auth, permissions: the trained generator must not be lost over it
        print(f"error: the push to {repo_id} failed ({type(e).__name__}: {e}); the generator is safe in {folder}; "
              f"retry with: python -m irvis push --weights {folder} --repo-id {repo_id}", file=sys.stderr)
        return False


def train(config: TrainConfig, callbacks: Sequence[Callable[[Trainer, int], None]] = ()) -> Path | None:
    return Trainer(config, callbacks).train()
