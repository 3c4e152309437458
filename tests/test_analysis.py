"""The analyses, each with a hand-checkable expectation on a tiny model or hand-made records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_RECIPE, build_tiny_model

from selfimprove.analysis import passk
from selfimprove.analysis.difficulty import length_vs_difficulty
from selfimprove.analysis.entropy import entropy_by_iteration
from selfimprove.analysis.rundata import load_run
from selfimprove.analysis.sparsity import merged_parameters, update_sparsity
from selfimprove.cli import cli
from selfimprove.config import load_recipe
from selfimprove.loop.runner import Runner
from selfimprove.models import Policy
from selfimprove.records import Rollout, Verdict
from selfimprove.registry import registries


class LetterFirst:
    """Passes completions that start with a letter: the tiny random model passes some samples, not all."""

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [Verdict(float(r.completion[:1].isalpha()), r.completion[:1].isalpha()) for r in rollouts]


@pytest.fixture(autouse=True)
def components(registrations) -> None:
    registries["verifier"].register("letter-first", LetterFirst)


def _rollout(problem: str, ok: bool, tokens: int = 10) -> Rollout:
    return Rollout(f"s/{problem}", "sample", problem, [], "", num_tokens=tokens, verdict=Verdict(float(ok), ok))


def test_pass_at_k_curve_from_counts() -> None:
    samples = [_rollout("a", True), _rollout("a", False), _rollout("b", False), _rollout("b", False)]
    assert passk.counts(samples) == [(2, 1), (2, 0)]
    assert passk.curve([(2, 1), (2, 0)], [1, 2]) == [0.25, 0.5]
    assert passk.curve_ks(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert passk.curve_ks(6) == [1, 2, 4, 6] and passk.curve_ks(1000)[-1] == 256


def test_length_against_base_solve_rate() -> None:
    base = [_rollout("easy", True, 4), _rollout("easy", True, 6), _rollout("hard", False, 20), _rollout("hard", False)]
    later = [_rollout("easy", True, 3), _rollout("hard", True, 40)]
    bins = length_vs_difficulty(base, later, bins=2)
    assert [(b.low, b.high, b.problems) for b in bins] == [(0.0, 0.5, 1), (0.5, 1.0, 1)]
    assert (bins[0].base_tokens, bins[0].tokens) == (15.0, 40.0)  # hard: base solved 0 of 2
    assert (bins[1].base_tokens, bins[1].tokens) == (5.0, 3.0)  # easy: solve rate 1.0 falls in the closed last bin


def test_sparsity_of_identical_and_of_partly_changed_checkpoints(tiny_model: str, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    base = merged_parameters(Policy(tiny_model))
    assert update_sparsity(base, base).fraction == 1.0
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        model.model.norm.weight.add_(1.0)  # one tensor of `hidden` entries moves
        model.model.layers[0].mlp.up_proj.weight[0, :5] += 1e-7  # below the tolerance: counts as unchanged
    model.save_pretrained(tmp_path / "changed")
    result = update_sparsity(base, merged_parameters(Policy(tiny_model, str(tmp_path / "changed"))))
    total = sum(p.numel() for p in base.values())
    assert result.total == total and result.unchanged == total - model.config.hidden_size
    assert result.by_tensor["model.norm.weight"] == 0.0


def test_sparsity_of_a_lora_adapter_on_merged_weights(tiny_model: str, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=2, target_modules=["q_proj"]))
    model.save_pretrained(tmp_path / "fresh")  # B = 0: the merged model is the base model
    base = merged_parameters(Policy(tiny_model))
    assert update_sparsity(base, merged_parameters(Policy(tiny_model, str(tmp_path / "fresh")))).fraction == 1.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.5)
    model.save_pretrained(tmp_path / "trained")
    result = update_sparsity(base, merged_parameters(Policy(tiny_model, str(tmp_path / "trained"))))
    q = [n for n in base if "q_proj" in n]
    assert result.unchanged == result.total - sum(base[n].numel() for n in q)  # every q_proj entry moved


def test_entropy_of_a_uniform_policy_is_log_v(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    path = build_tiny_model(tmp_path / "uniform")
    model = AutoModelForCausalLM.from_pretrained(path)
    model.lm_head.weight.data.zero_()
    model.save_pretrained(path)
    (tmp_path / "recipe.yaml").write_text(TINY_RECIPE.format(model=path, limit=2, iterations=0))
    recipe = load_recipe(tmp_path / "recipe.yaml", ["eval.n=2", "eval.tasks.0.limit=2"])
    Runner(recipe, tmp_path / "run", show_progress=False).execute()
    series = entropy_by_iteration(load_run(tmp_path / "run"))
    assert set(series) == {"eval:arithmetic", "eval samples:arithmetic"}
    for values in series.values():
        assert values[0] == pytest.approx(math.log(model.config.vocab_size), rel=1e-5)
    out = CliRunner().invoke(cli, ["analyze", "entropy", str(tmp_path / "run")], standalone_mode=False)
    assert out.exception is None and f"{math.log(model.config.vocab_size):.4f}" in out.output


def test_analyze_sparsity_cli(tiny_model: str) -> None:
    out = CliRunner().invoke(cli, ["analyze", "sparsity", "--model", tiny_model, "base", "base"], standalone_mode=False)
    assert out.exception is None and out.output.strip().endswith("sparsity=1.000000")


def test_analyze_difficulty_cli_reads_a_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for it in (0, 1):
        (run / f"iter-{it:03d}" / "eval").mkdir(parents=True)
        rollouts = [_rollout("p1", it == 1, 5 + it), _rollout("p2", True, 7)]
        lines = "".join(json.dumps(r.to_json()) + "\n" for r in rollouts)
        (run / f"iter-{it:03d}" / "eval" / "t.jsonl").write_text(lines)
    (run / "summary.json").write_text(json.dumps({"iterations": [{"iteration": i, "eval": {"t": {}}} for i in (0, 1)]}))
    out = CliRunner().invoke(cli, ["analyze", "difficulty", str(run), "--bins", "2"], standalone_mode=False)
    assert out.exception is None, out.exception
    rows = [line for line in out.output.splitlines() if "%" in line]
    assert "5.0" in rows[0] and "6.0" in rows[0] and "7.0" in rows[1]  # p1 unsolved by the base: 5 -> 6 tokens


def test_analyze_passk_of_a_zero_lora_equals_its_base(tiny_model: str, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=2, target_modules=["q_proj"]))
    model.save_pretrained(tmp_path / "zero")  # B = 0: the same policy as the base
    args = ["analyze", "passk", "--model", tiny_model, "--adapter", str(tmp_path / "zero"), "--task", "arithmetic",
            "--limit", "3", "--n", "4", "--max-new-tokens", "3", "--verifier", "letter-first",
            "--json", str(tmp_path / "p.json"), "--plot", str(tmp_path / "p.png")]  # fmt: skip
    out = CliRunner().invoke(cli, args, standalone_mode=False)
    assert out.exception is None, out.exception
    result = json.loads((tmp_path / "p.json").read_text())
    assert result["ks"] == [1, 2, 4]
    base, adapter = result["policies"]["base"], result["policies"]["adapter"]
    assert base["counts"] == adapter["counts"] and base["pass@k"] == adapter["pass@k"]
    assert 0 < base["pass@k"][0] < 1 and base["pass@k"] == sorted(base["pass@k"])
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
