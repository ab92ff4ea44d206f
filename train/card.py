"""The model card (README.md) of an exported generator: what it is, what it learnt from, how it scores
against the baselines, and how to load it. Every number in it comes from the run's files.

The card is data until it is written: huggingface_hub's ModelCardData for the front matter (the scores as
eval_results, so the Hub reads them as a model-index) and an ordered list of Sections for the body. Others add
sections by name (train.publish: test tables, fit, working size, lineage...), never by editing the text."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

import irvis
from irvis.directions import get_direction
from irvis.metrics import metric_names, registered
from irvis.nets import SETTINGS, architecture
from irvis.tables import pairs, result_tables
from train.checkpoint import EMA_DIR, GENERATOR_DIR
from train.config import TrainConfig
from train.losses import active

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
TAGS = ["irvis", "image-to-image", "infrared", "thermal", "pix2pix"]  # and the direction
FRONT_MATTER_ORDER = ["library_name", "pipeline_tag", "tags", "license", "license_name", "license_link", "base_model",
                      "datasets", "metrics", "model-index"]


@dataclass
class Section:
    """A `## title` section: its body as Markdown lines (### subsections inside)."""

    title: str
    body: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        body = list(self.body)
        while body and not body[-1]:
            body.pop()
        return [f"## {self.title}", "", *body, ""]


@dataclass
class Card:
    data: ModelCardData
    title: str
    intro: list[str]
    sections: list[Section]

    def index(self, title: str) -> int:
        for i, s in enumerate(self.sections):
            if s.title == title:
                return i
        raise KeyError(f"the card has no section {title!r}: {[s.title for s in self.sections]}")

    def add(self, *sections: Section, before: str | None = None) -> Card:
        """Insert sections before the one titled `before` (default: at the end)."""
        at = len(self.sections) if before is None else self.index(before)
        self.sections[at:at] = sections
        return self

    def text(self) -> str:
        lines = [f"# {self.title}", "", *self.intro]
        for s in self.sections:
            lines += s.lines()
        return "\n".join(lines)

    def model_card(self) -> ModelCard:
        return ModelCard(f"---\n{self.data.to_yaml(original_order=FRONT_MATTER_ORDER)}\n---\n\n{self.text()}")

    def save(self, path: str | os.PathLike) -> None:
        self.model_card().save(path)


def duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def train_command(config: TrainConfig) -> str:
    """The command that reruns this training: the flags that differ from the defaults."""
    parts = ["python", "-m", "train"]
    values, settings = config.to_dict(), config.generator_settings()  # a setting at the architecture's default: left out
    for f in fields(TrainConfig):
        if f.name in NOT_FOR_CARD:
            continue
        v = values[f.name]
        default = f.default if f.default is not MISSING else object()
        at_default = f.name in SETTINGS and settings.get(f.name) == architecture(config.arch).defaults.get(f.name)
        if v == default or v is None or at_default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, bool):
            parts.append(flag)
        elif isinstance(v, list):
            parts += [flag, *map(str, v)]
        else:
            parts += [flag, str(v)]
    return shlex.join(parts)


def objective_text(config: TrainConfig) -> str:
    """The losses, as the card's first paragraph names them."""
    terms = [loss.card.format(weight=f"{w:g}") for loss, w in active(config)]
    if config.gan_weight == 0:
        text = " + ".join(terms) + " (no discriminator)"
    else:
        text = " + ".join([f"conditional PatchGAN ({config.gan_mode}, weight {config.gan_weight:g}, "
                           f"{config.d_layers} layers, ndf {config.ndf})", *terms])
        if config.gan_warmup:
            text += f"; the adversarial term from step {config.gan_warmup}"
    if config.level_steadiness:
        text += (f"; a level-steadiness term (weight {config.level_steadiness:g}: the level branch's gain and offset "
                 "unmoved by noise of 2/255 on its view of the frame)")
    return text


def optimiser_text(config: TrainConfig) -> str:
    return (f"Adam (G {config.lr_g:g}" + (f", D {config.lr_d:g}" if config.gan_weight else "")
            + f", betas {config.beta1:g}/{config.beta2:g}), {config.lr_schedule} schedule")


def architecture_text(config: TrainConfig) -> str:
    return config.arch + (f" ({config.generator_settings()['head']} head)" if config.arch == "irvis-unet" else "")


def recipe_line(config: TrainConfig) -> str:
    """A run's recipe in one line: network, objective, optimiser (the Lineage table's description of a run)."""
    return f"{architecture_text(config)}; Pix2Pix objective: {objective_text(config)}; {optimiser_text(config)}"


def weights_kind(config: TrainConfig, state: dict) -> str:
    # state["weights"] names the checkpoint folder an export used; a run's own export uses the EMA if it kept one
    used = state.get("weights", EMA_DIR if config.ema_decay > 0 else GENERATOR_DIR)
    return f"EMA of the generator (decay {config.ema_decay:g})" if used == EMA_DIR else "the generator as trained"


def hub_model(weights: str | None) -> str | None:
    """weights (an --init-from) as a Hub model id, or None where it names a local folder."""
    if not weights or Path(weights).expanduser().exists():
        return None
    is_id = weights.count("/") == 1 and not weights.startswith((".", "/", "~"))
    return weights if is_id else None


def eval_results(result: dict | None, split: str, task_name: str) -> list[EvalResult]:
    """The scores as the Hub's model-index: the model on the whole evaluation (the sets joined by "+"), and on
    each set when there are several; the protocol (shorter side, pairs) in dataset_args."""
    if result is None or not result.get("model"):
        return []
    sets = list(result["per_set"])
    entries = [("+".join(sets), result)]
    if len(sets) > 1:
        entries += list(result["per_set"].items())
    found = []
    for name, entry in entries:
        for metric in (m for m in registered(scored=True) if m.hub_label):  # the card's model-index
            key, label = metric.name, metric.hub_label
            value = entry["model"].get(key)
            if value is None or value != value:
                continue
            found.append(EvalResult(
                task_type="image-to-image", task_name=task_name, dataset_type=name, dataset_name=name,
                dataset_split=split, dataset_args={"pairs": entry["n_pairs"], "short_side": result["protocol"]["short_side"]},
                metric_type=key, metric_name=label, metric_value=value))
    return found


def card_data(config: TrainConfig, state: dict, result: dict | None, split: str) -> ModelCardData:
    d = get_direction(config.direction)
    sets = sorted(state.get("train_sets", {}))
    results = eval_results(result, split, d.label)
    return ModelCardData(
        library_name="irvis", pipeline_tag="image-to-image", tags=[*TAGS, config.direction],
        license="other", license_name="training-data-terms",
        # the strictest terms among the sets: non-commercial research only
        license_link="https://github.com/bupt-ai-cz/LLVIP" if "llvip" in sets else None,
        base_model=hub_model(config.init_from), datasets=sets or None, metrics=list(metric_names()),
        model_name=f"irvis-{d.name}" if results else None, eval_results=results or None)


def evaluation_section(config: TrainConfig, result: dict | None, load_path: str, roots: Sequence[str],
                       split: str) -> Section:
    if result is None:
        return Section("Evaluation", [f"No validation pairs (the training roots have no `{split}` split and no "
                                      "`--val-data` was given), so this generator has not been scored."])
    p = result["protocol"]
    body = [f"{pairs(result['n_pairs'])} of the `{split}` split, whole frames with the shorter side resized to "
            f"{p['short_side']} px; infrared compared in 1 channel, visible in RGB; means over pairs. Baselines are "
            "fixed rules that never see the truth; the oracle fits a per-image affine map to the truth, an upper "
            "bound for any global intensity rule.", ""]
    body += result_tables(result, level=3, model_label="**this model**", lead=True)
    body += ["Rerun: `" + shlex.join(["python", "-m", "irvis", "evaluate", "--direction", config.direction, "--weights",
                                      load_path, "--data", *roots, "--split", split, "--size", str(p["short_side"]),
                                      "--json", "evaluation.json"]) + "`"]
    return Section("Evaluation", body)


def model_card(config: TrainConfig, state: dict, result: dict | None, n_params: int, half: bool = False,
               load_path: str = "PATH", val_roots: Sequence[str] | None = None, split: str | None = None) -> Card:
    """val_roots: the roots the result was computed on (default: the run's validation roots)."""
    d = get_direction(config.direction)
    split = split or config.val_split
    train_sets = state.get("train_sets", {})
    n_train = sum(train_sets.values())
    processes = state.get("num_processes", 1)
    total_batch = config.batch_size * processes * config.gradient_accumulation_steps
    intro = [f"An {config.arch} generator translating {d.source} images into {d.target} images, trained with "
             f"`python -m train` (irvis {irvis.__version__}, Pix2Pix objective: {objective_text(config)}).", ""]
    if config.init_from:
        intro += [f"Started from `{config.init_from}` (`--init-from`): fine-tuned from earlier weights; the steps and "
                  "training time below are this run's own.", ""]
    intro += ["> **Terms of the training data.** These weights were learnt from the sets below and inherit their terms: "
              + "; ".join(DATA_TERMS.get(s, s) for s in sorted(train_sets)) + ".", ""]
    rows = [
        ("direction", f"{d.name} ({d.source}, {d.in_channels} channel(s) -> {d.target}, {d.out_channels})"),
        ("architecture", f"{architecture_text(config)}, {n_params / 1e6:.2f} M parameters"
         + (", stored in float16" if half else "")),
        ("training data", f"{n_train} pairs: " + ", ".join(f"{k} ({v})" for k, v in train_sets.items())
         + (f" (pair draws per epoch; repeated: {', '.join(config.repeat_sets)})" if config.repeat_sets else "")
         + f"; roots `{' '.join(config.data)}`"),
        ("validation data", ", ".join(f"{k} ({v})" for k, v in state.get("val_sets", {}).items()) or "none"),
        *([("started from", f"`{config.init_from}`")] if config.init_from else []),
        ("steps", f"{state.get('step')} of {state.get('total_steps')} (epoch {state.get('epoch')})"),
        ("batch", f"{total_batch} = {config.batch_size} per process x {processes} process(es) x "
                  f"{config.gradient_accumulation_steps} accumulation"),
        ("crops", f"{config.crop_size} px from frames with the shorter side drawn in "
                  f"[{config.min_load_size or config.crop_size}, {config.load_size}], random horizontal flips"
         + (f", source exposure jitter {config.source_jitter:g}" if config.source_jitter else "")
         + (f", frame-view noise up to {config.view_noise:g}" if config.view_noise else "")),
        ("optimiser", optimiser_text(config)),
        ("weights exported", weights_kind(config, state)),
        ("mixed precision", config.mixed_precision),
        ("hardware", state.get("hardware", "unknown")),
        ("training time", duration(state.get("train_seconds", 0))),
        ("seed", str(config.seed)),
    ]
    training = ["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), "",
                "Retrain: `" + train_command(config) + "`"]
    use = ["```python", "from irvis.translate import Translator", "",
           f'translator = Translator.from_pretrained("{load_path}")  # a local folder or a Hub repo id',
           f'translator("{d.source}.jpg").save("{d.target}.png")  # any size; the output matches the input\'s',
           "```", "", "```bash", f"python -m irvis translate {d.source}.jpg --weights {load_path} --out out/", "```"]
    limitations = [f"- Learnt from {n_train} pairs; scenes unlike them (other cameras, seasons, viewpoints) will be "
                   "translated less well. Compare with the baselines above before relying on it.",
                   "- Infrared here is an 8-bit relative brightness, not a calibrated temperature."]
    sections = [Section("Training", training),
                evaluation_section(config, result, load_path, val_roots or config.val_data or config.data, split),
                Section("Use", use), Section("Limitations", limitations)]
    return Card(card_data(config, state, result, split), f"irvis {d.name}: {d.label}", intro, sections)


def lineage_section(config: TrainConfig, state: dict, parents: list[tuple[str, TrainConfig, dict]]) -> Section:
    """A fine-tuned run beside the runs whose weights it started from (parents: (where, config, state), the
    nearest first): each one's recipe, steps and training time, and the totals."""
    runs = [(f"parent: `{where}`", c, st) for where, c, st in reversed(parents)] + [("this run", config, state)]
    chain = "the weights of the parent run below" if len(parents) == 1 else (
        f"the last of {len(parents)} runs below, each started from the one before it")
    body = [f"This generator was fine-tuned: its run started from `{config.init_from}`, {chain}. Totals count all "
            f"{len(runs)} runs.", "",
            "| run | recipe | steps | training time | hardware |", "|---|---|---|---|---|"]
    body += [f"| {name} | {recipe_line(c)} | {st.get('step')} | {duration(st.get('train_seconds', 0))} | "
             f"{st.get('hardware', 'unknown')} |" for name, c, st in runs]
    body += [f"| total | | {sum(st.get('step') or 0 for _, _, st in runs)} | "
             f"{duration(sum(st.get('train_seconds', 0) for _, _, st in runs))} | |", ""]
    body += [f"Retrain the parent `{where}`: `{train_command(c)}`" for where, c, _ in reversed(parents)]
    first = parents[-1][1]
    if first.init_from:
        body += ["", f"The first of them started from `{first.init_from}`; the runs before it are not counted here."]
    return Section("Lineage", body)
