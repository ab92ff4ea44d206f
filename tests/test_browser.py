"""The app in a real browser (Debian chromium driven by Python playwright): a visitor uploads an LLVIP
infrared frame, translates it, does the same the other way with a ground truth, meets a bad file, clicks an
example, and browses the gallery of shipped samples (the default, as on a first start) in a thermal palette.
Screenshots land in artifacts/browser/ for a person to look at."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_app import LLVIP, first_pair, make_weights, running_app  # noqa: E402

from irvis.compare import open_gallery  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "artifacts" / "browser"
TIMEOUT_MS = 120_000  # one 1280x1024 translation on a busy 2-core CPU, with room

if not CHROMIUM.exists():
    if os.environ.get("IRVIS_REQUIRE_BROWSER") == "1":  # CI: a missing browser is a failure, not a skip
        raise RuntimeError(f"IRVIS_REQUIRE_BROWSER=1 but there is no {CHROMIUM}; apt-get install chromium")
    pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium; .ci/run does)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    weights = make_weights(tmp_path_factory.mktemp("weights"))
    args = ["--weights-ir2vis", str(weights["ir2vis"]), "--weights-vis2ir", str(weights["vis2ir"])]  # samples/
    SHOTS.mkdir(parents=True, exist_ok=True)
    with running_app(args) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.wait_for_selector("#ir2vis-input")
            yield page
        finally:
            browser.close()


def shot(page, name: str, full_page: bool = True):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def upload(page, elem_id: str, path: Path):
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
    page.locator(f"#{elem_id} img").first.wait_for(state="visible")  # the upload reached the server


def natural_width(page, selector: str) -> int:
    return page.locator(selector).first.evaluate("img => img.naturalWidth")


def test_first_visit_explains_the_page(page):
    shot(page, "01-start")
    body = page.locator("body").inner_text()
    assert "Translate a thermal-infrared photograph into a visible-light one" in body
    for tab in ("Infrared -> Visible", "Visible -> Infrared", "Gallery", "About"):
        assert page.get_by_role("tab", name=tab).is_visible()


def test_translate_an_uploaded_llvip_infrared_frame(page):
    upload(page, "ir2vis-input", first_pair(LLVIP).infrared)
    page.click("#ir2vis-translate")
    page.locator("#ir2vis-summary", has_text="Translated 1280x1024 infrared to visible").wait_for()
    page.locator("#ir2vis-prediction img").first.wait_for(state="visible")
    assert natural_width(page, "#ir2vis-prediction img") == 1280  # full resolution, not a preview
    assert page.locator("#ir2vis-slider img").count() == 2  # before / after
    shot(page, "02-ir2vis")


def test_translate_visible_with_ground_truth_shows_scores(page):
    page.get_by_role("tab", name="Visible -> Infrared").click()
    pair = first_pair(LLVIP)
    upload(page, "vis2ir-input", pair.visible)
    upload(page, "vis2ir-truth", pair.infrared)
    page.click("#vis2ir-translate")
    page.locator("#vis2ir-summary", has_text="against the best baseline").wait_for()
    table = page.locator("#vis2ir-table")
    for row in ("model (this generator)", "baseline: luminance", "oracle: affine (sees the truth)"):
        # visible only: the table keeps a hidden copy of its widest cells to size the columns
        table.get_by_text(row, exact=True).filter(visible=True).first.wait_for()
    shot(page, "03-vis2ir-with-truth")


def test_a_file_that_is_not_an_image_gets_a_message(page, tmp_path):
    page.get_by_role("tab", name="Infrared -> Visible").click()
    remove = page.locator("#ir2vis-input button[aria-label='Remove Image']")
    if remove.count():
        remove.first.click()
    bad = tmp_path / "notes.jpg"
    bad.write_text("a text file with a .jpg name")
    page.locator("#ir2vis-input input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(1500)  # the upload itself; the broken preview shows no <img> to wait for
    assert page.locator("#ir2vis-summary").inner_text().strip() == ""  # no stale result beside a new input
    page.click("#ir2vis-translate")
    page.get_by_text("notes.jpg: not an image this tool can read").wait_for()
    assert "Traceback" not in page.locator("body").inner_text()
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(500)  # the toast slides in
    shot(page, "04-bad-file", full_page=False)  # the message is a toast at the top of the window


def test_an_example_loads_its_pair_and_translates(page):
    page.get_by_role("tab", name="Infrared -> Visible").click()
    examples = page.locator("#ir2vis-examples button.gallery-item")
    assert examples.count() >= 3
    examples.nth(1).click()
    for elem in ("ir2vis-input", "ir2vis-truth"):  # the input and its ground truth
        page.locator(f"#{elem} img").first.wait_for(state="visible")
    page.click("#ir2vis-translate")
    page.locator("#ir2vis-summary", has_text="Translated 1280x1024 infrared to visible").wait_for()
    page.locator("#ir2vis-prediction img").first.wait_for(state="visible")
    page.locator("#ir2vis-table").get_by_text("model (this generator)", exact=True).filter(visible=True).first.wait_for()
    shot(page, "04b-example")


def test_browse_the_gallery(page):
    page.get_by_role("tab", name="Gallery").click()
    thumbs = page.locator("#gallery-thumbs button.thumbnail-item")
    thumbs.first.wait_for()
    keys = [s.key for s in open_gallery(REPO / "samples").samples]
    assert thumbs.count() == len(keys) and thumbs.first.inner_text().strip() == keys[0]  # the samples, LLVIP first
    thumbs.nth(1).click()
    summary = page.locator("#gallery-summary")
    summary.get_by_text("test split").wait_for()
    for elem in ("gallery-input", "gallery-prediction", "gallery-truth"):
        page.locator(f"#{elem} img").first.wait_for(state="visible")
    table = page.locator("#gallery-table")
    table.get_by_text("model (this generator)", exact=True).filter(visible=True).first.wait_for()
    shot(page, "05-gallery-ir2vis")
    page.locator("#gallery-direction").get_by_text("Visible -> Infrared").click()
    summary.get_by_text("Visible -> Infrared").wait_for()
    page.locator("#gallery-palette").get_by_text("ironbow").click()  # the infrared prediction and truth, drawn
    for elem in ("gallery-prediction", "gallery-truth"):
        page.locator(f"#{elem} img[src*='_ironbow.png']").wait_for(state="visible")
    shot(page, "06-gallery-vis2ir-ironbow")


def test_about_shows_the_generators_and_their_evaluation(page):
    page.get_by_role("tab", name="About").click()
    page.get_by_text("Evaluation against the baselines").first.wait_for()
    body = page.locator("body").inner_text()
    assert "Trained on: llvip" in body and "against the best baseline" in body
    shot(page, "07-about")
