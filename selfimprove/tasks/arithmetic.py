"""Seeded arithmetic and comparison word problems that need no data.

Train and test never overlap: a question's split is decided by a hash of its
text, so the same question can never be drawn into both.
"""

from __future__ import annotations

import hashlib
import random

from selfimprove.errors import UserError
from selfimprove.records import Problem

TEMPLATES: dict[str, list[str]] = {
    "add": [
        "What is {a} + {b}?",
        "Tom has {a} apples and buys {b} more. How many apples does he have now?",
        "A class has {a} girls and {b} boys. How many children are in the class?",
    ],
    "sub": [
        "What is {a} - {b}?",
        "A shelf holds {a} books. {b} are taken away. How many books are left?",
        "Sara had {a} stickers and gave {b} to a friend. How many stickers does she have left?",
    ],
    "max": [
        "Which is the largest of {a}, {b} and {c}?",
        "Of the numbers {a}, {b} and {c}, which is the biggest?",
    ],
}


def _split_of(question: str, test_fraction: float) -> str:
    bucket = int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


class Arithmetic:
    """Two-digit addition, subtraction and largest-of-three word problems, seeded."""

    verifier = "math"  # what scores it when nothing else says (selfimprove eval)

    def __init__(
        self,
        kinds: list[str] = ["add", "sub", "max"],  # noqa: B006 - read-only default shown in `selfimprove ls`
        low: int = 10,
        high: int = 99,
        size: int = 2000,
        test_fraction: float = 0.2,
        seed: int = 0,
    ):
        unknown = [k for k in kinds if k not in TEMPLATES]
        if unknown:
            raise UserError(f"arithmetic: unknown kinds {unknown}; choose from {list(TEMPLATES)}")
        if not kinds:
            raise UserError(f"arithmetic: kinds is empty; choose from {list(TEMPLATES)}")
        if size < 1:
            raise UserError(f"arithmetic: size must be at least 1, got {size}")
        if not 0 < test_fraction < 1:
            raise UserError(f"arithmetic: test_fraction must be between 0 and 1, got {test_fraction}")
        if not 0 <= low < high - 1:
            raise UserError(f"arithmetic: need 0 <= low and high >= low + 2, got low={low} high={high}")
        self.kinds, self.low, self.high = kinds, low, high
        self.size, self.test_fraction, self.seed = size, test_fraction, seed

    def _draw(self, rng: random.Random, kind: str) -> tuple[str, int, str]:
        """A question, its answer and a worked solution."""
        a, b, c = (rng.randint(self.low, self.high) for _ in range(3))
        template = rng.choice(TEMPLATES[kind])
        if kind == "add":
            return template.format(a=a, b=b), a + b, f"{a} + {b} = {a + b}."
        if kind == "sub":
            a, b = max(a, b), min(a, b)
            return template.format(a=a, b=b), a - b, f"{a} - {b} = {a - b}."
        while len({a, b, c}) < 3:
            a, b, c = (rng.randint(self.low, self.high) for _ in range(3))
        top, *rest = sorted((a, b, c), reverse=True)
        return template.format(a=a, b=b, c=c), top, f"{top} is greater than {rest[0]} and {rest[1]}."

    def load(self, split: str) -> list[Problem]:
        if split not in ("train", "test"):
            raise UserError(f"arithmetic has splits 'train' and 'test', not '{split}'")
        want = self.size if split == "train" else max(1, int(self.size * self.test_fraction))
        rng = random.Random(f"arithmetic-{self.seed}-{split}")
        seen: set[str] = set()
        problems: list[Problem] = []
        for _ in range(want * 200):
            kind = self.kinds[len(problems) % len(self.kinds)]
            question, answer, solution = self._draw(rng, kind)
            if question in seen or _split_of(question, self.test_fraction) != split:
                continue
            seen.add(question)
            full = f"{solution} The answer is {answer}."  # a real response, for SPIN
            meta = {"kind": kind, "solution": solution, "full_solution": full}
            problems.append(Problem(f"{split}-{len(problems)}", question, str(answer), meta))
            if len(problems) == want:
                return problems
        raise UserError(f"arithmetic: could only draw {len(problems)} distinct {split} problems; widen low/high")
