"""The trainer's loss registry (train.losses): one entry makes a loss a flag, a term of the generator's sum, a
logged curve, a banner line and the card's words; the shipped cards' objectives are what the registry writes for
their configs; the SSIM loss is torchmetrics' SSIM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import DATA, REPO

SHIPPED = REPO / "weights"

# A loss the project does not have: one entry, appended to a copy of the trainer's registry module.
LEVEL_LOSS = """

def level_loss(pred, target):
    return (pred.mean() - target.mean()).abs()


LOSSES["level"] = Loss("level", 0.0, level_loss, "weight of a level loss: the frames' mean brightness", "level",
                       "level loss (frame means, weight {weight})")
"""


def test_a_loss_added_by_one_registry_entry_is_a_flag_a_logged_term_a_banner_and_card_line(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = tmp_path / "code" / "train"
    shutil.copytree(REPO / "train", trainer, ignore=shutil.ignore_patterns("__pycache__"))
    with open(trainer / "losses.py", "a") as f:
        f.write(LEVEL_LOSS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the library from the repository, the trainer from the copy

    def train(*args):
        return subprocess.run([sys.executable, "-m", "train", *args], cwd=trainer.parent, env=env, capture_output=True,
                              text=True, timeout=300)

    help = train("--help")
    assert help.returncode == 0 and "the frames' mean brightness" in " ".join(help.stdout.split())
    assert "--level-weight" in help.stdout
    out = tmp_path / "run"
    run = train("--direction", "vis2ir", "--data", str(DATA / "msrs"), "--output-dir", str(out), "--crop-size", "64",
                "--load-size", "72", "--batch-size", "2", "--num-workers", "0", "--max-steps", "2", "--log-every", "2",
                "--gan-weight", "0", "--level-weight", "3", "--sample-every", "0", "--eval-every", "0")
    assert run.returncode == 0, run.stderr
    assert "L1 + level (no discriminator)" in run.stdout and "loss weights: L1 100, level 3" in run.stdout
    card = (out / "final" / "README.md").read_text()
    assert "L1 (weight 100) + level loss (frame means, weight 3)" in card and "--level-weight 3.0" in card
    assert json.loads((out / "training_config.json").read_text())["level_weight"] == 3
    tags = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0}).Reload().Tags()["scalars"]
    assert {"loss/l1", "loss/level"} <= set(tags)


@pytest.mark.parametrize("direction", ["ir2vis", "vis2ir"])
def test_the_shipped_cards_objective_is_what_the_registry_writes_for_their_config(direction):
    from train.card import architecture_text, objective_text
    from train.config import TrainConfig

    config = TrainConfig.load(SHIPPED / direction / "training_config.json")
    card = (SHIPPED / direction / "README.md").read_text()
    assert f"Pix2Pix objective: {objective_text(config)})" in card
    assert "+ edge loss (Sobel magnitudes, weight 50)" in objective_text(config)
    assert f"{architecture_text(config)}, " in card


def test_ssim_loss_is_one_minus_torchmetrics_ssim_over_the_valid_region(data_dir):
    """Checked against torchmetrics' own SSIM map, on an infrared (1 channel) and a visible (RGB) frame, for a
    changed level and contrast and for a blur: the loss must rank them as the reported metric does."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    from irvis.data import load_pair, load_pairs
    from train.losses import ssim_loss

    for truth in load_pair(load_pairs([data_dir / "llvip"], "val")[0], short_side=96):
        x = truth[None]
        for pred in ((x * 0.7 + 0.1).clamp(0, 1),
                     torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)):
            _, full = structural_similarity_index_measure(pred, x, data_range=1.0, return_full_image=True)
            valid = full[..., 5:-5, 5:-5].mean()
            assert abs(float(1 - ssim_loss(pred, x)) - float(valid)) < 1e-5
            assert float(1 - ssim_loss(pred, x)) < 0.95  # a real difference, not two ones


def test_gradient_correlation_loss_is_one_minus_the_reported_metric_and_ignores_edge_strength(data_dir):
    """The loss is 1 - the evaluation's gradient correlation on real frames (infrared and visible): zero for the
    truth, the same for the truth at half contrast (edges in their places), larger for the truth moved by 4 px
    (edges elsewhere); a flat prediction adds nothing and still has a finite gradient."""
    from irvis.data import load_pair, load_pairs
    from irvis.metrics import gradient_correlation
    from train.losses import gradient_correlation_loss

    for truth in load_pair(load_pairs([data_dir / "llvip"], "val")[0], short_side=96):
        x = truth[None]
        for pred in (x * 0.5 + 0.25, torch.roll(x, 4, dims=-1)):
            assert abs(float(gradient_correlation_loss(pred, x)) - float(1 - gradient_correlation(pred, x)[0])) < 1e-3
        assert float(gradient_correlation_loss(x, x)) < 1e-3
        assert float(gradient_correlation_loss(x * 0.5 + 0.25, x)) < 1e-3
        assert float(gradient_correlation_loss(torch.roll(x, 4, dims=-1), x)) > 0.3
        flat = torch.full_like(x, 0.5, requires_grad=True)
        loss = gradient_correlation_loss(flat, x)
        loss.backward()
        assert float(loss.detach()) == 0.0 and torch.isfinite(flat.grad).all()
