"""Issue #25's done-when: a metric is added by one entry of irvis.metrics.REGISTRY, and then shows up in
`irvis evaluate`'s JSON, Markdown and printed line, in the app's comparison table, a model card and training's
validation line; which way is better is the entry's to say."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

import app
from conftest import REPO
from irvis.compare import score_headers, score_table, verdict

SAMPLES = REPO / "samples" / "llvip"
WEIGHTS = REPO / "weights" / "vis2ir"
SIZE = 64  # small scoring size (VIF needs 41 pixels a side)
N_PAIRS = 2


def _mae(pred, truth):
    """Mean absolute error of images in [0, 1], per image."""
    return (pred - truth.image).abs().mean(dim=(1, 2, 3))


def _mae_entry():
    from irvis.metrics import Metric

    return Metric("mae", "MAE", digits=3, higher_is_better=False, fn=_mae, cli_label="MAE",
                  hub_label="mean absolute error", protocol="mean |prediction - truth| over all pixels and channels")


def _outputs(tmp_path: Path) -> dict:
    """Everything a metric must reach: the evaluation JSON and Markdown, the CLI's line, the app's table (with its
    headers), a model card's text and its model-index."""
    from irvis.__main__ import main
    from irvis.compare import compare
    from irvis.data import load_pair, load_pairs
    from irvis.directions import get_direction
    from irvis.evaluate import evaluate, write_report
    from irvis.translate import Translator
    from train.card import model_card
    from train.config import TrainConfig

    translator = Translator.from_pretrained(str(WEIGHTS), device="cpu")
    pairs = load_pairs([SAMPLES], "test")[:N_PAIRS]
    result, samples = evaluate(translator, pairs, short_side=SIZE, progress=False, lpips=False, fid=False)
    paths = write_report(result, samples, tmp_path / "eval" / "evaluation.json")

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["evaluate", "--direction", "vis2ir", "--weights", str(WEIGHTS), "--data", str(SAMPLES),
                     "--size", str(SIZE), "--no-lpips", "--no-fid", "--json", str(tmp_path / "cli" / "e.json")]) == 0

    ir, vis = load_pair(pairs[0], short_side=SIZE)
    source, truth = get_direction("vis2ir").arrange(ir, vis)
    rows = compare("vis2ir", source, truth, translator.translate_tensor(source))
    headers = score_headers()  # the columns of the app's comparison tables

    config = TrainConfig(direction="vis2ir", data=[str(SAMPLES)])
    card = model_card(config, {"step": 1, "total_steps": 1, "epoch": 0, "train_sets": {"llvip": 6}}, result, 1000)
    card.save(tmp_path / "README.md")
    from huggingface_hub import ModelCard

    loaded = ModelCard.load(tmp_path / "README.md")
    from train.validation import summary_line

    model = json.loads(paths["json"].read_text())["model"]
    validation = summary_line({"step": 1, "n_images": N_PAIRS, **{f"val/{k}": v for k, v in model.items()}})
    return {"validation": validation, "result": json.loads(paths["json"].read_text()), "markdown": paths["markdown"].read_text(),
            "cli": out.getvalue(), "table": score_table(rows), "headers": headers, "rows": rows,
            "card": loaded.text, "card_data": loaded.data}


def _missing_mae(o: dict) -> list[str]:
    """The places the "mae" metric does not reach (each checked against the figure the JSON holds)."""
    missing = []
    model = o["result"]["model"]
    if "mae" not in model or "mae" not in o["result"]["protocol"]:
        missing.append("json")
    value = model.get("mae")
    if value is None or "| MAE |" not in o["markdown"] or f"{value:.3f}" not in o["markdown"]:
        missing.append("markdown")
    if "MAE " not in o["cli"]:
        missing.append("cli")
    model_row = next(row for row in o["table"] if row[0] == "model (this generator)")
    scored = o["rows"][0].get("mae")
    if ("MAE" not in o["headers"] or len(model_row) != len(o["headers"]) or scored is None
            or model_row[o["headers"].index("MAE")] != round(scored, 3)):
        missing.append("app")
    card_types = {r.metric_type for r in o["card_data"].eval_results or ()}
    if value is None or "MAE" not in o["card"] or f"{value:.3f}" not in o["card"] or "mae" not in card_types \
            or "mae" not in o["card_data"].metrics:
        missing.append("card")
    if value is None or f"{value:.3f} MAE" not in o["validation"]:
        missing.append("validation")
    return missing


def test_one_registry_entry_adds_a_metric_everywhere(tmp_path, monkeypatch):
    from irvis import metrics

    monkeypatch.setitem(metrics.REGISTRY, "mae", _mae_entry())
    o = _outputs(tmp_path)
    assert _missing_mae(o) == []
    # lower is better, and a real number: the mean absolute error of the model's prediction on [0, 1]
    assert 0 < o["result"]["model"]["mae"] < 1
    assert o["result"]["pairs"][0]["model"]["mae"] == pytest.approx(o["rows"][0].get("mae"), abs=1e-4)


def test_without_the_entry_the_metric_is_nowhere(tmp_path):
    """The check above is not vacuous: with no registry entry, every place is reported missing."""
    o = _outputs(tmp_path)
    assert _missing_mae(o) == ["json", "markdown", "cli", "app", "card", "validation"]


def test_the_apps_headers_and_the_tables_labels_are_the_registrys():
    from irvis import tables
    from irvis.metrics import METRICS, SCORING_SHORT_SIDE, registered

    assert score_headers() == ["method", "PSNR (dB)", "SSIM", "sharpness (1 = truth's)", "gradient corr.", "VIF"]
    assert METRICS == tuple(m.name for m in registered(scored=True))
    assert list(tables.LABELS) == [m.name for m in registered()]
    assert app.DEFAULT_SHORT_SIDE == SCORING_SHORT_SIDE == 256


def test_which_way_is_better_is_the_entrys(monkeypatch):
    """A headline metric where lower is better: the margin sentence measures against the lowest baseline and
    counts a lower model score as a lead; the app's verdict names it too."""
    from irvis import metrics
    from irvis.compare import MethodScore

    monkeypatch.setitem(metrics.REGISTRY, "mae", metrics.Metric("mae", "MAE", higher_is_better=False, headline=True, fn=_mae))
    baselines = {"luminance": {"psnr": 11.1, "ssim": 0.25, "mae": 0.30},
                 "mid_gray": {"psnr": 11.0, "ssim": 0.43, "mae": 0.20}}
    line = metrics.margin_line({"psnr": 13.9, "ssim": 0.45, "mae": 0.25}, baselines)
    assert "-0.050 MAE (mid_gray, 0.200)" in line and "behind a baseline on MAE" in line
    assert "ahead of every baseline" in metrics.margin_line({"psnr": 13.9, "ssim": 0.45, "mae": 0.1}, baselines)
    rows = [MethodScore("model", {"psnr": 13.9, "ssim": 0.45, "mae": 0.25}),
            *(MethodScore(f"baseline:{k}", v) for k, v in baselines.items())]
    assert "0.250 MAE" in verdict(rows)
    from irvis.page_text import legend  # the words under the app's score tables

    assert legend().startswith("Higher is better (sharpness: nearest 1, the truth’s; MAE: lower).")
    # sharpness has a target, not a direction: nearer 1 is better from either side
    sharp = metrics.REGISTRY["sharpness"]
    assert sharp.better(0.9, 1.2) and sharp.better(1.05, 0.9) and not sharp.better(0.5, 1.4)
