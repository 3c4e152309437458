"""``selfimprove analyze``: the analyses of "Towards Understanding Self-play for LLM Reasoning"."""

from __future__ import annotations

import json
from pathlib import Path

import click

from selfimprove.errors import UserError


@click.group(
    epilog="""\b
Examples:
  selfimprove analyze passk --run runs/quickstart --task arithmetic --n 64 --limit 50 --plot passk.png
  selfimprove analyze passk --model smollm2-135m-instruct --adapter runs/qs/iter-002/checkpoint --task gsm8k
  selfimprove analyze entropy runs/quickstart
  selfimprove analyze sparsity --model smollm2-135m-instruct base runs/qs/iter-001/checkpoint
  selfimprove analyze difficulty runs/quickstart
"""
)
def analyze() -> None:
    """pass@k curves, policy token entropy, update sparsity, response length against difficulty."""


def _print(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    from selfimprove.progress import console

    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@analyze.command()
@click.option("--model", "models", multiple=True, help="A model; twice to compare two models.")
@click.option("--adapter", type=click.Path(file_okay=False), help="Compare --model with --model plus this adapter.")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="Compare a run's start and a later policy.")
@click.option("--iteration", type=int, help="With an offline --run [default: the last].")
@click.option("--step", type=int, help="With an online --run: a checkpointed step [default: the last].")
@click.option("--task", required=True)
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=int)
@click.option("--n", "n", type=int, default=256, show_default=True, help="Samples per problem; k goes up to n.")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--max-new-tokens", type=int, default=256, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--system", help="A system message before each problem.")
@click.option("--verifier", help="Verifier name [default: as selfimprove eval].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), help="Write the curves as a PNG.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the curves and per-problem counts.")
def passk(
    models: tuple[str, ...], adapter: str | None, run_dir: str | None, iteration: int | None, step: int | None,
    task: str, split: str,
    limit: int | None, n: int, temperature: float, max_new_tokens: int, batch_size: int, system: str | None,
    verifier: str | None, seed: int, plot: str | None, json_out: str | None,
) -> None:  # fmt: skip
    """pass@k for k = 1, 2, 4, ... n of two policies on one task: is the trained model bounded by its base at high k?"""
    from selfimprove.analysis import passk as curves
    from selfimprove.eval.evaluate import Sampling
    from selfimprove.eval.standalone import TaskSpec, policy_from
    from selfimprove.loop.heldout import evaluate_policy
    from selfimprove.quiet import quiet_libraries
    from selfimprove.rundir import RunDir

    if run_dir and RunDir(run_dir).saved_steps():  # an online run: its start and a checkpointed step
        model = models[0] if models else None
        last = step if step is not None else RunDir(run_dir).saved_steps()[-1]
        pair = {"step 0": policy_from(model, None, run_dir, None, 0),
                f"step {last}": policy_from(model, None, run_dir, None, last)}  # fmt: skip
    elif run_dir:
        model = models[0] if models else None
        last = iteration if iteration is not None else max(RunDir(run_dir).finished_iterations(), default=0)
        pair = {
            "iteration 0": policy_from(model, None, run_dir, 0),
            f"iteration {last}": policy_from(model, None, run_dir, last),
        }
    elif len(models) == 2 and not adapter:
        pair = {m: policy_from(m, None, None, None) for m in models}
    elif len(models) == 1 and adapter:
        pair = {
            "base": policy_from(models[0], None, None, None),
            "adapter": policy_from(models[0], adapter, None, None),
        }
    else:
        raise UserError(
            "compare two policies: --run RUN [--iteration N], --model A --model B, or --model A --adapter X"
        )
    if n < 2 or temperature <= 0:
        raise UserError("--n must be at least 2 and --temperature above 0 for pass@k curves")
    quiet_libraries()
    generation = {"temperature": 0.0, "max_new_tokens": max_new_tokens, "batch_size": batch_size}
    ks = curves.curve_ks(n)
    spec = TaskSpec(task, split, limit)
    sampling = Sampling(generation, n, ks, temperature, majority=False)
    results = {}
    for name, policy in pair.items():
        result = evaluate_policy(policy, [spec], sampling, verifier, system, seed, show_progress=False)["tasks"][task]
        counts = [(p["n"], p["c"]) for p in result["problems"]]
        results[name] = {"pass@k": curves.curve(counts, ks), "counts": counts, "checkpoint": policy.checkpoint}
    _print(f"pass@k on {task}", ["k", *results], [[str(k), *(f"{r['pass@k'][i]:.1%}" for r in results.values())]
                                                  for i, k in enumerate(ks)])  # fmt: skip
    if plot:
        from selfimprove.report.plots import pass_at_k_curves

        pass_at_k_curves(Path(plot), ks, {k: v["pass@k"] for k, v in results.items()}, f"pass@k on {task}")
        click.echo(f"Wrote {plot}")
    if json_out:
        Path(json_out).write_text(json.dumps({"task": task, "ks": ks, "policies": results}, indent=2) + "\n")
        click.echo(f"Wrote {json_out}")


@analyze.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
def entropy(run_dir: str) -> None:
    """Mean per-token policy entropy per iteration: held-out completions and each training role's rollouts."""
    from selfimprove.analysis.entropy import entropy_by_iteration
    from selfimprove.analysis.rundata import load_run

    run = load_run(run_dir)
    series = entropy_by_iteration(run)
    if not series:
        raise UserError(f"{run_dir} logged no entropy (runs before entropy logging, or a generator without it)")
    rows = [[name, *("" if v is None else f"{v:.4f}" for v in values)] for name, values in series.items()]
    label = "step" if run.online else "iter"
    _print("policy token entropy (nats per token)", ["", *(f"{label} {it}" for it in run.iterations)], rows)


@analyze.command()
@click.option("--model", help="The base model both checkpoints belong to.")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Every update of a run: each iteration against its start, or each kept step against the base.",
)
@click.option("--atol", type=float, default=1e-5, show_default=True, help="|change| at most this counts as unchanged.")
@click.argument("before", required=False)
@click.argument("after", required=False)
def sparsity(model: str | None, run_dir: str | None, atol: float, before: str | None, after: str | None) -> None:
    """Fraction of parameters unchanged from BEFORE to AFTER (checkpoint folders, or 'base'); LoRA merged first."""
    from selfimprove.analysis.sparsity import (
        merged_parameters,
        sparsity_by_iteration,
        sparsity_by_step,
        update_sparsity,
    )
    from selfimprove.eval.standalone import policy_from
    from selfimprove.quiet import quiet_libraries
    from selfimprove.rundir import RunDir

    quiet_libraries()
    if run_dir:
        online = bool(RunDir(run_dir).saved_steps())
        fractions = (sparsity_by_step if online else sparsity_by_iteration)(run_dir, atol)
        label = "step" if online else "iteration"
        _print(
            f"update sparsity of {run_dir}", [label, "unchanged"], [[str(k), f"{v:.4%}"] for k, v in fractions.items()]
        )
        return
    if not (model and before and after):
        raise UserError("give --model M BEFORE AFTER, or --run RUN")
    a, b = (policy_from(model, None if c == "base" else c, None, None) for c in (before, after))
    result = update_sparsity(merged_parameters(a), merged_parameters(b), atol)
    moved = sorted(result.by_tensor.items(), key=lambda kv: kv[1])[:10]
    _print("least sparse tensors", ["parameter", "unchanged"], [[k, f"{v:.2%}"] for k, v in moved])
    click.echo(f"unchanged: {result.unchanged} of {result.total} parameters")
    click.echo(f"sparsity={result.fraction:.6f}")


@analyze.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--task", help="Which eval task [default: the first].")
@click.option("--iteration", type=int, help="Compared with iteration 0 [default: the last].")
@click.option("--bins", type=int, default=5, show_default=True)
def difficulty(run_dir: str, task: str | None, iteration: int | None, bins: int) -> None:
    """Mean response length by difficulty (the base model's solve rate on each problem), base vs a later iteration."""
    from selfimprove.analysis.difficulty import length_vs_difficulty
    from selfimprove.analysis.rundata import load_run

    run = load_run(run_dir)
    task = task or run.tasks[0]
    it = run.iterations[-1] if iteration is None else iteration
    if task not in run.tasks or it not in run.iterations:
        raise UserError(f"no eval of task '{task}' at iteration {it} in {run_dir} (tasks: {run.tasks})")
    base = run.eval_rollouts(0, task, True) or run.eval_rollouts(0, task, False)
    other = run.eval_rollouts(it, task, True) or run.eval_rollouts(it, task, False)
    rows = [
        [f"{b.low:.0%}-{b.high:.0%}", str(b.problems), "" if b.base_tokens is None else f"{b.base_tokens:.1f}",
         "" if b.tokens is None else f"{b.tokens:.1f}"]
        for b in length_vs_difficulty(base, other, bins)
    ]  # fmt: skip
    _print(f"response length vs difficulty, {task}", ["base solve rate", "problems", "base tokens", f"iter {it}"], rows)
