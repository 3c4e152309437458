"""Parameter update sparsity: the fraction of a model's parameters an update left unchanged.

RL fine-tuning is reported to update a small subnetwork while SFT changes nearly every weight; self-play methods are
compared on the same measure. For LoRA checkpoints it is measured on the merged weights, so a LoRA update counts every
entry of every adapted matrix that B @ A moved, and nothing outside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selfimprove.models import Policy


@dataclass
class Sparsity:
    unchanged: int
    total: int
    by_tensor: dict[str, float]  # name -> fraction unchanged

    @property
    def fraction(self) -> float:
        return self.unchanged / self.total if self.total else 1.0


def update_sparsity(before: dict[str, Any], after: dict[str, Any], atol: float = 1e-5) -> Sparsity:
    """Compare two parameter dicts of the same architecture; |after - before| <= atol counts as unchanged."""
    import torch

    if before.keys() != after.keys():
        missing = sorted(set(before) ^ set(after))[:3]
        raise ValueError(f"the checkpoints have different parameters (e.g. {missing})")
    unchanged = total = 0
    by_tensor = {}
    for name, a in before.items():
        b = after[name]
        if a.shape != b.shape:
            raise ValueError(
                f"parameter {name} has shape {tuple(a.shape)} in one checkpoint, {tuple(b.shape)} in other"
            )
        same = int(torch.isclose(a.float(), b.float(), rtol=0.0, atol=atol).sum())
        unchanged, total = unchanged + same, total + a.numel()
        by_tensor[name] = same / a.numel()
    return Sparsity(unchanged, total, by_tensor)


def merged_parameters(policy: Policy) -> dict[str, Any]:
    """The policy's parameters as one plain model (LoRA merged), tied weights counted once."""
    from selfimprove.models.loading import load_for_inference

    model = load_for_inference(policy)
    return {name: p.detach() for name, p in model.named_parameters()}


def sparsity_by_iteration(run_dir: str, atol: float = 1e-5) -> dict[int, float]:
    """Each update's sparsity against its starting point: the base model (``loop.init: base``) or the previous
    iteration's policy (``previous``). Iterations without a checkpoint are left out."""
    import json
    from pathlib import Path

    from selfimprove.eval.standalone import policy_from
    from selfimprove.rundir import RunDir

    root = Path(run_dir)
    init = json.loads((root / RunDir.MANIFEST).read_text())["recipe"].get("loop", {}).get("init", "base")
    out = {}
    for update in RunDir(root).iteration_dirs("update.json"):
        it = RunDir.number(update.parent.name)
        if not json.loads(update.read_text()).get("checkpoint"):
            continue
        after = policy_from(None, None, str(root), it)
        before = policy_from(None, None, str(root), it - 1) if init == "previous" else Policy(after.base)
        out[it] = update_sparsity(merged_parameters(before), merged_parameters(after), atol).fraction
    return out


def sparsity_by_step(run_dir: str, atol: float = 1e-5) -> dict[int, float]:
    """An online run's kept checkpoints against the starting model: the share of parameters that all its updates
    so far left unchanged."""
    from selfimprove.eval.standalone import policy_from
    from selfimprove.rundir import RunDir

    base = merged_parameters(policy_from(None, None, run_dir, None, 0))
    out = {}
    for step in RunDir(run_dir).saved_steps():
        after = merged_parameters(policy_from(None, None, run_dir, None, step))
        out[step] = update_sparsity(base, after, atol).fraction
    return out
