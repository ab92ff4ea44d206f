"""The trainer on the real sample data, at tiny size on the CPU: runs per direction that export loadable
generators, exact resume after an interruption, a 2-process (gloo) run, the Hub upload plan, export from
a checkpoint, and the errors a user meets before any training starts."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import DATA, REPO, copy_pairs
from irvis.hub import upload_plan
from irvis.images import load_image
from irvis.translate import Translator

MSRS, LLVIP, VIFB = DATA / "msrs", DATA / "llvip", DATA / "vifb"
# 64-pixel crops, batches of 2, 64-pixel validation frames: seconds per run on two CPU cores
TINY = ["--crop-size", "64", "--load-size", "72", "--batch-size", "2", "--num-workers", "0", "--val-short-side", "64",
        "--log-every", "2"]


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each in-process run gets its own Accelerator, as each command-line run does."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def run(argv: list[str]) -> tuple[int, str]:
    """python -m train ARGV in this process; returns (exit code, everything it printed)."""
    from train.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return code, out.getvalue()


def tensorboard_tags(run_dir: Path) -> dict[str, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    return {"scalars": acc.Tags()["scalars"], "images": acc.Tags()["images"],
            "steps": {t: [e.step for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}}


# ---------------------------------------------------------------------------------------------------
# One vis2ir run (GAN on) shared by several tests: 6 steps, a checkpoint every 2 (keep 2), samples and
# validation at step 3, on two real sets.


@pytest.fixture(scope="module")
def vis2ir_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "vis2ir"
    code, log = run(["--direction", "vis2ir", "--data", str(MSRS), str(LLVIP), "--output-dir", str(out), *TINY,
                     "--max-steps", "6", "--checkpoint-every", "2", "--checkpoints-total-limit", "2",
                     "--sample-every", "3", "--eval-every", "3", "--val-max-pairs", "3", "--resume", "latest",
                     "--mixed-precision", "bf16", "--ssim-weight", "10", "--edge-weight", "5", "--texture-weight", "5"])
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    assert code == 0, log
    return out, log


def test_vis2ir_run_exports_a_generator_that_translates(vis2ir_run):
    out, log = vis2ir_run
    final = out / "final"
    assert sorted(p.name for p in final.iterdir()) == [
        "README.md", "config.json", "evaluation.json", "evaluation.md", "evaluation.png", "model.safetensors",
        "training_config.json"]
    translator = Translator.from_pretrained(final, device="cpu")
    frame = LLVIP / "visible" / "test" / sorted(os.listdir(LLVIP / "visible" / "test"))[0]
    result = translator(frame)
    assert result.mode == "L" and result.size == (1280, 1024)  # one infrared channel, at the input's own size
    evaluation = json.loads((final / "evaluation.json").read_text())
    assert evaluation["direction"] == "vis2ir" and evaluation["n_pairs"] == 3
    # validation is the val split (LLVIP has one, MSRS none), never test
    assert set(evaluation["per_set"]) == {"llvip"} and "`val` split" in (final / "README.md").read_text()
    assert 0 < evaluation["model"]["psnr"] < 100  # finite: bf16 autocast with the SSIM loss trains, no NaN
    card = (final / "README.md").read_text()
    assert "edge loss (Sobel magnitudes, weight 5)" in card and "texture loss (8x8-block edge energy, weight 5)" in card
    from irvis.cpu import cpu_has_native_bf16

    assert ("bf16 autocast is emulated" in log) == (not cpu_has_native_bf16())  # said where it is 10x slower
    assert 0 <= evaluation["model"]["sharpness"] and -1 <= evaluation["model"]["gradient_correlation"] <= 1
    card = (final / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: irvis\n")
    assert_eval_results(final, "val")
    assert "Started from" not in card and "## Lineage" not in card  # a run from scratch
    for text in ("vis2ir", "| steps | 6 of 6", "msrs (46), llvip (67)", "non-commercial research", "baseline: luminance",
                 "oracle: affine", "Margin against the best baseline", 'Translator.from_pretrained("'):
        assert text in card, text
    saved = json.loads((final / "training_config.json").read_text())
    assert saved["direction"] == "vis2ir" and saved["max_steps"] == 6 and saved["data"] == [str(MSRS), str(LLVIP)]
    assert "starting fresh" in log  # --resume latest with nothing to resume


def assert_eval_results(folder: Path, split: str) -> None:
    """The card parses as a Hub model card whose eval_results are evaluation.json's figures: the model on the
    whole evaluation (the sets joined by "+") and, where there are several sets, on each."""
    from huggingface_hub import ModelCard

    data = ModelCard.load(folder / "README.md").data
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert data.library_name == "irvis" and data.pipeline_tag == "image-to-image" and data.license == "other"
    assert "infrared" in data.tags and evaluation["direction"] in data.tags and "llvip" in data.datasets
    entries = {"+".join(evaluation["per_set"]): evaluation}
    if len(evaluation["per_set"]) > 1:
        entries.update(evaluation["per_set"])
    found = {(r.dataset_type, r.metric_type): r for r in data.eval_results}
    assert set(found) == {(name, k) for name in entries for k in ("psnr", "ssim", "sharpness", "gradient_correlation")}
    for (name, metric), r in found.items():
        assert r.metric_value == entries[name]["model"][metric], (name, metric)
        assert r.task_type == "image-to-image" and r.dataset_split == split
        assert r.dataset_args == {"pairs": entries[name]["n_pairs"], "short_side": evaluation["protocol"]["short_side"]}


@pytest.fixture(scope="module")
def finetuned_run(vis2ir_run, tmp_path_factory):
    """Two more steps of vis2ir_run's recipe, started from its export (--init-from)."""
    parent, _ = vis2ir_run
    out = tmp_path_factory.mktemp("train") / "vis2ir-ft"
    code, log = run(["--direction", "vis2ir", "--data", str(MSRS), str(LLVIP), "--output-dir", str(out), *TINY,
                     "--max-steps", "2", "--eval-every", "0", "--sample-every", "0", "--val-max-pairs", "1",
                     "--edge-weight", "5", "--texture-weight", "5", "--init-from", str(parent / "final"),
                     "--report-to", "none"])
    assert code == 0, log
    return out


def test_card_margin_compares_each_metric_with_its_own_best_baseline():
    from irvis.metrics import margin_line

    baselines = {"luminance": {"psnr": 11.1, "ssim": 0.25}, "mid_gray": {"psnr": 11.0, "ssim": 0.43}}
    behind = margin_line({"psnr": 13.9, "ssim": 0.39}, baselines)
    assert "+2.80 dB PSNR (luminance, 11.10)" in behind
    assert "-0.0400 SSIM (mid_gray, 0.4300)" in behind and "behind a baseline on SSIM" in behind
    assert "ahead of every baseline" in margin_line({"psnr": 13.9, "ssim": 0.45}, baselines)


def test_card_retrain_command_for_an_architecture_without_the_unet_settings():
    """The Pix2Pix control has no depth, residual blocks or head: its card's retrain line names only what it set."""
    from train.card import train_command
    from train.config import TrainConfig

    config = TrainConfig(direction="vis2ir", arch="pix2pix-unet256", data=["../shared/data"], batch_size=1)
    command = shlex.split(train_command(config))
    assert command[:3] == ["python", "-m", "train"] and "--arch" in command and "pix2pix-unet256" in command
    assert not {"--depth", "--n-res", "--head", "--level"} & set(command)


def test_publish_writes_a_card_with_fit_working_size_ablations_and_lineage_and_no_dataset_pixels(
        vis2ir_run, finetuned_run, tmp_path):
    """train.publish on a finished run (here a fine-tuned one, of the tiny run, which also stands for an
    ablation): test tables on MSRS's original test split, the train-split fit, a working size chosen on a val
    pair, the lineage back to the tiny run, never dataset pixels."""
    from train.config import build_parser
    from train.publish import main as publish

    parent, _ = vis2ir_run
    ft_card = (finetuned_run / "final" / "README.md").read_text()
    assert f"Started from `{parent / 'final'}`" in ft_card and "## Lineage" not in ft_card
    # a small copy: two MSRS train and test pairs, one 640x480 M3SVD val pair (the working size is chosen on val)
    msrs = tmp_path / "data" / "msrs"
    for split in ("train", "test"):
        copy_pairs(MSRS, msrs, sorted(os.listdir(MSRS / "visible" / split))[:2], split)
    m3svd = DATA / "m3svd"
    val_root = copy_pairs(m3svd, tmp_path / "data" / "m3svd", sorted(os.listdir(m3svd / "visible" / "val"))[:1], "val")
    weights = tmp_path / "weights" / "vis2ir"
    with contextlib.redirect_stdout(io.StringIO()):
        assert publish(["vis2ir", "--run", str(finetuned_run), "--parent-run", str(parent), "--ablation",
                        f"same run={parent}", "--data", str(msrs), str(val_root), "--out", str(weights),
                        "--working-sizes", "64", "128"]) == 0
    assert not list(weights.glob("*.png"))  # grids are made of dataset frames: never shipped
    report = (weights / "evaluation.md").read_text()
    assert "unavailable" not in report and "(sample grid: rerun" in report  # no machine-specific LPIPS/FID notes
    card = (weights / "README.md").read_text()
    for text in ("## Fit (train split) beside generalisation (test split)", "## Working size for full-resolution frames",
                 "## Recipe ablations (validation split)", "| same run | 6 |", "## Where it fails",
                 "Margin against the best baseline", "python -m train.publish vis2ir", "`test` split",
                 f"--parent-run {parent}", "texture loss (8x8-block edge energy, weight 5)"):
        assert text in card, text
    assert "## Validation during training" not in card  # the fine-tuned run never validated mid-run
    titles = [line for line in card.splitlines() if line.startswith("## ")]
    assert titles[:3] == ["## Training", "## Lineage", "## Evaluation"] and titles[-2:] == ["## Use", "## Limitations"]
    # the lineage: the parent's recipe, steps and time, and the totals of both runs
    from train.export import open_checkpoint

    parent_state, ft_state = open_checkpoint(parent)[2], open_checkpoint(finetuned_run)[2]
    lineage = card.split("## Lineage")[1].split("## Evaluation")[0]
    assert f"Started from `{parent / 'final'}`" in card and f"| parent: `{parent}` | irvis-unet (affine head)" in lineage
    assert "SSIM loss (weight 10)" in lineage.split("| this run |")[0]  # the parent's recipe, not this run's
    from train.card import duration

    total = duration(parent_state["train_seconds"] + ft_state["train_seconds"])
    assert f"| total | | 8 | {total} |" in lineage  # 6 + 2 steps
    assert_eval_results(weights, "test")
    evaluation = json.loads((weights / "evaluation.json").read_text())
    assert evaluation["n_pairs"] == 2 and set(evaluation["per_set"]) == {"msrs"}
    fit = json.loads((weights / "fit.json").read_text())
    assert fit["test"]["model"] == evaluation["model"]
    # the fit is scored on the training frames: other scores than the test split's, and the card shows them
    assert fit["train"]["model"].keys() == fit["test"]["model"].keys() and fit["train"]["model"] != fit["test"]["model"]
    assert f"{fit['train']['model']['psnr']:.2f}" in card.split("## Fit")[1]
    inference = json.loads((weights / "inference.json").read_text())
    assert inference["working_size"] in (64, 128) and inference["chosen_on"] == "val"
    assert Translator.from_pretrained(weights, device="cpu").working_size == inference["working_size"]
    # the card reruns training as it ran (the run's own data and validation) and the scoring on the export's roots
    retrain = next(line for line in card.splitlines() if line.startswith("Retrain:"))
    rerun = next(line for line in card.splitlines() if line.startswith("Rerun:"))
    assert "--val-data" not in retrain and "--output-dir" not in retrain
    rerun_args = build_parser().parse_args(shlex.split(retrain.split("`")[1])[3:])  # after "python -m train"
    assert rerun_args.data == [str(MSRS), str(LLVIP)] and rerun_args.max_steps == 2 and rerun_args.val_data is None
    assert rerun_args.init_from == str(parent / "final")
    assert f"--data {msrs} --split test --size" in rerun
    assert json.loads((weights / "training_config.json").read_text())["val_data"] is None


def test_working_sizes_are_timed_on_a_full_size_llvip_frame():
    """The card's 's per 1280x1024 frame' column times a 1280x1024 frame: LLVIP's val split opens with a 640x512
    one, which is passed over; a set without LLVIP gets a synthetic frame of that size."""
    from irvis.data import load_pairs
    from train.publish import _timing_frame

    val = load_pairs([str(LLVIP)], "val")
    assert Image.open(val[0].visible).size == (640, 512)  # the case that was timed before
    for source, channels in (("visible", 3), ("infrared", 1)):
        assert _timing_frame(val, source).shape == (channels, 1024, 1280)
    assert _timing_frame(load_pairs([str(DATA / "m3svd")], "val"), "visible").shape == (3, 1024, 1280)


def test_lineage_follows_a_chain_of_fine_tunes_and_a_checkpoint_ships_with_its_own_history(
        vis2ir_run, finetuned_run, tmp_path):
    """A fine-tune of a fine-tune: the Lineage lists every run from the first, with the totals of all; a parent
    that did not itself start from weights ends the chain (asking past it is refused). A checkpoint folder can be
    shipped: its validation history stops at its step."""
    from train.card import duration
    from train.export import open_checkpoint
    from train.config import ConfigError
    from train.publish import history_section, parent_lineage

    parent, _ = vis2ir_run
    second = tmp_path / "vis2ir-ft2"
    code, log = run(["--direction", "vis2ir", "--data", str(MSRS), "--output-dir", str(second), *TINY,
                     "--max-steps", "1", "--eval-every", "0", "--sample-every", "0", "--val-max-pairs", "1",
                     "--init-from", str(finetuned_run / "final"), "--report-to", "none"])
    assert code == 0, log
    lineage = "\n".join(parent_lineage(second, [finetuned_run, parent]).lines())
    rows = [line for line in lineage.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == [f"| parent: `{parent}`", f"| parent: `{finetuned_run}`",
                                                  "| this run", "| total"]
    states = [open_checkpoint(r)[2] for r in (parent, finetuned_run, second)]
    assert f"| total | | 9 | {duration(sum(st['train_seconds'] for st in states))} |" in lineage  # 6 + 2 + 1
    assert "each started from the one before it" in lineage and "Totals count all 3 runs" in lineage
    with pytest.raises(ConfigError, match="did not start from earlier weights"):
        parent_lineage(second, [finetuned_run, parent, parent])
    checkpoint = parent / "checkpoints" / "checkpoint-000004"
    history = "\n".join(history_section(checkpoint).lines())
    steps = [int(line.split(" | ")[0][2:]) for line in history.splitlines() if line[:3] in ("| 1", "| 2", "| 3")]
    assert steps == [3]  # validated at steps 3 and 6; the checkpoint of step 4 ships with step 3's figures only
    from train.publish import ablation_section

    # both scored now on the same frames (LLVIP's val split), whatever each trained and validated on
    ablations = "\n".join(ablation_section({"at step 4": checkpoint, "finished": parent}, [str(LLVIP)]).lines())
    rows = [line for line in ablations.splitlines() if line.startswith(("| at step 4 | 4 |", "| finished | 6 |"))]
    assert len(rows) == 2 and all("| - |" not in r for r in rows)  # LLVIP figures present in both


def test_publish_refuses_a_parent_for_a_run_that_started_fresh(vis2ir_run, tmp_path, capsys):
    from train.publish import main as publish

    out, _ = vis2ir_run
    assert publish(["vis2ir", "--run", str(out), "--parent-run", str(out), "--data", str(MSRS), "--out",
                    str(tmp_path / "w")]) == 2
    assert "did not start from earlier weights" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_card_front_matter_names_a_hub_base_model_and_sections_insert_by_title(tmp_path):
    """--init-from a Hub repo id becomes the card's base_model (a local folder does not: the Hub could not resolve
    it); sections go in before a named one, and an unknown name is refused."""
    from huggingface_hub import ModelCard

    from train.card import Section, model_card
    from train.config import TrainConfig

    state = {"step": 3, "total_steps": 3, "epoch": 0, "train_sets": {"msrs": 2}}
    for init_from, base in (("owner/irvis-vis2ir", "owner/irvis-vis2ir"), (str(tmp_path), None), (None, None)):
        config = TrainConfig(direction="vis2ir", data=[str(MSRS)], init_from=init_from)
        card = model_card(config, state, None, 1000).add(Section("Notes", ["a note"]), before="Use")
        card.save(tmp_path / "README.md")
        loaded = ModelCard.load(tmp_path / "README.md")
        assert loaded.data.base_model == base and loaded.data.eval_results is None and "has not been scored" in loaded.text
        assert ("Started from" in loaded.text) == (init_from is not None)
        assert [s.title for s in card.sections] == ["Training", "Evaluation", "Notes", "Use", "Limitations"]
    with pytest.raises(KeyError, match="no section 'Fit'"):
        card.add(Section("x"), before="Fit")


def test_publish_validation_history_is_the_runs_metrics(vis2ir_run):
    from train.publish import history_section

    out, _ = vis2ir_run
    lines = history_section(out).lines()
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert lines[0] == "## Validation during training"
    assert any(line.startswith(f"| {first['step']} | {first['val/psnr']:.2f} | {first['val/ssim']:.4f} |") for line in lines)


def test_vis2ir_run_rotates_checkpoints_and_logs_to_tensorboard(vis2ir_run):
    out, _ = vis2ir_run
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-000004", "checkpoint-000006"]  # every 2 steps, the 2 newest kept
    newest = out / "checkpoints" / "checkpoint-000006"
    state = json.loads((newest / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["batch_in_epoch"] == 6 and state["num_processes"] == 1
    assert {"generator", "discriminator.safetensors", "optimizer.bin", "optimizer_1.bin", "random_states_0.pkl",
            "training_config.json"} <= {p.name for p in newest.iterdir()}
    tags = tensorboard_tags(out)
    for tag in ("loss/l1", "loss/d", "loss/g_gan", "lr/g", "lr/d", "perf/steps_per_s", "val/psnr", "val/ssim",
                "val_baseline/luminance/psnr"):
        assert tag in tags["scalars"], tag
    assert tags["steps"]["loss/l1"] == [2, 4, 6]
    assert tags["steps"]["val/psnr"] == [3, 6]  # mid-run validation, then the exported generator's
    assert tags["images"] == ["samples"]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-000003.png", "step-000006.png"]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 3 and lines[0]["n_images"] == 3
    assert 0 <= lines[0]["val/sharpness"] and "val_baseline/luminance/gradient_correlation" in lines[0]


def test_irvis_evaluate_scores_the_exported_generator(vis2ir_run, tmp_path):
    from irvis.__main__ import main as irvis_main

    out, _ = vis2ir_run
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = irvis_main(["evaluate", "--direction", "vis2ir", "--weights", str(out / "final"), "--data", str(MSRS),
                           "--size", "64", "--json", str(tmp_path / "eval.json")])
    assert code == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    # every MSRS test pair, scored by the model itself (not a copy of a baseline's figures)
    assert result["n_pairs"] == len(os.listdir(MSRS / "visible" / "test"))
    psnr = result["model"]["psnr"]
    assert 5 < psnr < 60 and all(psnr != b["psnr"] for b in result["baselines"].values())


def test_hub_upload_plan_is_the_generator_and_its_card_only(vis2ir_run, tmp_path):
    out, _ = vis2ir_run
    # what push_folder would upload: never the dataset grid, never training state
    assert upload_plan(out / "final") == ["README.md", "config.json", "evaluation.json", "evaluation.md",
                                          "model.safetensors", "training_config.json"]
    from irvis.hub import push_or_report

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert push_or_report(out / "final", "someone/irvis-vis2ir") is False  # offline in tests
    assert "the generator is safe in" in err.getvalue() and "python -m irvis push" in err.getvalue()
    assert (out / "final" / "model.safetensors").is_file()


def test_push_to_hub_offline_fails_before_training(tmp_path):
    out = tmp_path / "run"
    code, log = run(["--direction", "vis2ir", "--data", str(MSRS), "--output-dir", str(out), *TINY, "--max-steps", "2",
                     "--push-to-hub", "someone/irvis-vis2ir"])
    assert code == 2 and "HF_HUB_OFFLINE" in log
    assert not out.exists()


def test_export_a_checkpoint_in_float16(vis2ir_run, tmp_path):
    out, _ = vis2ir_run
    checkpoint = out / "checkpoints" / "checkpoint-000004"
    code, log = run(["export", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "exp"), "--export-half"])
    assert code == 0, log
    exported = tmp_path / "exp" / "model.safetensors"
    with safe_open(exported, "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    trained = load_file(checkpoint / "generator" / "model.safetensors")
    halved = load_file(exported)
    assert trained.keys() == halved.keys()
    assert all(torch.equal(trained[k].half(), halved[k]) for k in trained)
    card = (tmp_path / "exp" / "README.md").read_text()
    assert "| steps | 4 of 6" in card and "stored in float16" in card
    assert json.loads((tmp_path / "exp" / "evaluation.json").read_text())["n_pairs"] == 3


def test_a_run_folder_is_never_silently_reused(vis2ir_run):
    out, _ = vis2ir_run
    base = ["--data", str(MSRS), str(LLVIP), "--output-dir", str(out), *TINY, "--max-steps", "8", "--val-max-pairs", "3"]
    code, log = run(["--direction", "vis2ir", *base])
    assert code == 2 and "--resume latest" in log and "already holds checkpoints" in log
    code, log = run(["--direction", "ir2vis", *base, "--resume", "latest"])
    assert code == 2 and "cannot resume" in log
    # the refusal names the setting that differs, and only that one
    from train.checkpoint import read_checkpoint
    from train.config import TrainConfig, resume_conflicts

    saved, _ = read_checkpoint(out / "checkpoints" / "checkpoint-000006")
    conflicts = resume_conflicts(saved, TrainConfig(**{**saved.to_dict(), "direction": "ir2vis"}))
    assert len(conflicts) == 1 and conflicts[0].startswith("--direction") and conflicts[0] in log
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-000004", "checkpoint-000006"]


# ---------------------------------------------------------------------------------------------------


def test_ir2vis_l1_only_run_with_ema_on_a_set_without_test_split(tmp_path):
    out = tmp_path / "ir2vis"
    code, log = run(["--direction", "ir2vis", "--data", str(VIFB), "--output-dir", str(out), *TINY, "--max-steps", "4",
                     "--gan-weight", "0", "--ema-decay", "0.99", "--checkpoint-every", "4", "--sample-every", "4",
                     "--report-to", "none"])
    assert code == 0, log
    assert "L1 (no discriminator)" in log and "0 validation pairs" in log
    checkpoint = out / "checkpoints" / "checkpoint-000004"
    assert not (checkpoint / "discriminator.safetensors").exists() and (checkpoint / "generator_ema").is_dir()
    final = out / "final"
    assert not (final / "evaluation.json").exists()  # nothing to score on: said so in the card
    card = (final / "README.md").read_text()
    assert "has not been scored" in card and "EMA of the generator" in card
    # the export is the EMA, not the raw generator
    assert torch.equal(load_file(final / "model.safetensors")["net.head.weight"],
                       load_file(checkpoint / "generator_ema" / "model.safetensors")["net.head.weight"])
    translator = Translator.from_pretrained(final, device="cpu")
    infrared = load_image(sorted((VIFB / "infrared" / "train").iterdir())[0], "infrared")
    rgb = translator.translate_tensor(infrared)
    assert rgb.shape == (3, *infrared.shape[-2:]) and 0 <= rgb.min() and rgb.max() <= 1
    assert (out / "samples" / "step-000004.png").is_file()  # samples from training frames when there is no test split


def test_ssim_loss_and_repeated_sets(tmp_path):
    out = tmp_path / "vis2ir"
    code, log = run(["--direction", "vis2ir", "--data", str(MSRS), str(VIFB), "--output-dir", str(out), *TINY,
                     "--max-steps", "2", "--gan-weight", "0", "--ssim-weight", "50", "--repeat-sets", "msrs=3",
                     "--source-jitter", "0.3", "--min-load-size", "68", "--checkpoint-every", "2", "--sample-every", "0",
                     "--eval-every", "0", "--val-max-pairs", "1",
                     "--report-to", "none"])
    assert code == 0, log
    assert "L1 + SSIM (no discriminator)" in log
    assert "159 training pairs {'msrs': 138, 'vifb': 21}" in log  # 46 msrs pairs, three times each
    saved = json.loads((out / "final" / "training_config.json").read_text())
    assert saved["repeat_sets"] == ["msrs=3"] and saved["ssim_weight"] == 50
    assert saved["source_jitter"] == 0.3 and saved["min_load_size"] == 68
    card = (out / "final" / "README.md").read_text()
    assert "64 px from frames with the shorter side drawn in [68, 72]" in card and "jitter 0.3" in card
    assert "Adam (G 0.0002, betas" in card  # no discriminator, so no discriminator learning rate


def test_source_jitter_changes_the_source_only():
    from irvis.data import load_pairs
    from train.config import TrainConfig
    from train.data import TrainPairs

    pairs = load_pairs([MSRS], "train", decode=False)[:2]
    plain = TrainConfig(direction="vis2ir", data=[str(MSRS)], crop_size=64, load_size=72)
    jittered = TrainConfig(direction="vis2ir", data=[str(MSRS)], crop_size=64, load_size=72, source_jitter=0.3)
    a, b = TrainPairs(pairs, plain)[1], TrainPairs(pairs, jittered)[1]
    assert torch.equal(a["target"], b["target"])  # same seeded crop; the truth is never altered
    assert a["source"].shape == b["source"].shape and not torch.equal(a["source"], b["source"])
    assert torch.equal(TrainPairs(pairs, jittered)[1]["source"], b["source"])  # reproducible per sample


def test_each_crop_carries_its_whole_frame_for_the_level_branch():
    """TrainPairs for a generator whose level branch reads the frame: beside each crop, the source's whole frame
    at FRAME_VIEW (not the crop), changed by the same exposure draw as the crop, with its own noise where asked;
    reproducible per sample."""
    from irvis.context import FRAME_VIEW, frame_view
    from irvis.data import load_pair, load_pairs
    from train.config import TrainConfig
    from train.data import TrainPairs

    pairs = load_pairs([MSRS], "train", decode=False)[:2]
    config = TrainConfig(direction="vis2ir", data=[str(MSRS)], crop_size=64, load_size=72)
    item = TrainPairs(pairs, config, frame_views=True)[1]
    assert item["source"].shape == (3, 64, 64) and item["frame"].shape == (3, *FRAME_VIEW)
    assert "frame" not in TrainPairs(pairs, config)[1]
    whole = frame_view(load_pair(pairs[1], short_side=72)[1][None])[0]
    assert min((item["frame"] - w).abs().mean() for w in (whole, whole.flip(-1))) < 0.01  # the frame, maybe mirrored
    jittered = TrainPairs(pairs, TrainConfig(direction="vis2ir", data=[str(MSRS)], crop_size=64, load_size=72,
                                             source_jitter=0.3), frame_views=True)
    a, b = jittered[1], jittered[1]
    assert torch.equal(a["frame"], b["frame"]) and not torch.equal(a["frame"], item["frame"])
    noisy = TrainPairs(pairs, TrainConfig(direction="vis2ir", data=[str(MSRS)], crop_size=64, load_size=72,
                                          view_noise=0.02), frame_views=True)
    a, b = noisy[1], noisy[1]  # --view-noise: the view (not the crop) gets noise, the same for the same sample
    assert torch.equal(a["frame"], b["frame"]) and torch.equal(a["source"], item["source"])
    assert 0 < (a["frame"] - item["frame"]).std() <= 0.02


def test_init_from_fine_tunes_an_exported_generator(vis2ir_run, generators, tmp_path):
    from train.config import TrainConfig
    from train.objective import initial_weights
    from irvis.nets import build_generator, load_generator

    out, _ = vis2ir_run
    config = TrainConfig(direction="vis2ir", data=[str(MSRS)], init_from=str(out / "final"))
    start = initial_weights(config, build_generator("vis2ir", head="affine"))
    exported = load_generator(out / "final")
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), exported.state_dict().values()))
    code, log = run(["--direction", "vis2ir", "--data", str(MSRS), "--output-dir", str(tmp_path / "ft"), *TINY,
                     "--max-steps", "1", "--gan-weight", "0", "--init-from", str(generators["ir2vis"]),
                     "--report-to", "none"])
    assert code == 2 and "holds a ir2vis generator, not vis2ir" in log, log


def test_a_shipped_generator_seeds_the_lite0_prior_and_step_0_draws_what_it_drew():
    """--init-from a plain irvis-unet into irvis-lite0 of the same U-Net: the U-Net is the seed's, the ImageNet
    encoder is loaded, the new branches start as the identity (the same output on a real frame); a U-Net of
    another shape is still refused with what to set."""
    from irvis.nets import load_generator
    from irvis.backbones import pretrained_lite0
    from train.config import ConfigError, TrainConfig
    from train.models import initial_generator

    shipped = REPO / "weights" / "vis2ir"
    grown = initial_generator(TrainConfig(direction="vis2ir", data=[str(MSRS)], arch="irvis-lite0", n_res=2,
                                          init_from=str(shipped)))
    seed = load_generator(shipped)
    frame = load_image(sorted((MSRS / "visible" / "test").iterdir())[0], "visible")[None, :, :256, :320]
    with torch.no_grad():
        assert torch.equal(grown.net.eval()(frame), seed.net.float().eval()(frame))
    imagenet = pretrained_lite0().state_dict()
    assert all(torch.equal(v, imagenet[k]) for k, v in grown.net.context.encoder.state_dict().items())
    with pytest.raises(ConfigError, match="another shape.*--n-res"):
        initial_generator(TrainConfig(direction="vis2ir", data=[str(MSRS)], arch="irvis-lite0", init_from=str(shipped)))


@pytest.mark.parametrize("arch_flags", [[], ["--arch", "irvis-lite0", "--no-upscale", "--load-size", "96",
                                              "--level-view", "frame", "--level-steadiness", "10"]],
                         ids=["irvis-unet", "irvis-lite0"])
def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, arch_flags):
    """Interrupted at step 4 (after the step-3 checkpoint), resumed with --resume latest: the same final
    weights, EMA, discriminator, schedule and data position as a run that was never stopped; for irvis-lite0
    also its ImageNet start, its encoder's own learning rate, its scale draws capped at the native size, the
    whole-frame views its level branch reads beside each crop and the noise its steadiness term draws."""
    from train.config import from_args
    from train.loop import Trainer

    def argv(out):
        return ["--direction", "ir2vis", "--data", str(MSRS), "--output-dir", str(out), *TINY, "--max-steps", "6",
                "--checkpoint-every", "3", "--ema-decay", "0.9", "--eval-every", "0", "--sample-every", "0",
                "--val-max-pairs", "1", "--report-to", "none", *arch_flags]

    code, log = run(argv(tmp_path / "straight"))
    assert code == 0, log
    assert ("level steadiness 10" in log) == bool(arch_flags)  # the banner names the term's weight

    def interrupt(trainer, step):
        if step == 4:
            raise KeyboardInterrupt

    with contextlib.redirect_stdout(io.StringIO()) as printed, contextlib.redirect_stderr(io.StringIO()):
        with pytest.raises(KeyboardInterrupt):
            Trainer(from_args(argv(tmp_path / "resumed")), callbacks=[interrupt]).train()
    assert "interrupted at step 4" in printed.getvalue() and "checkpoint-000003" in printed.getvalue()
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    # what a kill during the next save would leave behind: hidden, and never taken for a checkpoint
    partial = tmp_path / "resumed" / "checkpoints" / ".tmp-checkpoint-000006"
    partial.mkdir()
    (partial / "optimizer.bin").write_bytes(b"half")
    code, log = run([*argv(tmp_path / "resumed"), "--resume", "latest"])
    assert code == 0, log
    assert "resumed from" in log and "checkpoint-000003 at step 3" in log
    assert not partial.exists()

    a, b = (tmp_path / run_name / "checkpoints" / "checkpoint-000006" for run_name in ("straight", "resumed"))
    for name in ("generator/model.safetensors", "generator_ema/model.safetensors", "discriminator.safetensors"):
        first, second = load_file(a / name), load_file(b / name)
        assert first.keys() == second.keys()
        for key in first:
            torch.testing.assert_close(second[key], first[key], rtol=0, atol=1e-7, msg=f"{name}: {key}")
    state_a, state_b = (json.loads((x / "trainer_state.json").read_text()) for x in (a, b))
    for key in ("step", "epoch", "batch_in_epoch", "scheduler_g", "scheduler_d", "ema_updates"):
        assert state_a[key] == state_b[key], key


@pytest.mark.timeout(240)
def test_compiled_training_matches_eager_and_its_checkpoints_resume_without_compiling(tmp_path):
    """--compile (torch.compile in place, generator and discriminator): the first step's losses are those of the
    eager run from the same weights and batch; its checkpoints hold the plain modules' tensors (no compile
    wrapper in any name), so a run resumes from them with or without --compile."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def argv(out, *extra):
        return ["--direction", "vis2ir", "--data", str(MSRS), "--output-dir", str(out), *TINY, "--log-every", "1",
                "--checkpoint-every", "1", "--eval-every", "0", "--sample-every", "0", "--val-max-pairs", "1", *extra]

    losses = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        code, log = run(argv(tmp_path / name, "--max-steps", "1", *extra))
        assert code == 0, log
        events = EventAccumulator(str(tmp_path / name / "tensorboard"), size_guidance={"scalars": 0}).Reload()
        losses[name] = {t: events.Scalars(t)[0].value for t in events.Tags()["scalars"] if t.startswith("loss/")}
    assert set(losses["compiled"]) == set(losses["eager"]) >= {"loss/l1", "loss/d", "loss/g_gan"}
    for tag, value in losses["eager"].items():
        assert losses["compiled"][tag] == pytest.approx(value, rel=1e-3, abs=1e-5), tag
    checkpoint = tmp_path / "compiled" / "checkpoints" / "checkpoint-000001"
    for name in ("generator/model.safetensors", "discriminator.safetensors"):
        plain = load_file(tmp_path / "eager" / "checkpoints" / "checkpoint-000001" / name)
        assert load_file(checkpoint / name).keys() == plain.keys(), name
    code, log = run([*argv(tmp_path / "compiled", "--max-steps", "2"), "--resume", "latest"])
    assert code == 0 and "checkpoint-000001 at step 1" in log, log


def test_broken_dataset_fails_before_training_with_the_full_report(tmp_path):
    names = sorted(os.listdir(MSRS / "visible" / "train"))[:2]
    root = copy_pairs(MSRS, tmp_path / "broken", names)
    (root / "visible" / "train" / names[0]).unlink()
    truncated = root / "infrared" / "train" / names[1]
    truncated.write_bytes(truncated.read_bytes()[:2000])
    out = tmp_path / "run"
    code, log = run(["--direction", "ir2vis", "--data", str(root), "--output-dir", str(out), *TINY, "--max-steps", "2"])
    assert code == 2
    assert "2 problem(s)" in log
    assert f"{names[0].rsplit('.', 1)[0]}" in log and "no visible image" in log  # the missing partner
    assert str(truncated) in log  # the truncated file, by path
    assert "Traceback" not in log
    assert not out.exists()  # nothing was built


@pytest.mark.parametrize("flags, message", [
    (["--crop-size", "80", "--load-size", "96"], "--crop-size must be a multiple of 32"),
    (["--arch", "pix2pix-unet256", "--crop-size", "64"], "multiple of 256"),
    (["--max-steps", "5", "--epochs", "1"], "not both"),
    (["--crop-size", "128", "--load-size", "64"], "larger than --load-size"),
    (["--crop-size", "64", "--load-size", "96", "--min-load-size", "32"], "--min-load-size 32 must lie between"),
    (["--source-jitter", "1.5"], "--source-jitter must be in [0, 1)"),
    (["--gan-weight", "0", "--l1-weight", "0"], "nothing to learn"),
    (["--batch-size", "64"], "cannot fill one batch"),
    (["--resume", "/no/such/checkpoint"], "no such checkpoint folder"),
    (["--repeat-sets", "msrs"], "expected SET=N"),
    (["--repeat-sets", "llvip=3"], "the training sets are ['msrs']"),
])
def test_bad_settings_are_refused_with_a_reason(tmp_path, flags, message):
    code, log = run(["--direction", "ir2vis", "--data", str(MSRS), "--output-dir", str(tmp_path / "run"),
                     "--num-workers", "0", "--max-steps", "2", *flags])
    assert code == 2 and message in log, log
    assert "Traceback" not in log


def test_help_documents_every_setting():
    from dataclasses import fields

    from train.__main__ import export_parser
    from train.config import TrainConfig, build_parser

    text = build_parser().format_help()
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name
    for flag in ("--direction", "--data", "--output-dir", "--max-steps", "--batch-size", "--resume", "--push-to-hub",
                 "accelerate launch"):
        assert flag in text
    assert "--checkpoint" in export_parser().format_help()


# ---------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.multiprocess
@pytest.mark.timeout(240)
def test_two_process_cpu_run_with_accelerate_launch(tmp_path):
    """The same command under `accelerate launch` with 2 processes (torchrun + gloo on the CPU): gradients
    synchronised, every process's RNG checkpointed, validation gathered without the padding duplicates."""
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "train", "--cpu",
           "--direction", "ir2vis", "--data", str(MSRS), "--output-dir", str(out), *TINY, "--max-steps", "4",
           "--checkpoint-every", "2", "--eval-every", "2", "--sample-every", "0", "--val-max-pairs", "3",
           "--val-split", "test"]  # MSRS has no val split
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "batch 4 (2 x 2 process(es)" in proc.stdout
    checkpoint = out / "checkpoints" / "checkpoint-000004"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["num_processes"] == 2
    assert (checkpoint / "random_states_0.pkl").is_file() and (checkpoint / "random_states_1.pkl").is_file()
    # 3 frames over 2 processes: one is padded in, and gather_for_metrics drops it again
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["n_images"] == 3
    assert Translator.from_pretrained(out / "final", device="cpu").direction.name == "ir2vis"


def test_edge_loss_is_blind_to_an_edges_sign_and_the_frames_level_but_not_to_a_blur(data_dir):
    """The edge loss compares where edges are and how strong, not which way they go: a thermal frame's negative
    and a brighter copy of it cost nothing, a blurred copy does; its gradients stay finite on flat regions."""
    from irvis.data import load_pair, load_pairs
    from train.losses import edge_loss

    infrared, _ = load_pair(load_pairs([data_dir / "llvip"], "val")[0], short_side=64)
    x = infrared[None] * 0.8
    blurred = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    assert float(edge_loss(1 - x, x)) < 1e-3 and float(edge_loss(x + 0.1, x)) < 1e-3
    assert float(edge_loss(blurred, x)) > 0.01
    flat = torch.full_like(x, 0.5, requires_grad=True)
    edge_loss(flat, x).backward()
    assert torch.isfinite(flat.grad).all()


def test_texture_loss_forgives_where_structure_lies_within_a_block_but_not_a_blur(data_dir):
    """The texture loss asks each 8x8 block for the right amount of structure: it prefers the truth moved by a
    pixel to a blurred copy, where the per-pixel edge loss prefers the blur (the hedging a translation that
    cannot know exact positions learns); a flat frame costs most."""
    from irvis.data import load_pair, load_pairs
    from train.losses import edge_loss, texture_loss

    infrared, _ = load_pair(load_pairs([data_dir / "llvip"], "val")[0], short_side=128)
    x = infrared[None]
    moved = torch.roll(x, shifts=(1, 1), dims=(-2, -1))
    blurred = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    assert float(texture_loss(moved, x)) < 0.8 * float(texture_loss(blurred, x))
    assert float(edge_loss(moved, x)) > 1.1 * float(edge_loss(blurred, x))
    flat = torch.full_like(x, 0.5, requires_grad=True)
    loss = texture_loss(flat, x)
    loss.backward()
    assert float(loss.detach()) > float(texture_loss(blurred, x)) and torch.isfinite(flat.grad).all()


def test_a_checkpoint_that_named_the_default_head_resumes_without_it(tmp_path):
    """Earlier trainers wrote the head of every run ("affine", their default, even for pix2pix-unet256); the same
    command resumes such a checkpoint now that the default is the architecture's, and another head is refused."""
    from train.config import TrainConfig, resume_conflicts

    now = TrainConfig(direction="vis2ir", data=[str(MSRS)])
    saved = tmp_path / "training_config.json"
    saved.write_text(json.dumps({**now.to_dict(), "head": "affine"}))
    assert resume_conflicts(TrainConfig.load(saved), now) == []
    assert resume_conflicts(TrainConfig.load(saved), TrainConfig(**{**now.to_dict(), "head": "conv"})) == [
        "--head: checkpoint 'affine', now 'conv'"]
    saved.write_text(json.dumps({**now.to_dict(), "arch": "pix2pix-unet256", "head": "affine"}))
    assert resume_conflicts(TrainConfig.load(saved), TrainConfig(**{**now.to_dict(), "arch": "pix2pix-unet256"})) == []


def test_ema_ramps_its_decay_up_to_the_one_asked_and_keeps_the_models_buffers():
    """(1 + n) / (10 + n) at the n-th update, capped at --ema-decay; running statistics are copied, not averaged;
    the count is what a checkpoint stores and restores."""
    from train.objective import EMA

    net = torch.nn.BatchNorm1d(2)
    torch.nn.init.zeros_(net.weight)
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(11.0)
        net.running_mean.fill_(3.0)
    ema.update(net)  # decay 2/11: 0 + 11 x 9/11
    assert torch.allclose(ema.model.weight, torch.full((2,), 9.0)) and torch.equal(ema.model.running_mean, net.running_mean)
    ema.update(net)  # decay 3/12: 9 + 2 x 0.75
    ema.update(net)  # decay 4/13 (under the cap): 10.5 + 0.5 x 9/13
    assert torch.allclose(ema.model.weight, torch.full((2,), 10.5 + 0.5 * 9 / 13))
    restored = EMA(net, decay=0.5)
    restored.updates = ema.updates
    assert restored.updates == 3 and ema.model.weight.requires_grad is False


def test_resuming_an_older_checkpoint_drops_the_abandoned_newer_ones(tmp_path):
    """Resumed from checkpoint 3 of a run that reached 6: checkpoint 6 belongs to the abandoned trajectory, and
    a later --resume latest must continue this run, not that one."""
    out = tmp_path / "run"
    base = ["--direction", "ir2vis", "--data", str(MSRS), "--output-dir", str(out), *TINY, "--gan-weight", "0",
            "--checkpoint-every", "3", "--eval-every", "0", "--sample-every", "0", "--report-to", "none"]
    code, log = run([*base, "--max-steps", "6"])
    assert code == 0, log
    code, log = run([*base, "--max-steps", "4", "--resume", str(out / "checkpoints" / "checkpoint-000003")])
    assert code == 0, log
    assert "checkpoint-000006: newer than the checkpoint this run resumed from" in log
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-000003", "checkpoint-000004"]


def test_loader_workers_feed_a_gpu_and_leave_a_cpu_its_cores():
    """Unset, --num-workers is 2 on a CPU and, on a GPU, the cores each process can have less one (at most 8):
    a GPU step outruns one loader process many times over. Asked for, it is what was asked."""
    from train.config import ConfigError, from_args
    from train.data import loader_workers

    assert from_args(["--direction", "vis2ir", "--data", str(MSRS)]).num_workers is None
    assert loader_workers(None, "cpu", 1, cores=16) == 2 and loader_workers(None, "cpu", 1, cores=1) == 1
    assert loader_workers(None, "cuda", 1, cores=16) == 8 and loader_workers(None, "cuda", 4, cores=16) == 3
    assert loader_workers(None, "cuda", 8, cores=8) == 1 and loader_workers(0, "cuda", 1, cores=16) == 0
    with pytest.raises(ConfigError, match="num-workers"):
        from_args(["--direction", "vis2ir", "--data", str(MSRS), "--num-workers", "-1"])


def test_resume_passes_over_a_damaged_checkpoint_and_refuses_a_damaged_rng_state(tmp_path):
    """A crash mid-write of the filesystem (not of the save, which is atomic) can leave the newest checkpoint
    truncated: --resume latest names it and continues from the newest intact one. A checkpoint asked for by
    path with a truncated RNG state is refused: it would resume, but not exactly."""
    out = tmp_path / "run"

    def argv(*extra):
        return ["--direction", "ir2vis", "--data", str(MSRS), "--output-dir", str(out), *TINY, "--checkpoint-every",
                "2", "--eval-every", "0", "--sample-every", "0", "--val-max-pairs", "1", "--report-to", "none",
                "--gan-weight", "0", *extra]

    code, log = run(argv("--max-steps", "4"))
    assert code == 0, log
    newest = out / "checkpoints" / "checkpoint-000004" / "generator" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])
    code, log = run(argv("--max-steps", "6", "--resume", "latest"))
    assert code == 0, log
    assert "checkpoint-000004 is damaged (generator/model.safetensors" in log
    assert "resumed from" in log and "checkpoint-000002 at step 2" in log
    rng = out / "checkpoints" / "checkpoint-000006" / "random_states_0.pkl"
    rng.write_bytes(rng.read_bytes()[:-100])
    code, log = run(argv("--max-steps", "8", "--resume", str(rng.parent)))
    assert code != 0 and "damaged (random_states_0.pkl" in log and "would not continue the run exactly" in log
    assert "Traceback" not in log


def test_a_strip_frame_is_refused_before_training_not_validated_into_gigabytes(tmp_path):
    """A 4000x2 pair in the val split would be 512,000x256 at the validation size: refused, with its name, before
    anything is built."""
    root = copy_pairs(MSRS, tmp_path / "strips", sorted(p.name for p in (MSRS / "infrared/train").iterdir())[:2])
    for modality, mode in (("infrared", "L"), ("visible", "RGB")):
        (root / modality / "val").mkdir(parents=True)
        Image.new(mode, (4000, 2)).save(root / modality / "val" / "strip.png")
    code, log = run(["--direction", "ir2vis", "--data", str(root), "--output-dir", str(tmp_path / "run"), *TINY,
                     "--max-steps", "2", "--val-short-side", "256"])
    assert code != 0 and "strip.png: 4000x2 becomes 512000x256 at a shorter side of 256, over the limit" in log
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_flip_average_measurement_scores_by_the_evaluation_protocol():
    """train.flip_average's plain figures are `irvis evaluate`'s for the same pairs (the same protocol), and its
    flip-averaged prediction is a different one, timed at about two translations."""
    from irvis.data import load_pairs
    from irvis.evaluate import evaluate
    from train.flip_average import measure

    weights, samples = str(REPO / "weights" / "vis2ir"), REPO / "samples" / "llvip"
    r = measure(weights, [str(samples)], "test")
    result, _ = evaluate(Translator.from_pretrained(weights, device="cpu"), load_pairs([samples], "test"),
                         progress=False, lpips=False, fid=False)
    for k in ("psnr", "ssim", "sharpness", "gradient_correlation"):
        assert r["plain"]["overall"][k] == pytest.approx(result["model"][k], abs=2e-4)
    assert r["flip averaged"]["overall"]["psnr"] != r["plain"]["overall"]["psnr"]
    assert r["flip averaged"]["seconds"] > r["plain"]["seconds"]


def test_level_oracle_splits_the_error_into_level_and_the_rest():
    """train.level_oracle: its plain figures are `irvis evaluate`'s; the prediction at its best per-frame gain and
    offset can only score higher (the identity is one of them); the set's flat mean training colour draws nothing."""
    from irvis.data import load_pairs
    from irvis.evaluate import evaluate
    from train.level_oracle import measure

    weights = str(REPO / "weights" / "ir2vis")
    r = measure(weights, [str(MSRS)], "test")
    result, _ = evaluate(Translator.from_pretrained(weights, device="cpu"), load_pairs([MSRS], "test"),
                         progress=False, lpips=False, fid=False)
    for k in ("psnr", "ssim", "sharpness", "gradient_correlation"):
        assert r["plain"]["overall"][k] == pytest.approx(result["model"][k], abs=2e-4)
    assert r["level oracle"]["overall"]["psnr"] > r["plain"]["overall"]["psnr"]
    assert r["set's mean colour"]["overall"]["sharpness"] == 0 and r["plain"]["llvip"] is None


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_stop_request_keeps_every_step(tmp_path, how):
    """Ctrl-C (SIGINT to the terminal's whole process group, data-loader workers included) or SIGTERM to the run
    alone: it stops at the next step with a checkpoint of that step (the periodic ones are 1000 steps apart), exits
    130, and --resume latest continues from there."""
    import signal
    import time

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "train", "--direction", "ir2vis", "--data", str(MSRS), "--output-dir", str(out),
            *TINY, "--num-workers", "1", "--max-steps", "400", "--checkpoint-every", "1000", "--sample-every", "1",
            "--eval-every", "0", "--val-max-pairs", "1", "--gan-weight", "0", "--report-to", "none"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 180
    while not (out / "samples" / "step-000003.png").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=180)[0]
    assert proc.returncode == 130, log
    from train.checkpoint import list_checkpoints

    saved = list_checkpoints(out)
    assert len(saved) == 1, log
    step = int(saved[0].name.split("-")[1])
    assert 3 <= step < 400 and f"stopped at step {step}" in log and "--resume latest" in log
    assert "Traceback" not in log and "exited unexpectedly" not in log
    resumed = subprocess.run([*argv[:argv.index("--max-steps")], "--max-steps", str(step + 1),
                              *argv[argv.index("--max-steps") + 2:], "--resume", "latest"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"at step {step} (epoch" in resumed.stdout + resumed.stderr  # "resumed from ... at step N (epoch ...)"


def test_stability_measures_how_far_a_change_nobody_sees_moves_the_output(monkeypatch):
    """train.stability: the shipped ir2vis moves by less than anyone sees when its input gets noise of 1/255 or a JPEG
    re-encode (every frame above 35 dB against its own plain output); the same measure with visible noise (0.2) does
    see the output move."""
    import train.stability as stability
    from irvis.data import load_pair, load_pairs
    from irvis.metrics import PSNR_CAP_DB

    source = load_pair(load_pairs([MSRS], "test")[0], short_side=256)[0]
    assert stability.moved(source, source) == {"psnr": PSNR_CAP_DB, "level_steps": 0.0}
    assert stability.moved(source, stability.jpeg_again(source, "infrared"))["psnr"] > 40  # the change itself is invisible
    weights = str(REPO / "weights" / "ir2vis")
    r = stability.measure(weights, [str(MSRS)], "test")
    assert set(r) == set(stability.CHANGES) and all(v["llvip"] is None for v in r.values())
    assert all(v["overall"]["worst_psnr"] > 35 and v["overall"]["level_steps"] < 2 for v in r.values())
    monkeypatch.setattr(stability, "NOISE", 0.2)
    assert stability.measure(weights, [str(MSRS)], "test")["noise 1/255"]["overall"]["worst_psnr"] < 30


def test_level_fit_recovers_the_level_of_the_frames_it_was_fitted_on(tmp_path):
    """train.level_fit: a level head fitted on frames and scored on the same frames predicts their level, so moving
    the prediction to it can only raise PSNR there (the mean's error is removed); its plain figures are `irvis
    evaluate`'s; and relevel sets exactly the mean and spread asked for."""
    import shutil

    from irvis.data import load_pairs
    from irvis.evaluate import evaluate
    from train import level_fit

    names = sorted(p.name for p in (LLVIP / "infrared" / "train").iterdir())[::10][:6]
    root = tmp_path / "llvip"  # the same LLVIP frames as train and val
    for split in ("train", "val"):
        for modality in ("infrared", "visible"):
            (root / modality / split).mkdir(parents=True)
            for name in names:
                shutil.copy(LLVIP / modality / "train" / name, root / modality / split / name)

    weights = str(REPO / "weights" / "ir2vis")
    r = level_fit.measure(weights, [str(root)], ["val"], "layout")["val"]
    result, _ = evaluate(Translator.from_pretrained(weights, device="cpu"), load_pairs([root], "val"),
                         progress=False, lpips=False, fid=False)
    assert r["plain"]["overall"]["psnr"] == pytest.approx(result["model"]["psnr"], abs=2e-4)
    assert r["alpha 1, mean"]["llvip"]["psnr"] > r["plain"]["llvip"]["psnr"] + 0.5
    # one set: the nearest frames' set and the camera classifier can only name it, as the oracle does
    oracle = r["the frame's own set (oracle), mean"]["overall"]["psnr"]
    assert r["set of the 1 nearest, mean"]["overall"]["psnr"] == pytest.approx(oracle, abs=1e-3)
    assert r["set classifier, penalty 0.1, mean"]["overall"]["psnr"] == pytest.approx(oracle, abs=1e-3)
    assert level_fit.encoder_features(torch.rand(1, 64, 80)).shape == (432,)

    torch.manual_seed(0)
    image = torch.rand(3, 40, 50) * 0.2 + 0.4
    moved = level_fit.relevel(image, torch.tensor([0.3, 0.5, 0.6, 0.02, 0.05, 0.08]), "mean and spread")
    assert torch.allclose(moved.mean(dim=(1, 2)), torch.tensor([0.3, 0.5, 0.6]), atol=1e-4)
    assert torch.allclose(moved.std(dim=(1, 2)), torch.tensor([0.02, 0.05, 0.08]), atol=1e-4)
