"""Agreement of the math verifier with GSM8K's reference answers, and its speed.

    SELFIMPROVE_DATA_DIR=/path/to/data python benchmarks/math_verifier.py [--limit N] [--workers W]

Every test answer (1,319) is fed back as completions in several surface forms (72, $72, 72.0, \\boxed{72},
"The answer is 72.", 1,234 where the number has thousands), all of which must pass, and as wrong answers
(gold+1, gold*10 or gold+2 when gold is 0, in two forms each), all of which must fail. Prints the counts, the
time for the whole set through the worker pool against checking inline in this process, and ``agreement=`` last.
"""

from __future__ import annotations

import argparse
import time

from selfimprove.records import Rollout


def right_forms(gold: str) -> list[str]:
    value = int(gold)
    forms = [gold, f"${gold}", f"{gold}.0", rf"\boxed{{{gold}}}", f"The answer is {gold}."]
    if abs(value) >= 1000:
        forms.append(f"The answer is {value:,}.")
    return forms


def wrong_forms(gold: str) -> list[str]:
    value = int(gold)
    forms = []
    for wrong in (value + 1, value * 10 if value else value + 2):
        forms += [f"The answer is {wrong}.", rf"\boxed{{{wrong}}}"]
    return forms


def cases(answers: list[str]) -> list[tuple[Rollout, bool]]:
    """(rollout, should pass) for every form of every answer."""
    out = []
    for i, gold in enumerate(answers):
        for forms, expected in ((right_forms(gold), True), (wrong_forms(gold), False)):
            for j, text in enumerate(forms):
                out.append((Rollout(f"{i}/{expected}/{j}", "solver", str(i), [], text, gold), expected))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="Only the first N test answers.")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--inline-sample", type=int, default=500, help="Cases also checked inline, for comparison.")
    args = parser.parse_args()

    from selfimprove.tasks.gsm8k import GSM8K
    from selfimprove.verifiers.math import MathVerifier, check

    answers = [p.answer for p in GSM8K().load("test")][: args.limit]
    todo = cases(answers)
    rollouts = [r for r, _ in todo]
    verifier = MathVerifier(workers=args.workers)

    start = time.perf_counter()
    verifier.verify(rollouts[:1])
    cold = time.perf_counter() - start
    start = time.perf_counter()
    verdicts = verifier.verify(rollouts)
    pooled = time.perf_counter() - start

    sample = rollouts[: args.inline_sample]
    start = time.perf_counter()
    for r in sample:
        check(r.completion, r.answer)
    inline = (time.perf_counter() - start) / len(sample)

    wrong = [(r, v) for (r, expected), v in zip(todo, verdicts, strict=True) if v.passed is not expected]
    right_total = sum(expected for _, expected in todo)
    accepted = sum(v.passed for (_, expected), v in zip(todo, verdicts, strict=True) if expected)
    rejected = sum(not v.passed for (_, expected), v in zip(todo, verdicts, strict=True) if not expected)
    for r, v in wrong[:10]:
        print(f"  disagrees: {r.completion!r} vs gold {r.answer!r}: {v}")
    print(f"answers={len(answers)} cases={len(todo)} workers={verifier.workers}")
    print(f"accepted={accepted}/{right_total} ({accepted / right_total:.2%})")
    print(f"rejected={rejected}/{len(todo) - right_total} ({rejected / (len(todo) - right_total):.2%})")
    print(f"pool_start_s={cold:.2f}")
    print(f"pool_s={pooled:.2f} pool_ms_per_case={1000 * pooled / len(todo):.2f} cases_per_s={len(todo) / pooled:.0f}")
    print(f"inline_ms_per_case={1000 * inline:.2f} (one process, no time limit; {len(sample)} cases)")
    print(f"agreement={1 - len(wrong) / len(todo):.4f}")


if __name__ == "__main__":
    main()
