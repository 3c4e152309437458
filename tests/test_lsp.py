"""Language Self-Play: both roles' rewards and advantages on hand-computed groups (LSP and LSP-Zero), the frozen
start as the KL's reference and as the self-reward judge, the reward model verifier, the tiny recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from selfimprove.config import load_recipe
from selfimprove.loop.online import reward_terms
from selfimprove.loop.runner import run_recipe
from selfimprove.objectives.advantages import group_advantages, group_ids
from selfimprove.records import Rollout, Verdict
from selfimprove.rewards import StepRollouts
from selfimprove.rewards.stage import assign_rewards

ROOT = Path(__file__).resolve().parent.parent
LSP, LSP_ZERO = ROOT / "recipes" / "lsp_math.yaml", ROOT / "recipes" / "lsp_zero_math.yaml"

# Two queries, two answers each: reward-model scores R and self-rewards R_Q, chosen by hand.
R = {("q0", 0): 2.0, ("q0", 1): 4.0, ("q1", 0): -1.0, ("q1", 1): 1.0}
R_Q = {("q0", 0): 5.0, ("q0", 1): 7.0, ("q1", 0): 3.0, ("q1", 1): 1.0}


def play(recipe_path: Path) -> tuple[list[Rollout], list[Rollout], dict]:
    recipe = load_recipe(recipe_path)
    roles = {r.name: r for r in recipe.roles}
    challengers = [Rollout(f"challenger/fixed-0/{k}", "challenger", "fixed-0", [], f"query {k}") for k in range(2)]
    solvers = []
    for k, q in enumerate(("q0", "q1")):
        for j in range(2):
            verdicts = {"self_reward": Verdict(R_Q[(q, j)], False)} if "self_reward" in recipe_path.read_text() else {}
            solvers.append(Rollout(
                f"solver/{challengers[k].id}/{j}", "solver", challengers[k].id, [], f"answer {j}",
                meta={"parent_id": challengers[k].id}, verdict=Verdict(R[(q, j)], False), verdicts=verdicts,
            ))  # fmt: skip
    labels = {name: [v.tag for v in recipe.verifiers_of(role)] for name, role in roles.items()}
    step = StepRollouts({"challenger": challengers, "solver": solvers}, labels)
    for name, rollouts in (("solver", solvers), ("challenger", challengers)):
        assign_rewards(rollouts, reward_terms(roles[name]), step)
    return challengers, solvers, roles


def advantages(rollouts: list[Rollout], group_by: list[str]) -> list[float]:
    rewards = torch.tensor([r.reward for r in rollouts])
    keys = [r.group_key(group_by) for r in rollouts]
    return group_advantages(rewards, group_ids(keys), scale=False).tolist()


def test_lsp_rewards_and_advantages_on_hand_computed_groups() -> None:
    challengers, solvers, roles = play(LSP)
    # Solver: R + R_Q, minus the mean over its query's two answers
    assert [s.reward for s in solvers] == [7.0, 11.0, 2.0, 2.0]
    assert advantages(solvers, roles["solver"].group_by) == [-2.0, 2.0, 0.0, 0.0]
    # Challenger: -V(q) + V_Q(q) = -mean R + mean R_Q per query, minus the mean over the step's queries
    assert [c.reward for c in challengers] == [-3.0 + 6.0, -0.0 + 2.0]
    assert advantages(challengers, roles["challenger"].group_by) == [0.5, -0.5]
    assert challengers[0].reward_parts == {"V": 3.0, "V_Q": 6.0}


def test_lsp_zero_drops_the_self_reward_and_its_challenger_advantage_is_the_mean_v_minus_v() -> None:
    challengers, solvers, roles = play(LSP_ZERO)
    assert [s.reward for s in solvers] == [2.0, 4.0, -1.0, 1.0]  # R alone
    assert advantages(solvers, roles["solver"].group_by) == [-1.0, 1.0, -1.0, 1.0]
    v = [3.0, 0.0]  # V(q): the mean reward-model score of each query's answers
    assert [c.reward for c in challengers] == [-3.0, -0.0]
    assert advantages(challengers, roles["challenger"].group_by) == [sum(v) / 2 - v[0], sum(v) / 2 - v[1]]


@pytest.mark.parametrize(
    "name", ["lsp_math.yaml", "lsp_zero_math.yaml", "lsp_arithmetic.yaml", "lsp_zero_arithmetic.yaml", "tiny/lsp.yaml"]
)
def test_lsp_recipes_regularise_with_the_kl_gradient_k2_in_the_loss(name: str) -> None:
    # k1 in the loss has zero expected gradient (tests/test_objectives.py): every LSP recipe uses k2
    objective = load_recipe(LSP.parent / name).updater.build()
    assert (objective.beta, objective.kl_estimator) == (0.05, "k2")


def test_lsp_objective_is_the_kl_sequence_sums_and_one_loss_over_both_roles() -> None:
    recipe = load_recipe(LSP)
    objective = recipe.updater.build()
    assert (objective.beta, objective.kl_estimator, objective.scale_rewards) == (0.05, "k2", False)
    assert (objective.loss_aggregation, objective.role_loss) == ("seq-mean-token-sum", "per_role")
    assert recipe.role("challenger").loss_weight == 1.0 and recipe.role("solver").train


def test_the_kl_reference_and_the_self_reward_judge_are_the_frozen_start(tiny_model: str) -> None:
    """After updates the reference log-probs are still the base model's, and the judge's model is the base model
    built from the trained model's own frozen weights (no copy)."""
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    from selfimprove.config.schema import Adapter
    from selfimprove.records import Example
    from selfimprove.tokens import collate
    from selfimprove.training.actor import Actor
    from selfimprove.training.trainer import Trainer
    from selfimprove.updaters.grpo import GRPO

    examples = [Example(f"e{i}", [{"role": "user", "content": f"q{i % 2}"}], "ab" * (i + 1), reward=float(i % 2),
                        group=f"g{i % 2}", role="solver") for i in range(4)]  # fmt: skip
    t = Trainer(tiny_model, Adapter(r=4, alpha=8), GRPO(learning_rate=5e-2, beta=0.05, kl_estimator="k1"), seed=0,
                total_steps=3)  # fmt: skip
    for s in range(2):
        t.step(examples, seed=s)
    batch = t.score(examples)
    base = Actor(AutoModelForCausalLM.from_pretrained(tiny_model))
    with torch.no_grad():
        base_logps, _ = base(**collate(batch.prompts, batch.completions, batch.pad_id))
        policy_logps, _ = Actor(t.model)(**collate(batch.prompts, batch.completions, batch.pad_id))
    assert torch.allclose(batch.ref_logps, base_logps, atol=1e-5)
    assert not torch.allclose(policy_logps, base_logps, atol=1e-3)  # the policy did move
    judge = t.policy.reference().inference_model()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(judge(input_ids=ids).logits, base.policy(input_ids=ids).logits, atol=1e-5)
    frozen = {m.base_layer.weight.data_ptr() for m in t.model.modules() if isinstance(m, LoraLayer)}
    assert frozen <= {p.data_ptr() for p in judge.parameters()}  # the trained model's frozen base weights


def build_reward_model(path: Path, tokenizer_from: str) -> str:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_reward_model_scores_are_raw_batched_and_read_at_the_last_real_token(tiny_model: str, tmp_path: Path):
    from selfimprove.verifiers.reward_model import RewardModelVerifier

    model = build_reward_model(tmp_path / "rm", tiny_model)
    rollouts = [Rollout(str(i), "solver", "p", [{"role": "user", "content": "2+2?"}], "4" * (i + 1))
                for i in range(5)]  # fmt: skip
    batched = RewardModelVerifier(model, batch_size=4).verify(rollouts)
    alone = [RewardModelVerifier(model, batch_size=1).verify([r])[0] for r in rollouts]
    assert [v.score for v in batched] == pytest.approx([v.score for v in alone], abs=1e-5)  # padding changes nothing
    assert len({round(v.score, 6) for v in batched}) > 1 and not any(v.passed for v in batched)
    assert RewardModelVerifier(model, threshold=-1e9).verify(rollouts[:1])[0].passed


def test_tiny_lsp_recipe_plays_both_roles(tiny_model: str, tmp_path: Path) -> None:
    model = build_reward_model(tmp_path / "rm", tiny_model)
    recipe = load_recipe(ROOT / "recipes" / "tiny" / "lsp.yaml", [
        f"model={tiny_model}", f"roles.1.verifiers.0.model={model}",
        "roles.1.source.parser=completion",  # the random model writes no markers
        # nor a readable self-reward: count it 0 here (in real runs it is no reward)
        "roles.1.rewards.1.default=0.0", "roles.0.rewards.1.default=0.0",
    ])  # fmt: skip
    run = tmp_path / "run"
    run_recipe(recipe, run, show_progress=False)
    records = [json.loads(x) for x in (run / "step-000001" / "rollouts.jsonl").read_text().splitlines()]
    challengers = [r for r in records if r["role"] == "challenger"]
    solvers = [r for r in records if r["role"] == "solver"]
    assert len(challengers) == 2 and len(solvers) == 4
    for c in challengers:
        answers = [s for s in solvers if s["meta"]["parent_id"] == c["id"]]
        v = sum(s["verdict"]["score"] for s in answers) / 2  # the first verifier: the reward model
        assert c["reward"] == pytest.approx(-v + 0.0)
    steps = [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if m["stage"] == "step"]
    assert all("challenger/code" in s and "solver/code" in s and s["kl"] is not None for s in steps)


def test_query_diversity_and_code_share() -> None:
    from selfimprove.loop.online import distinct_ngrams, role_metrics

    assert distinct_ngrams(["a b c", "a b d"]) == 3 / 4  # bigrams: (a b) twice, (b c), (b d)
    assert distinct_ngrams(["one"]) is None
    answers = [Rollout(str(i), "solver", "p", [], text) for i, text in enumerate(
        ["def f(x):\n    return x", "The sum is 4.", "```python\nprint(4)\n```", "import math"])]  # fmt: skip
    metrics = role_metrics("solver", answers)
    assert metrics["solver/code"] == 0.75
