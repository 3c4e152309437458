"""Code reasoning for evaluation: given a program and an input, predict the output (CRUXEval-O style), or given the
output, find an input (CRUXEval-I style), scored through the executor (verifier ``azr_solution``).

Problems come from a JSONL of ``{"program", "input", "output"}`` triples (``input``: the arguments of ``f`` as
Python literals; ``output``: the repr of its return value), or, with no file, from seeded programs of this module's
own (``size`` of them), whose outputs it computes. Each problem's meta is what AZR's solver roles read (``task_type``
deduction or abduction, ``program``, ``input``, ``output``), so ``eval.tasks[].prompt_from`` can point at them.
"""

from __future__ import annotations

import random
from pathlib import Path

from selfimprove.errors import UserError
from selfimprove.records import Problem
from selfimprove.tasks.jsonl import json_objects

# Small deterministic programs with an input maker each: the seeded set when no file is given.
PROGRAMS: list[tuple[str, str]] = [
    ("def f(xs):\n    return sorted(xs)[::-1]", "list"),
    ("def f(s):\n    return s.upper() + s[::-1]", "word"),
    ("def f(n):\n    return sum(i * i for i in range(n))", "small"),
    ("def f(xs):\n    return [x * 2 for x in xs if x % 2]", "list"),
    ("def f(s):\n    return {c: s.count(c) for c in sorted(set(s))}", "word"),
    ("def f(n):\n    steps = 0\n    while n != 1:\n        n = n // 2 if n % 2 == 0 else 3 * n + 1\n"
     "        steps += 1\n    return steps", "positive"),
    ("def f(xs):\n    total, out = 0, []\n    for x in xs:\n        total += x\n        out.append(total)\n"
     "    return out", "list"),
    ("def f(s):\n    return ''.join(c for c in s if c not in 'aeiou')", "word"),
    ("def f(n):\n    return [i for i in range(1, n + 1) if n % i == 0]", "positive"),
    ("def f(xs):\n    return max(xs) - min(xs)", "list"),
]  # fmt: skip
ANSWER_FORMAT = "Think inside <think> </think>, then give your answer inside <answer> </answer>."
PROMPTS = {
    "output": "Predict what f returns for the input below. Give the output as a Python literal in one ```output "
    "block inside <answer>.\n```python\n{program}\n```\n```input\n{input}\n```",
    "input": "Find an input for which f returns the output below. Give the arguments of f as Python literals in "
    "one ```input block inside <answer>.\n```python\n{program}\n```\n```output\n{output}\n```",
}
WORDS = ["banana", "level", "python", "abacus", "queue", "rhythm", "network", "kayak", "zebra", "mississippi"]


def make_input(kind: str, rng: random.Random) -> str:
    if kind == "list":
        return repr([rng.randint(-9, 20) for _ in range(rng.randint(2, 6))])
    if kind == "word":
        return repr(rng.choice(WORDS))
    return repr(rng.randint(1 if kind == "positive" else 0, 30))


def seeded(size: int, seed: int) -> list[dict[str, str]]:
    """``size`` triples from this module's programs on seeded inputs; outputs computed by running them (our own
    code, not a model's)."""
    from selfimprove.sandbox.plain import encode

    rng = random.Random(seed)
    rows = []
    for i in range(size):
        program, kind = PROGRAMS[i % len(PROGRAMS)]
        arguments = make_input(kind, rng)
        namespace: dict = {}
        exec(program, namespace)  # noqa: S102  (this module's own programs)
        rows.append({"program": program, "input": arguments, "output": encode(namespace["f"](eval(arguments)))})
    return rows


class CodeReasoning:
    """Output prediction (``mode: output``, CRUXEval-O style) or input prediction (``mode: input``, CRUXEval-I
    style) on (program, input, output) triples from ``path`` (``{split}`` allowed), else ``size`` seeded ones."""

    verifier = "azr_solution"

    def __init__(self, mode: str = "output", path: str | None = None, size: int = 64, seed: int = 0):
        if mode not in ("output", "input"):
            raise UserError(f"code_reasoning: mode is 'output' or 'input', got {mode!r}")
        if size < 1:
            raise UserError(f"code_reasoning: size must be at least 1, got {size}")
        self.mode, self.path, self.size, self.seed = mode, path, size, seed
        self.prompt = {"system": ANSWER_FORMAT, "template": PROMPTS[mode]}

    def load(self, split: str) -> list[Problem]:
        rows = self.read(split) if self.path else seeded(self.size, self.seed + (split == "test"))
        task_type = "deduction" if self.mode == "output" else "abduction"
        return [
            Problem(f"{split}-{i}", "", row["output"] if task_type == "deduction" else None,
                    {"task_type": task_type, "program": row["program"], "input": row["input"], "output": row["output"]})
            for i, row in enumerate(rows)
        ]  # fmt: skip

    def read(self, split: str) -> list[dict[str, str]]:
        file = Path(str(self.path).replace("{split}", split))
        if not file.is_file():
            raise UserError(f"code_reasoning: no file {file}")
        rows = []
        for lineno, row in json_objects(file):
            if not all(isinstance(row.get(k), str) for k in ("program", "input", "output")):
                raise UserError(f"{file}:{lineno}: a triple needs string fields program, input and output")
            rows.append(row)
        return rows
