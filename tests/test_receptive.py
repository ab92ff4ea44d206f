"""The receptive-field ablation and the bootstrap intervals: predictors see exactly the context they
claim (by the gradient), intervals behave as statistics say they must, the CLI writes the curve on real
data at a tiny size and reuses or redoes its training as asked, and a set of grayscale visible images
gets a report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import copy_pairs
from irvis.__main__ import main
from irvis.analysis import analyze, r2
from irvis.analysis.receptive import RECEPTIVE_FIELDS, FixedField, build_predictors, dilations_for, predict
from irvis.analysis.stats import interval, moment_sums, pooled_pearson, pooled_r2, resample_indices


def _support(model: torch.nn.Module, in_channels: int, size: int = 161) -> torch.Tensor:
    """Which input pixels the centre output pixel depends on (any channel)."""
    model = model.double().eval()
    x = torch.rand(1, in_channels, size, size, dtype=torch.double, generator=torch.Generator().manual_seed(0),
                   requires_grad=True)
    predict(model, x)[0, :, size // 2, size // 2].sum().backward()
    return x.grad.abs().sum(1)[0] > 0


@pytest.mark.parametrize("direction", ["vis2ir", "ir2vis"])
def test_each_predictor_sees_exactly_its_receptive_field(direction):
    torch.manual_seed(0)
    predictors = build_predictors(direction)
    assert list(predictors) == [f"rf{rf}" for rf in RECEPTIVE_FIELDS] + ["full"]
    in_channels = 3 if direction == "vis2ir" else 1
    for rf in RECEPTIVE_FIELDS:
        support = _support(predictors[f"rf{rf}"], in_channels)
        c, h = 161 // 2, rf // 2
        expected = torch.zeros_like(support)
        expected[c - h:c + h + 1, c - h:c + h + 1] = True
        assert torch.equal(support, expected), rf  # the whole square, and nothing outside it
    # the default generator's centre pixel depends on the frame's far corners too
    full = _support(predictors["full"], in_channels, size=160)
    assert full[0, 0] and full[-1, -1] and full.float().mean() > 0.99


def test_fixed_field_keeps_any_size_and_refuses_unknown_fields():
    m = FixedField(3, 1, 17)
    assert predict(m, torch.rand(2, 3, 37, 53)).shape == (2, 1, 37, 53)
    assert dilations_for(65) == (1, 1, 2, 4, 8, 16) and dilations_for(1) == ()
    with pytest.raises(ValueError, match="receptive field 7 is not one of"):
        FixedField(3, 1, 7)


def test_bootstrap_resamples_images_within_sets():
    groups = ["a"] * 5 + ["b"] * 2 + ["c"] * 9
    idx = resample_indices(groups, n_boot=300, seed=1)
    assert idx.shape == (300, 16)
    labels = np.array(groups)[idx]
    assert all((labels == g).sum(1).tolist() == [groups.count(g)] * 300 for g in "abc")  # every set keeps its size
    assert np.array_equal(idx, resample_indices(groups, n_boot=300, seed=1))
    assert len(np.unique(idx[:, 5:7])) == 2  # set b draws only from its own two images


def test_bootstrap_interval_matches_theory_for_a_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 2.0, 400)
    idx = resample_indices(["x"] * 400, n_boot=4000, seed=0)
    lo, hi = interval(values[idx].mean(1))
    half = 1.96 * values.std(ddof=1) / np.sqrt(400)
    assert lo < values.mean() < hi
    assert hi - lo == pytest.approx(2 * half, rel=0.1)
    assert interval(np.array([np.nan, np.nan])) == [None, None]


def test_pooled_statistics_equal_direct_ones_and_widen_with_image_to_image_spread():
    rng = np.random.default_rng(2)
    image = np.repeat(np.arange(12), 500)
    offset = rng.normal(0, 1, 12)[image]  # each image its own level: pixels of one image are not independent
    x = rng.random(len(image)) + offset
    y = 0.5 * x + rng.normal(0, 0.3, len(image))
    sums = moment_sums(x, y, image, 12)
    everyone = np.arange(12)[None]
    assert pooled_pearson(sums, everyone)[0] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    pred = 0.4 * x
    y2 = y[:, None]
    sse = np.bincount(image, weights=(y - pred) ** 2)
    n = np.bincount(image).astype(float)
    s, q = np.bincount(image, weights=y)[:, None], np.bincount(image, weights=y * y)[:, None]
    assert pooled_r2(sse, s, q, n, everyone)[0] == pytest.approx(r2(y2, pred), abs=1e-12)
    # images resampled, not pixels: the interval reflects 12 scenes, not 6000 pixels
    idx = resample_indices(["s"] * 12, n_boot=1000, seed=0)
    lo, hi = interval(pooled_r2(sse, s, q, n, idx))
    pixel_idx = np.random.default_rng(0).integers(0, len(y), (1000, len(y)))
    pixel_r2 = [r2(y2[i], pred[i]) for i in pixel_idx[:200]]
    assert hi - lo > 2 * (np.quantile(pixel_r2, 0.975) - np.quantile(pixel_r2, 0.025))


@pytest.fixture(scope="module")
def tiny_study(data_dir, tmp_path_factory):
    """The CLI with the ablation on M3SVD (train, val and test splits), at a tiny size."""
    out = tmp_path_factory.mktemp("rf")
    args = ["analyze", "--data", str(data_dir / "m3svd"), "--size", "48", "--pixels", "128", "--bootstrap", "200",
            "--ablation-size", "40", "--ablation-crop", "32", "--ablation-steps", "6", "--ablation-batch", "2",
            "--ablation-width", "4", "--out", str(out)]
    assert main(args) == 0
    return out, args


def test_ablation_writes_curve_intervals_and_choices_on_val(tiny_study):
    out, _ = tiny_study
    result = json.loads((out / "analysis.json").read_text())
    ablation = json.loads((out / "ablation.json").read_text())
    rf = result["receptive_field"]
    assert rf["val_sets"] == ["m3svd"] and rf["n_val"] == 20 and rf["n_test"] == 20 and not rf["reused"]
    for direction in ("vis2ir", "ir2vis"):
        preds = rf["directions"][direction]["predictors"]
        assert [p["receptive_field"] for p in preds.values()] == [1, 5, 17, 65, None]
        for name, p in preds.items():
            for metric in ("r2", "psnr", "ssim", "gradient_correlation"):
                m = p["all"][metric]
                assert m["ci"][0] <= m["mean"] <= m["ci"][1], (name, metric)
            history = ablation["directions"][direction][name]["val_l1"]
            assert p["chosen_step"] == int(min(history, key=history.get))  # the lowest val L1 is kept
            images = ablation["directions"][direction][name]["images"]
            assert len(images) == 20 and all(np.isfinite(im["psnr"]) for im in images)
        assert len(rf["directions"][direction]["differences"]) == 5
    report = (out / "analysis.md").read_text()
    assert "## Receptive field: how much does context predict the other modality?" in report
    assert sum(line.startswith("Receptive field, ") for line in result["conclusions"]) == 2
    figure = Image.open(out / "receptive_field.png")
    assert figure.width > 800 and figure.height > 300


def test_ablation_is_reused_only_for_the_same_settings_and_retrains_identically(tiny_study):
    out, args = tiny_study
    path = out / "ablation.json"
    before = json.loads(path.read_text())
    assert main(args) == 0
    assert json.loads((out / "analysis.json").read_text())["receptive_field"]["reused"]
    # a stored run of other settings is not reused: trained again, from the same seed, to the same scores
    path.write_text(json.dumps({**before, "protocol": {**before["protocol"], "steps": 7}}))
    assert main(args) == 0
    assert not json.loads((out / "analysis.json").read_text())["receptive_field"]["reused"]
    rerun = json.loads(path.read_text())
    assert rerun["protocol"] == before["protocol"]
    for direction, results in before["directions"].items():
        for name, r in results.items():
            assert [im["psnr"] for im in rerun["directions"][direction][name]["images"]] == \
                pytest.approx([im["psnr"] for im in r["images"]], abs=1e-4)


@pytest.fixture(scope="module")
def grayscale_root(data_dir, tmp_path_factory) -> Path:
    """TNO pairs whose visible images are all grayscale, with a test split."""
    root = tmp_path_factory.mktemp("gray")
    src = data_dir / "tno"
    gray = []
    for path in sorted((src / "visible" / "train").iterdir()):
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
        if (rgb.max(2) - rgb.min(2)).max() <= 8:
            gray.append(path.name)
        if len(gray) == 8:
            break
    copy_pairs(src, root, gray[:5], "train")
    for modality in ("infrared", "visible"):  # TNO has no test split: three of its train pairs stand for one
        (root / modality / "test").mkdir(parents=True)
        for name in gray[5:]:
            shutil.copy(src / modality / "train" / name, root / modality / "test" / name)
    return root


def test_a_set_of_grayscale_visible_images_gets_a_report(grayscale_root, tmp_path):
    assert main(["analyze", "--data", str(grayscale_root), "--size", "64", "--pixels", "256", "--no-ablation",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "analysis.json").read_text())
    o = result["overall"]
    assert o["n_grayscale_visible_images"] == o["n_images"] == 5
    assert o["association"]["redness"]["pearson"] is None and o["association"]["redness"]["note"]
    assert o["association"]["luminance"]["pearson_ci"][0] <= o["association"]["luminance"]["pearson"]
    assert o["rules"]["n_test_images"] == 3
    assert not any(line.startswith("Red shades") for line in result["conclusions"])
    assert "Grayscale visible images" in (tmp_path / "analysis.md").read_text()


def test_sentences_quote_the_intervals(grayscale_root):
    result, _ = analyze([grayscale_root], short_side=64, pixels_per_image=256, progress=False, n_boot=300)
    lum = result["overall"]["association"]["luminance"]
    bright = result["conclusions"][0]
    assert f"95% CI {lum['pearson_ci'][0]:.2f} to {lum['pearson_ci'][1]:.2f}" in bright
