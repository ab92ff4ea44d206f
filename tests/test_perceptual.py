"""LPIPS and FID from weights on disk: computed when the files are there, a clear 'unavailable' with the
missing path and its source when not, and never a download.

The backbones here are randomly initialised AlexNet / Inception-v3 saved under the exact file names
the loaders look for: they exercise the real loading and scoring code, not the published numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from irvis.__main__ import main
from irvis.data import load_pair, load_pairs
from irvis.evaluate import evaluate, markdown_report
from irvis.perceptual import (FID, FID_WEIGHTS_ENV, LPIPS, PerceptualUnavailable, fid_weights_path, frechet_distance,
                              lpips_weights_path, open_metrics)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def _random_inception_state(scratch: Path) -> dict:
    """torch-fidelity's Inception-v3 with random weights. Its constructor always loads a file, so it
    is handed an empty one with loading switched off; He-normal convolutions keep activations at a
    usable scale through 90-odd layers (PyTorch's default init shrinks them to ~1e-8)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    mp = pytest.MonkeyPatch()
    empty = scratch / "empty.pth"
    torch.save({}, empty)
    try:
        mp.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        torch.manual_seed(0)
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(empty))
    finally:
        mp.undo()
        empty.unlink()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return net.state_dict()


@pytest.fixture(scope="module")
def weights_home(tmp_path_factory) -> Path:
    """A TORCH_HOME holding both backbones under their released names."""
    import torchvision

    home = tmp_path_factory.mktemp("torch_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(home))
    try:
        checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
        checkpoints.mkdir(parents=True)
        torch.manual_seed(0)
        # the published file predates torch's zip format: save it the same (legacy) way
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), checkpoints / ALEXNET_FILE,
                   _use_new_zipfile_serialization=False)
        torch.save(_random_inception_state(home), checkpoints / INCEPTION_FILE)
    finally:
        mp.undo()
    return home


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any download attempt fails the test (torchvision and torch-fidelity both go through this)."""
    def refuse(url, *args, **kwargs):
        raise AssertionError(f"a download was attempted: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)


@pytest.fixture
def with_weights(weights_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(weights_home))
    return weights_home


@pytest.fixture
def without_weights(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    return tmp_path


@pytest.fixture(scope="module")
def msrs_pairs(data_dir):
    return load_pairs([data_dir / "msrs"], "test")


def test_missing_weights_are_reported_with_path_and_source(without_weights):
    metrics, status = open_metrics()
    assert metrics == {}
    assert status["lpips"].startswith("unavailable: ") and str(lpips_weights_path()) in status["lpips"]
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in status["lpips"]
    assert status["fid"].startswith("unavailable: ") and str(fid_weights_path()) in status["fid"]
    assert INCEPTION_FILE in status["fid"] and FID_WEIGHTS_ENV in status["fid"]
    with pytest.raises(PerceptualUnavailable, match="LPIPS AlexNet backbone weights not found"):
        open_metrics(lpips=True, fid=False)
    assert open_metrics(lpips=False, fid=False) == ({}, {"lpips": "off", "fid": "off"})


def test_fid_weights_env_points_at_a_file_anywhere(with_weights, tmp_path, monkeypatch):
    """FID's Inception holds the weights of the file the variable names, not those of the usual place."""
    state = torch.load(with_weights / "hub" / "checkpoints" / INCEPTION_FILE, weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 1  # weights the usual file does not hold
    elsewhere = tmp_path / "my-inception.pth"
    torch.save(state, elsewhere)
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(elsewhere))
    assert fid_weights_path() == elsewhere
    assert torch.equal(FID().extractor.state_dict()[name], state[name])
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(PerceptualUnavailable, match="nope.pth is missing"):
        FID()


class Payload:
    """Stands for anything that is not a tensor: weights_only loading must refuse it."""


def test_files_that_are_not_the_right_weights_are_refused(with_weights, tmp_path, monkeypatch):
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": Payload()}, pickled)
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(pickled))
    with pytest.raises(PerceptualUnavailable, match="not a plain PyTorch weights file"):
        FID()
    # real tensors, wrong network: the Inception file where AlexNet belongs
    home = tmp_path / "home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (home / "hub" / "checkpoints" / ALEXNET_FILE).write_bytes(
        (with_weights / "hub" / "checkpoints" / INCEPTION_FILE).read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(home))
    with pytest.raises(PerceptualUnavailable, match="does not hold torchvision's AlexNet weights"):
        LPIPS()


def test_lpips_on_real_pairs(with_weights, msrs_pairs):
    lpips = LPIPS()
    ir, vis = load_pair(msrs_pairs[0], short_side=96)
    assert lpips(vis, vis).abs().max() < 1e-6
    assert lpips(ir, ir).abs().max() < 1e-6
    # one-channel infrared is scored as its three-channel replica
    assert torch.allclose(lpips(ir, vis), lpips(ir.expand(3, -1, -1), vis))
    g = torch.Generator().manual_seed(0)
    slight = (vis + 0.02 * torch.randn(vis.shape, generator=g)).clamp(0, 1)
    heavy = (vis + 0.3 * torch.randn(vis.shape, generator=g)).clamp(0, 1)
    assert 0 < lpips(slight, vis) < lpips(heavy, vis)
    batch = torch.stack([vis, slight, heavy])
    assert lpips(batch, vis.expand(3, -1, -1, -1)).shape == (3,)
    with pytest.raises(ValueError, match="at least 32 pixels"):
        lpips(vis[:, :16, :16], vis[:, :16, :16])


def test_frechet_distance_equals_torchmetrics_fid():
    """Our nuclear-norm form against torchmetrics' own FID on the same features."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):  # hands torchmetrics the features as they are
        num_features = 64

        def forward(self, x):
            return x

    g = torch.Generator().manual_seed(0)
    real = torch.randn(40, 64, generator=g, dtype=torch.float64)
    fake = 0.7 * torch.randn(25, 64, generator=g, dtype=torch.float64) + 0.3
    reference = FrechetInceptionDistance(feature=Features())
    reference.update(real, real=True)
    reference.update(fake, real=False)
    assert frechet_distance(real, fake) == pytest.approx(float(reference.compute()), rel=1e-6)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(real, fake[:1])


def test_fid_on_real_images(with_weights, msrs_pairs):
    fid = FID()
    irs = [load_pair(p, short_side=64)[0] for p in msrs_pairs[:2]]
    for ir in irs:
        fid.add_real(ir)
        fid.add("identical", ir)
        fid.add("inverted", 1 - ir)
    scores = fid.compute()
    assert scores["identical"] == pytest.approx(0.0, abs=1e-6)
    assert scores["inverted"] > 1e-3


def test_evaluate_reports_lpips_and_fid_when_weights_are_present(with_weights, msrs_pairs):
    result, _ = evaluate(None, msrs_pairs[:2], direction="vis2ir", short_side=64, progress=False, grid_rows=0)
    assert result["perceptual"] == {"lpips": "ok", "fid": "ok"}
    methods = {**result["baselines"], **result["oracles"]}
    for name, m in methods.items():
        assert m["lpips"] >= 0 and m["fid"] >= 0, name
    assert "lpips" in result["pairs"][0]["baseline:luminance"]
    assert "lpips" in result["per_set"]["msrs"]["baselines"]["luminance"]
    assert "fid" not in result["per_set"]["msrs"]["baselines"]["luminance"]  # set-level, overall only
    assert "unreliable for small n" in result["protocol"]["fid"]
    report = markdown_report(result)
    assert "| method | PSNR (dB) | SSIM | sharpness (1 = truth's) | gradient corr. | VIF | LPIPS | FID (set) |" in report
    json.dumps(result, allow_nan=False)


def test_evaluate_without_weights_stays_plain_and_says_why(without_weights, msrs_pairs):
    result, _ = evaluate(None, msrs_pairs[:2], direction="ir2vis", short_side=64, progress=False, grid_rows=0)
    assert result["perceptual"]["lpips"].startswith("unavailable: ")
    assert result["perceptual"]["fid"].startswith("unavailable: ")
    assert set(result["baselines"]["infrared_as_rgb"]) == {"psnr", "ssim", "sharpness", "gradient_correlation", "vif"}
    report = markdown_report(result)
    assert "LPIPS unavailable: " in report and "| method | PSNR (dB) | SSIM |" in report


def test_cli_requiring_missing_weights_is_one_error_line(without_weights, data_dir, tmp_path, capsys):
    rc = main(["evaluate", "--direction", "vis2ir", "--data", str(data_dir / "msrs"), "--size", "64",
               "--json", str(tmp_path / "out.json"), "--lpips", "--no-fid"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: LPIPS AlexNet backbone weights not found") and "Traceback" not in err
    assert not (tmp_path / "out.json").exists()
