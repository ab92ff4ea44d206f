"""The Accelerate training loop: Pix2Pix (conditional PatchGAN + L1) for one direction.

One `Trainer` owns the Accelerator. Everything a resumed run needs to continue exactly is in each
checkpoint (train.checkpoint): both networks, optimizers, learning-rate schedules, the EMA, every process's
RNG states and the position in the data. The data order and each sample's augmentation are drawn from
(seed, epoch, index) (train.data), so the n-th batch of an epoch is the same whatever the number of
DataLoader workers, and after a resume. The losses are train.objective's; what is logged while it runs,
train.validation's; the exported folder, train.export's; stopping on request, train.stopping's.

Why one file: it is one class, `Trainer`, whose phases (build, resume, step, log, validate, checkpoint, finish)
share the Accelerator, the networks, the optimizers and the position in the data.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

import irvis
from irvis.cpu import cpu_has_native_bf16
from irvis.data import DataError, count_sets, load_pairs, oversized
from irvis.directions import get_direction
from irvis.hub import HubError, check_push_ready, push_or_report
from irvis.metrics import headline
from irvis.nets import Generator, count_parameters
from train import checkpoint, validation
from train.config import CONFIG_FILE, ConfigError, TrainConfig, resume_conflicts
from train.data import EpochSampler, TrainPairs, ValFrames, loader_workers, repeat_sets, spread, validation_pairs
from train.export import export_generator
from train.losses import active
from train.models import PatchDiscriminator, fused_adam, generator_groups, initial_generator
from train.objective import (EMA, adversarial_term, discriminator_loss, generator_loss, level_steadiness_loss,
                             lr_factor)
from train.stopping import StopRequested, StopRequests, ignore_stop_signals, stopped_line

DEFAULT_MAX_STEPS = 10_000
SAMPLE_ROWS = 4


class Trainer:
    """Build everything from a TrainConfig, then `train()`. Data is checked before anything is built,
    so a broken dataset fails in seconds with the full report."""

    def __init__(self, config: TrainConfig, callbacks: Sequence[Callable[["Trainer", int], None]] = ()):
        self.cfg = config
        self.run_dir = config.run_dir
        self.callbacks = list(callbacks)
        self.stops = StopRequests()  # installed while train() runs
        self.push_failed = False
        self.direction = get_direction(config.direction)
        # 1. data and resume target first: nothing is built for a run that cannot start
        self.train_pairs = repeat_sets(load_pairs(config.data, "train"), config.set_repeats())
        self.val_pairs = validation_pairs(config)
        # frames as the loader and validation will resize them, held to the pixel limit before anything starts
        problems = oversized(self.train_pairs, config.load_size) + oversized(self.val_pairs, config.val_short_side)
        if problems:
            raise DataError("the dataset cannot be used:\n" + "\n".join(f"  - {p}" for p in sorted(set(problems))))
        self.resume_dir = checkpoint.resolve_resume(config)
        if self.resume_dir is not None:
            saved, _ = checkpoint.read_checkpoint(self.resume_dir)
            conflicts = resume_conflicts(saved, config)
            if conflicts:
                raise ConfigError(f"cannot resume {self.resume_dir} with different settings:\n  " + "\n  ".join(conflicts))
        if config.push_to_hub:
            try:
                check_push_ready(config.push_to_hub)
            except HubError as e:
                raise ConfigError(str(e)) from None
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
        generator = initial_generator(cfg)
        self.ema = EMA(generator, cfg.ema_decay) if cfg.ema_decay > 0 else None
        betas = (cfg.beta1, cfg.beta2)
        fused = fused_adam(acc.device)
        opt_g = torch.optim.Adam(generator_groups(generator, cfg), lr=cfg.lr_g, betas=betas, fused=fused)
        self.train_set = TrainPairs(self.train_pairs, cfg, frame_views=generator.wants_frame)
        self.sampler = EpochSampler(len(self.train_set), cfg.seed)
        workers = loader_workers(cfg.num_workers, acc.device.type, acc.num_processes)
        loader = DataLoader(self.train_set, batch_size=cfg.batch_size, sampler=self.sampler, drop_last=True,
                            num_workers=workers, pin_memory=acc.device.type == "cuda",
                            # its own generator, so creating an iterator does not consume the global RNG
                            generator=torch.Generator().manual_seed(cfg.seed), worker_init_fn=ignore_stop_signals)
        objects = [generator, opt_g, loader]
        if cfg.gan_weight > 0:
            d = self.direction
            discriminator = PatchDiscriminator(d.in_channels + d.out_channels, ndf=cfg.ndf, n_layers=cfg.d_layers)
            objects += [discriminator, torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_d, betas=betas, fused=fused)]
        if self.val_pairs:
            objects.append(DataLoader(ValFrames(self.val_pairs, cfg.direction, cfg.val_short_side), batch_size=1,
                                      num_workers=min(workers, len(self.val_pairs))))
        prepared = list(acc.prepare(*objects))
        self.generator, self.opt_g, self.train_loader = prepared[:3]
        self.discriminator, self.opt_d = prepared[3:5] if cfg.gan_weight > 0 else (None, None)
        self.val_loader = prepared[-1] if self.val_pairs else None
        if cfg.compile:  # in place (nn.Module.compile): state dicts, EMA and checkpoints see the plain module
            for model in (self.generator, self.discriminator):
                if model is not None:
                    model.compile()
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
        checkpoint.install_state_hooks(acc)
        self.step, self.epoch, self.batch_in_epoch, self.train_seconds = 0, 0, 0, 0.0
        if self.resume_dir is not None:
            self._resume(self.resume_dir)
        self._start_run_folder()

    def _start_run_folder(self) -> None:
        acc, cfg = self.accelerator, self.cfg
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / CONFIG_FILE)
            checkpoint.prepare_run_folder(self.run_dir, self.step)
        acc.wait_for_everyone()
        if cfg.report_to == "tensorboard":
            # purge_step drops events an interrupted run logged after the point this run starts from
            acc.init_trackers("tensorboard", config=_flat_config(cfg),
                              init_kwargs={"tensorboard": {"purge_step": self.step}})

    # -- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        return checkpoint.save_checkpoint(self.accelerator, self.run_dir, self.step, self.cfg, self._state(),
                                          self.ema.model if self.ema is not None else None)

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
        _, state = checkpoint.read_checkpoint(path)
        acc.load_state(str(path))
        self.sched_g.load_state_dict(state["scheduler_g"])
        if self.sched_d is not None:
            self.sched_d.load_state_dict(state["scheduler_d"])
        if self.ema is not None:
            checkpoint.load_ema(self.ema.model, path, acc.device)
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
        if cfg.channels_last:
            source = source.contiguous(memory_format=torch.channels_last)
            target = target.contiguous(memory_format=torch.channels_last)
        models = (self.generator,) if self.discriminator is None else (self.generator, self.discriminator)
        logs = {}
        with acc.accumulate(*models), acc.autocast():
            fake = self.generator(source, frame=batch.get("frame"))
            gan_g = torch.zeros((), device=source.device)
            if self.discriminator is not None and self.step >= cfg.gan_warmup:
                loss_d = discriminator_loss(self.discriminator, source, target, fake, cfg.gan_mode)
                acc.backward(loss_d)
                self.opt_d.step()
                self.opt_d.zero_grad(set_to_none=True)
                gan_g = adversarial_term(acc.unwrap_model(self.discriminator), source, fake, cfg.gan_mode)
                logs["loss/d"] = loss_d.detach()
                logs["loss/g_gan"] = gan_g.detach()
            loss_g, terms = generator_loss(cfg, fake, target, gan_g)
            if cfg.level_steadiness:  # through the bare network: one backward still reaches each parameter once
                steadiness = level_steadiness_loss(acc.unwrap_model(self.generator).net, batch["frame"])
                loss_g = loss_g + cfg.level_steadiness * steadiness
                terms["loss/level_steadiness"] = steadiness.detach()
            acc.backward(loss_g)
            self.opt_g.step()
            self.opt_g.zero_grad(set_to_none=True)
        logs.update(terms)
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
        self.stops.install()
        try:
            while self.step < self.total_steps:
                self._train_epoch()
        except (StopRequested, KeyboardInterrupt) as e:
            self._bar.close()
            acc.print("\n" + stopped_line(e, self.step, self.run_dir))
            acc.end_training()
            raise KeyboardInterrupt from None
        finally:
            self.stops.restore()
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
        saved = self._periodic()
        for callback in self.callbacks:
            callback(self, self.step)
        if self.step < self.total_steps:
            self.stops.stop_here(self.accelerator, self.step, lambda: saved or self.save_checkpoint())

    def _periodic(self) -> Path | None:
        """Samples, validation and the checkpoint due at this step; the checkpoint's folder if one was written."""
        cfg, step = self.cfg, self.step
        if cfg.sample_every and step % cfg.sample_every == 0:
            self.log_samples()
        if cfg.eval_every and step % cfg.eval_every == 0 and step != self.total_steps:
            self.validate()
        if step % cfg.checkpoint_every == 0 or step == self.total_steps:
            return self.save_checkpoint()
        return None

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
        pairs = spread(self.val_pairs or self.train_pairs, SAMPLE_ROWS)  # rows from across the sets
        grid = validation.sample_image(self._eval_model(), pairs, self.cfg.direction, self.cfg.val_short_side,
                                       acc.device, acc.autocast)
        path = self.run_dir / "samples" / f"step-{self.step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        tracker = self._tensorboard()
        if tracker is not None:
            tracker.log_images({"samples": np.asarray(grid)[None]}, step=self.step, dataformats="NHWC")
        return path

    def validate(self) -> dict | None:
        """Per-image metrics on whole validation frames, each process a share, gathered without the padding
        duplicates (gather_for_metrics). Baselines are logged with the first validation."""
        acc = self.accelerator
        if not self.val_pairs:
            return None
        with_baselines = not getattr(self, "_baselines_logged", False)
        table = validation.score_batches(self._eval_model(), self.val_loader, self.cfg.direction, acc.autocast,
                                         acc.gather_for_metrics, with_baselines)
        summary = validation.summarise(table, self.val_pairs, self.cfg.direction, self.step, with_baselines)
        self._baselines_logged = True
        if acc.is_main_process:
            acc.log({k: v for k, v in summary.items() if isinstance(v, float)}, step=self.step)
            validation.append_summary(self.run_dir / checkpoint.METRICS_FILE, summary)
            acc.print(validation.summary_line(summary))
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
            result = export_generator(self._eval_model(), final, cfg, self._state(), self.val_pairs,
                                      half=cfg.export_half, device=acc.device)
            if result is not None and result.get("model"):
                m = result["model"]
                acc.log({f"val/{k.name}": m[k.name] for k in headline() if k.name in m}, step=self.step)
            acc.print(f"exported the generator to {final}")
            if cfg.push_to_hub:
                self.push_failed = not push_or_report(final, cfg.push_to_hub, cfg.hub_private)
        acc.wait_for_everyone()
        return final

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0 if hasattr(self, "_t0") else 0.0

    def _banner(self) -> str:
        acc, cfg = self.accelerator, self.cfg
        g = self.accelerator.unwrap_model(self.generator)
        total_batch = cfg.batch_size * acc.num_processes * cfg.gradient_accumulation_steps
        losses = active(cfg)  # the registry's losses this run uses (train.losses)
        terms = [loss.label for loss, _ in losses]
        weights = [f"{loss.label} {w:g}" for loss, w in losses]
        if self.discriminator is None:
            objective = " + ".join(terms) + " (no discriminator)"
        else:
            objective = " + ".join([f"PatchGAN ({cfg.gan_mode})", *terms])
            weights.append(f"PatchGAN {cfg.gan_weight:g}" + (f" from step {cfg.gan_warmup}" if cfg.gan_warmup else ""))
        if cfg.level_steadiness:
            weights.append(f"level steadiness {cfg.level_steadiness:g}")
        lines = [
            f"irvis trainer: {self.direction.name} ({self.direction.label}), {cfg.arch}, "
            f"{count_parameters(g) / 1e6:.2f} M parameters, {objective}",
            "  loss weights: " + ", ".join(weights),
            f"  data: {len(self.train_pairs)} training pairs {count_sets(self.train_pairs)}; "
            f"{len(self.val_pairs)} validation pairs {count_sets(self.val_pairs) or '(none: no test split)'}",
            f"  {self.total_steps} steps of batch {total_batch} ({cfg.batch_size} x {acc.num_processes} process(es) "
            f"x {cfg.gradient_accumulation_steps} accumulation); {self.steps_per_epoch} steps per epoch; "
            f"{_hardware(acc)}, mixed precision {cfg.mixed_precision}",
            f"  run folder: {self.run_dir}" + (f"  (TensorBoard: tensorboard --logdir {self.run_dir / 'tensorboard'})"
                                               if cfg.report_to == "tensorboard" else ""),
        ]
        if cfg.mixed_precision == "bf16" and acc.device.type == "cpu" and not cpu_has_native_bf16():
            # measured: a 256-px lite0 step took 30 s in emulated bf16 against 2.9 s in float32 on an AVX2-only CPU
            lines.append("  warning: this CPU has no native bfloat16 (AMX or AVX512-BF16), so bf16 autocast is emulated "
                         "and about 10x slower than float32: use --mixed-precision no here")
        return "\n".join(lines)


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


def train(config: TrainConfig, callbacks: Sequence[Callable[[Trainer, int], None]] = ()) -> Path | None:
    return Trainer(config, callbacks).train()
