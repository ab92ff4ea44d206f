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


def _best(rules: dict, exclude: Iterable[str] = ("oracle_affine_per_image",)) -> tuple[str, float]:
    scored = [(k, v["r2"]) for k, v in rules.items() if k not in exclude and v["r2"] is not None]
    return max(scored, key=lambda kv: kv[1]) if scored else ("none", float("nan"))


def conclusions(result: dict) -> list[str]:
    o, per_set = result["overall"], result["per_set"]
    out = _association_sentences(o) + _sign_sentences(o, per_set) + _rule_sentences(o)
    out += _structure_sentences(o) + _per_set_sentences(per_set)
    out.append(_verdict(o))
    return out


def _association_sentences(o: dict) -> list[str]:
    a = o["association"]
    lum, red, chroma = a["luminance"], a["redness"], a["red_chromaticity"]
    lines = [f"Bright spots: over all {o['n_images']} images, infrared and visible luminance correlate at "
             f"r = {_f(lum['pearson'])} (Spearman {_f(lum['spearman'])}), so luminance accounts for "
             f"{_pct((lum['pearson'] or 0) ** 2)} of infrared variance linearly; it carries {_f(lum['mi_bits'])} "
             f"bits about infrared, what a correlation of {_f(lum['mi_corr'])} would."]
    if red["mi_bits"] is not None:
        rel = "less" if red["mi_bits"] < lum["mi_bits"] else "more"
        lines.append(f"Red shades: redness correlates with infrared at r = {_f(red['pearson'])} and carries "
                     f"{_f(red['mi_bits'])} bits, {rel} than luminance; red chromaticity (brightness-free) "
                     f"r = {_f(chroma['pearson'])}, {_f(chroma['mi_bits'])} bits.")
    return lines


def _sign_sentences(o: dict, per_set: dict) -> list[str]:
    d = o["per_image_r"]["luminance"]
    if d["median"] is None:
        return []
    mixed = 0.2 < d["fraction_positive"] < 0.8
    lines = [f"Within single images the luminance-infrared correlation has median {_f(d['median'])} "
             f"(quartiles {_f(d['q25'])} to {_f(d['q75'])}) and is positive in {_pct(d['fraction_positive'])} "
             "of images: " + ("its sign flips from scene to scene, so neither 'bright is hot' nor 'dark is hot' holds."
                              if mixed else "the sign is mostly the same, but its strength varies between scenes.")]
    share = {s: g["per_image_r"]["luminance"]["fraction_positive"] for s, g in per_set.items()
             if g["per_image_r"]["luminance"]["fraction_positive"] is not None}
    pos = [f"{s} ({_pct(v)})" for s, v in share.items() if v >= 0.7]
    neg = [f"{s} ({_pct(v)})" for s, v in share.items() if v <= 0.3]
    if pos and neg:
        lines.append(f"The sign depends on the dataset: the share of images where brighter means hotter is high in "
                     f"{', '.join(pos)} but low in {', '.join(neg)}.")
    return lines


def _rule_sentences(o: dict) -> list[str]:
    if not o.get("rules"):
        return [f"Rules were not scored: {o.get('rules_note', 'no test split')}."]
    v, i = o["rules"]["vis2ir"], o["rules"]["ir2vis"]
    (best_name, best), (back_name, back) = _best(v), _best(i)
    oracle, back_oracle = v["oracle_affine_per_image"], i["oracle_affine_per_image"]
    return [f"Visible -> infrared on {o['rules']['n_test_images']} held-out images: the best per-pixel rule fitted "
            f"on train ({best_name}) explains {_pct(best)} of infrared variance; the global linear RGB rule "
            f"{_pct(v['linear_rgb']['r2'])}; 'bright is hot' as it stands scores R^2 = {_f(v['bright_is_hot']['r2'])} "
            f"(worse than a constant). Even an affine map fitted to each test image with the truth in hand reaches "
            f"only {_pct(oracle['r2'])} pooled, and a median of {_pct(oracle['r2_within_images_median'])} within an image.",
            f"Infrared -> visible: the best per-pixel rule ({back_name}) explains {_pct(back)} of RGB variance; "
            f"the per-image oracle {_pct(back_oracle['r2'])} pooled, {_pct(back_oracle['r2_within_images_median'])} "
            "within an image."]


def _structure_sentences(o: dict) -> list[str]:
    g, e = o["structure"]["gradient"], o["structure"]["visible_edges_near_infrared_edges"]
    if e["lift"] is None:
        return []
    tail = ("Outlines are shared even though intensities are not: a model that looks at neighbourhoods can use "
            "them, a per-pixel rule cannot." if e["lift"] >= SHARED_EDGE_LIFT else
            "Edges agree little more than chance: the modalities share little structure either.")
    return [f"Structure: {_pct(e['rate'])} of visible edge pixels lie within one pixel of an infrared edge, "
            f"{_f(e['lift'], 1)}x the chance rate of {_pct(e['chance'])}; gradient magnitudes correlate at "
            f"r = {_f(g['pearson'])} (Spearman {_f(g['spearman'])}). {tail}"]


def _per_set_sentences(per_set: dict) -> list[str]:
    scored = {s: _best(g["rules"]["vis2ir"]) for s, g in per_set.items() if g.get("rules")}
    lines = []
    if scored:
        lo, hi = min(scored.items(), key=lambda kv: kv[1][1]), max(scored.items(), key=lambda kv: kv[1][1])
        lines.append(f"Per set, with rules fitted on that set's own train scenes, the best held-out R^2 for infrared "
                     f"ranges from {_f(lo[1][1])} ({lo[0]}) to {_f(hi[1][1])} ({hi[0]}); negative means worse than "
                     "predicting the test scenes' mean: what held on the train scenes does not carry over.")
    llvip = per_set.get("llvip")
    if llvip and llvip.get("rules"):
        d, (name, best) = llvip["per_image_r"]["luminance"], _best(llvip["rules"]["vis2ir"])
        lines.append(f"LLVIP, the original experiment's data: within an image luminance and infrared correlate at a "
                     f"median r = {_f(d['median'])} ({_pct(d['fraction_positive'])} of images positive), yet the best "
                     f"rule fitted on its train scenes scores R^2 = {_f(best)} on its test scenes ({name}).")
    gray = [f"{s} ({g['n_grayscale_visible_images']} of {g['n_images']})" for s, g in per_set.items()
            if g["n_grayscale_visible_images"]]
    if gray:
        lines.append(f"Grayscale visible images, left out of the colour features: {', '.join(gray)}.")
    return lines


def _verdict(o: dict) -> str:
    rules_weak = bool(o.get("rules")) and max(_best(o["rules"]["vis2ir"])[1], _best(o["rules"]["ir2vis"])[1]) < WEAK_R2
    lift = o["structure"]["visible_edges_near_infrared_edges"]["lift"]
    shared = lift is not None and lift >= SHARED_EDGE_LIFT
    if rules_weak and shared:
        return (f"Verdict: the original conclusion is right about intensities - no per-pixel rule, linear or not, "
                f"explains even {_pct(WEAK_R2)} of the other modality on unseen scenes - but the two modalities share "
                "geometry (edges), which is what a translation model must rely on.")
    if rules_weak:
        return (f"Verdict: no per-pixel rule explains even {_pct(WEAK_R2)} of the other modality on unseen scenes, and "
                "edges agree little: the data show little link of any simple kind.")
    return (f"Verdict: a per-pixel rule explains at least {_pct(WEAK_R2)} of the other modality on unseen scenes, "
            "so there is a simple link, if a partial one.")


# ---------------------------------------------------------------------------------------------------
# Report: Markdown and plots


def _cell(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


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
                          *(f"{_cell(r[n]['r2'])} / {_cell(r[n]['r2_within_images_median'])}" for n in names))
                         for s, r in scored.items()]) + [""]
    return lines


def _command(p: dict) -> str:
    cmd = f"python -m irvis analyze --data {' '.join(p['roots'])} --split {p['split']}"
    if p["test_split"]:
        cmd += f" --test-split {p['test_split']}"
    return cmd + f" --size {p['short_side']} --pixels {p['pixels_per_image']} --seed {p['seed']} --out DIR"
