"""``selfimprove eval``: held-out accuracy, pass@k and maj@k of a model, an adapter or a run's checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from selfimprove.errors import UserError


def task_specs(texts: tuple[str, ...], split: str, limit: int | None, extra: dict[str, Any]) -> list[Any]:
    """``--task`` values: ``NAME [KEY=VALUE ...]`` (values read as YAML, checked against the task's constructor as
    a recipe's are) or a YAML file ``{name: ..., split, limit, label, <arguments>}``. ``extra`` (``--data`` and
    the jsonl fields) goes to every task whose constructor takes it."""
    import inspect

    import yaml

    from selfimprove.config.schema import load_component
    from selfimprove.eval.standalone import TaskSpec
    from selfimprove.registry import registries

    specs = []
    for text in texts:
        node: dict[str, Any]
        if text.endswith((".yaml", ".yml")) and Path(text).is_file():
            node = yaml.safe_load(Path(text).read_text()) or {}
            if not isinstance(node, dict) or not isinstance(node.get("name"), str):
                raise UserError(f"--task {text}: a task file is a mapping with a 'name', got {node!r}")
            node = dict(node)
            name = node.pop("name")
            arguments = [f"{k}={json.dumps(v)}" for k, v in node.items()]
        else:
            name, *arguments = text.split()
        given = {a.split("=", 1)[0] for a in arguments}
        if name in registries["task"].entries():  # the options a task takes: --data is its path
            params = inspect.signature(registries["task"].get(name)).parameters
            arguments += [f"{k}={json.dumps(v)}" for k, v in extra.items() if k in params and k not in given and v]
            if "path" in params and params["path"].default is inspect.Parameter.empty and "path" not in given:
                if not extra.get("path"):
                    raise UserError(f"--task {name} needs its file: --data FILE (or --task '{name} path=FILE')")
        component = load_component("task", name, arguments)
        specs.append(
            TaskSpec(
                name,
                component.split if "split" in given else split,
                component.limit if "limit" in given else limit,
                component.args,
                component.label,
            )
        )
    return specs


def parse_ks(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise UserError(f"--k: expected comma-separated integers like 1,4,16, got {text!r}") from None
    if any(k < 1 for k in ks):
        raise UserError(f"--k: every k must be at least 1, got {text!r}")
    return ks


@click.command(
    "eval",
    epilog="""\b
Examples:
  selfimprove eval --model smollm2-135m-instruct --task gsm8k --limit 100 --n 4 --k 1,4 --json gsm8k.json
  selfimprove eval --run runs/quickstart --task arithmetic --limit 64          # the run's last checkpoint
  selfimprove eval --run runs/quickstart --iteration 0 --task arithmetic      # its starting model
  selfimprove eval --run runs/grpo_arithmetic --step 20 --task arithmetic    # an online run's checkpoint
  selfimprove eval --model Qwen/Qwen2.5-0.5B-Instruct --task jsonl --data qa.jsonl \\
      --question-field prompt --answer-field target
  selfimprove eval --model smollm2-135m-instruct --task "arithmetic kinds=[add]" --task "code_reasoning mode=input"
  selfimprove eval --model smollm2-135m-instruct --task my_task.yaml                 # {name: countdown, numbers: 4}

\b
Greedy accuracy comes from one greedy completion per problem; with --n N > 1, N more completions per problem are
sampled at --temperature and pass@k and maj@k are computed from them (unbiased, for every k <= N).
""",
)
@click.option("--model", help="Embedded alias, local folder or hub id [default with --run: the run's model].")
@click.option("--adapter", type=click.Path(file_okay=False), help="A PEFT adapter folder on top of --model.")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="Evaluate a run's checkpoint.")
@click.option("--iteration", type=int, help="With --run: which iteration's policy (0 = the starting model).")
@click.option("--step", type=int, help="With an online --run: which checkpointed step (0 = the starting model).")
@click.option(
    "--task",
    "tasks",
    multiple=True,
    required=True,
    help="NAME [KEY=VALUE ...], or a task YAML file (repeat for several).",
)
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=int, help="First N problems of each task.")
@click.option("--n", "n", type=int, default=None, help="Samples per problem for pass@k [default: max k, or 1].")
@click.option("--k", "k_text", help="Comma-separated k for pass@k and maj@k [default: 1 and n].")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Temperature of the n samples.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--system", help="A system message before each problem.")
@click.option("--verifier", help="Verifier name [default: code for code tasks, math or numeric for the rest].")
@click.option("--data", type=click.Path(dir_okay=False), help="File for --task jsonl, math500, mbpp.")
@click.option("--question-field", default="question", show_default=True, help="--task jsonl: the question's key.")
@click.option("--answer-field", default="answer", show_default=True, help="--task jsonl: the answer's key.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write metrics and every completion here.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def eval_command(
    model: str | None,
    adapter: str | None,
    run_dir: str | None,
    iteration: int | None,
    step: int | None,
    tasks: tuple[str, ...],
    split: str,
    limit: int | None,
    n: int | None,
    k_text: str | None,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    system: str | None,
    verifier: str | None,
    data: str | None,
    question_field: str,
    answer_field: str,
    seed: int,
    json_out: str | None,
    quiet: bool,
) -> None:
    """Evaluate a model on held-out tasks: greedy accuracy, and pass@k / maj@k from --n samples."""
    from selfimprove.eval.evaluate import Sampling
    from selfimprove.eval.standalone import policy_from
    from selfimprove.loop.heldout import evaluate_policy
    from selfimprove.quiet import quiet_libraries

    ks = parse_ks(k_text)
    n = n if n is not None else max(ks, default=1)
    if n < 1 or any(k > n for k in ks):
        raise UserError(f"--k: every k must be at most --n ({n}), got {k_text}")
    if n > 1 and temperature <= 0:
        raise UserError(f"--temperature: the --n {n} samples need a temperature > 0, got {temperature}")
    extra = {"path": data, "question_field": question_field, "answer_field": answer_field}
    specs = task_specs(tasks, split, limit, extra)
    if data is not None and not any("path" in s.args for s in specs):
        raise UserError("--data is the file of a task that reads one (a task with a 'path' argument: jsonl, ...)")
    quiet_libraries()
    policy = policy_from(model, adapter, run_dir, iteration, step)
    generation = {"temperature": 0.0, "max_new_tokens": max_new_tokens, "batch_size": batch_size}
    result = evaluate_policy(policy, specs, Sampling(generation, n, ks, temperature), verifier, system, seed, not quiet)
    result.update(model=policy.base, checkpoint=policy.checkpoint, split=split, n=n, temperature=temperature, seed=seed)
    print_results(result)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n")
        click.echo(f"Wrote {json_out}")


def print_results(result: dict) -> None:
    """One row per metric, one column per task."""
    from rich.table import Table

    from selfimprove.eval.evaluate import metric_columns
    from selfimprove.progress import console

    tasks = result["tasks"]
    keys = list(dict.fromkeys(c for m in tasks.values() for c in metric_columns(m)))
    rows = [(key, "{:.1%}") for key in keys] + [("mean_response_tokens", "{:.0f}"), ("entropy", "{:.3f}")]
    table = Table(title=f"{result['checkpoint'] or result['model']} ({result['split']}, n={result['n']})")
    table.add_column("metric")
    for name, m in tasks.items():
        table.add_column(f"{name} ({len(m['problems'])})", justify="right")
    for key, fmt in rows:
        values = [m.get(key) for m in tasks.values()]
        table.add_row(key, *("" if v is None else fmt.format(v) for v in values))
    console.print(table)
