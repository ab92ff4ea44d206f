"""What a first visitor meets: the sample pairs in samples/, the app started as a Hugging Face Space starts it
(no flags, the README's front matter as its configuration) showing them, thermal palettes in the app and on the
command line, and a README that opens with its picture and links the depth in docs/."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, REPO
from irvis.colormap import PALETTES, apply_palette
from irvis.compare import open_gallery
from irvis.data import discover_pairs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile.server import serve  # noqa: E402

SAMPLES = REPO / "samples"
README = REPO / "README.md"
SETUP_COMMANDS = [".venv/bin/pip install -r requirements.txt && .venv/bin/python app.py", "bash .ci/run"]


def sample_pairs():
    return discover_pairs([SAMPLES], "test").pairs


# ---------------------------------------------------------------------------------------------------
# samples/: a few test pairs, each named with its source and terms


def test_samples_are_test_pairs_of_the_data_named_with_their_terms():
    pairs = sample_pairs()
    sets = Counter(p.set_name for p in pairs)
    assert sets["llvip"] >= 8 and sum(sets.values()) - sets["llvip"] >= 4
    files = [f for f in SAMPLES.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 10 * 2**20
    # nothing in samples/ but whole pairs and their README, each file as the data holds it in its test split
    assert sorted(files) == sorted([SAMPLES / "README.md", *(f for p in pairs for f in (p.infrared, p.visible))])
    for p in pairs:
        for modality, f in (("infrared", p.infrared), ("visible", p.visible)):
            assert f.read_bytes() == (DATA / p.set_name / modality / "test" / f.name).read_bytes(), f
    readme = (SAMPLES / "README.md").read_text()
    for p in pairs:
        assert f"`{p.set_name}/test/{p.name}`" in readme  # its source
    for s in sets:
        assert f"| `{s}` | {sets[s]} |" in readme  # its set's terms
    assert "Non-commercial research use only" in readme and "Jia" in readme


def test_default_gallery_lists_llvip_first_then_the_other_sets():
    gallery = open_gallery(SAMPLES)
    names = [s.pair.set_name for s in gallery.samples]
    assert len(names) == len(sample_pairs()) and not gallery.notes
    llvip = names.count("llvip")
    assert names[:llvip] == ["llvip"] * llvip and "llvip" not in names[llvip:]


# ---------------------------------------------------------------------------------------------------
# The app as a Space starts it: python APP_FILE, no flags, listening on GRADIO_SERVER_NAME=0.0.0.0


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(README).data  # the Space's configuration is the README's front matter
    assert card.sdk == "gradio"
    with serve([], tmp_path_factory.mktemp("space"), space_app=card.app_file, timeout=300) as server:
        assert "Running on local URL:  http://0.0.0.0:" in server.output()
        yield server.url


@pytest.fixture(scope="module")
def space_client(space, tmp_path_factory):
    from gradio_client import Client

    return Client(space, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def component(config: dict, elem_id: str) -> dict:
    return next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_space_shows_the_samples_in_the_gallery_and_as_examples(space):
    with urllib.request.urlopen(space + "config", timeout=10) as r:
        config = json.loads(r.read())
    keys = [s.key for s in open_gallery(SAMPLES).samples]
    choices = [c[1] if isinstance(c, list) else c for c in component(config, "gallery-sample")["props"]["choices"]]
    assert choices == keys and keys[0].startswith("llvip/test/")
    assert len(component(config, "gallery-thumbs")["props"]["value"]) == len(keys)
    assert f"{len(keys)} pairs from `samples`" in json.dumps(config)
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    for direction in ("ir2vis", "vis2ir"):
        examples = component(config, f"{direction}-examples")
        assert len(examples["props"]["samples"]) >= 3
        load = next(d for d in config["dependencies"] if [examples["id"], "click"] in d["targets"])
        assert [ids[i] for i in load["outputs"]] == [f"{direction}-input", f"{direction}-truth"]  # with its truth


def test_space_gallery_answers_with_a_sample_in_both_directions(space_client):
    key = open_gallery(SAMPLES).samples[0].key
    for direction, modes in (("ir2vis", ("L", "RGB", "RGB")), ("vis2ir", ("RGB", "L", "L"))):
        source, prediction, truth, emap, table, summary = space_client.predict(key, direction, api_name="/gallery")
        images = [Image.open(f) for f in (source, prediction, truth)]
        assert tuple(i.mode for i in images) == modes
        assert images[0].size == images[1].size == images[2].size and min(images[0].size) == 256  # as evaluated
        assert table["data"][0][0] == "model (this generator)" and key in summary


def test_palettes_draw_the_pictures_and_never_change_the_data(space_client):
    from gradio_client import handle_file

    pair = next(p for p in sample_pairs() if p.set_name == "msrs")  # 640x480: quick
    runs = {palette: space_client.predict(handle_file(str(pair.visible)), handle_file(str(pair.infrared)), palette,
                                          api_name="/vis2ir") for palette in ("white-hot", "ironbow", "black-hot")}
    gray = np.asarray(Image.open(runs["white-hot"][0]))
    assert gray.ndim == 2 and Path(runs["white-hot"][2]).name == f"{pair.name}_vis2ir.png"
    for palette in ("ironbow", "black-hot"):
        prediction, _, download, _, table, summary = runs[palette]
        assert Path(download).name == f"{pair.name}_vis2ir_{palette}.png"  # the download names its palette
        assert np.array_equal(np.asarray(Image.open(download)), PALETTES[palette][gray])  # the same data, drawn
        assert table == runs["white-hot"][4]  # scored on the gray data
    # the gallery draws its infrared images too, and scores the same pair the same whatever the palette
    key = f"msrs/test/{pair.name}"
    plain = space_client.predict(key, "vis2ir", "white-hot", api_name="/gallery")
    drawn = space_client.predict(key, "vis2ir", "black-hot", api_name="/gallery")
    assert np.array_equal(np.asarray(Image.open(drawn[2])), 255 - np.asarray(Image.open(plain[2])))  # the truth
    assert np.array_equal(np.asarray(Image.open(drawn[0])), np.asarray(Image.open(plain[0])))  # visible input as is
    assert drawn[4] == plain[4]


# ---------------------------------------------------------------------------------------------------
# Palettes in the library and on the command line


def test_palettes_keep_hot_bright_and_every_level_apart():
    levels = np.arange(256, dtype=np.uint8)[None]
    assert np.array_equal(apply_palette(levels, "white-hot"), levels)
    assert np.array_equal(apply_palette(levels, "black-hot"), 255 - levels)
    for name in ("ironbow", "inferno"):
        rgb = apply_palette(levels[..., None], name)[0]
        assert rgb.shape == (256, 3) and len({tuple(c) for c in rgb}) == 256  # lossless: no two levels alike
        assert (np.diff(rgb @ np.array([0.299, 0.587, 0.114])) > 0).all()  # hotter is brighter
    with pytest.raises(ValueError, match="one-channel 8-bit"):
        apply_palette(np.zeros((4, 4, 3), np.uint8), "ironbow")
    with pytest.raises(ValueError, match="unknown palette 'rainbow'"):
        apply_palette(levels, "rainbow")


def test_cli_palette_draws_infrared_predictions_and_names_them(generators, tmp_path, capsys):
    from irvis.__main__ import main

    src = SAMPLES / "msrs/visible/test/00040N.jpg"
    for palette in ("white-hot", "ironbow", "black-hot"):
        assert main(["translate", "--weights", str(generators["vis2ir"]), str(src), "--out", str(tmp_path),
                     "--palette", palette, "--device", "cpu"]) == 0
    gray = np.asarray(Image.open(tmp_path / "00040N_vis2ir.png"))
    assert gray.shape == (480, 640)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "00040N_vis2ir_ironbow.png")), PALETTES["ironbow"][gray])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "00040N_vis2ir_black-hot.png")), 255 - gray)
    ir = SAMPLES / "msrs/infrared/test/00040N.jpg"
    assert main(["translate", "--weights", str(generators["ir2vis"]), str(ir), "--out", str(tmp_path / "v"),
                 "--palette", "ironbow", "--device", "cpu"]) == 2
    assert "palettes draw infrared images, and ir2vis writes visible ones" in capsys.readouterr().err
    assert not (tmp_path / "v" / "00040N_ir2vis_ironbow.png").exists()


# ---------------------------------------------------------------------------------------------------
# The README: the picture, the two commands, the shortest use; the depth in docs/


def relative_links(markdown: str) -> list[str]:
    return [m for m in re.findall(r"\]\(([^)\s]+)\)", markdown) if not re.match(r"[a-z]+:", m) and m[0] != "#"]


def test_readme_opens_with_the_picture_and_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    body = text.split("\n---\n", 1)[1]  # after the Space's front matter
    setup = body.index("## Set-up")
    picture = re.search(r"!\[[^\]]+\]\(([^)]+)\)", body)
    assert picture and picture.start() < body.index("\n## ")  # the first thing under the title
    path = REPO / picture.group(1)
    assert path.is_file() and path.stat().st_size < 400_000
    next_section = body.index("\n## ", setup + 1)
    for command in SETUP_COMMANDS:
        assert command in body[setup:next_section]
    for use in ("python app.py", "python -m irvis translate", "Translator.from_pretrained"):
        assert use in body[:body.index("## Documentation")]


def test_readme_links_every_page_of_docs_and_every_link_resolves():
    readme = README.read_text()
    pages = sorted((REPO / "docs").glob("*.md"))
    assert len(pages) >= 5
    for page in pages:
        assert f"(docs/{page.name})" in readme
    for document in (README, SAMPLES / "README.md", *pages):
        for link in relative_links(document.read_text()):
            assert (document.parent / link.split("#")[0]).exists(), f"{document.name}: {link}"


def test_readme_figure_is_made_by_one_command_from_the_samples(generators, tmp_path):
    from irvis.readme_figure import main

    out = tmp_path / "demo.jpg"
    assert main(["--weights-ir2vis", str(generators["ir2vis"]), "--weights-vis2ir", str(generators["vis2ir"]),
                 "--device", "cpu", "--out", str(out)]) == 0
    with Image.open(out) as made, Image.open(REPO / "docs" / "demo.jpg") as shipped:
        assert made.size == shipped.size  # the committed picture is this command's layout
        rows = np.asarray(made.convert("RGB"))
    assert out.stat().st_size < 400_000
    third, half = rows.shape[1] // 3, rows.shape[0] // 2  # the top row is ir2vis; labels in the top 17 pixels
    ir_input, vis_truth = rows[20:half - 10, 20:third - 20], rows[20:half - 10, -third + 20:-20]
    assert np.abs(ir_input[..., 0].astype(int) - ir_input[..., 2]).max() <= 16  # infrared in: gray (JPEG noise)
    assert np.abs(vis_truth[..., 0].astype(int) - vis_truth[..., 2]).max() > 64  # visible truth: colour
