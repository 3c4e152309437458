"""`selfimprove verify`: records in, one verdict per record out; bad input exits 2 naming file and line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import selfimprove, user_error

from selfimprove.cli.verify import read_records
from selfimprove.errors import UserError


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_math_verdicts_to_a_file(tmp_path):
    records = [
        {"id": "a", "completion": r"So \boxed{72}.", "answer": "72"},
        {"id": 7, "completion": "The answer is 71", "answer": 72},
        {"completion": r"It costs \$1,234", "answer": "1234"},
    ]
    write_jsonl(tmp_path / "in.jsonl", records)
    result = selfimprove(
        "verify", "--verifier", "math", "timeout=3", "--input", "in.jsonl", "--output", "out/v.jsonl", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    verdicts = [json.loads(line) for line in (tmp_path / "out" / "v.jsonl").read_text().splitlines()]
    assert [(v["id"], v["passed"], v["score"]) for v in verdicts] == [("a", True, 1.0), (7, False, 0.0), (3, True, 1.0)]
    assert verdicts[1]["info"] == {"parsed": "71", "expected": "72", "method": "math-verify"}
    assert "3 records: 2 passed, mean score 0.667" in result.stderr


def test_verifier_arguments_are_typed_and_checked(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "completion": "PARIS", "answer": "paris"}])
    ok = selfimprove("verify", "--verifier", "exact", "ignore_case=true", "--input", "in.jsonl", cwd=tmp_path)
    assert ok.returncode == 0 and json.loads(ok.stdout)["passed"] is True, ok.stderr
    user_error(
        selfimprove("verify", "--verifier", "exact", "ignore_case=maybe", "--input", "in.jsonl", cwd=tmp_path),
        "verifier.ignore_case: verifier 'exact': expected true/false, got 'maybe'",
    )
    user_error(
        selfimprove("verify", "--verifier", "exact", "ignore_cas=true", "--input", "in.jsonl", cwd=tmp_path),
        "has no argument 'ignore_cas'. Did you mean 'ignore_case'?",
    )
    user_error(selfimprove("verify", "--verifier", "exactly", "--input", "in.jsonl", cwd=tmp_path), "Did you mean")
    user_error(
        selfimprove("verify", "--verifier", "exact", "extract=(", "--input", "in.jsonl", cwd=tmp_path),
        "exact: bad extract pattern",
    )


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": 1, "completion": "x"', "in.jsonl:2: not valid JSON"),
        ('["a list"]', "in.jsonl:2: expected a JSON object, got list"),
        ('{"id": 2}', "in.jsonl:2: needs a string 'completion'"),
        ('{"id": 2, "completion": "x", "prompt": 5}', "in.jsonl:2: 'prompt' must be a string or a list"),
    ],
)
def test_bad_records(tmp_path, line, message):
    write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "completion": "4", "answer": "4"}, line])
    user_error(selfimprove("verify", "--verifier", "numeric", "--input", "in.jsonl", cwd=tmp_path), message)


def test_missing_input(tmp_path):
    user_error(selfimprove("verify", "--verifier", "numeric", "--input", "nope.jsonl", cwd=tmp_path), "no such file")


def test_record_fields_map_onto_rollouts(tmp_path):
    path = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "c", "completion": "def f(x): return x", "tests": "assert f(1) == 1", "meta": {"k": 1}},
            {"id": "j", "completion": "Hi", "prompt": "Say hi", "answer": 3},
            {"completion": "x", "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]},
        ],
    )
    (cid, code), (jid, judge), (nid, chat) = read_records(path)
    assert (cid, jid, nid) == ("c", "j", 3)
    assert code.meta == {"k": 1, "tests": "assert f(1) == 1"} and code.answer is None
    assert judge.prompt == [{"role": "user", "content": "Say hi"}] and judge.answer == "3"
    assert chat.prompt[1] == {"role": "user", "content": "u"} and chat.id == "3"


def test_read_records_rejects_bad_meta(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"completion": "x", "meta": [1]}])
    with pytest.raises(UserError, match="in.jsonl:1: 'meta' must be an object"):
        read_records(path)


def test_verify_help_and_a_math_run_do_not_import_torch(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "completion": "72", "answer": "72"}])
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from selfimprove.cli import cli\n"
        "result = CliRunner().invoke(cli, ['verify', '--help'])\n"
        "assert result.exit_code == 0 and 'selfimprove verify --verifier math' in result.output, result.output\n"
        "result = CliRunner().invoke(cli, ['verify', '--verifier', 'math', '--input', 'in.jsonl'])\n"
        "assert result.exit_code == 0 and '\"passed\": true' in result.output, result.output\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"
