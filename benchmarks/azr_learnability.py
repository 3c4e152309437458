"""How often an AZR recipe's learnability samples solve the simplest tasks its model proposes: a probe of whether
a prompt can give the proposer any learnability signal (0 < s < 1) before a run is spent on it.

    python benchmarks/azr_learnability.py [--recipe recipes/azr_cpu.yaml] [--n 8] [KEY=VALUE ...]

Seven tasks of the kind the 135M model proposes (two-argument arithmetic, one string and one one-argument program;
deduction and abduction), each given ``--n`` times to the recipe's ``learn_deduction`` or ``learn_abduction`` role:
its prompt, its generation settings, its verifier. Overrides change the recipe as ``selfimprove run`` takes them
(``roles.1.prompt.chat=false roles.4.prompt.chat=false``: plain text, as the reference prompts a base model). Prints
the solved count per task, three completions of each, and ``solved=<all solved>/<all samples>`` last.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = [  # (task type, program, input, output): the shapes azr_cpu.yaml's proposers write
    ("deduction", "def f(a, b):\n    return a + b", "3, 4", "7"),
    ("deduction", "def f(a, b):\n    return a + b", "4, 5", "9"),
    ("deduction", "def f(a, b):\n    return a + b + 20", "3, 4", "27"),
    ("deduction", "def f(a, b):\n    return a * 2 + b", "3, 4", "10"),
    ("abduction", "def f(a, b):\n    return a + b", "5, 6", "11"),
    ("abduction", "def f(number):\n    return number + 5", "10", "15"),
    ("abduction", "def f(a, b):\n    return a * 2 + b", "3, 4", "10"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "azr_cpu.yaml"))
    parser.add_argument("--n", type=int, default=8, help="samples per task (the paper's learnability n: 8)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from selfimprove.config import load_recipe
    from selfimprove.generators import Request
    from selfimprove.models import Policy
    from selfimprove.models.embedded import resolve
    from selfimprove.progress import Tracker
    from selfimprove.prompts import render
    from selfimprove.records import Problem, Rollout

    recipe = load_recipe(args.recipe, args.overrides)
    roles = {role.name: role for role in recipe.roles}
    requests, meta = [], {}
    for t, (task_type, program, given, output) in enumerate(TASKS):
        role = roles[f"learn_{task_type}"]
        fields = {"task_type": task_type, "program": program, "input": given, "output": output}
        messages = render(role.prompt, Problem(str(t), "", None, fields))
        meta[str(t)] = (role, fields)
        requests += [Request(f"{t}/{k}", messages) for k in range(args.n)]
    # One generator call at the learnability roles' settings (the recipe gives both roles the same ones).
    generator = recipe.generator.build(**roles["learn_deduction"].generation)
    policy = Policy(resolve(recipe.model))
    outputs = [o for batch in generator.generate(policy, requests, seed=recipe.loop.seed, done=set(),
                                                 tracker=Tracker(None, None)) for o in batch]  # fmt: skip
    by_task: dict[str, list[Rollout]] = {}
    for out in outputs:
        task = out.id.split("/")[0]
        role, fields = meta[task]
        by_task.setdefault(task, []).append(Rollout(out.id, role.name, task, [], out.text, meta=fields))
    verifiers = {name: recipe.verifiers_of(roles[name])[0].build() for name in ("learn_deduction", "learn_abduction")}
    solved = 0
    for task in sorted(by_task, key=int):
        role, fields = meta[task]
        verifier = verifiers[role.name]
        rollouts = sorted(by_task[task], key=lambda r: int(r.id.split("/")[1]))
        verdicts = verifier.verify(rollouts)
        count = sum(v.passed for v in verdicts)
        solved += count
        line = fields["program"].splitlines()[-1].strip()
        print(f"{fields['task_type']:9s}  {line:24s} {fields['input']:>5s} -> {fields['output']:>3s}  {count}/{args.n}")
        for rollout, verdict in zip(rollouts[:3], verdicts[:3], strict=True):
            print(f"    {'ok ' if verdict.passed else '   '} {rollout.completion[:110]!r}")
    print(f"solved={solved}/{len(outputs)}")


if __name__ == "__main__":
    main()
