"""The stages share one context (``loop.stages.Stages``): what it says about the run decides what every stage
records, and the stages do the process plumbing themselves."""

from __future__ import annotations

import random
from pathlib import Path

from selfimprove.generators import Output
from selfimprove.loop.stages import Stages
from selfimprove.records import Problem, Verdict
from selfimprove.rundir import RunDir
from selfimprove.sources import StepContext


class Echo:
    """A generator that answers each request with its id, its tokens and their log-probs."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, policy, requests, *, seed, done, tracker, shard=(0, 1)):
        self.calls += 1
        yield [Output(r.id, r.id, 2, token_ids=[1, 2], logprobs=[-0.5, -0.25]) for r in requests if r.id not in done]


class Judge:
    """Scores 1 and remembers the policy it was given (``PolicyJudge``)."""

    def __init__(self) -> None:
        self.policy = None

    def use_policy(self, policy) -> None:
        self.policy = policy

    def verify(self, rollouts):
        return [Verdict(1.0, True) for _ in rollouts]


class Plain:
    def verify(self, rollouts):
        return [Verdict(0.0, False) for _ in rollouts]


JOBS = [(Problem("p0", "q", "a"), [{"role": "user", "content": "q"}], None)]


def test_an_online_context_records_the_sampled_tokens_and_an_offline_one_does_not(tmp_path: Path) -> None:
    online = Stages(RunDir(tmp_path / "on"), seed=0, show_progress=False, online=True)
    offline = Stages(RunDir(tmp_path / "off"), seed=0, show_progress=False)
    [sampled] = online.generate("r.jsonl", Echo(), None, JOBS, "solver", 1, 0)
    [plain] = offline.generate("r.jsonl", Echo(), None, JOBS, "solver", 1, 0)
    assert (sampled.completion_ids, sampled.sampler_logps) == ([1, 2], [-0.5, -0.25])
    assert (plain.completion_ids, plain.sampler_logps) == (None, None)
    assert sampled.id == "solver/p0/0" and plain.completion == "solver/p0/0"


def test_a_stage_is_done_once_and_read_back(tmp_path: Path) -> None:
    stages = Stages(RunDir(tmp_path), seed=0, show_progress=False)
    echo = Echo()
    first = stages.generate("r.jsonl", echo, None, JOBS, "solver", 2, 0)
    again = stages.generate("r.jsonl", echo, None, JOBS, "solver", 2, 0)
    assert echo.calls == 1 and [r.to_json() for r in again] == [r.to_json() for r in first]
    assert [r.to_json() for r in stages.recorded("r.jsonl")] == [r.to_json() for r in first]
    assert stages.recorded("nothing.jsonl") is None


def test_verify_gives_judges_the_policy_that_generated_the_rollouts(tmp_path: Path) -> None:
    stages = Stages(RunDir(tmp_path), seed=0, show_progress=False)
    rollouts = stages.generate("r.jsonl", Echo(), None, JOBS, "solver", 1, 0)
    judge, policy = Judge(), object()
    verified = stages.verify("v.jsonl", [("", Plain()), ("judge", judge)], rollouts, policy)
    assert judge.policy is policy
    assert verified[0].verdict.score == 0.0 and verified[0].verdicts["judge"].score == 1.0
    assert stages.recorded("v.jsonl")[0].verdicts["judge"].passed


def test_seeds_and_draws_come_from_the_context(tmp_path: Path) -> None:
    stages = Stages(RunDir(tmp_path), seed=7)
    assert stages.seed_for(1, "solver") == Stages(RunDir(tmp_path), seed=7).seed_for(1, "solver")
    assert stages.seed_for(1, "solver") != Stages(RunDir(tmp_path), seed=8).seed_for(1, "solver")

    class Batch:
        def problems(self, ctx: StepContext):
            return list(ctx.batch)

    batch = [Problem("p0", "q", "a")]
    assert stages.draw(Batch(), StepContext(1, random.Random(0), batch)) == batch


def test_the_task_source_keeps_the_problems_an_earlier_role_failed_or_passed() -> None:
    """STaR's rationalization as a source: a problem counts as passed when any of its rollouts passed."""
    from selfimprove import registry
    from selfimprove.records import Rollout

    batch = [Problem(str(i), f"q{i}") for i in range(4)]

    def sample(problem: str, k: int, passed: bool) -> Rollout:
        return Rollout(f"rationale/{problem}/{k}", "rationale", problem, [], "", verdict=Verdict(float(passed), passed))

    # problem 0: both samples fail; 1: the second of two passes; 2: passes; 3: the role never saw it
    rollouts = [sample("0", 0, False), sample("0", 1, False), sample("1", 0, False), sample("1", 1, True),
                sample("2", 0, True)]  # fmt: skip
    ctx = StepContext(1, random.Random(0), batch, {"rationale": rollouts})
    task = registry.get("source", "task")
    assert [p.id for p in task(role="rationale").problems(ctx)] == ["0"]
    assert [p.id for p in task(role="rationale", passed=True).problems(ctx)] == ["1", "2"]
    assert [p.id for p in task().problems(ctx)] == ["0", "1", "2", "3"]
