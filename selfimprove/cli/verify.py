"""``selfimprove verify``: run any verifier on a JSONL of records, one verdict per record."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from selfimprove.errors import UserError


def read_records(path: Path) -> list[tuple[Any, Any]]:
    """(id as written, Rollout) for each record of a JSONL file; a bad line is a UserError naming file and line.

    A record without an id gets its line number.
    """
    from selfimprove.verifiers.inputs import rollout_from_record

    if not path.is_file():
        raise UserError(f"--input: no such file: {path}")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        rollout = rollout_from_record(record, where, str(number))
        records.append((record.get("id", number), rollout))
    return records


@click.command(
    epilog="""\b
Record fields: id, completion, and what the verifier reads:
  answer (math, numeric, exact, regex, judge's reference rubric), tests (code),
  input (executor), prompt (judge: a string or chat messages). Other fields go to the rollout's meta.
Output: one {"id", "passed", "score", "info"} line per record; a summary on stderr.

\b
Examples:
  echo '{"id": "a", "completion": "So \\\\boxed{72}.", "answer": "72"}' > in.jsonl
  selfimprove verify --verifier math --input in.jsonl
  selfimprove verify --verifier math timeout=2 --input in.jsonl --output verdicts.jsonl
  selfimprove verify --verifier exact ignore_case=true 'extract=answer is (.+)' --input in.jsonl
  selfimprove verify --verifier judge model=smollm2-135m-instruct rubric=additive7 --input in.jsonl
"""
)
@click.option("--verifier", "name", required=True, help="A verifier's name (selfimprove ls verifier).")
@click.argument("args", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False), help="Records, JSONL.")
@click.option("--output", "output_path", default="-", show_default=True, help="Verdicts, JSONL ('-': stdout).")
def verify(name: str, args: tuple[str, ...], input_path: str, output_path: str) -> None:
    """Run a verifier, with its arguments as KEY=VALUE, on the records of a JSONL file."""
    from selfimprove.config.schema import load_component
    from selfimprove.verifiers import verify_safely

    verifier = load_component("verifier", name, list(args)).build()
    records = read_records(Path(input_path))
    ids, rollouts = [i for i, _ in records], [r for _, r in records]
    verdicts = verify_safely(verifier, rollouts) if rollouts else []
    lines = [
        json.dumps({"id": rid, "passed": v.passed, "score": v.score, "info": v.info}, default=str)
        for rid, v in zip(ids, verdicts, strict=True)
    ]
    text = "".join(line + "\n" for line in lines)
    if output_path == "-":
        sys.stdout.write(text)
    else:
        out = Path(output_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    passed = sum(v.passed for v in verdicts)
    mean = sum(v.score for v in verdicts) / len(verdicts) if verdicts else 0.0
    click.echo(f"{len(verdicts)} records: {passed} passed, mean score {mean:.3f}", err=True)
