"""Plain-sentence conclusions derived from the numbers, and the Markdown report."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from irvis.analysis.features import FEATURE_NOTES, MI_BINS, VISIBLE_FEATURES

# thresholds that turn numbers into the report's sentences (stated in the report itself)
WEAK_R2 = 0.25
SHARED_EDGE_LIFT = 1.5


def _f(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.0f}%"


def best_rule(rules: dict, exclude: Iterable[str] = ("oracle_affine_per_image",)) -> tuple[str, float]:
    scored = [(k, v["r2"]) for k, v in rules.items() if k not in exclude and v["r2"] is not None]
    return max(scored, key=lambda kv: kv[1]) if scored else ("none", float("nan"))


def conclusions(result: dict) -> list[str]:
    o, per_set = result["overall"], result["per_set"]
    out = _association_sentences(o) + _sign_sentences(o, per_set) + _rule_sentences(o)
    out += _structure_sentences(o) + _per_set_sentences(per_set)
    out.append(_verdict(o))
    return out


def _ci(ci, fmt=_f) -> str:
    """' (95% CI lo to hi)' from a bootstrap interval, or nothing when there is none."""
    if not ci or ci[0] is None:
        return ""
    return f" (95% CI {fmt(ci[0])} to {fmt(ci[1])})"


def _excludes_zero(ci) -> bool:
    return bool(ci) and ci[0] is not None and (ci[0] > 0 or ci[1] < 0)


def _association_sentences(o: dict) -> list[str]:
    a = o["association"]
    lum, red, chroma = a["luminance"], a["redness"], a["red_chromaticity"]
    lines = [f"Bright spots: over all {o['n_images']} images, infrared and visible luminance correlate at "
             f"r = {_f(lum['pearson'])}{_ci(lum.get('pearson_ci'))} (Spearman {_f(lum['spearman'])}), so luminance "
             f"accounts for {_pct((lum['pearson'] or 0) ** 2)} of infrared variance linearly; it carries "
             f"{_f(lum['mi_bits'])} bits about infrared, what a correlation of {_f(lum['mi_corr'])} would."]
    if red["mi_bits"] is not None:
        rel = "less" if red["mi_bits"] < lum["mi_bits"] else "more"
        zero = "" if _excludes_zero(red.get("pearson_ci")) else ", an interval that holds 0"
        n_colour = o["n_images"] - o["n_grayscale_visible_images"]
        lines.append(f"Red shades (the {n_colour} colour images): redness correlates with infrared at r = "
                     f"{_f(red['pearson'])}{_ci(red.get('pearson_ci'))}{zero}, and carries {_f(red['mi_bits'])} bits, "
                     f"{rel} than luminance; red chromaticity (brightness-free) r = {_f(chroma['pearson'])}"
                     f"{_ci(chroma.get('pearson_ci'))}, {_f(chroma['mi_bits'])} bits.")
    return lines


def _sign_sentences(o: dict, per_set: dict) -> list[str]:
    d = o["per_image_r"]["luminance"]
    if d["median"] is None:
        return []
    mixed = 0.2 < d["fraction_positive"] < 0.8
    lines = [f"Within single images the luminance-infrared correlation has median {_f(d['median'])} "
             f"(quartiles {_f(d['q25'])} to {_f(d['q75'])}) and is positive in {_pct(d['fraction_positive'])} "
             f"of images{_ci(d.get('fraction_positive_ci'), _pct)}: " +
             ("its sign flips from scene to scene, so neither 'bright is hot' nor 'dark is hot' holds."
              if mixed else "the sign is mostly the same, but its strength varies between scenes.")]
    share = {s: g["per_image_r"]["luminance"] for s, g in per_set.items()
             if g["per_image_r"]["luminance"]["fraction_positive"] is not None}
    # a set counts as 'mostly positive' or 'mostly negative' only when its interval says so
    pos = [f"{s} ({_pct(d['fraction_positive'])})" for s, d in share.items()
           if (d.get("fraction_positive_ci") or [d["fraction_positive"]])[0] >= 0.5 and d["fraction_positive"] >= 0.7]
    neg = [f"{s} ({_pct(d['fraction_positive'])})" for s, d in share.items()
           if (d.get("fraction_positive_ci") or [None, d["fraction_positive"]])[1] <= 0.5 and d["fraction_positive"] <= 0.3]
    if pos and neg:
        lines.append(f"The sign depends on the dataset: the share of images where brighter means hotter is high in "
                     f"{', '.join(pos)} but low in {', '.join(neg)} (each set's 95% interval on its side of one half).")
    return lines


def _rule_sentences(o: dict) -> list[str]:
    if not o.get("rules"):
        return [f"Rules were not scored: {o.get('rules_note', 'no test split')}."]
    v, i = o["rules"]["vis2ir"], o["rules"]["ir2vis"]
    (best_name, best), (back_name, back) = best_rule(v), best_rule(i)
    oracle, back_oracle = v["oracle_affine_per_image"], i["oracle_affine_per_image"]
    bright = v["bright_is_hot"]
    bright_ci = bright.get("r2_ci") or [None, None]
    bright_tail = ("worse than a constant" if bright_ci[1] is not None and bright_ci[1] < 0 else
                   "not distinguishable from a constant" if bright_ci[0] is not None and bright_ci[0] < 0 else
                   "better than a constant")
    return [f"Visible -> infrared on {o['rules']['n_test_images']} held-out images: the best per-pixel rule fitted "
            f"on train ({best_name}) explains {_pct(best)}{_ci(v[best_name].get('r2_ci'), _pct)} of infrared variance; "
            f"the global linear RGB rule {_pct(v['linear_rgb']['r2'])}{_ci(v['linear_rgb'].get('r2_ci'), _pct)}; "
            f"'bright is hot' as it stands scores R^2 = {_f(bright['r2'])}{_ci(bright_ci)} ({bright_tail}). Even an "
            f"affine map fitted to each test image with the truth in hand reaches only {_pct(oracle['r2'])} pooled, "
            f"and a median of {_pct(oracle['r2_within_images_median'])} within an image.",
            f"Infrared -> visible: the best per-pixel rule ({back_name}) explains {_pct(back)}"
            f"{_ci(i[back_name].get('r2_ci'), _pct)} of RGB variance; the per-image oracle {_pct(back_oracle['r2'])} "
            f"pooled, {_pct(back_oracle['r2_within_images_median'])} within an image."]


def _structure_sentences(o: dict) -> list[str]:
    g, e = o["structure"]["gradient"], o["structure"]["visible_edges_near_infrared_edges"]
    if e["lift"] is None:
        return []
    low = (e.get("lift_ci") or [e["lift"]])[0]
    tail = ("Outlines are shared even though intensities are not: a model that looks at neighbourhoods can use "
            "them, a per-pixel rule cannot." if low is not None and low >= SHARED_EDGE_LIFT else
            "Edges agree more than chance, but the interval does not rule out a weak link." if low is not None and low > 1
            else "Edges agree little more than chance: the modalities share little structure either.")
    return [f"Structure: {_pct(e['rate'])} of visible edge pixels lie within one pixel of an infrared edge, "
            f"{_f(e['lift'], 1)}x{_ci(e.get('lift_ci'), lambda v: _f(v, 1))} the chance rate of {_pct(e['chance'])}; "
            f"gradient magnitudes correlate at r = {_f(g['pearson'])}{_ci(g.get('pearson_ci'))} "
            f"(Spearman {_f(g['spearman'])}). {tail}"]


def _per_set_sentences(per_set: dict) -> list[str]:
    scored = {s: best_rule(g["rules"]["vis2ir"]) for s, g in per_set.items() if g.get("rules")}
    lines = []
    if scored:
        lo, hi = min(scored.items(), key=lambda kv: kv[1][1]), max(scored.items(), key=lambda kv: kv[1][1])
        lines.append(f"Per set, with rules fitted on that set's own train scenes, the best held-out R^2 for infrared "
                     f"ranges from {_f(lo[1][1])} ({lo[0]}) to {_f(hi[1][1])} ({hi[0]}); negative means worse than "
                     "predicting the test scenes' mean: what held on the train scenes does not carry over.")
    llvip = per_set.get("llvip")
    if llvip and llvip.get("rules"):
        d, (name, best) = llvip["per_image_r"]["luminance"], best_rule(llvip["rules"]["vis2ir"])
        lines.append(f"LLVIP, the original experiment's data: within an image luminance and infrared correlate at a "
                     f"median r = {_f(d['median'])} ({_pct(d['fraction_positive'])} of images positive), yet the best "
                     f"rule fitted on its train scenes scores R^2 = {_f(best)} on its test scenes ({name}).")
    gray = [f"{s} ({g['n_grayscale_visible_images']} of {g['n_images']})" for s, g in per_set.items()
            if g["n_grayscale_visible_images"]]
    if gray:
        lines.append(f"Grayscale visible images, left out of the colour features: {', '.join(gray)}.")
    return lines


def _verdict(o: dict) -> str:
    lift_ci = o["structure"]["visible_edges_near_infrared_edges"].get("lift_ci") or [None]
    lift = o["structure"]["visible_edges_near_infrared_edges"]["lift"]
    low = lift_ci[0] if lift_ci[0] is not None else lift
    shared = low is not None and low >= SHARED_EDGE_LIFT
    if not o.get("rules"):
        return ("Verdict: no held-out rules, so nothing is claimed about intensities; " +
                ("edges are shared." if shared else "edges are not clearly shared."))
    best = [r[best_rule(r)[0]] for r in (o["rules"]["vis2ir"], o["rules"]["ir2vis"]) if best_rule(r)[0] != "none"]
    uppers = [(b.get("r2_ci") or [None, b["r2"]])[1] for b in best]
    lowers = [(b.get("r2_ci") or [b["r2"]])[0] for b in best]
    rules_weak = bool(uppers) and all(u is not None and u < WEAK_R2 for u in uppers)
    rules_strong = any(lo is not None and lo >= WEAK_R2 for lo in lowers)
    if rules_weak and shared:
        return (f"Verdict: the original conclusion is right about intensities - no per-pixel rule, linear or not, "
                f"explains even {_pct(WEAK_R2)} of the other modality on unseen scenes (the 95% intervals stay below) "
                "- but the two modalities share geometry (edges), which is what a translation model must rely on.")
    if rules_weak:
        return (f"Verdict: no per-pixel rule explains even {_pct(WEAK_R2)} of the other modality on unseen scenes, and "
                "edges agree little: the data show little link of any simple kind.")
    if rules_strong:
        return (f"Verdict: a per-pixel rule explains at least {_pct(WEAK_R2)} of the other modality on unseen scenes, "
                "so there is a simple link, if a partial one.")
    return (f"Verdict: the best per-pixel rule's 95% interval straddles {_pct(WEAK_R2)} of the other modality's "
            "variance: these images cannot tell a weak simple link from a moderate one.")


# ---------------------------------------------------------------------------------------------------
# Report: Markdown and plots


def format_cell(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(format_cell(c) for c in row) + " |" for row in rows]


def markdown_report(result: dict, figures: dict[str, str] | None = None) -> str:
    p, o, per_set = result["protocol"], result["overall"], result["per_set"]
    groups = {"all sets": o, **per_set}
    lines = ["# Does visible appearance predict thermal infrared, and back?", "",
             f"Regenerate: `{_command(p)}`", "",
             f"{o['n_images']} '{p['split']}' pairs from {len(per_set)} set(s), shorter side {p['short_side']}, "
             f"{p['pixels_per_image']} pixels drawn per image (seed {p['seed']}); rules fitted on '{p['split']}' and "
             f"scored on '{p['test_split']}'. Correlations are Pearson r / Spearman rho; MI in bits "
             f"({MI_BINS} equal-frequency bins).", "", "## Conclusions", ""]
    lines += [f"- {c}" for c in result["conclusions"]] + [""]
    lines += ["## Infrared vs visible features (all sets)", ""]
    lines += _table(["feature", "definition", "Pearson r", "Spearman rho", "MI (bits)", "MI as r"],
                    [(f, FEATURE_NOTES[f], *(o["association"][f][k] for k in ("pearson", "spearman", "mi_bits", "mi_corr")))
                     for f in VISIBLE_FEATURES]) + [""]
    lines += ["## Per set: luminance, redness, gradient vs infrared", ""]
    lines += _table(["set", "images", "colour images", "r lum", "MI lum", "r redness", "MI redness", "r gradient",
                     "MI gradient", "per-image r lum (median)", "images with r > 0"],
                    [(s, g["n_images"], g["n_images"] - g["n_grayscale_visible_images"],
                      g["association"]["luminance"]["pearson"], g["association"]["luminance"]["mi_bits"],
                      g["association"]["redness"]["pearson"], g["association"]["redness"]["mi_bits"],
                      g["association"]["gradient"]["pearson"], g["association"]["gradient"]["mi_bits"],
                      g["per_image_r"]["luminance"]["median"], _pct(g["per_image_r"]["luminance"]["fraction_positive"]))
                     for s, g in groups.items()]) + [""]
    lines += _rules_tables(groups)
    lines += ["## Structure: gradients and edges", ""]
    lines += _table(["set", "r gradients", "rho gradients", "MI gradients", "vis edges near IR edges", "chance", "lift",
                     "IR edges near vis edges", "lift"],
                    [(s, g["structure"]["gradient"]["pearson"], g["structure"]["gradient"]["spearman"],
                      g["structure"]["gradient"]["mi_bits"],
                      _pct(g["structure"]["visible_edges_near_infrared_edges"]["rate"]),
                      _pct(g["structure"]["visible_edges_near_infrared_edges"]["chance"]),
                      g["structure"]["visible_edges_near_infrared_edges"]["lift"],
                      _pct(g["structure"]["infrared_edges_near_visible_edges"]["rate"]),
                      g["structure"]["infrared_edges_near_visible_edges"]["lift"]) for s, g in groups.items()]) + [""]
    if result.get("receptive_field"):
        curve = next((name for name in (figures or {}) if name.startswith("receptive_field")), None)
        lines += ablation_markdown(result["receptive_field"], curve)
    if figures:
        lines += ["## Figures", ""] + [f"![{caption}]({name})  \n{caption}" + "\n" for name, caption in figures.items()]
    lines += ["## Caveats", "",
              "- Pixels are pooled with equal weight per image; sets with more images weigh more in 'all sets'.",
              "- Images are 8-bit JPEGs whose infrared is already contrast-stretched by each camera (AGC): intensities "
              "are relative within an image, not temperatures, which alone limits any global rule.",
              *_coverage_caveats(per_set),
              f"- Decision thresholds used in the sentences: R^2 < {WEAK_R2} is 'weak'; edge lift >= "
              f"{SHARED_EDGE_LIFT} is 'shared structure'.", ""]
    return "\n".join(lines)


def _coverage_caveats(per_set: dict) -> list[str]:
    few = [f"{s} ({g['rules']['n_test_images']})" for s, g in per_set.items()
           if g.get("rules") and g["rules"]["n_test_images"] < 10]
    none = [s for s, g in per_set.items() if not g.get("rules")]
    out = [f"- Few test images, so noisy held-out R^2: {', '.join(few)}." if few else None,
           f"- No test split, so no held-out rules (their pixels still count in 'all sets' fits): {', '.join(none)}."
           if none else None]
    return [line for line in out if line]


def _rules_tables(groups: dict) -> list[str]:
    lines = []
    for direction, title in (("vis2ir", "Infrared from visible"), ("ir2vis", "Visible RGB from infrared")):
        scored = {s: g["rules"][direction] for s, g in groups.items() if g.get("rules")}
        if not scored:
            continue
        names = list(next(iter(scored.values())))
        lines += [f"## {title}: held-out R^2 of each rule (pooled / median within image)", ""]
        lines += [f"- `{n}`: {next(iter(scored.values()))[n]['rule']}" for n in names] + [""]
        lines += _table(["set", "test images", *names],
                        [(s, groups[s]["rules"]["n_test_images"],
                          *(f"{format_cell(r[n]['r2'])} / {format_cell(r[n]['r2_within_images_median'])}" for n in names))
                         for s, r in scored.items()]) + [""]
    return lines


def _command(p: dict) -> str:
    cmd = f"python -m irvis analyze --data {' '.join(p['roots'])} --split {p['split']}"
    if p["test_split"]:
        cmd += f" --test-split {p['test_split']}"
    return cmd + f" --size {p['short_side']} --pixels {p['pixels_per_image']} --seed {p['seed']} --out DIR"


# ---------------------------------------------------------------------------------------------------
# The receptive-field ablation: sentences and tables from its summary (irvis.analysis.receptive.summarize)

ABLATION_COLUMNS = (("r2", "R^2"), ("psnr", "PSNR"), ("ssim", "SSIM"), ("gradient_correlation", "grad. corr."),
                    ("vif", "VIF"), ("sharpness", "sharpness"))


def receptive_field_text(entry: dict) -> str:
    return f"{entry['receptive_field']} px" if entry.get("receptive_field") else "whole frame"


def _with_ci(m: dict, digits: int = 3) -> str:
    if m["mean"] is None:
        return "-"
    ci = m["ci"]
    return f"{m['mean']:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci[0] is not None else f"{m['mean']:.{digits}f}"


def ablation_sentences(rf: dict) -> list[str]:
    """One sentence per direction: the curve's ends with intervals, and which steps of context the paired
    intervals show to matter (an interval that holds 0 is reported as no clear change)."""
    lines = []
    for direction, d in rf["directions"].items():
        preds = d["predictors"]
        names = list(preds)
        target = "infrared" if direction == "vis2ir" else "visible RGB"
        path = ", ".join(f"{receptive_field_text(preds[n])} {_f(preds[n]['all']['r2']['mean'])}{_ci(preds[n]['all']['r2']['ci'])}"
                         for n in names)
        steps_up, steps_flat, steps_down = [], [], []
        for diff in d["differences"][:len(names) - 1]:
            label = f"{receptive_field_text(preds[diff['from']])} -> {receptive_field_text(preds[diff['to']])}: {diff['r2']['mean']:+.2f}" \
                    f"{_ci(diff['r2']['ci'])}"
            lo, hi = diff["r2"]["ci"]
            (steps_up if lo is not None and lo > 0 else steps_down if hi is not None and hi < 0 else steps_flat).append(label)
        total = d["differences"][-1]
        verdict = ("more context predicts it better" if _excludes_zero(total["r2"]["ci"]) and total["r2"]["mean"] > 0 else
                   "more context predicts it worse" if _excludes_zero(total["r2"]["ci"]) else
                   "the intervals cannot tell the ends apart")
        parts = [f"Receptive field, {direction} (R^2 of {target} on {rf['n_test']} test images, 95% bootstrap "
                 f"intervals over images): {path}. From one pixel to the whole frame, {verdict}: R^2 "
                 f"{total['r2']['mean']:+.2f}{_ci(total['r2']['ci'])}, SSIM {total['ssim']['mean']:+.3f}"
                 f"{_ci(total['ssim']['ci'], lambda v: _f(v, 3))}, PSNR {total['psnr']['mean']:+.2f} dB"
                 f"{_ci(total['psnr']['ci'])}."]
        if steps_up:
            parts.append(f"Steps that clearly help: {'; '.join(steps_up)}.")
        if steps_flat:
            parts.append(f"No clear change: {'; '.join(steps_flat)}.")
        if steps_down:
            parts.append(f"Steps that clearly hurt: {'; '.join(steps_down)}.")
        lines.append(" ".join(parts))
    return lines


def ablation_markdown(rf: dict, figure: str | None = None) -> list[str]:
    p = rf["protocol"]
    lines = ["## Receptive field: how much does context predict the other modality?", "",
             f"Predictors that see a fixed square of {', '.join(str(r) for r in p['receptive_fields'])} pixels around "
             "each output pixel (dilated 3x3 stacks, same depth and width, no normalisation), and the default "
             "generator (irvis-unet), which sees the whole frame; all trained from the same seed on the same crops "
             f"({p['steps']} steps of {p['batch']} crops of {p['crop']} px from frames with shorter side "
             f"{p['short_side']}, L1, Adam {p['lr']:g} with cosine decay) on {rf['n_train']} train pairs; the "
             f"checkpoint chosen among {p['evaluations']} by mean L1 on {rf['n_val']} val pairs "
             f"({', '.join(rf['val_sets']) or 'none: the last step'}); scored once on {rf['n_test']} whole test frames. "
             f"Means with 95% bootstrap intervals over test images (resampled within sets, {rf['n_boot']} replicates). "
             f"CPU time of the ablation: {rf['cpu_seconds'] / 60:.1f} min.", "",
             f"Regenerate: `python -m irvis analyze --data {' '.join(p['roots'])} --ablation-size {p['short_side']} "
             f"--ablation-crop {p['crop']} --ablation-steps {p['steps']} --ablation-batch {p['batch']} "
             f"--ablation-width {p['width']} --seed {p['seed']} --rerun-ablation --out DIR`", ""]
    for direction, d in rf["directions"].items():
        preds = d["predictors"]
        lines += [f"### {direction}", ""]
        lines += _table(["predictor", "field", "parameters", "chosen step", *(t for _, t in ABLATION_COLUMNS)],
                        [(n, receptive_field_text(e), rf["parameters"][direction][n], e["chosen_step"],
                          *(_with_ci(e["all"][m]) for m, _ in ABLATION_COLUMNS)) for n, e in preds.items()]) + [""]
        lines += ["Paired differences (later minus earlier predictor, same bootstrap draws):", ""]
        lines += _table(["from", "to", "R^2", "PSNR", "SSIM", "grad. corr."],
                        [(x["from"], x["to"], *(_with_ci(x[m]) for m in ("r2", "psnr", "ssim", "gradient_correlation")))
                         for x in d["differences"]]) + [""]
        sets = [g for g in next(iter(preds.values())) if isinstance(next(iter(preds.values()))[g], dict) and g != "all"]
        lines += ["Per test set, R^2 / SSIM:", ""]
        lines += _table(["predictor", *sets],
                        [(n, *(f"{_with_ci(e[s]['r2'], 2)} / {format_cell(e[s]['ssim']['mean'])}" for s in sets))
                         for n, e in preds.items()]) + [""]
    if figure:
        lines += [f"![receptive-field curve]({figure})", ""]
    lines += ["Caveats: one training seed per predictor (the intervals cover which test images were drawn, not "
              "training noise); a short budget at a reduced size, the same for every predictor; M3SVD's test frames "
              "are consecutive video frames of one sequence, so they count as fewer independent scenes than images.", ""]
    return lines
