"""Generators: the reference's size, the default's design properties, strict save/load."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from train.models import PatchDiscriminator
from irvis.nets import (Generator, Pix2PixUNet256, WeightsError, build_generator, count_parameters,
                        load_generator, save_generator)


def test_reference_is_the_original_pix2pix_unet256():
    # pytorch-CycleGAN-and-pix2pix prints "Total number of parameters : 54.414 M" for unet_256 (3->3, ngf 64)
    assert round(count_parameters(Pix2PixUNet256(3, 3)) / 1e6, 3) == 54.414
    ref = build_generator("ir2vis", "pix2pix-unet256")
    assert ref.size_multiple == 256
    assert any(isinstance(m, nn.BatchNorm2d) for m in ref.modules())


def test_reference_translates_each_frame_by_its_own_statistics_as_its_authors_test_runs_it():
    """pix2pix's test.py leaves the network in training mode: at its batch of one, batch norm uses the frame's own
    statistics. A reference trained at batch 1 has running averages that fit no frame; they must not be used."""
    torch.manual_seed(0)
    ref = build_generator("ir2vis", "pix2pix-unet256", ngf=8)
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):  # running averages far from any frame's, as after training at batch 1
            m.running_mean.fill_(5.0)
            m.running_var.fill_(0.01)
    frames = torch.rand(2, 1, 256, 256) * 2 - 1
    with torch.no_grad():
        ref.train()
        for m in ref.modules():
            if isinstance(m, nn.Dropout):
                m.eval()  # the one difference: no test-time dropout noise, so a frame translates the same every time
        as_authors = torch.cat([ref(frames[:1]), ref(frames[1:])])
        ref.eval()
        together = ref(frames)
    torch.testing.assert_close(together, as_authors, atol=1e-5, rtol=0)
    assert (together[0] - together[1]).abs().mean() > 0.05  # two frames, two pictures


def test_an_architecture_name_means_one_network_however_it_is_built(tmp_path):
    from irvis.nets import ARCHITECTURES

    direct, built = Generator("ir2vis", arch="pix2pix-unet256"), build_generator("ir2vis", "pix2pix-unet256")
    assert count_parameters(direct) == count_parameters(built) > 54e6
    assert any(isinstance(m, nn.BatchNorm2d) for m in direct.modules())
    assert direct.config == built.config == {"direction": "ir2vis", "arch": "pix2pix-unet256", "ngf": 64, "norm": "batch"}
    for name, a in ARCHITECTURES.items():
        g = build_generator("vis2ir", name)
        assert g.size_multiple == a.multiple(g.config) and set(g.config) == {"direction", "arch", *a.defaults}
    # config.json holds the network's own settings, and nothing else
    assert json.loads((save_generator(direct, tmp_path / "ref") / "config.json").read_text()) == direct.config
    with pytest.raises(ValueError, match="depth=3"):
        Generator("ir2vis", arch="pix2pix-unet256", depth=3)


def test_configs_written_by_earlier_versions_still_load_strictly(tmp_path):
    """Before the registry, every config.json carried all of Generator's settings, used or not."""
    old = {"arch": "pix2pix-unet256", "depth": 5, "direction": "ir2vis", "head": "conv", "n_res": 2, "ngf": 8,
           "norm": "batch"}
    folder = save_generator(build_generator("ir2vis", "pix2pix-unet256", ngf=8), tmp_path / "old")
    (folder / "config.json").write_text(json.dumps(old))
    assert load_generator(folder).config == {"direction": "ir2vis", "arch": "pix2pix-unet256", "ngf": 8, "norm": "batch"}
    (folder / "config.json").write_text(json.dumps({**old, "depth": 4}))  # a value that would have meant something
    with pytest.raises(WeightsError, match="depth=4"):
        load_generator(folder)


def test_default_design_has_no_transposed_convs_and_no_batch_norm():
    g = build_generator("vis2ir")
    kinds = {type(m) for m in g.modules()}
    assert nn.ConvTranspose2d not in kinds  # the source of checkerboard artifacts
    assert nn.BatchNorm2d not in kinds and nn.GroupNorm in kinds
    assert count_parameters(g) < count_parameters(build_generator("vis2ir", "pix2pix-unet256")) / 10


def test_default_output_does_not_depend_on_the_batch():
    """GroupNorm: an image's translation is the same alone or in a batch, in training mode too,
    so multi-GPU sharding and batch size do not change results."""
    torch.manual_seed(0)
    g = build_generator("ir2vis").train()
    x = torch.rand(4, 1, 64, 96)
    alone = g(x[:1])
    together = g(x)[:1]
    assert torch.allclose(alone, together, atol=1e-5)


def test_constant_input_gives_no_periodic_pattern():
    """Checkerboard artifacts show as a 2-pixel periodic pattern on a flat input."""
    torch.manual_seed(0)
    g = build_generator("vis2ir").eval()
    with torch.no_grad():
        y = g(torch.full((1, 3, 128, 128), 0.4))[0, 0, 16:-16, 16:-16]
    even, odd = y[::2, ::2].mean(), y[1::2, 1::2].mean()
    assert abs(float(even - odd)) < 1e-3


@pytest.mark.parametrize("direction,channels", [("ir2vis", (1, 3)), ("vis2ir", (3, 1))])
def test_channels_and_range(direction, channels):
    g = build_generator(direction).eval()
    with torch.no_grad():
        y = g(torch.rand(2, channels[0], 64, 64))
    assert y.shape == (2, channels[1], 64, 64)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_save_load_round_trip_is_exact(tmp_path):
    torch.manual_seed(1)
    g = build_generator("ir2vis").eval()
    folder = save_generator(g, tmp_path / "g")
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors"}
    loaded = load_generator(folder)
    x = torch.rand(1, 1, 64, 64)
    assert torch.equal(g(x), loaded(x))
    assert isinstance(Generator.from_pretrained(folder), Generator)


def test_half_precision_export_loads_into_float32(tmp_path):
    torch.manual_seed(2)
    g = build_generator("vis2ir").eval()
    folder = save_generator(g, tmp_path / "half", half=True)
    full = save_generator(g, tmp_path / "full")
    assert (folder / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    loaded = load_generator(folder)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(1, 3, 64, 64)
    assert (g(x) - loaded(x)).abs().max() < 1e-2


def test_loading_is_strict(tmp_path, generators):
    import shutil

    from safetensors.torch import load_file, save_file

    def variant(name):
        dst = tmp_path / name
        shutil.copytree(generators["ir2vis"], dst)
        return dst

    missing = variant("missing")
    tensors = load_file(missing / "model.safetensors")
    tensors.pop(next(iter(tensors)))
    save_file(tensors, missing / "model.safetensors")
    with pytest.raises(WeightsError, match="missing tensor"):
        load_generator(missing)

    wider = variant("wider")
    config = json.loads((wider / "config.json").read_text())
    (wider / "config.json").write_text(json.dumps({**config, "ngf": 32}))
    with pytest.raises(WeightsError, match="does not match"):
        load_generator(wider)

    unknown = variant("unknown")
    (unknown / "config.json").write_text(json.dumps({**config, "mystery": 1}))
    with pytest.raises(WeightsError, match="unknown settings"):
        load_generator(unknown)

    corrupt = variant("corrupt")
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="cannot be read"):
        load_generator(corrupt)

    with pytest.raises(WeightsError, match="is missing"):
        load_generator(tmp_path)


def test_patch_discriminator_is_70x70_patchgan():
    d = PatchDiscriminator(in_channels=4)
    out = d(torch.rand(2, 1, 256, 256), torch.rand(2, 3, 256, 256))
    assert out.shape == (2, 1, 30, 30)  # the 30x30 map of 70x70 patches of Pix2Pix


def test_affine_head_starts_as_the_conv_head_learns_and_round_trips(tmp_path):
    torch.manual_seed(0)
    conv = build_generator("vis2ir", head="conv")
    torch.manual_seed(0)
    affine = build_generator("vis2ir", head="affine")
    x = torch.rand(2, 3, 64, 64)
    # untrained, the affine head adds the input-as-output map (the visible luma) to the conv head
    luma = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
    expected = (torch.tanh(torch.atanh(conv(x) * 2 - 1) + luma * 2 - 1) + 1) / 2
    assert torch.allclose(affine(x), expected, atol=1e-4)
    (affine(x) - torch.rand(2, 1, 64, 64)).abs().mean().backward()
    assert affine.net.coefficients.weight.grad.abs().sum() > 0  # and the coefficients do learn
    loaded = load_generator(save_generator(affine, tmp_path / "g"))
    assert json.loads((tmp_path / "g" / "config.json").read_text())["head"] == "affine"
    assert torch.equal(loaded(x), affine.eval()(x))
    with pytest.raises(ValueError, match="irvis-unet"):
        build_generator("vis2ir", "pix2pix-unet256", head="affine")


def test_one_default_head_and_folders_from_before_heads_load_as_trained(tmp_path):
    """A new irvis-unet gets the affine head, in the library as in the trainer; a config.json written before heads
    existed has no "head" and holds a conv-head network, which loads as one (strictly: the affine head's extra
    tensors would be missing)."""
    from train.config import TrainConfig

    assert build_generator("vis2ir").config["head"] == "affine"
    assert TrainConfig(direction="vis2ir", data=["x"]).generator_settings()["head"] == "affine"
    folder = save_generator(build_generator("vis2ir", head="conv"), tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    del config["head"]
    (folder / "config.json").write_text(json.dumps(config))
    loaded = load_generator(folder)
    assert loaded.config["head"] == "conv" and loaded.net.coefficients is None
