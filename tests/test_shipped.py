"""The generators the project ships: they load strictly as the app loads them, their working size is the one
their card says was chosen on validation frames, and their cards carry the tables they promise."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from irvis.translate import Translator

SHIPPED = REPO / "weights"


@pytest.mark.parametrize("direction", ["ir2vis", "vis2ir"])
def test_shipped_generator_loads_with_its_recorded_working_size(direction):
    folder = SHIPPED / direction
    translator = Translator.from_pretrained(folder, device="cpu")
    assert translator.direction.name == direction
    assert json.loads((folder / "config.json").read_text())["head"] == "affine"
    inference = json.loads((folder / "inference.json").read_text())
    assert inference["chosen_on"] == "val" and translator.working_size == inference["working_size"]
    assert {c["working_size"] for c in inference["candidates"]} >= {256, None}


@pytest.mark.parametrize("direction", ["ir2vis", "vis2ir"])
def test_shipped_card_tables_agree_with_the_evaluation(direction):
    folder = SHIPPED / direction
    card = (folder / "README.md").read_text()
    for section in ("## Evaluation", "## Fit (train split) beside generalisation (test split)",
                    "## Working size for full-resolution frames", "## Validation during training",
                    "## Recipe ablations (validation split)", "## Where it fails"):
        assert section in card, section
    assert "/work/" not in card and "/tmp/" not in card  # no paths of the machine that wrote it
    evaluation = json.loads((folder / "evaluation.json").read_text())
    fit = json.loads((folder / "fit.json").read_text())
    assert fit["test"]["model"] == evaluation["model"] and evaluation["protocol"]["short_side"] == 256
    assert f"| **this model** | {evaluation['model']['psnr']:.2f} |" in card


def test_a_hub_repo_id_resolves_like_everywhere_else_and_publishes_the_working_size():
    from irvis.hub import upload_plan
    from irvis.nets import Generator, WeightsError

    # offline and not cached: the local-first resolver's message, not "not a generator folder"
    with pytest.raises(WeightsError, match="Hugging Face cache"):
        Generator.from_pretrained("irvis-test/not-cached")
    assert {"inference.json", "fit.json", "model.safetensors"} <= set(upload_plan(SHIPPED / "vis2ir"))
