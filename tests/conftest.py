"""Shared fixtures: the real sample data beside the project, and real (randomly initialised) generators."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
LLVIP = DATA / "llvip"


def pytest_configure(config):
    if not LLVIP.is_dir():
        raise pytest.UsageError(f"the sample data is missing: expected LLVIP-layout sets in {DATA}")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def llvip() -> Path:
    return LLVIP


@pytest.fixture(scope="session")
def generators(tmp_path_factory) -> dict[str, Path]:
    """A saved default generator per direction (random weights: for wiring, not quality)."""
    import torch

    from irvis.nets import build_generator, save_generator

    root = tmp_path_factory.mktemp("generators")
    torch.manual_seed(0)
    return {d: save_generator(build_generator(d), root / d) for d in ("ir2vis", "vis2ir")}


def copy_pairs(src_root: Path, dst_root: Path, names: list[str], split: str = "train") -> Path:
    """Copy a few real pairs into a scratch LLVIP-layout root (for tests that break a dataset)."""
    import shutil

    for modality in ("infrared", "visible"):
        (dst_root / modality / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(src_root / modality / split / name, dst_root / modality / split / name)
    return dst_root
