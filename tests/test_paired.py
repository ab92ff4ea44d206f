"""`python -m irvis versus`: one method against another on the same images, with bootstrap intervals over images."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from irvis.__main__ import main
from irvis.paired import ALL, Method, compare_methods, load_method

SHIPPED = {d: REPO / "weights" / d / "evaluation.json" for d in ("ir2vis", "vis2ir")}


def test_the_lead_is_the_difference_of_the_reports_means_and_its_interval_holds_it():
    report = json.loads(SHIPPED["ir2vis"].read_text())
    result = compare_methods(load_method(SHIPPED["ir2vis"]), load_method(f"{SHIPPED['ir2vis']}:mid_gray"))
    for group, entry in ((ALL, report), ("llvip", report["per_set"]["llvip"])):
        psnr = result["groups"][group]["psnr"]
        assert psnr["lead"] == pytest.approx(entry["model"]["psnr"] - entry["baselines"]["mid_gray"]["psnr"], abs=2e-3)
        lo, hi = psnr["interval"]
        assert lo < psnr["lead"] < hi
        assert psnr["a_ahead"] + psnr["b_ahead"] <= psnr["n"]
    # the shipped generator is clearly ahead of a flat gray image on all 70 test pairs
    assert result["groups"][ALL]["psnr"]["verdict"] == "ahead" and result["groups"][ALL]["psnr"]["n"] == 70


def test_a_method_against_itself_leads_by_nothing_and_swapping_mirrors_the_interval():
    model, gray = load_method(SHIPPED["vis2ir"]), load_method(f"{SHIPPED['vis2ir']}:baseline:mid_gray")
    same = compare_methods(model, model)["groups"]["llvip"]["ssim"]
    assert same["lead"] == 0 and same["interval"] == [0, 0] and same["a_ahead"] == same["b_ahead"] == 0
    assert same["verdict"] == "no clear difference"
    ahead, behind = compare_methods(model, gray)["groups"], compare_methods(gray, model)["groups"]
    for group in ahead:
        for name, f in ahead[group].items():
            g = behind[group][name]
            assert g["lead"] == pytest.approx(-f["lead"], abs=1e-4)
            assert g["interval"] == pytest.approx([-f["interval"][1], -f["interval"][0]], abs=1e-4)
            assert (g["a_ahead"], g["b_ahead"]) == (f["b_ahead"], f["a_ahead"])
    # on LLVIP's SSIM the flat gray image still wins (the card says so): the verdict must not hide it
    assert ahead["llvip"]["ssim"]["lead"] < 0


def test_sharpness_leads_by_nearness_to_the_truths_amount_of_edges():
    result = compare_methods(load_method(SHIPPED["ir2vis"]), load_method(f"{SHIPPED['ir2vis']}:infrared_as_rgb"))
    rows = json.loads(SHIPPED["ir2vis"].read_text())["pairs"]
    lead = sum(abs(r["baseline:infrared_as_rgb"]["sharpness"] - 1) - abs(r["model"]["sharpness"] - 1)
               for r in rows if r["set"] == "llvip") / 12
    assert result["groups"]["llvip"]["sharpness"]["lead"] == pytest.approx(lead, abs=1e-3)


def test_reports_that_do_not_score_the_same_images_the_same_way_are_refused(data_dir, tmp_path):
    val = tmp_path / "val.json"
    assert main(["evaluate", "--direction", "ir2vis", "--data", str(data_dir / "llvip"), "--split", "val",
                 "--json", str(val), "--no-lpips", "--no-fid"]) == 0
    with pytest.raises(ValueError, match="different images: 4 only in"):
        compare_methods(load_method(f"{val}:mid_gray"), load_method(f"{SHIPPED['ir2vis']}:mid_gray"))
    with pytest.raises(ValueError, match="different directions"):
        compare_methods(load_method(SHIPPED["ir2vis"]), load_method(SHIPPED["vis2ir"]))
    report = json.loads(SHIPPED["ir2vis"].read_text())
    report["protocol"]["short_side"] = "native"
    native = tmp_path / "native.json"
    native.write_text(json.dumps(report))
    with pytest.raises(ValueError, match="different protocols \\(short_side: native and 256\\)"):
        compare_methods(load_method(native), load_method(SHIPPED["ir2vis"]))
    with pytest.raises(ValueError, match="has no method 'plain_gray'"):
        load_method(f"{val}:plain_gray")
    with pytest.raises(ValueError, match="has no method 'model'"):  # a baselines-only report has no generator
        load_method(val)


def test_versus_cli_prints_the_table_writes_json_and_explains_bad_input(tmp_path, capsys):
    out = tmp_path / "versus.json"
    assert main(["versus", str(SHIPPED["ir2vis"]), f"{SHIPPED['ir2vis']}:mid_gray", "--metrics", "psnr", "ssim",
                 "--bootstrap", "500", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| llvip | 12 | PSNR |" in printed and "ahead" in printed
    saved = json.loads(out.read_text())
    assert saved["n_boot"] == 500 and set(saved["groups"][ALL]) == {"psnr", "ssim"}
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["versus", str(broken), str(SHIPPED["ir2vis"])]) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert main(["versus", str(tmp_path / "missing.json"), str(SHIPPED["ir2vis"])]) == 2
    assert "cannot read the evaluation report" in capsys.readouterr().err


def test_an_evaluation_report_says_how_sure_its_lead_over_the_best_baseline_is(llvip):
    from irvis.data import load_pairs
    from irvis.evaluate import evaluate, markdown_report
    from irvis.translate import Translator

    pairs = load_pairs([llvip], "val")
    result, _ = evaluate(Translator.from_pretrained(REPO / "weights" / "vis2ir", device="cpu"), pairs, progress=False,
                         lpips=False, fid=False)
    leads = result["lead_over_best_baseline"]
    assert set(leads) == {ALL} and set(leads[ALL]) == {"psnr", "ssim"}  # one set: no rows repeating the overall
    for name, f in leads[ALL].items():
        best = f["baseline"]
        assert f["b"] == pytest.approx(result["baselines"][best][name], abs=1e-4)
        assert f["lead"] == pytest.approx(result["model"][name] - result["baselines"][best][name], abs=1e-3)
        assert f["n"] == 4 and f["verdict"] in ("ahead", "behind", "no clear difference")
    text = markdown_report(result)
    assert "## How sure: the model against the best baseline" in text
    assert f"| all (4) | SSIM | {leads[ALL]['ssim']['lead']:+.4f} ({leads[ALL]['ssim']['baseline']}) |" in text
    baselines_only, _ = evaluate(None, pairs, direction="vis2ir", progress=False, lpips=False, fid=False)
    assert "lead_over_best_baseline" not in baselines_only and "How sure" not in markdown_report(baselines_only)


def test_two_images_are_too_few_for_an_interval():
    report = json.loads(SHIPPED["ir2vis"].read_text())
    report["pairs"] = [r for r in report["pairs"] if r["set"] == "llvip"][:2]
    report["per_set"] = {"llvip": report["per_set"]["llvip"]}
    f = compare_methods(load_method_from(report), load_method_from(report, "baseline:mid_gray"))["groups"][ALL]["psnr"]
    assert f["n"] == 2 and f["interval"] == [None, None] and f["verdict"].startswith("too few images")


def load_method_from(report: dict, method: str = "model") -> Method:
    return Method(report, method, method)
