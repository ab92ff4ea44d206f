"""One dataclass behind the flags: `python -m train --help` is generated from it, and every run saves
it as training_config.json (beside the checkpoints and in the exported generator folder)."""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from irvis.context import ENCODER_LEVEL_VIEWS
from irvis.directions import DIRECTIONS
from irvis.generator_folder import INT_RANGES, TRAINING_CONFIG_FILE
from irvis.metrics import SCORING_SHORT_SIDE
from irvis.nets import ARCHITECTURES, SETTINGS, Setting, architecture, generator_config
from train.losses import LOSSES, weight_name

CONFIG_FILE = TRAINING_CONFIG_FILE  # the run folder's copy, as an exported generator's
GROUP_TITLES = {"data": "data", "model": "models", "optimisation": "optimisation", "schedule": "logging, samples, "
                "validation, checkpoints", "output": "resume, export and the Hub"}


class ConfigError(ValueError):
    """Flags that cannot make a run, with the reason."""


def _opt(help: str, **kwargs):
    """A dataclass field with its argparse settings in metadata (flag name = field name with dashes)."""
    default = kwargs.pop("default", MISSING)
    factory = kwargs.pop("default_factory", MISSING)
    extra = {} if default is MISSING else {"default": default}
    if factory is not MISSING:
        extra = {"default_factory": factory}
    return field(metadata={"help": help, **kwargs}, **extra)


def _is_switch(setting: Setting) -> bool:
    return setting.choices == (False, True)


def _setting_field(name: str, setting: Setting) -> tuple[str, object]:
    """A generator setting of the architecture registry (irvis.nets.SETTINGS) as a flag: None (the default) leaves
    it at the architecture's own default; a switch is on/off."""
    def shown(value):
        return ("on" if value else "off") if _is_switch(setting) else value

    defaults = ", ".join(f"{a.name} {shown(a.defaults[name])}" for a in ARCHITECTURES.values() if name in a.defaults)
    help = f"{setting.help} (default: the architecture's: {defaults})"
    if setting.choices is None:
        return "int | None", _opt(help, default=None, group="model")
    choices = ["on", "off"] if _is_switch(setting) else list(setting.choices)
    return "str | None", _opt(help, default=None, choices=choices, group="model")


def _generated_fields(cls):
    """The fields two registries own: each generator setting after --arch, and a --NAME-weight for each loss
    (train.losses) before the adversarial term's."""
    annotations = {}
    for name, kind in cls.__annotations__.items():
        if name == "gan_weight":
            for loss in LOSSES.values():
                annotations[weight_name(loss)] = "float"
                setattr(cls, weight_name(loss), _opt(loss.help, default=loss.default, group="optimisation"))
        annotations[name] = kind
        if name == "arch":
            for setting_name, setting in SETTINGS.items():
                annotations[setting_name], value = _setting_field(setting_name, setting)
                setattr(cls, setting_name, value)
    cls.__annotations__ = annotations
    return cls


@dataclass
@_generated_fields
class TrainConfig:
    # what to learn, from what
    direction: str = _opt("translation direction", choices=list(DIRECTIONS), group="data")
    data: list[str] = _opt("LLVIP-layout roots (ROOT/infrared/train <-> ROOT/visible/train); a folder of such roots "
                           "(e.g. ../shared/data) stands for all of them", nargs="+", metavar="ROOT", group="data")
    val_data: list[str] | None = _opt("validation roots; default: --data (roots without the validation split are "
                                      "skipped)", default=None, nargs="+", metavar="ROOT", group="data")
    val_split: str = _opt("the split validation, samples and checkpoint choice use: 'val' (held out for choosing "
                          "steps and recipes); never choose on the split you report ('test')", default="val",
                          group="data")
    output_dir: str | None = _opt("run folder: checkpoints/, tensorboard/, samples/, final/ (default runs/DIRECTION)",
                                  default=None, group="data")
    load_size: int = _opt("training pairs: shorter side drawn in [min-load, load] before the random crop", default=286,
                          group="data")
    min_load_size: int | None = _opt("smallest shorter side drawn (default: the crop size); set it near the working size "
                                     "to train small crops at the scale frames are translated at", default=None, group="data")
    crop_size: int = _opt("training crop side (a multiple of the generator's size multiple: 32, or 256 for the reference)",
                          default=256, group="data")
    repeat_sets: list[str] | None = _opt("repeat a set's training pairs N times per epoch, e.g. llvip=4 (a set is "
                                         "named after its root folder)", default=None, nargs="+", metavar="SET=N",
                                         group="data")
    no_upscale: bool = _opt("never enlarge a training frame beyond its native size (except up to the crop size): the "
                            "shorter side is drawn in [min-load, min(load, native)], so a set of small frames is not "
                            "trained at a scale it is never used at when --load-size is set for large ones",
                            default=False, group="data")
    source_jitter: float = _opt("random gain, contrast and gamma of the source image, each within +-this (0: off; "
                                "e.g. 0.3): robustness to exposure and camera gain", default=0.0, group="data")
    view_noise: float = _opt("Gaussian noise added to the whole-frame view a level branch reads (--level-view frame, coarse or "
                             "histogram), its standard deviation drawn per sample from [0, this] (0: off; e.g. 0.01): "
                             "a level not moved by noise nobody can see (python -m train.stability measures it)",
                             default=0.0, group="data")
    level_steadiness: float = _opt("weight of a steadiness loss for the level branch's view of the whole frame "
                                   "(--level-view frame or coarse): the mean squared move of its gain and offset under noise "
                                   "of 2/255 on the view (0: off; e.g. 10000): noise makes an encoder's pooled "
                                   "features jump, and the level with them, where data noise alone did not teach "
                                   "invariance",
                                   default=0.0, group="optimisation")
    num_workers: int | None = _opt("DataLoader worker processes per training process (0: load in the training "
                                   "process; default: 2 on a CPU; on a GPU the cores per process less one, at most 8, "
                                   "as a GPU step outruns one loader process 15-30 times)", default=None, group="data")
    # models
    arch: str = _opt("generator: irvis-unet (default), irvis-lite0 (with an ImageNet-pretrained context branch) or "
                     "pix2pix-unet256 (the Pix2Pix reference)", default="irvis-unet", choices=list(ARCHITECTURES),
                     group="model")
    encoder_init: str = _opt("where a pretrained part (irvis-lite0's context encoder) starts: imagenet (its pinned "
                             "ImageNet weights) or random (an ablation)", default="imagenet",
                             choices=["imagenet", "random"], group="model")
    encoder_lr_scale: float = _opt("the pretrained encoder's learning rate as a fraction of --lr-g (small, so a few "
                                   "hundred pairs refine what ImageNet taught instead of overwriting it)",
                                   default=0.1, group="model")
    ndf: int = _opt("discriminator base width", default=64, group="model")
    d_layers: int = _opt("PatchGAN depth (3: 70x70 patches)", default=3, group="model")
    init_from: str | None = _opt("start the generator from these weights (a generator folder or Hub repo id of the "
                                 "same direction and architecture): fine-tuning", default=None, metavar="WEIGHTS",
                                 group="model")
    ema_decay: float = _opt("keep an exponential moving average of the generator with this decay and export it "
                            "(0: off; e.g. 0.999)", default=0.0, group="model")
    # optimisation
    max_steps: int | None = _opt("optimizer steps to train (default 10000 unless --epochs is given)", default=None,
                                 group="optimisation")
    epochs: int | None = _opt("passes over the training pairs, instead of --max-steps", default=None, group="optimisation")
    batch_size: int = _opt("pairs per batch per process (total batch = this x processes x accumulation)", default=4,
                           group="optimisation")
    gradient_accumulation_steps: int = _opt("micro-batches per optimizer step", default=1, group="optimisation")
    lr_g: float = _opt("generator learning rate (Adam)", default=2e-4, group="optimisation")
    lr_d: float = _opt("discriminator learning rate (Adam)", default=2e-4, group="optimisation")
    beta1: float = _opt("Adam beta1", default=0.5, group="optimisation")
    beta2: float = _opt("Adam beta2", default=0.999, group="optimisation")
    lr_schedule: str = _opt("linear: constant, then linear decay to 0 over the second half (Pix2Pix); cosine; constant",
                            default="linear", choices=["linear", "cosine", "constant"], group="optimisation")
    gan_weight: float = _opt("weight of the conditional PatchGAN loss; 0 trains pure L1 regression without a "
                             "discriminator (much faster on CPU)", default=1.0, group="optimisation")
    gan_warmup: int = _opt("optimizer steps of the pixel losses alone before the adversarial term starts (the "
                           "discriminator then meets a generator that already draws the scene)", default=0,
                           group="optimisation")
    gan_mode: str = _opt("adversarial loss: vanilla (BCE, Pix2Pix's) or lsgan (least squares)", default="vanilla",
                         choices=["vanilla", "lsgan"], group="optimisation")
    mixed_precision: str = _opt("no, fp16 (CUDA) or bf16", default="no", choices=["no", "fp16", "bf16"],
                                group="optimisation")
    channels_last: bool = _opt("feed batches in channels-last (NHWC) layout: the convolutions then run NHWC, which "
                               "GPU tensor cores want (weights keep their layout, so checkpoints do not change)",
                               default=False, group="optimisation")
    compile: bool = _opt("torch.compile the generator and discriminator (Inductor, in place: weights and checkpoints "
                         "do not change): fuses each normalisation with its activation; it compiles for a minute or "
                         "more before the first step", default=False, group="optimisation")
    seed: int = _opt("seed for initialisation, data order and augmentation", default=0, group="optimisation")
    cpu: bool = _opt("train on the CPU even when a GPU is present", default=False, group="optimisation")
    # when to do what
    log_every: int = _opt("steps between logged losses and learning rates", default=10, group="schedule")
    checkpoint_every: int = _opt("steps between checkpoints (an interrupted run loses at most this many)", default=500,
                                 group="schedule")
    checkpoints_total_limit: int = _opt("checkpoints kept (oldest deleted first)", default=3, group="schedule")
    sample_every: int = _opt("steps between sample grids (input | prediction | truth) in TensorBoard and samples/; "
                             "0: off", default=250, group="schedule")
    eval_every: int = _opt("steps between validation PSNR/SSIM (0: only at the end)", default=500, group="schedule")
    val_short_side: int = _opt("validation frames are whole, resized to this shorter side (the scoring protocol's)",
                             default=SCORING_SHORT_SIDE, group="schedule")
    val_max_pairs: int = _opt("validate on at most this many pairs (0: all)", default=0, group="schedule")
    report_to: str = _opt("tensorboard or none", default="tensorboard", choices=["tensorboard", "none"], group="schedule")
    # run control and output
    resume: str | None = _opt("'latest' (the newest checkpoint in OUTPUT_DIR; starts fresh if there is none) or a "
                              "checkpoint folder", default=None, metavar="latest|PATH", group="output")
    export_half: bool = _opt("store the exported generator in float16 (half the size)", default=False, group="output")
    push_to_hub: str | None = _opt("upload OUTPUT_DIR/final to this Hugging Face model repo at the end",
                                   default=None, metavar="REPO_ID", group="output")
    hub_private: bool = _opt("create the Hub repo as private", default=False, group="output")

    # ---------------------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.direction}")

    def validate(self) -> "TrainConfig":
        """Every check that needs no data and no model, so a bad flag fails in a second."""
        if self.max_steps is not None and self.epochs is not None:
            raise ConfigError("give --max-steps or --epochs, not both")
        for f in fields(self):  # NaN passes every comparison below, and inf makes no run: refuse both here
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"--output-dir {self.run_dir}: a file is there, not a run folder")
        positive = ["batch_size", "gradient_accumulation_steps", "load_size", "crop_size", "log_every",
                    "checkpoint_every", "checkpoints_total_limit", "val_short_side", "ndf", "d_layers"]
        positive += [n for n in ("max_steps", "epochs") if getattr(self, n) is not None]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"--num-workers cannot be negative, got {self.num_workers}")
        weights = [weight_name(loss) for loss in LOSSES.values()] + ["gan_weight"]
        for name in ("gan_warmup", "sample_every", "eval_every", "val_max_pairs", "lr_g", "lr_d", *weights):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} cannot be negative, got {getattr(self, name)}")
        self.set_repeats()  # format check
        if not any(getattr(self, name) for name in weights):
            flags = [f"--{name.replace('_', '-')}" for name in weights]
            raise ConfigError(f"{', '.join(flags[:-1])} and {flags[-1]} are all 0: there is nothing to learn")
        for name, (low, high) in INT_RANGES.items():  # the ranges a generator folder may hold
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise ConfigError(f"--{name.replace('_', '-')} must be from {low} to {high}, got {value}")
        if not 0 <= self.encoder_lr_scale <= 1:
            raise ConfigError(f"--encoder-lr-scale must be in [0, 1], got {self.encoder_lr_scale}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.crop_size > self.load_size:
            raise ConfigError(f"--crop-size {self.crop_size} is larger than --load-size {self.load_size}")
        if not 0 <= self.source_jitter < 1:
            raise ConfigError(f"--source-jitter must be in [0, 1), got {self.source_jitter}")
        if not 0 <= self.view_noise <= 0.1:
            raise ConfigError(f"--view-noise must be from 0 to 0.1, got {self.view_noise}")
        if self.level_steadiness < 0:
            raise ConfigError(f"--level-steadiness must be 0 or more, got {self.level_steadiness}")
        if self.level_steadiness and self.generator_overrides().get("level_view") not in ENCODER_LEVEL_VIEWS:
            raise ConfigError("--level-steadiness steadies the level branch's encoder view: it needs --level-view "
                              "frame or coarse")
        if self.min_load_size is not None and not self.crop_size <= self.min_load_size <= self.load_size:
            raise ConfigError(f"--min-load-size {self.min_load_size} must lie between --crop-size {self.crop_size} "
                              f"and --load-size {self.load_size}")
        try:  # the registry's multiple for these settings; no network is built
            settings = generator_config(self.direction, self.arch, **self.generator_overrides())
            multiple = architecture(self.arch).multiple(settings)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.crop_size % multiple:
            raise ConfigError(f"--crop-size must be a multiple of {multiple} for {self.arch}, got {self.crop_size}")
        if self.resume is not None and self.resume != "latest" and not Path(self.resume).is_dir():
            raise ConfigError(f"--resume {self.resume}: no such checkpoint folder (or use --resume latest)")
        return self

    def set_repeats(self) -> dict[str, int]:
        repeats = {}
        for item in self.repeat_sets or []:
            name, _, count = item.partition("=")
            if not name or not count.isdigit() or int(count) < 1:
                raise ConfigError(f"--repeat-sets {item!r}: expected SET=N with N a whole number >= 1, e.g. llvip=4")
            repeats[name] = int(count)
        return repeats

    def generator_overrides(self) -> dict:
        """The generator settings this run sets, as Generator takes them (the rest: the architecture's)."""
        overrides = {}
        for name, setting in SETTINGS.items():
            value = getattr(self, name)
            if value is not None:
                overrides[name] = value == "on" if _is_switch(setting) else value
        return overrides

    def generator_settings(self) -> dict:
        """Every generator setting as the network is built: the architecture's defaults filled in."""
        return generator_config(self.direction, self.arch, **self.generator_overrides())

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: not a readable training config ({e})") from None
        known = {f.name for f in fields(cls)}
        # configs written before these settings existed trained the conv head and validated on test
        values = {"head": "conv", "val_split": "test", **values}
        # earlier trainers wrote their own default head for every architecture; one that takes none never used it
        arch = ARCHITECTURES.get(values.get("arch", "irvis-unet"))
        if arch is not None and "head" not in arch.defaults:
            values["head"] = None
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
        return cls(**values)


# Settings that may differ when resuming: they change when and how long, never what is being learnt.
RESUMABLE_CHANGES = {"max_steps", "epochs", "num_workers", "log_every", "checkpoint_every", "checkpoints_total_limit",
                     "sample_every", "eval_every", "val_data", "val_split", "val_short_side", "val_max_pairs", "report_to", "resume",
                     "export_half", "push_to_hub", "hub_private", "output_dir", "cpu", "channels_last", "compile"}


def resume_conflicts(saved: TrainConfig, current: TrainConfig) -> list[str]:
    """The settings that differ from the checkpoint's run in ways that would not continue it."""
    a, b = saved.to_dict(), current.to_dict()
    if a["arch"] == b["arch"]:  # a setting given or left at the architecture's default builds the same network
        try:
            a.update({k: v for k, v in saved.generator_settings().items() if k in SETTINGS})
            b.update({k: v for k, v in current.generator_settings().items() if k in SETTINGS})
        except ValueError:
            pass  # left as written: the difference is reported below
    return [f"--{k.replace('_', '-')}: checkpoint {a[k]!r}, now {b[k]!r}"
            for k in a if k not in RESUMABLE_CHANGES and a[k] != b[k]]


class _HelpFormatter(argparse.HelpFormatter):
    """Shows a default only where there is one worth reading (not None, not a switch's False)."""

    def _get_help_string(self, action):
        help = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and not action.required and "%(default)" not in help:
            help += " (default: %(default)s)"
        return help


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train an irvis generator (Pix2Pix: conditional PatchGAN + L1) with Hugging Face Accelerate. "
                    "Runs on one CPU, one GPU, or many: `accelerate launch [--multi_gpu] -m train ...`.",
        epilog="Export a checkpoint: python -m train export --checkpoint OUTPUT_DIR/checkpoints/checkpoint-000500 "
               "--output DIR  (see python -m train export --help).",
        formatter_class=_HelpFormatter,
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in fields(TrainConfig):
        meta = dict(f.metadata)
        name = meta.pop("group")
        if name not in groups:
            groups[name] = parser.add_argument_group(GROUP_TITLES[name])
        group = groups[name]
        flag = "--" + f.name.replace("_", "-")
        required = f.default is MISSING and f.default_factory is MISSING
        kwargs = {"help": meta.pop("help"), "dest": f.name, **meta}
        if f.type in ("bool", bool):
            group.add_argument(flag, action="store_true", **kwargs)
            continue
        kwargs["type"] = _arg_type(f.type)
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
        group.add_argument(flag, **kwargs)
    return parser


def _arg_type(annotation: str):
    for name, kind in (("int", int), ("float", float)):
        if annotation.startswith(name):
            return kind
    return str


def from_args(argv: list[str] | None = None) -> TrainConfig:
    args = build_parser().parse_args(argv)
    return TrainConfig(**vars(args)).validate()


def print_once(*args) -> None:
    """Print once per machine: before the Accelerator exists, ranks are only known from the launcher's env."""
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(*args, flush=True)
