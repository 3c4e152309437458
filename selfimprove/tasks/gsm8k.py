"""GSM8K (Cobbe et al., 2021): grade-school math word problems with ``#### N`` final answers."""

from __future__ import annotations

import os
from pathlib import Path

from selfimprove.errors import UserError
from selfimprove.records import Problem
from selfimprove.tasks.jsonl import parse_answer, read_problems


class GSM8K:
    """GSM8K from ``$SELFIMPROVE_DATA_DIR/gsm8k/{split}.jsonl`` when present, else the hub's openai/gsm8k."""

    verifier = "math"  # what scores it when nothing else says (selfimprove eval)

    def __init__(self, data_dir: str | None = None):
        root = data_dir or os.environ.get("SELFIMPROVE_DATA_DIR")
        self.dir = Path(root) / "gsm8k" if root and not data_dir else (Path(data_dir) if data_dir else None)
        if data_dir and not Path(data_dir).is_dir():
            raise UserError(f"gsm8k data_dir not found: {data_dir}")

    def load(self, split: str) -> list[Problem]:
        if self.dir and (self.dir / f"{split}.jsonl").is_file():
            problems = read_problems(self.dir / f"{split}.jsonl", "question", "answer", None)
            for i, p in enumerate(problems):
                p.id = f"gsm8k-{split}-{i}"
            return problems
        return self._from_hub(split)

    def _from_hub(self, split: str) -> list[Problem]:
        try:
            import datasets

            rows = datasets.load_dataset("openai/gsm8k", "main", split=split)
        except Exception as exc:  # offline, no such split, ...
            raise UserError(
                f"GSM8K: no local copy ({self.dir or 'set SELFIMPROVE_DATA_DIR'}/{split}.jsonl) "
                f"and the hub dataset openai/gsm8k could not be loaded: {type(exc).__name__}: {exc}"
            ) from None
        problems = []
        for i, row in enumerate(rows):
            answer, solution = parse_answer(row["answer"])
            meta = {"solution": solution, "full_solution": row["answer"].strip()}  # SPIN's real response: the latter
            problems.append(Problem(f"gsm8k-{split}-{i}", row["question"], answer, meta))
        return problems
