"""LPIPS and FID, computed only from backbone weights already on disk: nothing is ever downloaded.

- LPIPS (Zhang et al. 2018, v0.1): torchmetrics' AlexNet variant. Its linear heads ship inside
  torchmetrics; the AlexNet backbone is torchvision's ImageNet checkpoint, read from
  `torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth` (TORCH_HOME moves that folder).
- FID (Heusel et al. 2017): torchmetrics' Inception-v3 feature extractor (torch-fidelity's port of
  the TF network, 2048-d pool features, antialiased resize to 299x299). The weights file is named by the
  IRVIS_FID_WEIGHTS environment variable, else looked for in the same checkpoints folder under its
  released name. FID is one number per *set* of images; with fewer images than feature dimensions
  (2048) its covariance estimate is rank-deficient, so small-n FIDs are biased upwards and only
  comparable at equal n.

Inputs are float images in [0, 1]; one-channel (infrared) images are replicated to three channels,
as both networks were trained on RGB. Each weights file is first opened with `weights_only=True`,
so a file that holds anything but tensors is refused before a library unpickles it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from urllib.parse import urlparse

import torch

FID_WEIGHTS_ENV = "IRVIS_FID_WEIGHTS"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
FID_FEATURES = 2048
LPIPS_MIN_SIDE = 32  # AlexNet's five pooling stages need at least this many pixels a side

PROTOCOL = {
    "lpips": "AlexNet LPIPS v0.1 (torchmetrics), inputs in [0,1], infrared replicated to 3 channels, per image, "
             "then the mean over images; lower is better",
    "fid": "Inception-v3 pool3 (2048-d, torch-fidelity weights) via torchmetrics, each image resized to 299x299, "
           "infrared replicated to 3 channels; one number per method over all pairs, lower is better; "
           "unreliable for small n (biased upwards below ~2048 images): compare only at equal n",
}


class PerceptualUnavailable(ValueError):
    """A perceptual metric that cannot run here; the message says what is missing and how to fix it.
    A ValueError so the CLI reports it as one error line."""


def _checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def alexnet_url() -> str:
    from torchvision.models import AlexNet_Weights

    return AlexNet_Weights.IMAGENET1K_V1.url


def lpips_weights_path() -> Path:
    """Exactly where torchvision looks before it would download (so our check and its load agree)."""
    return _checkpoints() / Path(urlparse(alexnet_url()).path).name


def fid_weights_path() -> Path:
    env = os.environ.get(FID_WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    return _checkpoints() / Path(urlparse(INCEPTION_URL).path).name


def _where(name: str) -> tuple[Path, str, str, str]:
    """(path, what, url, how to place it) for 'lpips' or 'fid'."""
    if name == "lpips":
        return (lpips_weights_path(), "LPIPS AlexNet backbone", alexnet_url(),
                "the torch hub checkpoints folder; set TORCH_HOME to use another one")
    return fid_weights_path(), "FID Inception-v3", INCEPTION_URL, f"or point {FID_WEIGHTS_ENV} at the file"


def check_weights(name: str) -> Path:
    """The metric's weights file, verified to hold only tensors, or PerceptualUnavailable saying
    which file is missing, where it goes and where to get it."""
    path, what, url, where = _where(name)
    if not path.is_file():
        raise PerceptualUnavailable(f"{what} weights not found: {path} is missing. Download {url} and put it "
                                    f"there ({where}); nothing is downloaded automatically")
    try:
        # no mmap: torchvision's AlexNet file predates the zip format that mmap needs
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling failure means: not a plain tensor file
        first = str(e).splitlines()[0] if str(e) else ""
        raise PerceptualUnavailable(f"{path} is not a plain PyTorch weights file ({type(e).__name__}: {first}); "
                                    f"replace it with {url}") from None
    if not isinstance(state, dict) or not state:
        raise PerceptualUnavailable(f"{path} holds no state dict; replace it with {url}")
    return path


def _rgb(x: torch.Tensor) -> torch.Tensor:
    x = x[None] if x.dim() == 3 else x
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"expected 1- or 3-channel images, got {x.shape[1]} channels")
    return x.float().clamp(0, 1)


class LPIPS:
    """Per-image LPIPS distance between batches of [0, 1] images (0 for identical images)."""

    def __init__(self, device: str | torch.device = "cpu"):
        # torchvision reads the file itself from this same path, so once it is there no download happens
        path = check_weights("lpips")
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        try:
            self.metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="none", normalize=True)
        except RuntimeError as e:  # strict load of a file that is not AlexNet
            raise PerceptualUnavailable(f"{path} does not hold torchvision's AlexNet weights "
                                        f"({str(e).splitlines()[0]})") from None
        self.device = torch.device(device)
        self.metric = self.metric.to(self.device)

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        a, b = _rgb(pred), _rgb(target)
        if a.shape != b.shape:
            raise ValueError(f"LPIPS: prediction {tuple(a.shape)} and truth {tuple(b.shape)} differ in shape")
        if min(a.shape[-2:]) < LPIPS_MIN_SIDE:
            raise ValueError(f"LPIPS needs images at least {LPIPS_MIN_SIDE} pixels on a side, got {tuple(a.shape[-2:])}")
        self.metric.reset()
        self.metric.update(a.to(self.device), b.to(self.device))
        return self.metric.compute().reshape(-1).cpu()


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two sets of features (N, D), the same quantity as torchmetrics'
    ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2), computed exactly through the centred
    feature matrices: the nonzero eigenvalues of S_r S_f are the squared singular values of
    A B^T / sqrt((n_r - 1)(n_f - 1)), so the trace of the root is that matrix's nuclear norm. That is an
    n_r x n_f problem instead of an eigen-decomposition of a 2048 x 2048 non-symmetric matrix
    (a minute on a laptop CPU for every method scored)."""
    a, b = real.double(), fake.double()
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least 2 images in each set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    a, b = a - mu_a, b - mu_b
    scale = ((len(a) - 1) * (len(b) - 1)) ** 0.5
    trace_root = torch.linalg.svdvals(a @ b.T / scale).sum()
    trace_a = a.square().sum() / (len(a) - 1)
    trace_b = b.square().sum() / (len(b) - 1)
    fid = float((mu_a - mu_b).square().sum() + trace_a + trace_b - 2 * trace_root)
    return max(fid, 0.0)  # identical sets give a rounding-level negative; the distance is >= 0


class FID:
    """FID of several methods' outputs against one set of real images.

    add_real(images) once per batch of truths, add(method, images) per method; compute() gives
    {method: FID}. Features are kept (2048 floats an image), so any number of methods costs one
    Inception pass per image."""

    def __init__(self, device: str | torch.device = "cpu"):
        if importlib.util.find_spec("torch_fidelity") is None:  # torchmetrics' Inception lives there
            raise PerceptualUnavailable("FID needs the torch-fidelity package: pip install torch-fidelity")
        path = check_weights("fid")
        from torchmetrics.image.fid import NoTrainInceptionV3

        try:
            self.extractor = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(FID_FEATURES)],
                                                feature_extractor_weights_path=str(path))
        except RuntimeError as e:
            raise PerceptualUnavailable(f"{path} does not hold torch-fidelity's Inception weights "
                                        f"({str(e).splitlines()[0]}); replace it with {INCEPTION_URL}") from None
        self.device = torch.device(device)
        self.extractor = self.extractor.to(self.device)
        self.real: list[torch.Tensor] = []
        self.fake: dict[str, list[torch.Tensor]] = {}

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 2048) Inception features of [0, 1] images; the network wants uint8 (it rescales itself)."""
        x = (_rgb(images) * 255).round().to(torch.uint8).to(self.device)
        return self.extractor(x).reshape(x.shape[0], -1).double().cpu()

    def add_real(self, images: torch.Tensor) -> None:
        self.real.append(self.features(images))

    def add(self, method: str, images: torch.Tensor) -> None:
        self.fake.setdefault(method, []).append(self.features(images))

    def compute(self) -> dict[str, float]:
        real = torch.cat(self.real) if self.real else torch.zeros(0, FID_FEATURES)
        return {method: frechet_distance(real, torch.cat(feats)) for method, feats in self.fake.items()}


def open_metrics(lpips: bool | None = None, fid: bool | None = None,
                 device: str | torch.device = "cpu") -> tuple[dict, dict[str, str]]:
    """Build the requested metrics: True = required (PerceptualUnavailable if it cannot run),
    None = when its weights are present, False = off. Returns ({name: metric}, {name: status}),
    status being 'ok', 'off' or 'unavailable: <reason>'."""
    made, status = {}, {}
    for name, want, cls in (("lpips", lpips, LPIPS), ("fid", fid, FID)):
        if want is False:
            status[name] = "off"
            continue
        try:
            made[name] = cls(device)
            status[name] = "ok"
        except PerceptualUnavailable as e:
            if want:
                raise
            status[name] = f"unavailable: {e}"
    return made, status
