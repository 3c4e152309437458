"""The subcommands: run, validate, ls, plugins."""

from __future__ import annotations

from pathlib import Path

import click

from selfimprove.errors import UserError
from selfimprove.rundir import RunDir


@click.command(
    epilog="""\b
Examples:
  selfimprove run recipes/quickstart.yaml
  selfimprove run recipes/star_gsm8k.yaml loop.iterations=2 generator.temperature=0.7
  selfimprove run recipes/quickstart.yaml loop.iterations=0        # only evaluate the starting model
  selfimprove run recipes/quickstart.yaml --run-dir runs/qs --resume
"""
)
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--run-dir", type=click.Path(file_okay=False), help="Where the run lives [default: runs/<recipe name>].")
@click.option("--resume", is_flag=True, help="Require an existing run directory and continue it.")
@click.option("--fresh", is_flag=True, help="Delete an existing run directory first.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run(recipe: str, overrides: tuple[str, ...], run_dir: str | None, resume: bool, fresh: bool, quiet: bool) -> None:
    """Run RECIPE, with KEY=VALUE overrides. Rerunning into the same run directory resumes it."""
    import shutil

    from selfimprove.config import load_recipe

    spec = load_recipe(recipe, list(overrides))
    root = Path(run_dir or Path("runs") / Path(recipe).stem)
    if resume and fresh:
        raise UserError("--resume and --fresh contradict each other")
    if resume and not (root / RunDir.MANIFEST).exists():
        raise UserError(f"--resume: no run to resume in {root}")
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
    from selfimprove.loop.runner import run_recipe

    run_recipe(spec, root, show_progress=not quiet)
    layout = "step-*/, checkpoints/" if spec.online else "iter-*/"
    click.echo(f"Run directory: {root}  (summary.json, metrics.jsonl, {layout})")


@click.command(
    epilog="""\b
Examples:
  selfimprove validate recipes/*.yaml
  selfimprove validate recipes/quickstart.yaml loop.iterations=5
"""
)
@click.argument("words", nargs=-1, required=True, metavar="RECIPE... [KEY=VALUE]...")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key before checking.")
def validate(words: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Check recipes without loading a model: names, arguments, types, data files. Reports every problem.

    KEY=VALUE words are overrides, as `run` takes them, so the exact command to be run can be checked."""
    from pathlib import Path

    from selfimprove.config import load_recipe

    # a word with "=" that is not a file is an override (a recipe's path may hold "=" too)
    recipes = [w for w in words if "=" not in w or Path(w).is_file()]
    overrides = (*overrides, *(w for w in words if w not in recipes))
    if not recipes:
        raise UserError("validate: name at least one recipe file")
    failures = []
    for path in recipes:
        try:
            load_recipe(path, list(overrides))
            click.echo(f"ok  {path}")
        except UserError as exc:
            failures.append(f"{path}: {exc}")
    if failures:
        raise UserError("\n".join(failures))


@click.command(
    epilog="""\b
Examples:
  selfimprove ls
  selfimprove ls verifier
"""
)
@click.argument("kind", required=False)
def ls(kind: str | None) -> None:
    """List components by kind, with a description and the package that provides each."""
    from rich.console import Console
    from rich.table import Table

    from selfimprove.registry import registries

    if kind and kind.rstrip("s") not in registries:
        raise UserError(f"Unknown kind '{kind}'. Kinds: {', '.join(registries)}")
    kinds = [kind.rstrip("s")] if kind else list(registries)
    table = Table()
    for column in ("kind", "name", "description", "package"):
        table.add_column(column)
    for k in kinds:
        reg = registries[k]
        for name, entry in sorted(reg.entries().items()):
            try:
                description = reg.describe(name)
            except UserError as exc:
                description = f"[red]failed to load: {exc}[/]"
            table.add_row(k, name, description, f"{entry.package} {entry.version}".strip())
    Console().print(table)


@click.command(epilog="Example:\n\n  selfimprove plugins")
def plugins() -> None:
    """Installed plugin packages: versions, the components each adds, and any that failed to load."""
    from rich.console import Console
    from rich.table import Table

    from selfimprove.registry import registries

    table = Table()
    for column in ("package", "version", "adds", "status"):
        table.add_column(column)
    found: dict[tuple[str, str], list[str]] = {}
    failures: dict[str, list[str]] = {}
    for kind, reg in registries.items():
        for name, entry in reg.entries().items():
            if entry.package == "selfimprove":
                continue
            found.setdefault((entry.package, entry.version), []).append(f"{kind}:{name}")
            try:
                reg.get(name)
            except UserError as exc:
                failures.setdefault(entry.package, []).append(str(exc))
    for (package, version), names in sorted(found.items()):
        status = "[red]" + "; ".join(failures[package]) + "[/]" if package in failures else "[green]ok[/]"
        table.add_row(package, version, ", ".join(sorted(names)), status)
    console = Console()
    if not found:
        console.print("No plugins installed. See docs/plugins.md to write one.")
        return
    console.print(table)
