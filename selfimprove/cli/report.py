"""``selfimprove report``: report.html with plots for a run directory."""

from __future__ import annotations

import click


@click.command(
    epilog="""\b
Examples:
  selfimprove report runs/quickstart                 # writes runs/quickstart/report.html
  selfimprove report runs/copied-from-gpu --no-sparsity
"""
)
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--no-sparsity", is_flag=True, help="Skip the sparsity plot (it loads the base model and checkpoints).")
def report(run_dir: str, no_sparsity: bool) -> None:
    """Write RUN_DIR/report.html: held-out metrics, reward, kept fraction, length, entropy, pass@k, sparsity."""
    from selfimprove.quiet import quiet_libraries
    from selfimprove.report import write_report

    quiet_libraries()
    path = write_report(run_dir, sparsity=not no_sparsity)
    click.echo(f"Wrote {path}")
