"""Structure metrics (sharpness, gradient correlation, VIF) against independent computations on real
frames, and what they say about a blur, noise and the truth itself."""

from __future__ import annotations

import contextlib
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage, signal
from torch.overrides import TorchFunctionMode

from irvis.data import load_pair, load_pairs
from irvis.metrics import gradient_correlation, score, score_image, sharpness, vif


@pytest.fixture(scope="module")
def frames(data_dir):
    """Two real LLVIP test pairs at shorter side 64: (infrared (2,1,H,W), visible (2,3,H,W))."""
    pairs = load_pairs([data_dir / "llvip"], "test")[:2]
    loaded = [load_pair(p, short_side=64) for p in pairs]
    return torch.stack([ir for ir, _ in loaded]), torch.stack([vis for _, vis in loaded])


def _luma(x: torch.Tensor) -> np.ndarray:
    x = x.double().numpy()
    return x[0] if x.shape[0] == 1 else 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]


def _gradient_numpy(img: np.ndarray) -> np.ndarray:
    return np.hypot(ndimage.sobel(img, axis=1, mode="nearest"), ndimage.sobel(img, axis=0, mode="nearest"))


def _vifp_numpy(ref: np.ndarray, dist: np.ndarray, sigma_nsq: float = 2.0) -> float:
    """Sheikh & Bovik's pixel-domain VIF, written from their MATLAB vifp_mscale (4 scales, Gaussian windows
    N = 2^(5-scale)+1 with sigma N/5, 'valid' filtering, dyadic downsampling)."""
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        x = np.arange(n) - (n - 1) / 2
        g = np.exp(-(x**2) / (2 * (n / 5.0) ** 2))
        win = np.outer(g, g) / np.outer(g, g).sum()
        filt = lambda a: signal.convolve2d(a, np.rot90(win, 2), mode="valid")  # noqa: E731 (filter2 = correlation)
        if scale > 1:
            ref, dist = filt(ref)[::2, ::2], filt(dist)[::2, ::2]
        mu1, mu2 = filt(ref), filt(dist)
        s1 = np.maximum(filt(ref * ref) - mu1**2, 0)
        s2 = np.maximum(filt(dist * dist) - mu2**2, 0)
        s12 = filt(ref * dist) - mu1 * mu2
        gain = s12 / (s1 + 1e-10)
        sv = s2 - gain * s12
        flat1 = s1 < 1e-10
        gain[flat1], sv[flat1], s1[flat1] = 0, s2[flat1], 0
        flat2 = s2 < 1e-10
        gain[flat2], sv[flat2] = 0, 0
        neg = gain < 0
        sv[neg], gain[neg] = s2[neg], 0
        sv = np.maximum(sv, 1e-10)
        num += np.log10(1 + gain**2 * s1 / (sv + sigma_nsq)).sum()
        den += np.log10(1 + s1 / sigma_nsq).sum()
    return num / den


def test_sharpness_and_gradient_correlation_match_scipy(frames):
    ir, vis = frames
    pred = vis  # a visible frame scored against the infrared truth, as the luminance baseline is
    got_sharp, got_corr = sharpness(pred, ir), gradient_correlation(pred, ir)
    for i in range(2):
        gp, gt = _gradient_numpy(_luma(pred[i])), _gradient_numpy(_luma(ir[i]))
        assert float(got_sharp[i]) == pytest.approx(gp.mean() / gt.mean(), rel=1e-4)
        assert float(got_corr[i]) == pytest.approx(np.corrcoef(gp.ravel(), gt.ravel())[0, 1], abs=1e-4)


def test_vif_matches_the_published_pixel_domain_definition(frames):
    ir, vis = frames
    got = vif(vis, ir)
    for i in range(2):
        expected = _vifp_numpy(_luma(ir[i]) * 255, _luma(vis[i]) * 255)
        assert float(got[i]) == pytest.approx(expected, rel=2e-3)


def test_structure_metrics_tell_a_blur_and_noise_from_the_truth(frames):
    ir, _ = frames
    blur = torch.nn.functional.avg_pool2d(ir, 9, stride=1, padding=4, count_include_pad=False)
    noisy = (ir + 0.2 * torch.randn(ir.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    flat = torch.full_like(ir, 0.5)
    truth, blurred, noise = score(ir, ir), score(blur, ir), score(noisy, ir)
    assert torch.allclose(truth["sharpness"], torch.ones(2)) and torch.allclose(truth["gradient_correlation"], torch.ones(2))
    assert torch.allclose(truth["vif"], torch.ones(2), atol=1e-4)
    assert (blurred["sharpness"] < 0.6).all() and (noise["sharpness"] > 1.5).all()
    assert (blurred["vif"] < 0.5).all()
    flat_scores = score(flat, ir)
    assert (flat_scores["sharpness"] == 0).all() and (flat_scores["gradient_correlation"] == 0).all()


def test_undefined_metrics_are_left_out_not_averaged_as_numbers(frames):
    ir, _ = frames
    small = ir[0, :, :20, :30]  # under VIF's 41-pixel window
    assert "vif" not in score_image(small, small)
    flat = torch.full_like(ir[0], 0.25)
    assert "sharpness" not in score_image(ir[0], flat)  # the truth has no edges to compare with


def test_ssim_refuses_a_too_small_image_naming_its_size_as_width_x_height():
    from irvis.metrics import ssim

    with pytest.raises(ValueError, match=r"got 7x2 \(width x height\)"):
        ssim(torch.rand(1, 2, 7), torch.rand(1, 2, 7))


@pytest.mark.parametrize("direction", ["ir2vis", "vis2ir"])
def test_fast_scores_equal_the_reference_implementation_on_real_test_pairs(data_dir, direction):
    """The separable SSIM and VIF, the shared truth statistics and the sliced Sobel give torchmetrics' numbers
    (irvis.reference_metrics, as scores were computed before) for every method a report scores: within 1e-4."""
    from irvis import reference_metrics
    from irvis.directions import get_direction
    from irvis.metrics import Truth, method_predictions

    d = get_direction(direction)
    pairs = load_pairs([data_dir / "llvip"], "test")
    cases = [d.arrange(*load_pair(p, short_side=256)) for p in pairs[:3]]
    clipped = cases[0][1].clone()
    clipped[:, :100, :120] = 0  # a clipped, flat region, where VIF's masks decide
    source, truth = d.arrange(*load_pair(pairs[3], short_side=64))
    cases += [(cases[0][0], clipped), (source[:, 3:48, 5:66], truth[:, 3:48, 5:66]),  # odd sizes
              (source[:, :9, :12], truth[:, :9, :12])]  # under SSIM's 11-pixel window and VIF's 41
    for source, truth in cases:
        blurred = torch.nn.functional.avg_pool2d(truth[None], 5, stride=1, padding=2, count_include_pad=False)[0]
        methods = {"blurred truth": blurred, **method_predictions(direction, source, truth)}
        shared = Truth(truth)
        for name, pred in methods.items():
            fast, ref = score_image(pred, shared), reference_metrics.score_image(pred, truth)
            assert fast.keys() == ref.keys(), name
            for metric, value in ref.items():
                assert fast[metric] == pytest.approx(value, abs=1e-4), (tuple(truth.shape), name, metric)


class FactoryCalls(TorchFunctionMode):
    """Tensors (not 0-d scalars, which CUDA ops accept from the CPU) that the library or the trainer makes with no
    device named: they land on the CPU whatever device the images are on."""
    FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full, torch.tensor, torch.arange, torch.linspace}

    def __init__(self):
        super().__init__()
        self.stray: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in self.FACTORIES and "device" not in kwargs and getattr(out, "ndim", 0) > 0:
            caller = inspect.currentframe().f_back  # the Python line that called the factory
            filename = caller.f_code.co_filename
            if "/irvis/" in filename or "/train/" in filename:
                self.stray.append(f"{func.__name__} at {Path(filename).name}:{caller.f_lineno}")
        return out


@pytest.mark.parametrize("direction", ["vis2ir", "ir2vis"])
def test_scores_baselines_and_oracle_make_their_tensors_on_the_images_device(frames, direction):
    """Validation on a GPU scores on the GPU, where a tensor made on the default device (the CPU) stops training
    at its first evaluation. Every tensor the metrics, baselines and oracle make must follow their inputs."""
    from irvis.metrics import BASELINES, oracle_affine

    ir, vis = frames
    source, target = (vis, ir) if direction == "vis2ir" else (ir, vis)
    with FactoryCalls() as calls:
        guesses = [g(source) for g in BASELINES[direction].values()] + [oracle_affine(source, target)]
        for g in guesses:
            score(g, target)
        score(guesses[0][..., :32, :32], target[..., :32, :32])  # under VIF's 41 pixels: its NaN path
    assert calls.stray == []


def test_training_losses_validation_and_translation_make_their_tensors_on_the_images_device(frames):
    """The same for what a GPU run does every step and every validation: the losses, a validation pass of an
    irvis-lite0 generator whose level branch reads the whole frame (baselines too), and the Translator."""
    from irvis.nets import build_generator
    from irvis.translate import Translator
    from train import losses, validation

    ir, vis = frames
    generator = build_generator("vis2ir", "irvis-lite0", level_view="frame")
    translator = Translator.from_pretrained(Path(__file__).parents[1] / "weights" / "vis2ir", device="cpu")
    with FactoryCalls() as calls:
        for loss in losses.LOSSES.values():  # every registered loss
            loss.function(vis[:, :1], ir)
        batches = [{"source": vis, "target": ir, "index": torch.arange(len(vis))}]
        validation.score_batches(generator, batches, "vis2ir", contextlib.nullcontext, lambda t: t, True)
        translator.translate_tensor(vis)
    assert calls.stray == []
