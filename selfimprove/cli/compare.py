"""``selfimprove compare``: runs side by side."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(
    epilog="""\b
Examples:
  selfimprove compare runs/quickstart runs/star-no-rationalization
  selfimprove compare runs/spin runs/spin-sft-control --out compare/spin
"""
)
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(file_okay=False), default="compare", show_default=True,
              help="Where compare.html and its plots go.")  # fmt: skip
@click.option("--no-html", is_flag=True, help="Only the tables.")
def compare(run_dirs: tuple[str, ...], out: str, no_html: bool) -> None:
    """Held-out metrics of RUN_DIRS side by side per iteration or step, what differs between their recipes, and
    whether they share seed and evaluation set (a warning when not: the comparison is then not like for like)."""
    from rich.table import Table

    from selfimprove.analysis.compare import compare_runs
    from selfimprove.progress import console
    from selfimprove.report.compare import write_page

    comparison = compare_runs(list(run_dirs))
    axis = comparison.runs[0].axis
    for task in comparison.tasks:
        for metric in comparison.metrics(task):
            table = Table(title=f"{task}: {metric}")
            table.add_column(axis)
            for name in comparison.names:
                table.add_column(name, justify="right")
            series = comparison.series(task, metric)
            for i, point in enumerate(comparison.points()):
                table.add_row(str(point), *("–" if v[i] is None else f"{v[i]:.1%}" for v in series.values()))
            console.print(table)
    table = Table(title="what differs between the recipes")
    table.add_column("key", no_wrap=True)  # a key is read whole; the values wrap
    for name in comparison.names:
        table.add_column(name)
    for key, values in comparison.differences:
        table.add_row(key, *(str(v) for v in values))
    console.print(table if comparison.differences else "The resolved recipes are the same.")
    for warning in comparison.warnings:
        console.print(f"[yellow]warning: {warning}[/]")
    if not no_html:
        click.echo(f"Wrote {write_page(comparison, Path(out))}")
