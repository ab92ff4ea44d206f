"""Dataset discovery, the problem report, paired transforms and the prepared cache, on real pairs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image

from conftest import REPO, copy_pairs
from irvis.translate import psnr
from irvis.data import (DataError, PairedDataset, check_data, discover_pairs, load_pair, load_pairs, photometric_jitter,
                        prepare_cache)


def test_llvip_pairs_are_found_by_stem(llvip):
    train, test = discover_pairs([llvip], "train"), discover_pairs([llvip], "test")
    val = discover_pairs([llvip], "val")
    assert (len(train.pairs), len(val.pairs), len(test.pairs)) == (67, 4, 12)
    assert not {p.name for p in val.pairs} & ({p.name for p in train.pairs} | {p.name for p in test.pairs})
    assert all(p.infrared.stem == p.visible.stem == p.name for p in train.pairs)
    assert {p.set_name for p in train.pairs} == {"llvip"}
    assert not set(p.name for p in train.pairs) & set(p.name for p in test.pairs)


def test_several_roots_mix_and_keep_their_set_names(data_dir):
    report = check_data([data_dir / "llvip", data_dir / "msrs", data_dir / "tno"], "test")
    assert report.ok
    assert report.sets() == {"llvip": 12, "msrs": 4}
    assert any("tno" in note and "no 'test' split" in note for note in report.notes)


def test_a_folder_of_sets_stands_for_all_of_them(data_dir):
    report = discover_pairs([data_dir], "test")
    assert report.ok and report.sets() == {"llvip": 12, "m3fd": 4, "m3svd": 20, "msrs": 4, "roadscene": 30}


def test_every_problem_is_reported_at_once(llvip, tmp_path):
    root = copy_pairs(llvip, tmp_path / "broken", ["010001.jpg", "010002.jpg", "010003.jpg", "010004.jpg"])
    (root / "visible/train/010001.jpg").unlink()  # unmatched infrared
    data = (root / "infrared/train/010002.jpg").read_bytes()
    (root / "infrared/train/010002.jpg").write_bytes(data[: len(data) // 3])  # truncated JPEG
    Image.open(root / "visible/train/010003.jpg").resize((640, 512)).save(root / "visible/train/010003.jpg")
    (root / "infrared/train/orphan.png").write_bytes(b"not a png at all")
    (root / "visible/train/orphan.png").write_bytes(b"not a png at all")

    with pytest.raises(DataError) as err:
        load_pairs([root, tmp_path / "missing"], "train")
    message = str(err.value)
    assert "010001.jpg: no visible image named 010001" in message
    assert "010002.jpg: corrupt or truncated" in message
    assert "010003.jpg is 1280x1024 but" in message and "is 640x512" in message
    assert "orphan.png" in message and "not an image" in message
    assert f"{tmp_path / 'missing'}: no such folder" in message
    assert "010004" not in message  # the good pair is not blamed


def test_an_optional_split_may_be_empty_but_never_broken(data_dir, tmp_path):
    vifb = data_dir / "vifb"  # no test split
    assert load_pairs([vifb], "test", decode=False, required=False) == []
    with pytest.raises(DataError, match="no pairs"):
        load_pairs([vifb], "test", decode=False)
    broken = tmp_path / "broken"
    names = sorted(p.name for p in (data_dir / "msrs" / "visible" / "test").iterdir())[:2]
    copy_pairs(data_dir / "msrs", broken, names, split="test")
    next((broken / "visible" / "test").iterdir()).unlink()
    with pytest.raises(DataError, match="no visible image"):
        load_pairs([broken], "test", decode=False, required=False)


def test_check_data_cli_lists_problems_and_fails(llvip, tmp_path):
    root = copy_pairs(llvip, tmp_path / "broken", ["200002.jpg"], split="test")
    (root / "visible/test/200002.jpg").unlink()
    run = subprocess.run([sys.executable, "-m", "irvis", "check-data", str(root), "--split", "test"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 1
    assert "no visible image named 200002" in run.stdout
    ok = subprocess.run([sys.executable, "-m", "irvis", "check-data", str(llvip), "--split", "test"],
                        cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0 and "12 pairs" in ok.stdout


def test_not_llvip_layout_is_explained(tmp_path):
    (tmp_path / "images").mkdir()
    report = discover_pairs([tmp_path], "train")
    assert not report.ok
    assert "not in LLVIP layout" in report.text()


def test_paired_transform_draws_one_crop_and_flip_for_both(llvip):
    """With the visible image replaced by the infrared itself, any crop/flip/scale mismatch shows."""
    pair = discover_pairs([llvip], "train").pairs[0]
    ir, _ = load_pair(pair, short_side=96)
    ds = PairedDataset([pair], load_size=96, crop_size=64)
    ds_pairs_loader = ds.transform
    from torchvision import tv_tensors

    torch.manual_seed(0)
    for _ in range(12):
        a, b = ds_pairs_loader(tv_tensors.Image(ir), tv_tensors.Image(ir.expand(3, -1, -1).clone()))
        assert a.shape == (1, 64, 64) and b.shape == (3, 64, 64)
        assert torch.equal(a[0], b[1])
    # flips: a left-to-right ramp runs right-to-left after one; both occur, and both images always agree
    ramp = torch.linspace(0, 1, ir.shape[-1]).expand_as(ir).contiguous()
    flips = []
    for _ in range(12):
        a, b = ds_pairs_loader(tv_tensors.Image(ramp), tv_tensors.Image(ramp.expand(3, -1, -1).clone()))
        assert torch.equal(a[0], b[1])
        flips.append(bool(a[..., -1].mean() < a[..., 0].mean()))
    assert any(flips) and not all(flips)
    sample = ds[0]
    assert sample["infrared"].shape == (1, 64, 64) and sample["visible"].shape == (3, 64, 64)
    assert 0 <= float(sample["visible"].min()) and float(sample["visible"].max()) <= 1


def test_small_crops_can_keep_the_translation_scale(llvip):
    """--min-load-size: a 64-pixel crop of a frame resized to 96..100, never to 64 (which would show
    the whole frame shrunk, at a scale the model never translates at)."""
    pair = discover_pairs([llvip], "train").pairs[0]
    ir, _ = load_pair(pair, short_side=100)
    ds = PairedDataset([pair], load_size=100, crop_size=64, min_load_size=96)
    from torchvision import tv_tensors

    torch.manual_seed(0)
    for _ in range(8):
        a, _ = ds.transform(tv_tensors.Image(ir), tv_tensors.Image(ir.expand(3, -1, -1).clone()))
        assert a.shape == (1, 64, 64)
    sizes = {int(ds.transform.transforms[0].make_params([tv_tensors.Image(ir)])["size"][0]) for _ in range(50)}
    assert sizes and min(sizes) >= 96 and max(sizes) <= 100
    with pytest.raises(ValueError, match="smallest load size"):
        PairedDataset([pair], load_size=100, crop_size=64, min_load_size=48)


def test_photometric_jitter_changes_exposure_not_content(llvip):
    """A real night frame: jittered copies differ in level, stay in [0, 1], keep the spatial pattern
    (strongly correlated with the original), and strength 0 is the identity."""
    _, vis = load_pair(discover_pairs([llvip], "test").pairs[0], short_side=64)
    assert photometric_jitter(vis, 0.0) is vis
    torch.manual_seed(0)
    means = set()
    for _ in range(6):
        out = photometric_jitter(vis, 0.3)
        assert out.shape == vis.shape and 0 <= float(out.min()) and float(out.max()) <= 1
        assert torch.corrcoef(torch.stack([vis.flatten(), out.flatten()]))[0, 1] > 0.9
        means.add(round(float(out.mean()), 3))
    assert len(means) == 6  # each draw a different exposure


def test_prepared_cache_is_an_ordinary_smaller_root(data_dir, tmp_path):
    roots = prepare_cache([data_dir / "msrs"], tmp_path / "cache", size=96, splits=("test",), progress=False)
    assert [r.name for r in roots] == ["msrs"]
    pairs = load_pairs(roots, "test")
    assert len(pairs) == 4
    ir, vis = load_pair(pairs[0])
    assert min(ir.shape[-2:]) == 96 and ir.shape[-2:] == vis.shape[-2:]
    # same content as resizing the original on the fly
    original = load_pairs([data_dir / "msrs"], "test")[0]
    ref_ir, _ = load_pair(original, short_side=96)
    assert (ir - ref_ir).abs().mean() < 1 / 255


def test_prepare_without_upscaling_keeps_small_frames_at_their_own_size(data_dir, tmp_path):
    """--no-upscale: a cache for --no-upscale training holds no frame larger than its original (MSRS is 640x480):
    training then draws scales from the frame's own pixels, not from an enlarged copy."""
    roots = [root for name in ("msrs", "llvip") for root in prepare_cache(
        [data_dir / name], tmp_path / "c", size=600, splits=("test",), progress=False, max_pairs=1, no_upscale=True)]
    sides = {r.name: min(load_pair(load_pairs([r], "test")[0])[0].shape[-2:]) for r in roots}
    assert sides == {"msrs": 480, "llvip": 600}


def test_prepare_can_stop_at_the_first_pairs_it_needs(data_dir, tmp_path):
    roots = prepare_cache([data_dir / "msrs"], tmp_path / "cache", size=64, splits=("train",), progress=False,
                          max_pairs=3)
    names = [p.name for p in load_pairs(roots, "train")]
    assert names == [p.name for p in load_pairs([data_dir / "msrs"], "train", decode=False)[:3]]


def test_prepared_cache_in_jpeg_is_a_third_of_the_size_and_close(data_dir, tmp_path):
    """--jpeg-quality: a compact cache (to copy to a remote GPU machine) that loads like any root, within
    JPEG's small error of the lossless one."""
    png = prepare_cache([data_dir / "llvip"], tmp_path / "png", size=192, splits=("test",), progress=False, max_pairs=3)
    jpg = prepare_cache([data_dir / "llvip"], tmp_path / "jpg", size=192, splits=("test",), progress=False, max_pairs=3,
                        jpeg_quality=90)

    def images(root):
        return [f for f in root.rglob("*.*") if f.suffix in (".jpg", ".png")]

    def size(root):
        return sum(f.stat().st_size for f in images(root))

    assert len(images(tmp_path / "jpg")) == 6 and {f.suffix for f in images(tmp_path / "jpg")} == {".jpg"}
    assert size(tmp_path / "jpg") < size(tmp_path / "png") / 2
    for a, b in zip(load_pairs(png, "test"), load_pairs(jpg, "test"), strict=True):
        assert a.name == b.name
        for x, y in zip(load_pair(a), load_pair(b)):
            assert psnr(y, x) > 36


def test_prepare_refuses_a_jpeg_quality_out_of_range(data_dir, tmp_path):
    run = subprocess.run([sys.executable, "-m", "irvis", "prepare", str(data_dir / "llvip"), "--out", str(tmp_path / "c"),
                          "--jpeg-quality", "0"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--jpeg-quality" in run.stderr and not (tmp_path / "c").exists()


def test_training_samples_go_through_uint8_and_keep_the_float_route_content(data_dir):
    """Training pairs are decoded, resized and cropped in uint8 (the loader's fast path): the same crop, scale and
    flip as the float route draws from the same seed, within uint8 rounding."""
    from torchvision import tv_tensors

    pairs = load_pairs([data_dir / "llvip"], "train")[:3]
    ds = PairedDataset(pairs, load_size=300, crop_size=128, min_load_size=200)
    for i, pair in enumerate(pairs):
        torch.manual_seed(i)
        item = ds[i]
        torch.manual_seed(i)
        ir, vis = load_pair(pair, short_side=300)
        ref_ir, ref_vis = ds.transform(tv_tensors.Image(ir), tv_tensors.Image(vis))
        for got, ref in ((item["infrared"], ref_ir), (item["visible"], ref_vis)):
            assert got.dtype == torch.float32 and got.is_contiguous() and got.shape == ref.shape
            assert (got - ref.as_subclass(torch.Tensor)).abs().mean() < 1.5 / 255
