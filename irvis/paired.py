"""Two methods scored on the same images, image by image: how far one is ahead of the other on each metric, with a
95% bootstrap interval over images, and on how many images it leads.

A split of a few frames (LLVIP's 12 test frames, its 4 val frames) makes a decibel easy to win or lose by which
frames were drawn; the interval says whether a difference is more than that. The methods come from evaluation
reports (`python -m irvis evaluate --json`): a report's generator ("model") or any of its baselines and oracles,
from one report or two scored on the same split under the same protocol. Images are resampled within their sets
(irvis.analysis.stats.resample_indices, as the study resamples), so every replicate keeps each set's size; each
image counts where both methods have the metric defined (sharpness is undefined against a flat truth). Frames of
one video sequence are near-duplicates, not independent draws: their intervals understate how another sequence
would score.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irvis.analysis.stats import LEVEL, N_BOOT, interval, resample_indices, rounded
from irvis.metrics import REGISTRY, Metric, headline, metric_names

ALL = "__all__"
MIN_IMAGES = 3  # fewer images have too few distinct resamples for a percentile interval to mean anything
DEFAULT_METHOD = "model"
# protocol keys that change what a figure means: two reports that differ in one are not compared
SAME_PROTOCOL = ("short_side", "psnr_cap_db")


@dataclass(frozen=True)
class Method:
    """One method's per-image scores in one evaluation report."""
    report: dict
    method: str  # "model", "baseline:NAME" or "oracle:NAME"
    label: str  # how tables name it

    def scores(self) -> dict[tuple[str, str], dict[str, float]]:
        """{(set, image name): {metric: value}} over the report's images."""
        return {(row["set"], row["name"]): row[self.method] for row in self.report["pairs"] if row.get(self.method)}


def _method_key(report: dict, asked: str, where: str) -> str:
    """The report's key for a method named "model", "baseline:NAME", "oracle:NAME" or a bare baseline/oracle NAME."""
    keys = [k for k in report["pairs"][0] if k not in ("name", "set")] if report.get("pairs") else []
    for key in (asked, f"baseline:{asked}", f"oracle:{asked}"):
        if key in keys:
            return key
    raise ValueError(f"{where} has no method {asked!r}: it has {', '.join(keys) or 'no per-image scores'}")


def load_method(spec: str | os.PathLike) -> Method:
    """"REPORT.json" (its generator) or "REPORT.json:METHOD" (e.g. weights/ir2vis/evaluation.json:mid_gray)."""
    text = str(spec)
    path, _, asked = text.partition(".json:")
    path = path + ".json" if asked else text
    asked = asked or DEFAULT_METHOD
    try:
        report = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"cannot read the evaluation report {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e.msg}, line {e.lineno}): give an evaluation report "
                         "(python -m irvis evaluate --json)") from None
    if not isinstance(report, dict) or not isinstance(report.get("pairs"), list) or "direction" not in report:
        raise ValueError(f"{path} is not an evaluation report with per-image scores (python -m irvis evaluate --json)")
    key = _method_key(report, asked, path)
    who = report.get("weights") if key == DEFAULT_METHOD else key.split(":", 1)[1]
    return Method(report, key, f"{who or key} ({Path(path).name})")


def _check_comparable(a: Method, b: Method) -> None:
    if a.report["direction"] != b.report["direction"]:
        raise ValueError(f"the reports score different directions ({a.report['direction']} and {b.report['direction']})")
    for key in SAME_PROTOCOL:
        va, vb = a.report.get("protocol", {}).get(key), b.report.get("protocol", {}).get(key)
        if va != vb:
            raise ValueError(f"the reports were scored under different protocols ({key}: {va} and {vb}): "
                             "score both with the same `python -m irvis evaluate` settings")
    ia, ib = set(a.scores()), set(b.scores())
    if ia != ib:
        only = lambda s: ", ".join("/".join(k) for k in sorted(s)[:5]) + (" ..." if len(s) > 5 else "")  # noqa: E731
        parts = [f"{len(s)} only in {m.label} ({only(s)})" for s, m in ((ia - ib, a), (ib - ia, b)) if s]
        raise ValueError("the reports score different images: " + "; ".join(parts) +
                         ": score both on the same split of the same data")


def _compare_metric(metric: Metric, images: list, sa: dict, sb: dict, n_boot: int, seed: int) -> dict | None:
    rows = [(k[0], sa[k][metric.name], sb[k][metric.name]) for k in images
            if metric.name in sa[k] and metric.name in sb[k]]
    if not rows:
        return None
    sets = np.array([r[0] for r in rows])
    a, b = np.array([r[1] for r in rows], dtype=np.float64), np.array([r[2] for r in rows], dtype=np.float64)
    leads = np.array([metric.lead(x, y) for x, y in zip(a, b)])
    lo, hi = None, None
    if len(rows) >= MIN_IMAGES:  # the mean lead over images resampled within their sets
        lo, hi = interval(leads[resample_indices(sets, n_boot=n_boot, seed=seed)].mean(axis=1))
    return {"n": len(rows), "a": rounded(a.mean()), "b": rounded(b.mean()), "lead": rounded(leads.mean()),
            "interval": [lo, hi], "a_ahead": int((leads > 0).sum()), "b_ahead": int((leads < 0).sum()),
            "verdict": verdict(lo, hi)}


def lead_over_best_baseline(report: dict, metrics: list[str] | None = None, n_boot: int = N_BOOT,
                            seed: int = 0) -> dict:
    """An evaluation result's generator against its best baseline on each headline metric (the baseline best by
    mean in that set, or overall), with the same figures as compare_methods: {group: {metric: {"baseline", ...}}},
    overall and, where there are several sets, per set. Empty when the report has no generator."""
    if not report.get("pairs") or "model" not in report["pairs"][0]:
        return {}
    model = Method(report, DEFAULT_METHOD, DEFAULT_METHOD)
    scores = model.scores()
    per_set = report.get("per_set", {})
    entries = {ALL: report, **(per_set if len(per_set) > 1 else {})}  # one set: its rows would repeat the overall ones
    out = {}
    for group, entry in entries.items():
        members = sorted(k for k in scores if group == ALL or k[0] == group)
        figures = {}
        for name in metrics or [m.name for m in headline()]:
            means = {k: v[name] for k, v in entry.get("baselines", {}).items() if v and name in v}
            if not means:
                continue
            best = REGISTRY[name].best(means)
            f = _compare_metric(REGISTRY[name], members, scores, Method(report, f"baseline:{best}", best).scores(),
                                n_boot, seed)
            if f is not None:
                figures[name] = {"baseline": best, **f}
        out[group] = figures
    return out


def verdict(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "too few images"
    return "ahead" if lo > 0 else "behind" if hi < 0 else "no clear difference"


def compare_methods(a: Method, b: Method, metrics: list[str] | None = None, n_boot: int = N_BOOT,
                    seed: int = 0) -> dict:
    """How far a is ahead of b ("lead": positive when a is better; for sharpness, nearer the truth's 1), overall
    and per set, each with its 95% bootstrap interval, the number of images each leads on, and a verdict (ahead /
    behind only when the interval excludes 0)."""
    _check_comparable(a, b)
    sa, sb = a.scores(), b.scores()
    images = sorted(sa)
    if not images:
        raise ValueError(f"{a.label} has no per-image scores")
    names = metrics or list(metric_names())
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}: use {', '.join(REGISTRY)}")
    groups = {ALL: images, **{s: [k for k in images if k[0] == s] for s in sorted({k[0] for k in images})}}
    out = {}
    for group, members in groups.items():
        figures = {n: _compare_metric(REGISTRY[n], members, sa, sb, n_boot, seed) for n in names}
        out[group] = {n: f for n, f in figures.items() if f is not None}
    return {"direction": a.report["direction"], "a": a.label, "b": b.label, "n_boot": n_boot, "level": LEVEL,
            "resampling": "images resampled with replacement within their sets", "groups": out}


def _group(group: str) -> str:
    return "all" if group == ALL else group


def _span(f: dict, digits: int) -> str:
    lo, hi = f["interval"]
    return "n/a" if lo is None else f"{lo:+.{digits}f} to {hi:+.{digits}f}"


def lead_table(leads: dict) -> list[str]:
    """lead_over_best_baseline as Markdown table lines, narrow enough for half a page."""
    rows = ["| set (images) | metric | lead over the best baseline | 95% interval | images ahead | verdict |",
            "|---|---|---|---|---|---|"]
    for group, figures in leads.items():
        for name, f in figures.items():
            m = REGISTRY[name]
            rows.append(f"| {_group(group)} ({f['n']}) | {m.short_label or m.label} | {f['lead']:+.{m.digits}f} "
                        f"({f['baseline']}) | {_span(f, m.digits)} | {f['a_ahead']} of {f['n']} | {f['verdict']} |")
    return rows


def markdown(result: dict) -> str:
    """The comparison as a Markdown table: one row per set (overall first) and metric."""
    pct = round(result["level"] * 100)
    lines = [f"# {result['direction']}: A = {result['a']} against B = {result['b']}", "",
             f"Lead: how far A is ahead of B, the mean over images of A's score minus B's (sharpness: how much nearer "
             f"the truth's 1); {pct}% bootstrap interval over images ({result['n_boot']} replicates, "
             f"{result['resampling']}). Ahead/behind only when the interval excludes 0. Images count as independent "
             f"draws: consecutive frames of one video (a set split by sequence) are not, so its interval is narrower than "
             f"another sequence would show.", "",
             "| set | images | metric | A | B | lead | interval | images A / B leads | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for group, figures in result["groups"].items():
        for name, f in figures.items():
            m = REGISTRY[name]
            d = m.digits
            lines.append(f"| {_group(group)} | {f['n']} | {m.short_label or m.label} | {f['a']:.{d}f} | {f['b']:.{d}f} | "
                         f"{f['lead']:+.{d}f} | {_span(f, d)} | {f['a_ahead']} / {f['b_ahead']} | {f['verdict']} |")
    return "\n".join(lines) + "\n"
