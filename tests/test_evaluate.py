"""Evaluation JSON, report and grid; baselines' numbers against an independent computation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from irvis.evaluate import evaluate
from irvis.data import load_pairs


def _gaussian_window(size=11, sigma=1.5):
    x = np.arange(size) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img, g):
    rows = np.apply_along_axis(lambda r: np.convolve(r, g, mode="valid"), 1, img)
    return np.apply_along_axis(lambda c: np.convolve(c, g, mode="valid"), 0, rows)


def ssim_numpy(a, b):
    """Wang et al. 2004 SSIM on one channel in [0, 1], Gaussian 11/1.5, valid region only."""
    g = _gaussian_window()
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean()


def psnr_numpy(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


@pytest.fixture(scope="module")
def msrs_full(data_dir):
    pairs = load_pairs([data_dir / "msrs"], "test")
    result, _ = evaluate(None, pairs, direction="vis2ir", short_side=None, progress=False)
    return pairs, result


def test_vis2ir_baselines_match_an_independent_computation(msrs_full):
    pairs, result = msrs_full
    psnrs, ssims, inv_psnrs = [], [], []
    for pair in pairs:
        ir = np.asarray(Image.open(pair.infrared).convert("L"), dtype=np.float64) / 255
        rgb = np.asarray(Image.open(pair.visible).convert("RGB"), dtype=np.float64) / 255
        lum = rgb @ np.array([0.299, 0.587, 0.114])
        psnrs.append(psnr_numpy(lum, ir))
        inv_psnrs.append(psnr_numpy(1 - lum, ir))
        ssims.append(ssim_numpy(lum, ir))
    base = result["baselines"]
    assert base["luminance"]["psnr"] == pytest.approx(np.mean(psnrs), abs=0.02)
    assert base["inverted_luminance"]["psnr"] == pytest.approx(np.mean(inv_psnrs), abs=0.02)
    assert base["luminance"]["ssim"] == pytest.approx(np.mean(ssims), abs=0.002)
    assert result["n_pairs"] == 4 and result["protocol"]["short_side"] == "native"


def test_ir2vis_baseline_replicates_infrared(data_dir):
    pairs = load_pairs([data_dir / "msrs"], "test")[:2]
    result, _ = evaluate(None, pairs, direction="ir2vis", short_side=None, progress=False)
    expected = []
    for pair in pairs:
        ir = np.asarray(Image.open(pair.infrared).convert("L"), dtype=np.float64) / 255
        rgb = np.asarray(Image.open(pair.visible).convert("RGB"), dtype=np.float64) / 255
        expected.append(psnr_numpy(np.repeat(ir[..., None], 3, axis=2), rgb))
    assert result["baselines"]["infrared_as_rgb"]["psnr"] == pytest.approx(np.mean(expected), abs=0.02)


def test_oracle_affine_is_at_least_as_good_as_any_affine_baseline(msrs_full):
    _, result = msrs_full
    oracle = result["oracles"]["affine"]["psnr"]
    assert oracle >= result["baselines"]["luminance"]["psnr"]
    assert oracle >= result["baselines"]["inverted_luminance"]["psnr"]
    assert oracle >= result["baselines"]["mid_gray"]["psnr"]


def test_evaluate_cli_writes_json_report_and_grid(generators, llvip, tmp_path):
    out = tmp_path / "eval" / "ir2vis.json"
    run = subprocess.run([sys.executable, "-m", "irvis", "evaluate", "--direction", "ir2vis", "--weights",
                          str(generators["ir2vis"]), "--data", str(llvip), "--split", "test", "--size", "64",
                          "--json", str(out)], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["direction"] == "ir2vis" and result["n_pairs"] == 12
    assert result["protocol"]["short_side"] == 64
    assert set(result["model"]) >= {"psnr", "ssim"}
    assert set(result["baselines"]) >= {"infrared_as_rgb", "inverted_infrared_as_rgb"}
    assert result["per_set"]["llvip"]["n_pairs"] == 12 and len(result["pairs"]) == 12
    report = out.with_suffix(".md").read_text()
    assert "baseline: infrared_as_rgb" in report and "**model**" in report
    assert report.count("Margin against the best baseline: ") == 2  # overall, then the one set
    grid = Image.open(out.with_suffix(".png"))
    assert grid.width > grid.height / 6 * 3  # rows of input | prediction | truth | baseline


def test_evaluate_refuses_weights_of_the_other_direction(generators, llvip, tmp_path):
    run = subprocess.run([sys.executable, "-m", "irvis", "evaluate", "--direction", "vis2ir", "--weights",
                          str(generators["ir2vis"]), "--data", str(llvip), "--json", str(tmp_path / "x.json")],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 2 and "holds a ir2vis generator" in run.stderr
