"""``report.html`` for a run directory: held-out metrics, training signals and the analyses, as PNG plots with a short
text summary. Built from the run directory alone (plus the base model's weights for the sparsity plot)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from selfimprove.analysis import passk
from selfimprove.analysis.difficulty import length_vs_difficulty
from selfimprove.analysis.entropy import entropy_by_iteration
from selfimprove.analysis.rundata import RunData, load_run
from selfimprove.errors import UserError
from selfimprove.report import plots


@dataclass
class Figure:
    file: str  # relative to the run directory
    caption: str


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def heldout_series(run: RunData, task: str) -> dict[str, list[float | None]]:
    keys = list(dict.fromkeys(k for e in run.evals for k in e.get(task, {}) if k.startswith(("pass@", "maj@"))))
    keys.sort(key=lambda k: (k.startswith("maj"), int(k.split("@")[1])))
    return {key: [e.get(task, {}).get(key) for e in run.evals] for key in ["accuracy", *keys]}


def training_series(run: RunData) -> tuple[dict[str, list[float | None]], list[float | None]]:
    reward: dict[str, list[float | None]] = {}
    kept: list[float | None] = []
    for role in run.roles:
        values = []
        for it in run.iterations:
            s = run.stage(it, f"generate:{role}")
            values.append(s["passed"] / s["rollouts"] if s and s.get("rollouts") else None)
        reward[role] = values
    for it in run.iterations:
        rollouts = sum((run.stage(it, f"generate:{r}") or {}).get("rollouts", 0) for r in run.roles)
        kept.append(run.selected[it] / rollouts if rollouts and it in run.selected else None)
    return reward, kept


def length_series(run: RunData) -> dict[str, list[float | None]]:
    series: dict[str, list[float | None]] = {}
    for task in run.tasks:
        series[f"eval:{task}"] = [e.get(task, {}).get("mean_response_tokens") for e in run.evals]
        if any("sample_mean_response_tokens" in e.get(task, {}) for e in run.evals):
            series[f"eval samples:{task}"] = [e.get(task, {}).get("sample_mean_response_tokens") for e in run.evals]
    for role in run.roles:
        series[f"generate:{role}"] = [
            (run.stage(it, f"generate:{role}") or {}).get("mean_tokens") for it in run.iterations
        ]
    return series


def summary_lines(run: RunData) -> list[str]:
    last = run.iterations[-1]
    lines = []
    for task in run.tasks:
        a, b = run.evals[0].get(task, {}), run.evals[-1].get(task, {})
        line = f"{task}: greedy accuracy {_pct(a.get('accuracy'))} at {run.axis} 0"
        if last:
            line += f", {_pct(b.get('accuracy'))} after {run.axis} {last}"
            ks = [k for k in b if k.startswith("pass@")]
            if ks:
                top = max(ks, key=lambda k: int(k.split("@")[1]))
                line += f"; {top} {_pct(a.get(top))} → {_pct(b.get(top))}"
            if a.get("entropy") is not None and b.get("entropy") is not None:
                line += f"; token entropy {a['entropy']:.3f} → {b['entropy']:.3f} nats"
        lines.append(line + ".")
    if run.selected:
        kept = ", ".join(f"{n} (iteration {it})" for it, n in sorted(run.selected.items()))
        lines.append(f"Examples kept for training: {kept}.")
    if run.steps:
        first, final = run.steps[0], run.steps[-1]
        for role in run.roles:
            key = f"{role}/reward"
            if key in first and key in final:
                lines.append(f"{role}: mean reward {first[key]:.3f} at step {first['step']}, {final[key]:.3f} at "
                             f"step {final['step']}.")  # fmt: skip
        seconds = sum(s["seconds"] for s in run.steps) / len(run.steps)
        lines.append(f"{len(run.steps)} steps, {seconds:.1f} s per step on average.")
    return lines


def eval_table(run: RunData) -> str:
    rows = []
    for task in run.tasks:
        series = heldout_series(run, task)
        head = "".join(f"<th>{html.escape(k)}</th>" for k in series)
        rows.append(f"<h3>{html.escape(task)}</h3><table><tr><th>{run.axis}</th>{head}<th>tokens</th></tr>")
        for i, point in enumerate(run.iterations):
            cells = "".join(f"<td>{_pct(v[i])}</td>" for v in series.values())
            tokens = run.evals[i].get(task, {}).get("mean_response_tokens")
            rows.append(f"<tr><td>{point}</td>{cells}<td>{'' if tokens is None else f'{tokens:.0f}'}</td></tr>")
        rows.append("</table>")
    return "\n".join(rows)


CAPTIONS = {
    "heldout": "Held-out {task}: greedy accuracy, and pass@k / maj@k from the eval samples when eval.n > 1.",
    "training": "Reward (the fraction of each role's rollouts the verifier passed) and the fraction the selector kept."
    + " Iteration k's rollouts come from the policy after iteration k-1.",
    "length": "Mean response length: held-out greedy completions, eval samples and each training role's rollouts"
    + " (iteration k's rollouts come from the policy after iteration k-1).",
    "entropy": "Mean per-token entropy of the policy's next-token distribution over its own completions (at T=1);"
    + " iteration k's training rollouts come from the policy after iteration k-1.",
    "passk": "pass@k of the first and the last iteration on {task} (the unbiased estimator over the eval samples).",
    "difficulty": "Mean response length of the base model and of iteration {it} on {task}, by base solve rate.",
    "sparsity": "Fraction of parameters each update left unchanged (|change| <= 1e-5; LoRA on the merged weights).",
}


ONLINE_CAPTIONS = {
    "heldout": "Held-out {task} over the run's steps: greedy accuracy, and pass@k / maj@k when eval.n > 1.",
    "reward": "Mean reward of each role's rollouts per step (shaded: ± one standard deviation).",
    "no_reward": "Share of each role's rollouts with no reward (a reward function could not compute one): left out"
    + " of the update.",
    "parts": "Each reward part of each role, mean per step (the terms of the role's weighted sum).",
    "length": "Mean completion length of each role's rollouts, in tokens, per step.",
    "passed": "Share of each role's rollouts its first verifier passed, per step (AZR: valid proposals, solved tasks).",
    "buffers": "Problems in each buffer at the end of each step.",
    "sparsity": "Share of parameters left unchanged at each kept checkpoint, against the starting model (LoRA merged).",
    "entropy": "Mean per-token entropy of the policy over each role's rollouts (at T=1), per step.",
    "update": "The update of each step: KL to the reference (when the objective has one), share of clipped tokens,"
    + " gradient norm before clipping.",
    "time": "Where each step's seconds went.",
    "passk": "pass@k of the first and the last evaluated step on {task}.",
}


def step_series(run: RunData, suffix: str) -> dict[str, list[float | None]]:
    """``<role><suffix>`` of every step record, per role (e.g. ``/reward``)."""
    series = {role: [s.get(f"{role}{suffix}") for s in run.steps] for role in run.roles}
    return {k: v for k, v in series.items() if any(x is not None for x in v)}


def online_figures(run: RunData, out: Path, sparsity: bool = True) -> tuple[list[Figure], list[str]]:
    """An online run's figures: held-out metrics at the evaluated steps, and the training signals of every step."""
    steps = [s["step"] for s in run.steps]
    made: list[Figure] = []
    notes: list[str] = []

    def add(path: Path, caption: str) -> None:
        made.append(Figure(str(path.relative_to(run.root)), caption))

    for task in run.tasks:
        png = plots.per_iteration(out / f"heldout-{task}.png", run.iterations, heldout_series(run, task), task, "",
                                  True, xlabel="step")  # fmt: skip
        add(png, ONLINE_CAPTIONS["heldout"].format(task=task))
    if not steps:
        return made, ["No step has finished yet: no training plots."]
    reward = step_series(run, "/reward")
    fig = plots.per_iteration(out / "reward.png", steps, reward, "reward per role", "mean reward", xlabel="step",
                              bands=step_series(run, "/reward_std"))  # fmt: skip
    add(fig, ONLINE_CAPTIONS["reward"])
    failed = step_series(run, "/no_reward")
    if any(v for series in failed.values() for v in series):
        add(plots.per_iteration(out / "no-reward.png", steps, failed, "rollouts without a reward", "share",
                                percent=True, xlabel="step"), ONLINE_CAPTIONS["no_reward"])  # fmt: skip
    parts = {
        f"{role} {key.split(':', 1)[1]}": [s.get(key) for s in run.steps]
        for role in run.roles
        for key in dict.fromkeys(k for s in run.steps for k in s if k.startswith(f"{role}/reward:"))
    }
    if parts:
        add(plots.per_iteration(out / "reward-parts.png", steps, parts, "reward parts", "mean", xlabel="step"),
            ONLINE_CAPTIONS["parts"])  # fmt: skip
    add(plots.per_iteration(out / "passed.png", steps, step_series(run, "/passed"), "passed (first verifier)", "share",
                            percent=True, xlabel="step"), ONLINE_CAPTIONS["passed"])  # fmt: skip
    add(plots.per_iteration(out / "length.png", steps, step_series(run, "/tokens"), "completion length", "tokens",
                            xlabel="step"), ONLINE_CAPTIONS["length"])  # fmt: skip
    buffers = {k[len("buffer/") :]: [s.get(k) for s in run.steps]
               for k in dict.fromkeys(k for s in run.steps for k in s if k.startswith("buffer/"))}  # fmt: skip
    if buffers:
        add(plots.per_iteration(out / "buffers.png", steps, buffers, "buffer sizes", "problems", xlabel="step"),
            ONLINE_CAPTIONS["buffers"])  # fmt: skip
    entropy = step_series(run, "/entropy")
    if entropy:
        add(plots.per_iteration(out / "entropy.png", steps, entropy, "policy token entropy", "nats per token",
                                xlabel="step"), ONLINE_CAPTIONS["entropy"])  # fmt: skip
    update = {
        title: {key: [s.get(key) for s in run.steps]}
        for title, key in (("KL", "kl"), ("clip fraction", "clip_fraction"), ("gradient norm", "grad_norm"))
        if any(key in s for s in run.steps)
    }
    if update:
        add(plots.panels(out / "update.png", steps, update), ONLINE_CAPTIONS["update"])
    parts_of_time = ("generate", "verify", "reward", "update", "other")
    seconds = {k: [s.get(f"{k}_seconds", 0.0) for s in run.steps] for k in parts_of_time}
    add(plots.stacked(out / "time.png", steps, seconds, "seconds per step", "seconds"), ONLINE_CAPTIONS["time"])
    for task in run.tasks:
        first = passk.counts(run.eval_rollouts(run.iterations[0], task, True))
        final = passk.counts(run.eval_rollouts(run.iterations[-1], task, True))
        if not first or not final or len(run.iterations) < 2:
            notes.append(f"No pass@k curve for {task}: it needs eval samples (eval.n > 1) at two evaluated steps.")
            continue
        ks = passk.curve_ks(min(n for n, _ in first + final))
        curves = {f"step {run.iterations[0]}": passk.curve(first, ks),
                  f"step {run.iterations[-1]}": passk.curve(final, ks)}  # fmt: skip
        add(plots.pass_at_k_curves(out / f"passk-{task}.png", ks, curves, f"pass@k on {task}"),
            ONLINE_CAPTIONS["passk"].format(task=task))  # fmt: skip
    if sparsity:
        from selfimprove.analysis.sparsity import sparsity_by_step

        try:
            fractions = sparsity_by_step(str(run.root))
        except (UserError, OSError) as exc:  # e.g. the base model is not on this machine
            fractions = {}
            notes.append(f"No sparsity plot: {exc}")
        if fractions:
            png = plots.sparsity(out / "sparsity.png", list(fractions), list(fractions.values()), xlabel="step")
            add(png, ONLINE_CAPTIONS["sparsity"])
    return made, notes


def figures(run: RunData, out: Path, sparsity: bool) -> tuple[list[Figure], list[str]]:
    """Draw every figure the run has data for; also return notes on what was left out and why."""
    if run.online:
        return online_figures(run, out, sparsity)
    its, last = run.iterations, run.iterations[-1]
    made: list[Figure] = []
    notes: list[str] = []

    def add(path: Path, caption: str) -> None:
        made.append(Figure(str(path.relative_to(run.root)), caption))

    for task in run.tasks:
        png = plots.per_iteration(out / f"heldout-{task}.png", its, heldout_series(run, task), task, "", True)
        add(png, CAPTIONS["heldout"].format(task=task))
    if run.roles:
        add(plots.training(out / "training.png", its, *training_series(run)), CAPTIONS["training"])
    png = plots.per_iteration(out / "length.png", its, length_series(run), "response length", "mean tokens")
    add(png, CAPTIONS["length"])
    entropy = entropy_by_iteration(run)
    if entropy:
        png = plots.per_iteration(out / "entropy.png", its, entropy, "policy token entropy", "nats per token")
        add(png, CAPTIONS["entropy"])
    for task in run.tasks:
        first, final = passk.counts(run.eval_rollouts(0, task, True)), passk.counts(run.eval_rollouts(last, task, True))
        if not first:
            notes.append(f"No pass@k curve for {task}: the run has no eval samples (set eval.n > 1).")
            continue
        ks = passk.curve_ks(min(n for n, _ in first + final))
        curves = {"iteration 0": passk.curve(first, ks)}
        if last:
            curves[f"iteration {last}"] = passk.curve(final, ks)
        png = plots.pass_at_k_curves(out / f"passk-{task}.png", ks, curves, f"pass@k on {task}")
        add(png, CAPTIONS["passk"].format(task=task))
    for task in run.tasks if last else []:
        base = run.eval_rollouts(0, task, True) or run.eval_rollouts(0, task, False)
        other = run.eval_rollouts(last, task, True) or run.eval_rollouts(last, task, False)
        if base and other:
            title = f"response length vs difficulty, {task}"
            png = plots.length_vs_difficulty(out / f"difficulty-{task}.png", length_vs_difficulty(base, other),
                                             f"iteration {last}", title)  # fmt: skip
            add(png, CAPTIONS["difficulty"].format(task=task, it=last))
    if sparsity and last:
        from selfimprove.analysis.sparsity import sparsity_by_iteration

        try:
            fractions = sparsity_by_iteration(str(run.root))
        except (UserError, OSError) as exc:  # e.g. the base model is not on this machine
            fractions = {}
            notes.append(f"No sparsity plot: {exc}")
        if fractions:
            add(plots.sparsity(out / "sparsity.png", list(fractions), list(fractions.values())), CAPTIONS["sparsity"])
    return made, notes


STYLE = """body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
figure{margin:1.5em 0}img{max-width:100%}figcaption{color:#555;font-size:.9em}.note{color:#777}"""


def write_report(run_dir: str | Path, sparsity: bool = True) -> Path:
    """Write ``RUN_DIR/report.html`` and its PNGs under ``RUN_DIR/report/``; returns the HTML's path."""
    run = load_run(run_dir)
    out = run.root / "report"
    out.mkdir(exist_ok=True)
    made, notes = figures(run, out, sparsity)
    body = [
        f"<h1>Run report: {html.escape(run.root.name)}</h1>",
        "<h2>Summary</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in summary_lines(run)) + "</ul>",
        "<h2>Held-out evaluation</h2>",
        eval_table(run),
        "<h2>Plots</h2>",
        *(
            f'<figure><img src="{html.escape(f.file)}" alt="{html.escape(f.caption)}">'
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
            for f in made
        ),  # fmt: skip
        *(f'<p class="note">{html.escape(n)}</p>' for n in notes),
    ]
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(run.root.name)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    path = run.root / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
