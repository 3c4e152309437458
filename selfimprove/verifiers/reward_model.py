"""A sequence-classification reward model scores (instruction, response) pairs: LSP's R (Skywork-Reward-V2).

The pair is rendered with the reward model's own chat template (a user turn with the rollout's question, an
assistant turn with its completion) and scored in batches; the score is the model's raw logit, kept as it is (LSP adds
it to a 0-7 self-reward without rescaling). ``passed`` is ``score >= threshold`` when a threshold is given.
"""

from __future__ import annotations

from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict


class RewardModelVerifier:
    """Scores each (question, completion) with a sequence-classification reward model (a hub id or a local folder)."""

    def __init__(self, model: str, batch_size: int = 8, max_length: int = 4096, threshold: float | None = None):
        if batch_size < 1 or max_length < 2:
            raise UserError("reward_model: batch_size must be at least 1, max_length at least 2")
        self.model, self.batch_size, self.max_length, self.threshold = model, batch_size, max_length, threshold
        self._loaded: tuple[Any, Any] | None = None

    def load(self) -> tuple[Any, Any]:
        """The model and tokenizer, loaded on first use and kept."""
        if self._loaded is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            from selfimprove.models.embedded import resolve
            from selfimprove.models.loading import device

            path = resolve(self.model)
            try:
                tokenizer = AutoTokenizer.from_pretrained(path)
                dtype = torch.bfloat16 if device() == "cuda" else torch.float32
                model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype, num_labels=1)
            except OSError as exc:
                raise UserError(f"reward_model: cannot load '{self.model}': {exc}") from None
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at each row's last real token
            self._loaded = (model.to(device()).eval(), tokenizer)
        return self._loaded

    def text(self, tokenizer: Any, rollout: Rollout) -> str:
        users = [m["content"] for m in rollout.prompt if m.get("role") == "user"]
        messages = [{"role": "user", "content": users[-1] if users else ""},
                    {"role": "assistant", "content": rollout.completion}]  # fmt: skip
        if tokenizer.chat_template:
            return tokenizer.apply_chat_template(messages, tokenize=False)
        return f"{messages[0]['content']}\n\n{messages[1]['content']}"

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        import torch

        model, tokenizer = self.load()
        tokenizer.padding_side = "right"
        verdicts = []
        for start in range(0, len(rollouts), self.batch_size):
            batch = rollouts[start : start + self.batch_size]
            encoded = tokenizer(
                [self.text(tokenizer, r) for r in batch], add_special_tokens=False, padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            ).to(model.device)  # fmt: skip
            with torch.inference_mode():
                scores = model(**encoded).logits[:, 0].float().tolist()
            for score in scores:
                passed = self.threshold is not None and score >= self.threshold
                verdicts.append(Verdict(float(score), passed, {"score": score}))
        return verdicts
