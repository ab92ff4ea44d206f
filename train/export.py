"""Export a generator: config.json + model.safetensors + training_config.json + evaluation + model card,
the folder `Translator.from_pretrained` loads and `python -m irvis push` uploads. Used at the end of
training (train.loop) and by `python -m train export` for any checkpoint (train.checkpoint's layout)."""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Sequence

import torch

from irvis.data import Pair
from irvis.evaluate import evaluate, write_report
from irvis.metrics import in_words
from irvis.nets import Generator, WeightsError, count_parameters, load_generator, save_generator
from irvis.translate import Translator
from irvis.generator_folder import CARD_FILE, EVALUATION_FILE
from train.card import model_card
from train.checkpoint import exported_weights, is_checkpoint, list_checkpoints, read_checkpoint
from train.config import CONFIG_FILE, ConfigError, TrainConfig
from train.data import validation_pairs


def export_generator(generator: Generator, out: str | os.PathLike, config: TrainConfig, state: dict,
                     val_pairs: Sequence[Pair], half: bool = False, device: str | torch.device = "cpu",
                     repo_id: str | None = None, progress: bool = True, lpips: bool | None = None,
                     val_roots: Sequence[str] | None = None, val_split: str | None = None) -> dict | None:
    """Write the folder atomically (built beside it, then renamed); returns the evaluation result, or
    None when there are no validation pairs. val_roots: where val_pairs came from, for the card's rerun
    command (default: the run's validation roots). The evaluation scores the weights as written (float16 too);
    LPIPS when its weights are on disk (lpips=None) and never FID: a set-level statistic over a few dozen
    validation frames says little and costs an Inception pass per image."""
    out = Path(out)
    tmp = out.parent / f".tmp-{out.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    save_generator(copy.deepcopy(generator).float().cpu(), tmp, half=half)
    config.save(tmp / CONFIG_FILE)
    result = None
    if val_pairs:
        translator = Translator(load_generator(tmp), device=device, source=str(out))
        result, samples = evaluate(translator, list(val_pairs), short_side=config.val_short_side, progress=progress,
                                   lpips=lpips, fid=False)
        write_report(result, samples, tmp / EVALUATION_FILE)  # .json, .md and the .png grid (never uploaded)
    card = model_card(config, state, result, count_parameters(generator), half=half, load_path=repo_id or str(out),
                      val_roots=val_roots, split=val_split or config.val_split)
    card.save(tmp / CARD_FILE)
    _replace_dir(tmp, out)
    return result


def _replace_dir(new: Path, dst: Path) -> None:
    old = dst.parent / f".old-{dst.name}"
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(new, dst)
    shutil.rmtree(old, ignore_errors=True)


def open_checkpoint(checkpoint: str | os.PathLike, use_ema: bool = True) -> tuple[Path, TrainConfig, dict, Path]:
    """A checkpoint folder (or a run folder: its latest checkpoint) -> (the checkpoint, its training config, its
    state as an export's card reads it, the generator folder an export takes)."""
    path = Path(checkpoint)
    if not path.is_dir():
        raise ConfigError(f"--checkpoint {path}: no such folder")
    if not is_checkpoint(path):
        found = list_checkpoints(path)
        if not found:
            raise ConfigError(f"--checkpoint {path}: neither a checkpoint nor a run folder with checkpoints")
        path = found[-1]
    config, state = read_checkpoint(path)
    folder = exported_weights(path, use_ema)
    return path, config, {**state, "exported_from": str(path), "weights": folder.name}, folder


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike, half: bool = False,
                      val_data: list[str] | None = None, use_ema: bool = True, device: str = "cpu",
                      repo_id: str | None = None, val_max_pairs: int | None = None,
                      lpips: bool | None = None, val_split: str | None = None) -> dict | None:
    """A checkpoint folder (or a run folder: its latest checkpoint) -> an exported generator folder, scored on
    val_data (default: the run's validation roots) and at most val_max_pairs of them (default: as the run; 0: all)."""
    path, config, state, folder = open_checkpoint(checkpoint, use_ema)
    # the export's own evaluation; the training config (card's Retrain line, training_config.json) stays as run
    scoring = dataclasses.replace(config, val_data=config.val_data if val_data is None else list(val_data),
                                  val_max_pairs=config.val_max_pairs if val_max_pairs is None else val_max_pairs,
                                  val_split=config.val_split if val_split is None else val_split)
    try:
        generator = load_generator(folder)
    except WeightsError as e:
        raise ConfigError(f"{path}: {e}") from None
    print(f"exporting {folder} (step {state['step']}) to {output}")
    result = export_generator(generator, output, config, state, validation_pairs(scoring), half=half, device=device,
                              repo_id=repo_id, lpips=lpips, val_roots=scoring.val_data or scoring.data,
                              val_split=scoring.val_split)
    if result is not None:
        m = result["model"]
        print(f"{scoring.val_split} split ({result['n_pairs']} pairs): {in_words(m)}")
    return result

