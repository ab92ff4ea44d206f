"""The model card (README.md) of an exported generator: what it is, what it learnt from, how it scores
against the baselines, and how to load it. Every number in it comes from the run's files."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import MISSING, fields

import irvis
from irvis.directions import get_direction
from irvis.metrics import STRUCTURE_METRICS, margin_line
from train.checkpoint import EMA_DIR, GENERATOR_DIR
from train.config import TrainConfig

DATA_TERMS = {
    "llvip": "LLVIP (Jia et al., ICCV-W 2021): non-commercial research use only",
    "roadscene": "RoadScene (FusionDN/U2Fusion; FLIR ADAS terms)",
    "m3svd": "M3SVD (VideoFusion authors)",
    "msrs": "MSRS (PIAFusion / MFNet authors)",
    "m3fd": "M3FD (TarDAL authors)",
    "vifb": "VIFB benchmark and its sources",
    "tno": "TNO image fusion data (Toet)",
}
# where a run was written is not part of how it was trained: the Retrain line writes to the default folder
NOT_FOR_CARD = {"resume", "push_to_hub", "hub_private", "output_dir"}


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def train_command(config: TrainConfig) -> str:
    """The command that reruns this training: the flags that differ from the defaults."""
    parts = ["python", "-m", "train"]
    values = config.to_dict()
    for f in fields(TrainConfig):
        if f.name in NOT_FOR_CARD:
            continue
        v = values[f.name]
        default = f.default if f.default is not MISSING else object()
        if v == default or v is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, bool):
            parts.append(flag)
        elif isinstance(v, list):
            parts += [flag, *map(str, v)]
        else:
            parts += [flag, str(v)]
    return shlex.join(parts)


def _weights_kind(config: TrainConfig, state: dict) -> str:
    # state["weights"] names the checkpoint folder an export used; a run's own export uses the EMA if it kept one
    used = state.get("weights", EMA_DIR if config.ema_decay > 0 else GENERATOR_DIR)
    return f"EMA of the generator (decay {config.ema_decay:g})" if used == EMA_DIR else "the generator as trained"


def _front_matter(config: TrainConfig, state: dict) -> list[str]:
    sets = sorted(state.get("train_sets", {}))
    tags = ["irvis", "image-to-image", "infrared", "thermal", "pix2pix", config.direction]
    lines = ["---", "library_name: irvis", "pipeline_tag: image-to-image", "tags:"]
    lines += [f"- {t}" for t in tags]
    lines += ["license: other", "license_name: training-data-terms"]
    if "llvip" in sets:  # the strictest terms among the sets: non-commercial research only
        lines.append("license_link: https://github.com/bupt-ai-cz/LLVIP")
    lines.append("datasets:")
    lines += [f"- {s}" for s in sets]
    lines += ["metrics:", "- psnr", "- ssim", "- sharpness", "- gradient_correlation", "- vif", "---", ""]
    return lines


def _metrics_table(entry: dict) -> list[str]:
    """Model, baselines and oracle; the last column is the model's PSNR lead over each (positive: model better)."""
    model = entry.get("model")
    rows = ["| method | PSNR (dB) | SSIM | sharpness (1 = truth's) | gradient corr. | VIF | model's PSNR lead (dB) |",
            "|---|---|---|---|---|---|---|"]

    def row(name: str, m: dict, lead: bool = True) -> str:
        cell = f"{model['psnr'] - m['psnr']:+.2f}" if model and lead else ""
        structure = " | ".join(f"{m[k]:.3f}" if k in m else "-" for k in STRUCTURE_METRICS)
        return f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {structure} | {cell} |"

    if model:
        rows.append(row("**this model**", model, lead=False))
    rows += [row(f"baseline: {k}", v) for k, v in entry["baselines"].items()]
    rows += [row(f"oracle: {k} (sees the truth)", v) for k, v in entry["oracles"].items()]
    if model and entry["baselines"]:
        rows += ["", margin_line(model, entry["baselines"])]
    return rows


def _pairs(n: int) -> str:
    return f"{n} pair" if n == 1 else f"{n} pairs"


def _evaluation(config: TrainConfig, result: dict | None, load_path: str, roots: Sequence[str], split: str) -> list[str]:
    if result is None:
        return ["## Evaluation", "", f"No validation pairs (the training roots have no `{split}` split and no "
                "`--val-data` was given), so this generator has not been scored.", ""]
    p = result["protocol"]
    lines = ["## Evaluation", "",
             f"{_pairs(result['n_pairs'])} of the `{split}` split, whole frames with the shorter side resized to "
             f"{p['short_side']} px; infrared compared in 1 channel, visible in RGB; means over pairs. Baselines are "
             "fixed rules that never see the truth; the oracle fits a per-image affine map to the truth, an upper "
             "bound for any global intensity rule.", "", "### Overall", ""]
    lines += _metrics_table(result) + [""]
    for set_name, entry in result["per_set"].items():
        lines += [f"### {set_name} ({_pairs(entry['n_pairs'])})", ""] + _metrics_table(entry) + [""]
    lines += ["Rerun: `" + shlex.join(["python", "-m", "irvis", "evaluate", "--direction", config.direction, "--weights",
                                       load_path, "--data", *roots, "--split", split, "--size", str(p["short_side"]),
                                       "--json", "evaluation.json"]) + "`", ""]
    return lines


def model_card(config: TrainConfig, state: dict, result: dict | None, n_params: int, half: bool = False,
               load_path: str = "PATH", val_roots: Sequence[str] | None = None, split: str | None = None) -> str:
    """val_roots: the roots the result was computed on (default: the run's validation roots)."""
    d = get_direction(config.direction)
    gan = "L1 only (no discriminator)" if config.gan_weight == 0 else (
        f"conditional PatchGAN ({config.gan_mode}, weight {config.gan_weight:g}, {config.d_layers} layers, ndf {config.ndf}) "
        f"+ L1 (weight {config.l1_weight:g})")
    if config.ssim_weight > 0:
        gan += f" + SSIM loss (weight {config.ssim_weight:g})"
    if config.edge_weight > 0:
        gan += f" + edge loss (Sobel magnitudes, weight {config.edge_weight:g})"
    if config.texture_weight > 0:
        gan += f" + texture loss (8x8-block edge energy, weight {config.texture_weight:g})"
    if config.gan_weight > 0 and config.gan_warmup:
        gan += f"; the adversarial term from step {config.gan_warmup}"
    train_sets = state.get("train_sets", {})
    n_train = sum(train_sets.values())
    processes = state.get("num_processes", 1)
    total_batch = config.batch_size * processes * config.gradient_accumulation_steps
    lines = _front_matter(config, state)
    lines += [f"# irvis {d.name}: {d.label}", "",
              f"An {config.arch} generator translating {d.source} images into {d.target} images, trained with "
              f"`python -m train` (irvis {irvis.__version__}, Pix2Pix objective: {gan}).", "",
              "> **Terms of the training data.** These weights were learnt from the sets below and inherit their terms: "
              + "; ".join(DATA_TERMS.get(s, s) for s in sorted(train_sets)) + ".", "",
              "## Training", "", "| setting | value |", "|---|---|",
              f"| direction | {d.name} ({d.source}, {d.in_channels} channel(s) -> {d.target}, {d.out_channels}) |",
              f"| architecture | {config.arch}" + (f" ({config.head} head)" if config.arch == "irvis-unet" else "")
              + f", {n_params / 1e6:.2f} M parameters"
              + (", stored in float16" if half else "") + " |",
              f"| training data | {n_train} pairs: " + ", ".join(f"{k} ({v})" for k, v in train_sets.items())
              + (f" (pair draws per epoch; repeated: {', '.join(config.repeat_sets)})" if config.repeat_sets else "")
              + f"; roots `{' '.join(config.data)}` |",
              "| validation data | " + (", ".join(f"{k} ({v})" for k, v in state.get("val_sets", {}).items()) or "none")
              + " |",
              f"| steps | {state.get('step')} of {state.get('total_steps')} (epoch {state.get('epoch')}) |",
              f"| batch | {total_batch} = {config.batch_size} per process x {processes} process(es) x "
              f"{config.gradient_accumulation_steps} accumulation |",
              f"| crops | {config.crop_size} px from frames with the shorter side drawn in "
              f"[{config.min_load_size or config.crop_size}, {config.load_size}], random horizontal flips"
              + (f", source exposure jitter {config.source_jitter:g}" if config.source_jitter else "") + " |",
              f"| optimiser | Adam (G {config.lr_g:g}" + (f", D {config.lr_d:g}" if config.gan_weight else "")
              + f", betas {config.beta1:g}/{config.beta2:g}), "
              f"{config.lr_schedule} schedule |",
              f"| weights exported | {_weights_kind(config, state)} |",
              f"| mixed precision | {config.mixed_precision} |",
              f"| hardware | {state.get('hardware', 'unknown')} |",
              f"| training time | {_duration(state.get('train_seconds', 0))} |",
              f"| seed | {config.seed} |", "",
              "Retrain: `" + train_command(config) + "`", ""]
    lines += _evaluation(config, result, load_path, val_roots or config.val_data or config.data, split or config.val_split)
    lines += ["## Use", "", "```python", "from irvis.translate import Translator", "",
              f'translator = Translator.from_pretrained("{load_path}")  # a local folder or a Hub repo id',
              f'translator("{d.source}.jpg").save("{d.target}.png")  # any size; the output matches the input\'s',
              "```", "", "```bash",
              f"python -m irvis translate {d.source}.jpg --weights {load_path} --out out/", "```", "",
              "## Limitations", "",
              f"- Learnt from {n_train} pairs; scenes unlike them (other cameras, seasons, viewpoints) will be translated "
              "less well. Compare with the baselines above before relying on it.",
              "- Infrared here is an 8-bit relative brightness, not a calibrated temperature.", ""]
    return "\n".join(lines)
