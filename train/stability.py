"""How far a change to the input that nobody can see moves a generator's output. Each frame is translated as it is,
with Gaussian noise of 1/255 added (seeded), and after a JPEG re-encode at quality 95 (what an upload or a video
frame goes through); each changed input's output is compared with the plain output: PSNR between the two, and how
far the output's mean level moved, in 8-bit steps. By the evaluation protocol (shorter side 256), through the
translator the app uses (its fastest path on this machine). docs/generators.md reports it.

    python -m train.stability --data ../shared/data --split val weights/vis2ir weights/ir2vis
"""

from __future__ import annotations

import io

import torch

from irvis.data import load_pair, load_pairs
from irvis.evaluate import Means
from irvis.images import load_image, to_pil
from irvis.metrics import PSNR_CAP_DB, SCORING_SHORT_SIDE, psnr
from irvis.translate import Translator
from train import variant_scores

NOISE = 1 / 255
JPEG_QUALITY = 95
CHANGES = ("noise 1/255", f"JPEG q{JPEG_QUALITY}")


def with_noise(x: torch.Tensor, seed: int) -> torch.Tensor:
    return (x + torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)) * NOISE).clamp(0, 1)


def jpeg_again(x: torch.Tensor, modality: str) -> torch.Tensor:
    """x (C, H, W) in [0, 1], an image of this modality, through an 8-bit JPEG at JPEG_QUALITY and back."""
    buffer = io.BytesIO()
    to_pil(x).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return load_image(buffer.getvalue(), modality)


def moved(plain: torch.Tensor, changed: torch.Tensor) -> dict[str, float]:
    """PSNR of the changed input's output against the plain output (capped), and the move of its mean level."""
    return {"psnr": min(PSNR_CAP_DB, psnr(changed[None], plain[None]).item()),
            "level_steps": abs(changed.mean().item() - plain.mean().item()) * 255}


def measure(weights: str, data: list[str], split: str) -> dict[str, dict]:
    """{change: {"overall": means and worst_psnr, "llvip": the same or None}} for CHANGES."""
    translator = Translator.from_pretrained(weights, device="cpu")
    d = translator.direction
    means, worst = {c: Means() for c in CHANGES}, {c: {} for c in CHANGES}
    for i, pair in enumerate(load_pairs(data, split)):
        source, _ = d.arrange(*load_pair(pair, short_side=SCORING_SHORT_SIDE))
        plain = translator.translate_tensor(source)
        for change, changed in zip(CHANGES, (with_noise(source, i), jpeg_again(source, d.source))):
            m = moved(plain, translator.translate_tensor(changed))
            means[change].add(pair.set_name, "model", m)
            for key in ("overall", pair.set_name):  # a mean of dB hides the one frame whose level jumped
                worst[change][key] = min(worst[change].get(key, PSNR_CAP_DB), m["psnr"])
    summaries = {c: variant_scores.summary(m) for c, m in means.items()}
    return {c: {key: r and {**r, "worst_psnr": worst[c][key]} for key, r in s.items()} for c, s in summaries.items()}


def in_words(m: dict) -> str:
    return (f"{m['psnr']:.1f} dB from the plain output (worst frame {m['worst_psnr']:.1f}), level moved "
            f"{m['level_steps']:.2f} of 255")


def main(argv: list[str] | None = None) -> None:
    variant_scores.main(__doc__, measure, argv, words=in_words)


if __name__ == "__main__":
    main()
