"""LLM-as-judge: a model, through a generator it is given, scores each completion with a rubric prompt; ``judge``
builds that generator from a recipe's name and settings."""

from __future__ import annotations

import math
import string
from typing import Any

from selfimprove.capabilities import LiveGenerator
from selfimprove.errors import UserError
from selfimprove.generators import Generator, Request
from selfimprove.models import Policy
from selfimprove.models.live import LivePolicy, LoadedPolicy
from selfimprove.progress import Tracker
from selfimprove.records import Rollout, Verdict
from selfimprove.verifiers.rubrics import RUBRICS, parse_grade, parse_score

FIELDS = {"question", "completion", "answer"}
KEPT_CHARS = 2000  # of each judgement, in the verdict's info


def judge(
    model: str,
    rubric: str = "additive7",
    template: str | None = None,
    max_score: float | None = None,
    threshold: float | None = None,
    generator: str = "hf",
    generation: dict[str, Any] | None = None,
    checkpoint: str | None = None,
    seed: int = 0,
    prefill: str = "",
) -> JudgeVerifier:
    """LLM-as-judge: a frozen model (local or an OpenAI-compatible endpoint) scores completions with a rubric.

    ``model``: an embedded alias, a local folder or hub id (``hf``), the endpoint's model name (``openai``),
    ``policy``: the loop's current policy judges its own rollouts (self-reward), or ``reference``: the run's frozen
    starting model (LSP's self-reward; with LoRA, the policy with its adapter switched off). ``generator`` and its
    ``generation`` settings (greedy, 512 new tokens unless they say otherwise) sample the judgements. ``template``
    replaces the rubric's prompt; ``threshold`` defaults to a perfect score. ``prefill`` starts the judge's answer
    for it (``<Score>``: a small model then writes the number instead of restating the rubric); the judgement
    parsed is the prefill followed by what the judge wrote."""
    from selfimprove.config.schema import nested_component

    settings = {"temperature": 0.0, "max_new_tokens": 512, **(generation or {})}
    sampler = nested_component("generator", {"name": generator, **settings}, "verifier 'judge'").build()
    return JudgeVerifier(model, sampler, rubric, template, max_score, threshold, checkpoint, seed, prefill)


class JudgeVerifier:
    """A frozen model, sampled by the generator it is given, scores completions with a rubric (see ``judge``)."""

    def __init__(
        self,
        model: str,
        generator: Generator,
        rubric: str = "additive7",
        template: str | None = None,
        max_score: float | None = None,
        threshold: float | None = None,
        checkpoint: str | None = None,
        seed: int = 0,
        prefill: str = "",
    ):
        if rubric not in RUBRICS:
            raise UserError(f"judge: unknown rubric '{rubric}'. Rubrics: {', '.join(RUBRICS)}")
        self.template = template or RUBRICS[rubric].template
        self.parse = parse_grade if RUBRICS[rubric].answer == "grade" else parse_score
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None}
        except ValueError as exc:
            raise UserError(f"judge: bad template: {exc}") from None
        if names - FIELDS:
            raise UserError(f"judge: template fields {sorted(names - FIELDS)} unknown; use {sorted(FIELDS)}")
        self.max_score = float(max_score if max_score is not None else RUBRICS[rubric].max_score)
        self.threshold = self.max_score if threshold is None else float(threshold)
        if not 0 <= self.threshold <= self.max_score:
            raise UserError(f"judge: threshold {self.threshold} is outside 0..{self.max_score}")
        self.generator, self.model, self.checkpoint = generator, model, checkpoint
        self.seed, self.prefill = seed, prefill
        self.policy: LivePolicy | None = None
        self._own: Policy | LivePolicy | None = None

    def use_policy(self, policy: LivePolicy) -> None:
        """The loop calls this before each verify stage with the policy that generated the rollouts."""
        self.policy = policy

    def prompt(self, rollout: Rollout) -> str:
        users = [m["content"] for m in rollout.prompt if m.get("role") == "user"]
        fields = {
            "question": users[-1] if users else "",
            "completion": rollout.completion,
            "answer": rollout.answer if rollout.answer is not None else "(none)",
        }
        return self.template.format_map(fields)

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        from selfimprove.models.embedded import resolve

        if self.model in ("policy", "reference"):
            if self.policy is None:
                raise UserError(f"judge: model '{self.model}' needs the loop's policy; outside a run, name a model")
            policy = self.policy if self.model == "policy" else self.policy.reference()
        else:
            if self._own is None:  # loaded once, kept for later calls (an endpoint's model is only named)
                own = Policy(resolve(self.model), self.checkpoint)
                self._own = LoadedPolicy(own) if isinstance(self.generator, LiveGenerator) else own
            policy = self._own
        turns = [{"role": "assistant", "content": self.prefill}] if self.prefill else []
        requests = [
            Request(str(i), [{"role": "user", "content": self.prompt(r)}, *turns]) for i, r in enumerate(rollouts)
        ]  # fmt: skip
        texts: dict[str, str] = {}
        for batch in self.generator.generate(policy, requests, seed=self.seed, done=set(), tracker=Tracker(None, None)):
            texts.update((o.id, o.text) for o in batch)
        return [self.verdict(self.prefill + texts.get(str(i), "")) for i in range(len(rollouts))]

    def verdict(self, judgement: str) -> Verdict:
        score = self.parse(judgement, self.max_score)
        kept = judgement[-KEPT_CHARS:]
        if score is None:
            # not a score: a reward reads NaN as "no reward", never as a silent 0
            return Verdict(math.nan, False, {"score": None, "error": "unparseable judge output", "judgement": kept})
        return Verdict(score, score >= self.threshold, {"score": score, "max_score": self.max_score, "judgement": kept})
