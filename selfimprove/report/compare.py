"""``compare.html``: runs side by side (``selfimprove.analysis.compare``) as plots per task and metric, tables, the
recipes' differences and the warnings."""

from __future__ import annotations

import html
import json
from pathlib import Path

from selfimprove.analysis.compare import Comparison
from selfimprove.report import plots


def write_page(comparison: Comparison, out: Path) -> Path:
    """``out/compare.html`` with a plot per task and metric, the tables, the recipe differences and the warnings."""
    out.mkdir(parents=True, exist_ok=True)
    axis = comparison.runs[0].axis
    body = [f"<h1>Comparison: {html.escape(', '.join(comparison.names))}</h1>"]
    body += [f'<p class="warn">Warning: {html.escape(w)}</p>' for w in comparison.warnings]
    for task in comparison.tasks:
        body.append(f"<h2>{html.escape(task)}</h2>")
        for metric in comparison.metrics(task):
            series = comparison.series(task, metric)
            png = plots.per_iteration(out / f"{task}-{metric.replace('@', '_at_')}.png", comparison.points(), series,
                                      f"{task}: {metric}", metric, percent=True, xlabel=axis)  # fmt: skip
            body.append(f'<figure><img src="{html.escape(png.name)}" alt="{html.escape(metric)}"></figure>')
            head = "".join(f"<th>{html.escape(n)}</th>" for n in comparison.names)
            rows = "".join(
                f"<tr><td>{p}</td>" + "".join("<td>–</td>" if v[i] is None else f"<td>{v[i]:.1%}</td>"
                                              for v in series.values()) + "</tr>"
                for i, p in enumerate(comparison.points())
            )  # fmt: skip
            body.append(f"<table><tr><th>{axis}</th>{head}</tr>{rows}</table>")
    body.append("<h2>What differs between the recipes</h2>")
    if comparison.differences:
        head = "".join(f"<th>{html.escape(n)}</th>" for n in comparison.names)
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{html.escape(json.dumps(v))}</td>" for v in values)
            + "</tr>"
            for k, values in comparison.differences
        )  # fmt: skip
        body.append(f"<table><tr><th>key</th>{head}</tr>{rows}</table>")
    else:
        body.append("<p>Nothing: the resolved recipes are the same.</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}"
             "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
             "img{max-width:100%}.warn{color:#a40}")  # fmt: skip
    page = (f'<!doctype html><html><head><meta charset="utf-8"><title>comparison</title><style>{style}</style>'
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")  # fmt: skip
    path = out / "compare.html"
    path.write_text(page, encoding="utf-8")
    return path
