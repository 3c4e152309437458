"""The ``selfimprove`` command. Subcommands import their heavy modules only when they run,
so ``selfimprove --help`` never imports torch."""

from __future__ import annotations

import sys

import click

from selfimprove import __version__
from selfimprove.cli.analyze import analyze
from selfimprove.cli.commands import ls, plugins, run, validate
from selfimprove.cli.compare import compare
from selfimprove.cli.eval import eval_command
from selfimprove.cli.report import report
from selfimprove.cli.verify import verify
from selfimprove.errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="selfimprove")
def cli() -> None:
    """Self-improvement methods for LLMs as YAML recipes: generate -> verify -> select -> update, then evaluate.

    \b
    Quick start:
      selfimprove run recipes/quickstart.yaml
      selfimprove ls verifier
    """


for command in (run, validate, ls, plugins):
    cli.add_command(command)
cli.add_command(eval_command)
cli.add_command(report)
cli.add_command(analyze)
cli.add_command(verify)
cli.add_command(compare)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(2)
    except UserError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted; rerun the same command to resume.", err=True)
        sys.exit(130)
