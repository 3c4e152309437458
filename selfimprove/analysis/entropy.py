"""Policy token entropy per iteration: the mean per-token entropy of the policy over its own completions, logged by
the generator during sampling (no extra forward pass). A collapse of entropy across iterations is the usual sign
that self-training narrows the policy's exploration."""

from __future__ import annotations

from selfimprove.analysis.rundata import RunData


def entropy_by_iteration(run: RunData) -> dict[str, list[float | None]]:
    """Series name -> one value per iteration (offline) or evaluated step (online): eval greedy (``eval:<task>``),
    eval samples and each training role (online: its rollouts' mean at that step)."""
    series: dict[str, list[float | None]] = {}
    for task in run.tasks:
        series[f"eval:{task}"] = [e.get(task, {}).get("entropy") for e in run.evals]
        if any("sample_entropy" in e.get(task, {}) for e in run.evals):
            series[f"eval samples:{task}"] = [e.get(task, {}).get("sample_entropy") for e in run.evals]
    steps = {s["step"]: s for s in run.steps}
    for role in run.roles:
        if run.online:
            series[role] = [steps.get(point, {}).get(f"{role}/entropy") for point in run.iterations]
        else:
            series[f"generate:{role}"] = [
                (run.stage(it, f"generate:{role}") or {}).get("entropy") for it in run.iterations
            ]  # fmt: skip
    return {name: values for name, values in series.items() if any(v is not None for v in values)}
