"""Problems from a JSONL file: one JSON object per line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Problem

_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)


def parse_answer(raw: Any) -> tuple[str, str | None]:
    """Return (final answer, worked solution). GSM8K answers end in ``#### N``; others are used as they are."""
    text = str(raw)
    match = _GSM8K_FINAL.search(text)
    if not match:
        return text.strip(), None
    return match.group(1).replace(",", "").strip(), text[: match.start()].strip()


def json_objects(path: Path, where: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file; a line that is not a JSON object is a
    UserError naming ``where`` (default: the path) and the line."""
    where = where or str(path)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def read_problems(path: Path, question_field: str, answer_field: str | None, id_field: str | None) -> list[Problem]:
    problems = []
    for lineno, row in json_objects(path):
        missing = [f for f in (question_field, answer_field, id_field) if f and f not in row]
        if missing:
            raise UserError(f"{path}:{lineno}: no field '{missing[0]}' (fields: {', '.join(row)})")
        answer, solution = parse_answer(row[answer_field]) if answer_field else (None, None)
        meta = {k: v for k, v in row.items() if k not in (question_field, answer_field)}
        if solution is not None:  # GSM8K-style: the worked solution, and the whole text as written
            meta["solution"] = solution
            meta["full_solution"] = str(row[answer_field]).strip()
        pid = str(row[id_field]) if id_field else f"{path.stem}-{lineno}"
        problems.append(Problem(id=pid, question=str(row[question_field]), answer=answer, meta=meta))
    return problems


class JsonlTask:
    """Problems from JSONL; ``path`` may contain ``{split}`` (e.g. ``data/{split}.jsonl``)."""

    verifier = "math"  # what scores it when nothing else says (selfimprove eval)

    def __init__(
        self,
        path: str,
        question_field: str = "question",
        answer_field: str | None = "answer",
        id_field: str | None = None,
    ):
        self.path = path
        self.question_field = question_field
        self.answer_field = answer_field
        self.id_field = id_field
        probe = Path(path.replace("{split}", "")).parent if "{split}" in path else Path(path)
        if not probe.exists():
            raise UserError(f"data file not found: {probe}")

    def load(self, split: str) -> list[Problem]:
        file = Path(self.path.replace("{split}", split))  # not format(): other braces stay as they are
        if not file.is_file():
            raise UserError(f"data file not found for split '{split}': {file}")
        return read_problems(file, self.question_field, self.answer_field, self.id_field)
