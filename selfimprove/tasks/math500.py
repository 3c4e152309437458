"""MATH-500 (Lightman et al., 2023, "Let's Verify Step by Step"): 500 competition problems from the MATH test set
(Hendrycks et al., 2021), with LaTeX final answers. Score it with the ``math`` verifier."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Problem
from selfimprove.tasks.jsonl import read_problems

HUB_ID = "HuggingFaceH4/MATH-500"


def _problem(i: int, row: dict[str, Any]) -> Problem:
    meta = {k: row[k] for k in ("solution", "subject", "level", "unique_id") if k in row}
    return Problem(f"math500-{i}", str(row["problem"]), str(row["answer"]), meta)


class Math500:
    """MATH-500 from ``path``, ``$SELFIMPROVE_DATA_DIR/math500/test.jsonl``, or the hub (HuggingFaceH4/MATH-500)."""

    verifier = "math"  # what scores it when nothing else says (selfimprove eval)

    def __init__(self, path: str | None = None):
        if path and not Path(path).is_file():
            raise UserError(f"math500: file not found: {path}")
        root = os.environ.get("SELFIMPROVE_DATA_DIR")
        self.path = Path(path) if path else (Path(root) / "math500" / "test.jsonl" if root else None)

    def load(self, split: str) -> list[Problem]:
        if split != "test":
            raise UserError(f"math500 has only the split 'test', not '{split}'")
        if self.path and self.path.is_file():
            rows = read_problems(self.path, "problem", "answer", None)  # checks every line, names file:line
            return [_problem(i, {**p.meta, "problem": p.question, "answer": p.answer}) for i, p in enumerate(rows)]
        try:
            import datasets

            data = datasets.load_dataset(HUB_ID, split="test")
        except Exception as exc:  # offline, no access, ...
            raise UserError(
                f"math500: no local file ({self.path or 'set SELFIMPROVE_DATA_DIR or path'}) and the hub dataset "
                f"{HUB_ID} could not be loaded: {type(exc).__name__}: {exc}"
            ) from None
        return [_problem(i, row) for i, row in enumerate(data)]
