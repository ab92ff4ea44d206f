"""Metric tables in Markdown, in one place: the evaluation report (irvis.evaluate), the model card (train.card)
and the published card's extra tables (train.publish) name, round and order the figures the same way.

A metrics dict is what irvis.evaluate writes for one method: {"psnr": .., "ssim": .., "sharpness": .., ...};
an evaluation entry is a result (or one of its per_set entries): {"model", "baselines", "oracles", "n_pairs"}."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from irvis.metrics import REGISTRY, headline, margin_line, metric_names, registered


def core() -> tuple[str, ...]:
    """What the card's side tables show: the metrics training's validation scores."""
    return metric_names(training=True)


def labels(short: bool = False) -> dict[str, str]:
    """Column header of each metric of the registry (irvis.metrics.REGISTRY), in the order tables show them;
    short: for narrow tables with many columns."""
    return {m.name: (m.short_label or m.label) if short else m.label for m in registered()}


def digits(key: str) -> int:
    """Decimals a table shows of this metric (3 for one the registry does not know)."""
    return REGISTRY[key].digits if key in REGISTRY else 3


def __getattr__(name: str):  # derived from the registry when read, so they follow it
    if name == "LABELS":
        return labels()
    if name == "SHORT_LABELS":
        return labels(short=True)
    if name == "DIGITS":
        return {m.name: m.digits for m in registered()}
    if name == "CORE":
        return core()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cell(m: Mapping | None, key: str) -> str:
    """One figure as a table shows it; "-" where it is missing or undefined (NaN)."""
    value = None if m is None else m.get(key)
    if value is None or value != value:
        return "-"
    return f"{value:.{digits(key)}f}"


def cells(m: Mapping | None, keys: Sequence[str] | None = None) -> list[str]:
    return [cell(m, k) for k in (core() if keys is None else keys)]


def headers(keys: Sequence[str] | None = None, prefix: str = "", short: bool = True) -> list[str]:
    names = labels(short)
    return [prefix + names[k] for k in (core() if keys is None else keys)]


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def present(methods: Iterable[Mapping | None]) -> tuple[str, ...]:
    """The headline metrics (PSNR, SSIM), then every other metric some method has, in the registry's order."""
    methods = [m for m in methods if m]
    lead = tuple(m.name for m in headline())
    return (*lead, *(k for k in labels() if k not in lead and any(k in m for m in methods)))


def pairs(n: int) -> str:
    return f"{n} pair" if n == 1 else f"{n} pairs"


def methods_table(entry: Mapping, model_label: str = "**model**", lead: bool = False) -> list[str]:
    """The model (if scored), each baseline and each oracle on every metric the entry has; with lead, a last
    column with the model's PSNR lead over each (positive: the model is better)."""
    model = entry.get("model")
    keys = present([model, *entry["baselines"].values(), *entry["oracles"].values()])
    lead = lead and bool(model)
    rows = []

    def row(name: str, m: Mapping, own: bool = False) -> list[str]:
        extra = [("" if own else f"{model['psnr'] - m['psnr']:+.2f}")] if lead else []
        return [name, *cells(m, keys), *extra]

    if model:
        rows.append(row(model_label, model, own=True))
    rows += [row(f"baseline: {k}", v) for k, v in entry["baselines"].items()]
    rows += [row(f"oracle: {k} (sees the truth)", v) for k, v in entry["oracles"].items()]
    header = ["method", *headers(keys, short=False)] + (["model's PSNR lead (dB)"] if lead else [])
    return table(header, rows)


def result_tables(result: Mapping, level: int = 2, model_label: str = "**model**", lead: bool = False) -> list[str]:
    """Overall, then each set: a heading, the methods table and the model's margin over the best baselines."""
    mark = "#" * level
    lines = []
    for title, entry in [("Overall", result), *((f"{name} ({pairs(e['n_pairs'])})", e)
                                                 for name, e in result["per_set"].items())]:
        lines += [f"{mark} {title}", "", *methods_table(entry, model_label, lead), ""]
        if entry.get("model") and entry["baselines"]:
            lines += [margin_line(entry["model"], entry["baselines"]), ""]
    return lines
