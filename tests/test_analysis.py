"""The infrared/visible correlation study on real pairs: the report's structure, its numbers against
independent computations on the same pixels, and a synthetic set with a known answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from irvis.__main__ import main
from irvis.analysis import (LookupRule, analyze, collect_pixels, informational_correlation, mutual_information,
                            pearson, r2, ranks, spearman)
from irvis.data import load_pairs

SETS = ("msrs", "m3fd")
SIZE, PIXELS, SEED = 96, 512, 3


@pytest.fixture(scope="module")
def roots(data_dir) -> list[str]:
    return [str(data_dir / s) for s in SETS]


@pytest.fixture(scope="module")
def study(roots, tmp_path_factory) -> tuple[Path, dict]:
    """The study as a user runs it: the CLI on two real sets, small."""
    out = tmp_path_factory.mktemp("study")
    rc = main(["analyze", "--data", *roots, "--size", str(SIZE), "--pixels", str(PIXELS), "--seed", str(SEED),
               "--no-ablation", "--out", str(out)])
    assert rc == 0
    return out, json.loads((out / "analysis.json").read_text())


@pytest.fixture(scope="module")
def pixels(roots):
    """The same pixels the study drew, drawn again through the public sampling function."""
    return {split: collect_pixels(load_pairs(roots, split), SIZE, PIXELS, SEED, progress=False)
            for split in ("train", "test")}


def _count(root: str, split: str) -> int:
    return len(list((Path(root) / "infrared" / split).iterdir()))


def test_report_has_every_part_per_set(study, roots):
    out, result = study
    assert set(result["per_set"]) == set(SETS)
    for root, name in zip(roots, SETS):
        group = result["per_set"][name]
        assert group["n_images"] == _count(root, "train")
        assert group["n_pixels"] == PIXELS * group["n_images"]
        assert group["rules"]["n_test_images"] == _count(root, "test")
        assert group["n_grayscale_visible_images"] == 0
    overall = result["overall"]
    assert overall["n_images"] == sum(_count(r, "train") for r in roots)
    for f, a in overall["association"].items():
        assert -1 <= a["pearson"] <= 1 and -1 <= a["spearman"] <= 1 and a["mi_bits"] >= 0, f
    assert set(overall["rules"]["vis2ir"]) >= {"bright_is_hot", "linear_rgb", "lookup_luminance_redness",
                                               "lookup_rgb", "oracle_affine_per_image"}
    assert set(overall["rules"]["ir2vis"]) >= {"linear", "lookup_infrared", "oracle_affine_per_image"}
    assert 0 <= overall["structure"]["visible_edges_near_infrared_edges"]["rate"] <= 1
    assert len(result["images"]) == overall["n_images"]

    report = (out / "analysis.md").read_text()
    assert "## Conclusions" in report and "## Structure: gradients and edges" in report
    assert all(c in report for c in result["conclusions"])
    assert f"python -m irvis analyze --data {' '.join(roots)} --split train --test-split test --size {SIZE}" in report
    figure = Image.open(out / "hist2d.png")
    assert figure.height > 3 * 150  # all sets + one row per set
    assert Image.open(out / "per_image_r.png").width > 400


def test_numbers_match_independent_computations(study, pixels):
    _, result = study
    train, test = pixels["train"], pixels["test"]
    a = result["overall"]["association"]
    ir = train["infrared"].astype(np.float64)
    for f in ("luminance", "redness", "gradient"):
        x = train[f].astype(np.float64)
        assert a[f]["pearson"] == pytest.approx(np.corrcoef(ir, x)[0, 1], abs=1e-4), f
        assert a[f]["spearman"] == pytest.approx(stats.spearmanr(ir, x).statistic, abs=1e-4), f
    msrs = train.of_set("msrs")
    assert result["per_set"]["msrs"]["association"]["luminance"]["pearson"] == pytest.approx(
        np.corrcoef(msrs["infrared"], msrs["luminance"])[0, 1], abs=1e-4)
    # the global linear RGB rule, fitted on train and scored on test with numpy's least squares
    rgb = lambda px: np.c_[px["red"], px["green"], px["blue"], np.ones(len(px))].astype(np.float64)  # noqa: E731
    coef = np.linalg.lstsq(rgb(train), train["infrared"].astype(np.float64), rcond=None)[0]
    y = test["infrared"].astype(np.float64)
    expected = 1 - ((y - rgb(test) @ coef) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert result["overall"]["rules"]["vis2ir"]["linear_rgb"]["r2"] == pytest.approx(expected, abs=1e-4)
    # one image's own correlation
    first = result["images"][0]
    mask = train.image == 0
    assert train.images[0] == (first["set"], first["name"])
    own = np.corrcoef(train["infrared"][mask], train["luminance"][mask])[0, 1]
    assert first["r_luminance"] == pytest.approx(own, abs=1e-4)
    g = result["overall"]["structure"]["gradient"]
    assert g["pearson"] == pytest.approx(np.corrcoef(train["gradient"], train["ir_gradient"])[0, 1], abs=1e-4)


def test_the_same_seed_gives_the_same_study(study, roots):
    _, result = study
    again, _ = analyze(roots, short_side=SIZE, pixels_per_image=PIXELS, seed=SEED, progress=False)
    assert json.loads(json.dumps(again)) == result
    other, _ = analyze(roots, short_side=SIZE, pixels_per_image=PIXELS, seed=SEED + 1, progress=False)
    assert other["overall"]["association"] != result["overall"]["association"]


@pytest.fixture(scope="module")
def luminance_as_infrared(data_dir, tmp_path_factory) -> Path:
    """Real visible images whose 'infrared' is exactly their own luminance (PNG, lossless)."""
    root = tmp_path_factory.mktemp("ir_is_luminance")
    names = sorted((data_dir / "msrs" / "visible" / "train").iterdir())[:6]
    for i, src in enumerate(names):
        split = "train" if i < 4 else "test"
        vis = Image.open(src).convert("RGB").resize((160, 120), Image.BILINEAR)
        for modality, img in (("visible", vis), ("infrared", vis.convert("L"))):
            (root / modality / split).mkdir(parents=True, exist_ok=True)
            img.save(root / modality / split / f"{src.stem}.png")
    return root


def test_known_answer_infrared_equal_to_luminance(luminance_as_infrared):
    result, _ = analyze([luminance_as_infrared], short_side=None, pixels_per_image=2048, seed=0, progress=False)
    o = result["overall"]
    assert o["association"]["luminance"]["pearson"] > 0.999
    assert o["association"]["luminance"]["spearman"] > 0.999
    assert o["association"]["luminance"]["mi_bits"] > 3.5  # of at most log2(32) = 5
    rules = o["rules"]["vis2ir"]
    for name in ("bright_is_hot", "linear_rgb", "oracle_affine_per_image"):
        assert rules[name]["r2"] > 0.999, name
        assert rules[name]["r2_within_images_median"] > 0.999, name
    assert o["structure"]["visible_edges_near_infrared_edges"]["rate"] > 0.99
    assert o["per_image_r"]["luminance"]["fraction_positive"] == 1.0
    # the conclusions follow the numbers: here a simple rule does exist
    assert result["conclusions"][-1].startswith("Verdict: a per-pixel rule explains at least 25%")


def test_statistics_known_answers():
    rng = np.random.default_rng(0)
    x, y = rng.random(100_000), rng.random(100_000)
    assert mutual_information(x, x) == pytest.approx(5.0, abs=1e-6)  # log2(32 bins)
    assert mutual_information(x, np.exp(3 * x)) == pytest.approx(5.0, abs=1e-6)  # invariant to monotone maps
    assert mutual_information(x, y) < 0.01  # independent: only the estimator's bias remains
    assert informational_correlation(0.0) == 0.0
    assert pearson(x, np.full_like(x, 0.5)) is None and spearman(x, np.zeros_like(x)) is None
    ties = rng.integers(0, 20, 5000).astype(np.float32)
    assert np.array_equal(ranks(ties), stats.rankdata(ties))
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    steps = np.floor(x * 4) / 4  # a step function of x is recovered exactly by a fine enough lookup
    rule = LookupRule([8], quantile=False).fit(x[:, None], steps)
    assert np.allclose(rule.predict(x[:, None])[:, 0], steps)
    assert r2(steps, steps) == 1.0 and r2(steps, np.full_like(steps, steps.mean())) == pytest.approx(0.0)


def test_a_set_without_a_test_split_gets_no_rules(data_dir, tmp_path):
    rc = main(["analyze", "--data", str(data_dir / "vifb"), "--size", "64", "--pixels", "256", "--out", str(tmp_path)])
    assert rc == 0
    result = json.loads((tmp_path / "analysis.json").read_text())
    assert result["overall"]["rules"] is None and "no held-out test pairs" in result["overall"]["rules_note"]
    assert "Rules were not scored" in (tmp_path / "analysis.md").read_text()


def test_bad_input_is_one_clear_error(tmp_path, data_dir, capsys):
    (tmp_path / "photos").mkdir()
    assert main(["analyze", "--data", str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 2
    assert "not in LLVIP layout" in capsys.readouterr().err
    assert main(["analyze", "--data", str(data_dir / "msrs"), "--pixels", "4", "--out", str(tmp_path / "out")]) == 2
    assert "pixels_per_image must be at least 16" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_study_gradient_is_the_metrics_sobel_magnitude_per_pixel(roots):
    """One Sobel magnitude in irvis: the study's (float64, per pixel) is the metrics' divided by Sobel's weight 8."""
    import torch

    from irvis.analysis.features import _gradient
    from irvis.metrics import gradient_magnitude

    pair = load_pairs(roots, "test")[0]
    gray = np.asarray(Image.open(pair.infrared).convert("L").resize((160, 128)), dtype=np.float64) / 255
    metric = gradient_magnitude(torch.from_numpy(gray)[None, None])[0, 0].double().numpy()
    np.testing.assert_allclose(_gradient(gray), metric / 8, atol=1e-6)
