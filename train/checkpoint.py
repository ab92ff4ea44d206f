"""A run folder on disk: where checkpoints live, which are complete, which one a run resumes from, and how
one is written (atomically), rotated and read back.

    OUTPUT_DIR/training_config.json, metrics.jsonl, samples/, tensorboard/, final/
    OUTPUT_DIR/checkpoints/checkpoint-NNNNNN/
        generator/ (config.json + model.safetensors, loadable by irvis), generator_ema/, discriminator.safetensors,
        Accelerate's optimizer, scaler and per-process RNG states, training_config.json,
        trainer_state.json (written last: its presence marks the checkpoint complete)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

from safetensors.torch import load_model, save_model

from irvis.generator_folder import WEIGHTS_NAME
from irvis.nets import Generator
from train.config import CONFIG_FILE, ConfigError, TrainConfig, print_once

CHECKPOINTS = "checkpoints"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
GENERATOR_DIR, EMA_DIR, DISCRIMINATOR_FILE = "generator", "generator_ema", "discriminator.safetensors"
METRICS_FILE = "metrics.jsonl"
PARTIAL_PREFIX = ".tmp-"


def checkpoint_step(path: Path) -> int:
    return int(CHECKPOINT_RE.match(Path(path).name).group(1))


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints (their state file is written last, before the atomic rename), oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if CHECKPOINT_RE.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=checkpoint_step)


def is_checkpoint(path: Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def damage(path: Path) -> str | None:
    """What is wrong with a checkpoint's files, or None when every one reads back whole: its state and config
    parse, every safetensors file's header covers its data, and every torch archive (optimizer, scaler, each
    process's RNG state) passes its zip CRC check. Nothing is unpickled here."""
    from safetensors import safe_open

    try:
        json.loads((path / STATE_FILE).read_text())
        TrainConfig.load(path / CONFIG_FILE)
    except (OSError, ValueError) as e:
        return f"{STATE_FILE} or {CONFIG_FILE}: {e}"
    for weights in sorted(path.rglob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except Exception as e:  # safetensors raises its own error types
            return f"{weights.relative_to(path)}: {e}"
    archives = sorted([*path.glob("*.bin"), *path.glob("*.pkl")])
    if not any(a.name.startswith("random_states") for a in archives):
        return "no random_states_*.pkl: the RNG state is missing"
    for archive in archives:
        try:
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()
        except (OSError, zipfile.BadZipFile) as e:
            return f"{archive.name}: {e}"
        if bad is not None:
            return f"{archive.name}: {bad} fails its CRC check"
    return None


def resolve_resume(config: TrainConfig) -> Path | None:
    """The checkpoint to resume from, or None to start fresh; refuses to overwrite an existing run. `latest` is
    the newest checkpoint whose files all read back whole (a damaged newer one is named and passed over); a
    damaged checkpoint asked for by path is an error: resuming it would not continue the run exactly."""
    run_dir = config.run_dir
    if config.resume is None:
        if list_checkpoints(run_dir):
            raise ConfigError(f"{run_dir} already holds checkpoints of a run: continue it with --resume latest, "
                              "or choose another --output-dir")
        return None
    if config.resume == "latest":
        found = list_checkpoints(run_dir)
        if not found:
            print_once(f"--resume latest: no checkpoint in {run_dir / CHECKPOINTS} yet; starting fresh")
            return None
        for candidate in reversed(found):
            problem = damage(candidate)
            if problem is None:
                return candidate
            print_once(f"--resume latest: {candidate.name} is damaged ({problem}); trying the one before it")
        raise ConfigError(f"--resume latest: every checkpoint in {run_dir / CHECKPOINTS} is damaged; start a new "
                          "run (another --output-dir)")
    path = Path(config.resume)
    if not is_checkpoint(path) or not (path / CONFIG_FILE).is_file():
        raise ConfigError(f"--resume {path}: not a complete checkpoint (no {STATE_FILE} or {CONFIG_FILE})")
    problem = damage(path)
    if problem is not None:
        raise ConfigError(f"--resume {path}: damaged ({problem}); resuming it would not continue the run exactly")
    return path


def read_checkpoint(path: Path) -> tuple[TrainConfig, dict]:
    state = json.loads((path / STATE_FILE).read_text())
    return TrainConfig.load(path / CONFIG_FILE), state


def prepare_run_folder(run_dir: Path, step: int) -> None:
    """Before a run (re)starts at `step`: drop what a killed save left, validation lines written after `step`,
    and checkpoints newer than `step`. Resumed from an older checkpoint, the newer ones belong to the abandoned
    trajectory; kept, they would be rotated out before this run's own and picked by a later --resume latest."""
    for stale in (run_dir / CHECKPOINTS).glob(PARTIAL_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    metrics = run_dir / METRICS_FILE
    if metrics.is_file():
        keep = [line for line in metrics.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        metrics.write_text("".join(line + "\n" for line in keep))
    for newer in list_checkpoints(run_dir):
        if checkpoint_step(newer) > step:
            print(f"removing {newer}: newer than the checkpoint this run resumed from", flush=True)
            shutil.rmtree(newer)


def install_state_hooks(accelerator) -> None:
    """Accelerate's save_state/load_state store both networks our way, unwrapped: the generator as an irvis
    folder (config.json + model.safetensors), so checkpoints load anywhere and resume under any number of
    processes; the discriminator as one safetensors file."""

    def save(models, weights, output_dir) -> None:
        if accelerator.is_main_process:
            for model in models:
                plain = accelerator.unwrap_model(model)
                if isinstance(plain, Generator):
                    plain.save_pretrained(Path(output_dir) / GENERATOR_DIR)
                else:
                    save_model(plain, str(Path(output_dir) / DISCRIMINATOR_FILE))
        weights.clear()

    def load(models, input_dir) -> None:
        for model in models:
            plain = accelerator.unwrap_model(model)
            name = f"{GENERATOR_DIR}/{WEIGHTS_NAME}" if isinstance(plain, Generator) else DISCRIMINATOR_FILE
            load_model(plain, Path(input_dir) / name, strict=True, device=str(accelerator.device))
        models.clear()

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def save_checkpoint(accelerator, run_dir: Path, step: int, config: TrainConfig, state: dict,
                    ema_model: Generator | None = None) -> Path:
    """Write into a hidden folder, then rename: a checkpoint is complete or absent, never half-written. Keeps the
    newest config.checkpoints_total_limit."""
    acc = accelerator
    root = Path(run_dir) / CHECKPOINTS
    final, tmp = root / f"checkpoint-{step:06d}", root / f"{PARTIAL_PREFIX}checkpoint-{step:06d}"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))  # every process writes its own RNG state
    acc.wait_for_everyone()
    if acc.is_main_process:
        if ema_model is not None:
            ema_model.save_pretrained(tmp / EMA_DIR)
        config.save(tmp / CONFIG_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")  # last: marks it complete
        if final.exists():  # the same step saved by an earlier run of this trajectory
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(run_dir)[:-config.checkpoints_total_limit]:
            shutil.rmtree(old)
    acc.wait_for_everyone()
    return final


def load_ema(ema_model: Generator, checkpoint: Path, device) -> None:
    load_model(ema_model, Path(checkpoint) / EMA_DIR / WEIGHTS_NAME, strict=True, device=str(device))


def exported_weights(checkpoint: Path, use_ema: bool = True) -> Path:
    """The generator folder of a checkpoint an export uses: the EMA where kept and wanted."""
    ema = Path(checkpoint) / EMA_DIR
    return ema if use_ema and ema.is_dir() else Path(checkpoint) / GENERATOR_DIR
