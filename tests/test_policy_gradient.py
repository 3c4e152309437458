"""The live trainer with the policy-gradient objectives on a tiny model: updates, metrics, micro-batching, the
critic's warm-up, a persistent optimizer, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from selfimprove.config.schema import Adapter
from selfimprove.errors import UserError
from selfimprove.records import Example
from selfimprove.tokens import micro_batches
from selfimprove.training.trainer import Trainer
from selfimprove.updaters.grpo import GRPO
from selfimprove.updaters.ppo import PPO
from selfimprove.updaters.reinforce_pp import ReinforcePP

LORA = Adapter(r=4, alpha=8)


def examples(n: int = 8, shift: int = 0) -> list[Example]:
    return [
        Example(f"e{i}", [{"role": "user", "content": f"{i % 3} + 1 = ?"}], f"{i % 3 + 1}" + "0" * (i % 4),
                reward=float((i + shift) % 2), group=f"p{i % 3}", role="solver")
        for i in range(n)
    ]  # fmt: skip


def trainer(model: str, objective, adapter: Adapter = LORA, steps: int = 10) -> Trainer:
    return Trainer(model, adapter, objective, seed=0, total_steps=steps)


def lora_b(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.model.named_parameters() if "lora_B" in k}


def test_micro_batches_respect_the_token_budget():
    lengths = [5, 1, 3, 3, 8]
    parts = micro_batches([0, 1, 2, 3, 4], lengths, max_tokens=6)
    assert sorted(i for p in parts for i in p) == [0, 1, 2, 3, 4]
    assert all(len(p) * max(lengths[i] for i in p) <= 6 or len(p) == 1 for p in parts)
    assert parts == [[1, 2], [3], [0], [4]]  # sorted by length; the 8 alone exceeds the budget


@pytest.mark.parametrize(
    "objective",
    [GRPO(learning_rate=1e-2, epochs=2, mini_batch_size=4), ReinforcePP(learning_rate=1e-2, whiten_by="group"),
     ReinforcePP(learning_rate=1e-2, kl_coef=0.1, beta=0.01)],
    ids=["grpo", "reinforce_pp-task-relative", "reinforce_pp-kl"],
)  # fmt: skip
def test_a_step_trains_the_adapter_and_reports_metrics(tiny_model: str, objective) -> None:
    t = trainer(tiny_model, objective)
    metrics = t.step(examples(), seed=1)
    # a fresh LoRA adapter starts with B = 0: any nonzero B was learnt
    assert any(v.abs().max() > 0 for v in lora_b(t).values())
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["optimizer_steps"] == objective.epochs * math.ceil(8 / (objective.mini_batch_size or 8))
    assert metrics["examples"] == 8 and t.version == 1
    assert ("kl" in metrics) == objective.needs_reference()


def test_first_on_policy_step_has_ratio_one(tiny_model: str) -> None:
    # one epoch, one minibatch: the ratio is exactly 1, nothing is clipped and the KL to the base is 0
    metrics = trainer(tiny_model, GRPO(learning_rate=1e-2)).step(examples(), seed=1)
    assert metrics["clip_fraction"] == 0.0 and metrics["kl"] == pytest.approx(0.0, abs=1e-7)
    # several epochs move the policy off the data's: later passes see ratios away from 1
    metrics = trainer(tiny_model, GRPO(learning_rate=5e-2, epochs=4, epsilon=0.01)).step(examples(), seed=1)
    assert metrics["clip_fraction"] > 0 and metrics["kl"] > 0


def test_micro_batch_split_does_not_change_the_update(tiny_model: str) -> None:
    outs = []
    for budget in (1, 10_000):  # every row alone, or the whole batch at once
        t = trainer(tiny_model, GRPO(learning_rate=1e-2, max_tokens_per_micro_batch=budget))
        t.step(examples(), seed=1)
        outs.append(lora_b(t))
    for key in outs[0]:
        assert torch.allclose(outs[0][key], outs[1][key], atol=1e-6), key


def test_full_fine_tuning_scores_the_reference_with_a_frozen_copy(tiny_model: str) -> None:
    t = trainer(tiny_model, GRPO(learning_rate=1e-3, epochs=2), adapter=Adapter("full"))
    before = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
    metrics = t.step(examples(), seed=1)
    assert t.reference is not None and all(not p.requires_grad for p in t.reference.parameters())
    after = t.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert metrics["kl"] > 0  # the second epoch has moved away from the reference
    ref = dict(t.reference.policy.named_parameters())
    assert all(torch.equal(ref[k], before[k]) for k in ref)  # the reference did not move


def test_ppo_warms_up_the_critic_over_the_first_steps_then_trains_both(tiny_model: str) -> None:
    t = trainer(tiny_model, PPO(learning_rate=1e-2, critic_learning_rate=1e-2, critic_warmup_steps=2))
    head = t.accelerator.unwrap_model(t.actor).value_head
    for step in (1, 2):  # one optimizer step per step: two steps of warm-up
        metrics = t.step(examples(shift=step), seed=step)
        assert metrics["critic_warmup"] == 1.0 and metrics["value_loss"] > 0
        assert all(v.abs().max() == 0 for v in lora_b(t).values())  # the actor is frozen
    assert head.weight.abs().max() > 0  # the critic learnt
    metrics = t.step(examples(shift=3), seed=3)
    assert metrics["critic_warmup"] == 0.0 and any(v.abs().max() > 0 for v in lora_b(t).values())


def _hand_written_steps(model_path: str, batches: list[list[Example]], lr: float) -> dict[str, torch.Tensor]:
    """Online GRPO without our trainer: one AdamW for the whole run, each example's loss on its own."""
    from transformers import set_seed

    from selfimprove.models.loading import load_for_training, load_tokenizer
    from selfimprove.tokens import encode

    tokenizer = load_tokenizer(model_path)
    set_seed(0)
    model = load_for_training(model_path, LORA, None)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    for batch in batches:
        rewards = torch.tensor([e.reward for e in batch])
        groups = sorted({e.group for e in batch})
        advantages = torch.zeros(len(batch))
        for g in groups:
            rows = torch.tensor([e.group == g for e in batch])
            advantages[rows] = (rewards[rows] - rewards[rows].mean()) / (rewards[rows].std() + 1e-4)
        optimizer.zero_grad()
        for e, a in zip(batch, advantages, strict=True):
            prompt, completion = encode(tokenizer, e.prompt, e.completion)
            ids = torch.tensor([prompt + completion])
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
            logps = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)
            ratio = torch.exp(logps - logps.detach())  # on-policy: 1, with the gradient of log pi
            (-(ratio * a).mean() / len(batch)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return {k: v.detach() for k, v in model.named_parameters() if "lora_" in k}


def test_online_steps_equal_a_hand_written_loop_with_one_persistent_adamw(tiny_model: str) -> None:
    # each step also has a group whose rewards are all equal: zero advantage, left out of our passes, computed by the
    # hand-written loop
    same = [Example(f"s{i}", [{"role": "user", "content": "9 + 9 = ?"}], "18" * (i + 1), reward=1.0, group="same",
                    role="solver") for i in range(3)]  # fmt: skip
    # and one step where every group is all equal: nothing to learn, yet AdamW counts the step
    batches = [examples(shift=0) + same, same, examples(shift=1) + same, examples(shift=2)]
    t = trainer(tiny_model, GRPO(learning_rate=1e-2, beta=0.0))
    for s, batch in enumerate(batches):
        t.step(batch, seed=s)
    ours = {k: v.detach() for k, v in t.model.named_parameters() if "lora_" in k}
    theirs = _hand_written_steps(tiny_model, batches, lr=1e-2)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.allclose(ours[key], theirs[key], atol=1e-5), key
    # a fresh AdamW every step (what the loop did before) ends elsewhere: the moments matter
    fresh = trainer(tiny_model, GRPO(learning_rate=1e-2, beta=0.0))
    for s, batch in enumerate(batches):
        fresh.optimizers[0].state.clear()
        fresh.step(batch, seed=s)
    moved = {k: v.detach() for k, v in fresh.model.named_parameters() if "lora_" in k}
    assert any(not torch.allclose(ours[k], moved[k], atol=1e-5) for k in ours)


@pytest.mark.parametrize("objective", [GRPO(learning_rate=1e-2, epochs=2, mini_batch_size=4),
                                       PPO(learning_rate=1e-2, critic_learning_rate=1e-2, critic_warmup_steps=1)],
                         ids=["grpo", "ppo"])  # fmt: skip
def test_a_checkpoint_continues_exactly(tiny_model: str, tmp_path: Path, objective) -> None:
    whole = trainer(tiny_model, objective, steps=4)
    for s in range(4):
        whole.step(examples(shift=s), seed=s)
    first = trainer(tiny_model, objective, steps=4)
    for s in range(2):
        first.step(examples(shift=s), seed=s)
    first.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "policy" / "adapter_config.json").is_file()  # a standard PEFT adapter
    resumed = trainer(tiny_model, objective, steps=4)
    resumed.load(tmp_path / "ckpt")
    for s in range(2, 4):
        resumed.step(examples(shift=s), seed=s)
    expected, got = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    heads = [t.accelerator.unwrap_model(t.actor).value_head for t in (whole, resumed)]
    if heads[0] is not None:
        assert torch.equal(heads[0].weight, heads[1].weight)
    assert resumed.optimizer_steps == whole.optimizer_steps and resumed.version == whole.version


def test_sampled_token_ids_are_what_the_update_scores(tiny_model: str) -> None:
    t = trainer(tiny_model, GRPO(learning_rate=1e-2))
    batch = examples(4)
    batch[0].completion_ids = [10, 11, 12]
    scored = t.score(batch)
    assert scored.completions[0] == [10, 11, 12]
    assert scored.completions[1] == t.tokenizer(batch[1].completion + t.tokenizer.eos_token,
                                                add_special_tokens=False)["input_ids"]  # fmt: skip


def test_no_examples_is_no_update(tiny_model: str) -> None:
    t = trainer(tiny_model, GRPO(learning_rate=1e-2))
    assert t.step([], seed=0) == {"examples": 0, "lr": 1e-2}
    assert t.version == 0 and all(v.abs().max() == 0 for v in lora_b(t).values())


@pytest.mark.parametrize(
    "bad",
    [lambda: GRPO(learning_rate=0), lambda: GRPO(epsilon=0), lambda: ReinforcePP(beta=-1), lambda: PPO(lam=2.0),
     lambda: GRPO(mini_batch_size=0), lambda: GRPO(lr_scheduler="sideways"), lambda: PPO(beta=0.1),
     lambda: GRPO(role_loss="each")],
)  # fmt: skip
def test_bad_arguments_are_user_errors(bad) -> None:
    with pytest.raises(UserError):
        bad()


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        GRPO(1e-6)  # type: ignore[misc]


def test_learning_rate_follows_the_schedule_over_steps(tiny_model: str) -> None:
    t = trainer(tiny_model, GRPO(learning_rate=1e-2, lr_scheduler="linear", warmup_steps=2), steps=6)
    lrs = [t.step(examples(shift=s), seed=s)["lr"] for s in range(6)]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(5e-3) and lrs[2] == pytest.approx(1e-2)
    assert lrs[3] > lrs[4] > lrs[5] > 0


def test_qlora_needs_cuda(tiny_model: str) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: covered by the gpu test")
    with pytest.raises(UserError, match="qlora needs a CUDA GPU"):
        trainer(tiny_model, GRPO(), adapter=Adapter("qlora"))


@pytest.mark.gpu
def test_qlora_grpo_step_on_cuda(tiny_model: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("bitsandbytes")
    t = trainer(tiny_model, GRPO(learning_rate=1e-2), adapter=Adapter("qlora"))
    assert math.isfinite(t.step(examples(), seed=0)["loss"])
    assert any(v.abs().max() > 0 for v in lora_b(t).values())


def test_chunked_log_probs_equal_the_direct_ones_with_gradients() -> None:
    from selfimprove.training.actor import token_logps

    torch.manual_seed(0)
    head = torch.nn.Linear(4, 11, bias=False)
    hidden = torch.randn(10, 4, requires_grad=True)
    targets = torch.randint(0, 11, (10,))
    direct = torch.log_softmax(head(hidden) / 0.7, -1).gather(-1, targets[:, None]).squeeze(-1)
    chunked = token_logps(head, hidden, targets, 0.7, chunk=3)
    assert torch.allclose(direct, chunked, atol=1e-6)
    grads = [torch.autograd.grad(x.sum(), [hidden, head.weight]) for x in (direct, chunked)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads, strict=True))


def test_models_with_scaled_logits_use_their_own_forward(tiny_model: str) -> None:
    from transformers import AutoModelForCausalLM

    from selfimprove.tokens import collate
    from selfimprove.training.actor import Actor

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    split = Actor(model)
    model.config.final_logit_softcapping = 30.0  # Llama ignores it; the actor then takes the model's forward
    whole = Actor(model)
    assert split.split is not None and whole.split is None
    inputs = collate([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14, 15]], 0)
    with torch.no_grad():
        a, b = split(**inputs)[0], whole(**inputs)[0]
    assert torch.allclose(a, b, atol=1e-5) and (a[0, 2:] == 0).all()


def test_lora_generation_uses_merged_weights_synced_after_each_update(tiny_model: str) -> None:
    t = trainer(tiny_model, GRPO(learning_rate=5e-2))
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = t.policy.inference_model()(input_ids=ids).logits
    t.step(examples(), seed=1)
    with torch.no_grad():
        merged = t.policy.inference_model()(input_ids=ids).logits
        live = t.model(input_ids=ids).logits  # the PEFT model with its adapter
    assert not torch.allclose(before, merged, atol=1e-4)  # the update reached the generator
    assert torch.allclose(merged, live, atol=1e-4)  # and it is the live policy's


def test_a_shared_prompt_prefix_runs_once_with_the_same_log_probs_and_gradients(tiny_model: str) -> None:
    from transformers import AutoModelForCausalLM

    from selfimprove.tokens import collate
    from selfimprove.training.actor import Actor

    torch.manual_seed(0)
    actor = Actor(AutoModelForCausalLM.from_pretrained(tiny_model))
    system = list(range(5, 29))  # 24 shared tokens: a system message, exemplars
    prompts = [system + [30, 31], system + [40], system + [41, 42, 43], system + [40]]
    completions = [[50, 51, 52], [53], [54, 55], [56, 57, 58, 59]]
    outputs = []
    for min_shared in (10**6, 16):
        inputs = collate(prompts, completions, 0, min_shared=min_shared)
        assert ("prefix_ids" in inputs) == (min_shared == 16)
        actor.zero_grad()
        logps, _ = actor(**inputs)
        (logps.sum() * 1.3).backward()
        outputs.append((logps.detach(), [p.grad.clone() for p in actor.parameters() if p.grad is not None]))
    (a, grads_a), (b, grads_b) = outputs
    assert torch.allclose(a, b, atol=1e-5)
    assert len(grads_a) == len(grads_b) and all(
        torch.allclose(x, y, atol=1e-5) for x, y in zip(grads_a, grads_b, strict=True)
    )


@pytest.mark.parametrize("shortcut", ["share_prefix", "skip_zero_advantage", "merged_generation"])
def test_each_shortcut_off_gives_the_same_update_by_another_path(tiny_model: str, shortcut: str) -> None:
    """Each exact shortcut is a switch (for benchmarks): off, the update is the same, computed the long way."""
    system = {"role": "system", "content": "Answer with one number, as in 2 + 2 = 4 and 3 + 5 = 8. " * 3}
    rollouts = [Example(f"e{i}", [system, {"role": "user", "content": f"{i % 3} + 1 = ?"}], f"{i % 3 + 1}" + "0" * i,
                        reward=float(i % 2 if i % 3 else 1), group=f"p{i % 3}", role="solver")
                for i in range(9)]  # fmt: skip  # group p0's rewards are all 1: zero advantage
    results = []
    for on in (True, False):
        t = trainer(tiny_model, GRPO(learning_rate=1e-2, beta=0.0, **{shortcut: on}))
        passes: list[tuple[int, bool]] = []  # the training passes' rows, and whether a prefix ran apart
        hook = t.accelerator.unwrap_model(t.actor).register_forward_pre_hook(
            lambda module, args, kw, passes=passes: passes.append((kw["input_ids"].size(0), "prefix_ids" in kw)),
            with_kwargs=True,
        )
        t.step(rollouts, seed=1)
        hook.remove()
        generating = t.policy.inference_model()
        rows, prefixes = sum(n for n, _ in passes), any(p for _, p in passes)
        results.append((lora_b(t), rows, prefixes, generating is t.model))
    (on_weights, on_rows, on_prefix, on_itself), (off_weights, off_rows, off_prefix, off_itself) = results
    assert all(torch.allclose(on_weights[k], off_weights[k], atol=1e-5) for k in on_weights)
    if shortcut == "share_prefix":
        assert on_prefix and not off_prefix
    elif shortcut == "skip_zero_advantage":
        assert (on_rows, off_rows) == (6, 9)  # the zero-advantage group's 3 rows run only without the shortcut
    else:
        assert not on_itself and off_itself  # a merged copy, or the PEFT model itself


def test_ppo_clips_the_reward_to_ten_before_the_kl_term() -> None:
    # OpenRLHF's compute_reward: clamp(r, -10, 10) on the sequence reward, then add -kl_coef * k1 per token. With
    # gamma = lambda = 1, zero values and no whitening, the advantage of the first token is the sum of the token
    # rewards: clip(r) - 0.05 * sum(log pi_old - log pi_ref).
    from selfimprove.objectives.policy_gradient import RolloutBatch

    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    log_ratio = torch.tensor([[1.0, 1.0], [-2.0, 0.0], [0.0, 0.0]])
    batch = RolloutBatch(
        [[1]] * 3, [[2, 3], [2, 3], [2]], 0, mask, torch.tensor([-33.0, 12.0, 0.5]), ["a", "b", "c"],
        old_logps=log_ratio - 1.0, ref_logps=torch.full((3, 2), -1.0), old_values=torch.zeros(3, 2),
    )  # fmt: skip
    PPO(kl_coef=0.05, lam=1.0, whiten_advantages=False).advantages(batch)
    # -10 - 0.05 * 2 = -10.1 (clipped after the KL it would be -10); 10 + 0.1 = 10.1; 0.5 unclipped
    assert batch.advantages[:, 0].tolist() == pytest.approx([-10.1, 10.1, 0.5])
    assert batch.advantages[0, 1].item() == pytest.approx(-10.05)  # the last token: clip(r) - 0.05 * 1
    PPO(kl_coef=0.05, lam=1.0, whiten_advantages=False, reward_clip_range=None).advantages(batch)
    assert batch.advantages[:, 0].tolist() == pytest.approx([-33.1, 12.1, 0.5])
    with pytest.raises(UserError, match="reward_clip_range"):
        PPO(reward_clip_range=(10.0, -10.0))


def test_ppo_critic_warmup_counts_rollout_steps_not_optimizer_steps(tiny_model: str) -> None:
    # 8 examples in minibatches of 2: 4 optimizer steps per rollout step. OpenRLHF's freezing_actor_steps = 1
    # freezes the actor for the whole first rollout step (all 4 optimizer steps) and trains it from the second.
    t = trainer(tiny_model, PPO(learning_rate=1e-2, critic_learning_rate=1e-2, critic_warmup_steps=1,
                                mini_batch_size=2))  # fmt: skip
    metrics = t.step(examples(shift=1), seed=1)
    assert metrics["optimizer_steps"] == 4 and t.optimizer_steps == 4
    assert metrics["critic_warmup"] == 1.0 and all(v.abs().max() == 0 for v in lora_b(t).values())
    metrics = t.step(examples(shift=2), seed=2)
    assert metrics["critic_warmup"] == 0.0 and any(v.abs().max() > 0 for v in lora_b(t).values())


def test_kl_metric_reports_the_drift_from_the_start_without_a_kl_term(tiny_model: str) -> None:
    # beta 0 (LSP's ablation): no KL in the loss, but kl_metric scores the reference so the drift is reported
    assert "kl" not in trainer(tiny_model, GRPO(learning_rate=5e-2, beta=0.0)).step(examples(), seed=1)
    metrics = trainer(tiny_model, GRPO(learning_rate=5e-2, epochs=2, beta=0.0, kl_metric=True)).step(examples(), 1)
    assert metrics["kl"] > 0  # the second epoch has moved away from the start
