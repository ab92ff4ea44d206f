"""Weights are data from wherever they came from: a config.json, inference.json or safetensors file that is
wrong (out of range, of another type, damaged, full of NaN) is refused with one line before anything large is
built, and the app starts anyway, saying why that direction is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from irvis.nets import WeightsError, load_generator
from irvis.translate import Translator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile.server import serve  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "weights" / "vis2ir"
TAMPERED = {  # what was found to allocate gigabytes or to end in a traceback, and the sentence each gets now
    "depth 60": ({"depth": 60}, "depth must be a whole number from 2 to 8, got 60"),
    "depth 1000": ({"depth": 1000}, "depth must be a whole number from 2 to 8, got 1000"),
    "ngf 1000": ({"ngf": 1000}, "ngf must be a whole number from 4 to 256, got 1000"),
    "n_res 10^7": ({"n_res": 10**7}, "n_res must be a whole number from 0 to 16, got 10000000"),
    "depth 0": ({"depth": 0}, "depth must be a whole number from 2 to 8, got 0"),
    "ngf -16": ({"ngf": -16}, "ngf must be a whole number from 4 to 256, got -16"),
    "ngf '16'": ({"ngf": "16"}, "ngf must be a whole number from 4 to 256, got '16'"),
    "depth true": ({"depth": True}, "depth must be a whole number from 2 to 8, got True"),
    "arch 42": ({"arch": 42}, "arch must be a string, got 42"),
    "huge but in range": ({"ngf": 256, "depth": 8}, "parameters; generators are limited to 200 M"),
    "null": (None, "expected a JSON object of settings, got null"),
    "42": (42, "expected a JSON object of settings, got 42"),
}


def tampered_copy(folder: Path, config) -> Path:
    shutil.copytree(SHIPPED, folder)
    base = json.loads((SHIPPED / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**base, **config} if isinstance(config, dict) else config))
    return folder


@pytest.mark.parametrize("name", list(TAMPERED))
def test_a_tampered_config_is_refused_in_one_line(name, tmp_path):
    config, sentence = TAMPERED[name]
    with pytest.raises(WeightsError) as refused:
        load_generator(tampered_copy(tmp_path / "w", config))
    assert sentence in str(refused.value) and "\n" not in str(refused.value)


def test_tampered_configs_are_refused_before_memory_is_spent(tmp_path):
    """Every tampered config in one process: peak memory stays that of the imports and the shipped weights."""
    folders = [str(tampered_copy(tmp_path / str(i), config)) for i, (config, _) in enumerate(TAMPERED.values())]
    code = ("import re, sys\nfrom irvis.nets import WeightsError, load_generator\nrefused = 0\n"
            f"for folder in {folders!r}:\n"
            "    try:\n        load_generator(folder)\n    except WeightsError:\n        refused += 1\n"
            "print(refused, int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) // 1024)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    refused, peak_mb = map(int, run.stdout.split())
    assert refused == len(TAMPERED) and peak_mb < 1500, run.stdout


def test_nan_weights_and_mismatched_shapes_are_refused(tmp_path):
    nan = tmp_path / "nan"
    shutil.copytree(SHIPPED, nan)
    tensors = load_file(nan / "model.safetensors")
    key = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, nan / "model.safetensors")
    with pytest.raises(WeightsError, match="hold NaN or infinite values"):
        load_generator(nan)
    wider = tampered_copy(tmp_path / "wider", {"ngf": 32})
    with pytest.raises(WeightsError, match=r"shapes differ: .* \(expected"):
        load_generator(wider)


@pytest.mark.parametrize("content, sentence", [
    ('{"working_size": -5}', "working_size must be null (native) or a whole number from 1 to 16384, got -5"),
    ('{"working_size": "512"}', "got '512'"),
    ('{"working_size": 1e12}', "got 1000000000000.0"),
    ("[1, 2]", "expected {\"working_size\""),
    ("not json", "expected {\"working_size\""),
])
def test_a_wrong_inference_json_is_refused(tmp_path, content, sentence):
    folder = tmp_path / "w"
    shutil.copytree(SHIPPED, folder)
    (folder / "inference.json").write_text(content)
    with pytest.raises(WeightsError) as refused:
        Translator.from_pretrained(folder, device="cpu")
    assert sentence in str(refused.value)


def test_the_app_starts_with_a_message_for_tampered_weights():
    """`--weights-vis2ir` naming a folder whose config says depth 60: the app starts, serves the other direction,
    prints and shows one line for this one, no traceback, and its memory stays bounded."""
    with tempfile.TemporaryDirectory() as workdir:
        bad = tampered_copy(Path(workdir) / "bad", {"depth": 60})
        with serve(["--weights-vis2ir", str(bad)], Path(workdir)) as server:
            page = urllib.request.urlopen(server.url + "config", timeout=30).read().decode()
            log = server.output()
            assert "depth must be a whole number from 2 to 8, got 60" in log and "Traceback" not in log
            assert "Visible -> Infrared: not loaded" in log and "Infrared -> Visible: `weights/ir2vis`" in log
            assert "depth must be a whole number from 2 to 8" in page and str(bad) not in page
            assert server.peak_rss_mb() < 1500
