"""The real `selfimprove` command in a subprocess: bad input exits 2 with a short message, never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))

VALID = """\
model: /nonexistent/model
task: {name: arithmetic, size: 50}
verifier: {name: numeric}
selector: {name: correct}
updater: {name: sft}
"""


def selfimprove(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "1000", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "selfimprove", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


def user_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert exit code 2, no traceback, and every needle in stderr; return stderr."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    return result.stderr


def table_rows(text: str) -> list[list[str]]:
    """The cells of each one-line row of a rich table (COLUMNS is wide, so rows do not wrap)."""
    lines = [line.strip() for line in text.splitlines() if line.startswith(("│", "┃"))]
    return [[c.strip() for c in re.split("[│┃]", line[1:-1])] for line in lines]


@pytest.fixture
def recipe(tmp_path):
    def write(text: str, name: str = "r.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


# -- bad recipes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line",
    [
        ("model: x\ntask: {name: arithmetic\nverifier: numeric\n", 3),  # unclosed bracket
        ("model: x\n  task: arithmetic\n", 2),  # bad indentation
    ],
)
def test_malformed_yaml(tmp_path, recipe, text, line):
    path = recipe(text)
    user_error(selfimprove("validate", "r.yaml", cwd=tmp_path), f"{path.resolve()}:{line}: malformed YAML")
    user_error(selfimprove("run", "r.yaml", cwd=tmp_path), f"{path.resolve()}:{line}: malformed YAML")


def test_unknown_top_level_key(tmp_path, recipe):
    path = recipe(VALID + "modle: other\n")
    err = user_error(selfimprove("validate", str(path), cwd=tmp_path), f"{path.resolve()}:6: modle: unknown key.")
    assert "Did you mean 'model'?" in err


def test_misspelled_component(tmp_path, recipe):
    path = recipe(VALID.replace("{name: numeric}", "{name: numric}"))
    user_error(
        selfimprove("validate", str(path), cwd=tmp_path),
        f"{path.resolve()}:3: verifier.name: Unknown verifier 'numric'. Did you mean: numeric?",
    )


def test_wrong_type(tmp_path, recipe):
    path = recipe(VALID + 'loop: {iterations: "three"}\n')
    user_error(
        selfimprove("validate", str(path), cwd=tmp_path),
        f"{path.resolve()}:6: loop.iterations: expected an integer, got 'three'",
    )


def test_missing_data_file(tmp_path, recipe):
    path = recipe(VALID.replace("{name: arithmetic, size: 50}", "{name: jsonl, path: /nonexistent.jsonl}"))
    for command in ("validate", "run"):
        user_error(
            selfimprove(command, str(path), cwd=tmp_path),
            f"{path.resolve()}:2: task: data file not found: /nonexistent.jsonl",
        )


def test_missing_recipe_file(tmp_path):
    user_error(selfimprove("run", "nope.yaml", cwd=tmp_path), "nope.yaml: recipe file not found")


def test_broken_jsonl_line_is_found_before_any_model_loads(tmp_path, recipe):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "2+2?", "answer": "4"}\n{"question": "3+3?", \n')
    path = recipe(VALID.replace("{name: arithmetic, size: 50}", f"{{name: jsonl, path: {data}}}"))
    # validate only checks that the file exists ...
    assert selfimprove("validate", str(path), cwd=tmp_path).returncode == 0
    # ... the run reads every data set before it resolves or loads the (nonexistent) model.
    env = {"SELFIMPROVE_CACHE": str(tmp_path / "cache")}
    err = user_error(selfimprove("run", str(path), "--quiet", cwd=tmp_path, env=env), f"{data}:3: not valid JSON")
    assert "nonexistent/model" not in err


# -- overrides ---------------------------------------------------------------------------------------------


def test_bad_override_in_validate(tmp_path, recipe):
    recipe(VALID)
    user_error(
        selfimprove("validate", "r.yaml", "--set", "notakeyvalue", cwd=tmp_path),
        "overrides must look like key=value, got 'notakeyvalue'",
    )


def test_bad_override_in_run(tmp_path, recipe):
    recipe(VALID)
    user_error(
        selfimprove("run", "r.yaml", "loop.iterations=abc", cwd=tmp_path),
        "command line (loop.iterations=abc): loop.iterations: expected an integer, got 'abc'",
    )
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_good_override_in_validate(tmp_path, recipe):
    recipe(VALID)
    result = selfimprove("validate", "r.yaml", "--set", "loop.iterations=2", "--set", "task.limit=5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok  r.yaml"


def test_validate_takes_overrides_as_run_does(tmp_path, recipe):
    """The exact words of a run command check the same recipe: KEY=VALUE words are overrides, not recipe files."""
    recipe(VALID)
    result = selfimprove("validate", "r.yaml", "loop.iterations=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok  r.yaml"
    same_error = "command line (loop.iterations=abc): loop.iterations: expected an integer, got 'abc'"
    for command in ("validate", "run"):
        user_error(selfimprove(command, "r.yaml", "loop.iterations=abc", cwd=tmp_path), same_error)


# -- validate ----------------------------------------------------------------------------------------------


def test_validate_reports_every_problem_at_once(tmp_path, recipe):
    path = recipe(
        VALID.replace("{name: numeric}", "{name: numric}").replace("{name: correct}", "{name: correct, cap: 1}")
        + "loop: {iterations: three}\n"
    )
    err = user_error(selfimprove("validate", str(path), cwd=tmp_path), "3 problems in the recipe")
    assert f"{path.resolve()}:3: verifier.name: Unknown verifier 'numric'" in err
    assert f"{path.resolve()}:4: selector.cap: selector 'correct' has no argument 'cap'" in err
    assert f"{path.resolve()}:6: loop.iterations: expected an integer" in err


def test_validate_several_files(tmp_path, recipe):
    recipe(VALID, "good.yaml")
    recipe(VALID + "bogus: 1\n", "bad.yaml")
    result = selfimprove("validate", "good.yaml", "bad.yaml", cwd=tmp_path)
    err = user_error(result, "bad.yaml: 1 problem in the recipe", "bogus: unknown key")
    assert "good.yaml" not in err
    assert result.stdout.strip() == "ok  good.yaml"


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(REPO / "recipes")) for p in RECIPES])
def test_shipped_recipes_validate(path):
    env = {"SELFIMPROVE_DATA_DIR": str(SHARED_DATA)} if SHARED_DATA.is_dir() else {}
    result = selfimprove("validate", str(path.relative_to(REPO)), cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok  ")


def test_recipes_folder_has_recipes():
    assert any(p.name == "quickstart.yaml" for p in RECIPES)


# -- help, version, usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["", "run", "validate", "ls", "plugins"])
def test_help_shows_an_example(tmp_path, command):
    result = selfimprove(*filter(None, [command, "--help"]), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    if command:
        assert "Example" in result.stdout and f"selfimprove {command}" in result.stdout
    else:
        assert "Quick start" in result.stdout and "selfimprove run recipes/quickstart.yaml" in result.stdout
        for sub in ("run", "validate", "ls", "plugins"):
            assert re.search(rf"^\s+{sub}\s", result.stdout, re.M), sub


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from selfimprove.cli import cli\n"
        "for command in ([], ['run'], ['validate'], ['ls'], ['plugins']):\n"
        "    args = [*command, '--help']\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0 and 'Usage:' in result.output, (args, result.output)\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_version(tmp_path):
    from selfimprove import __version__

    result = selfimprove("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"selfimprove, version {__version__}"


@pytest.mark.parametrize("args", [["nosuchcommand"], ["run"], ["run", "--nosuchflag", "r.yaml"]])
def test_usage_errors_exit_2(tmp_path, args):
    user_error(selfimprove(*args, cwd=tmp_path), "Usage:")


def test_resume_without_a_run(tmp_path, recipe):
    recipe(VALID)
    user_error(selfimprove("run", "r.yaml", "--resume", cwd=tmp_path), "--resume: no run to resume in runs/r")
    user_error(selfimprove("run", "r.yaml", "--resume", "--fresh", cwd=tmp_path), "contradict")


# -- ls ----------------------------------------------------------------------------------------------------


def test_ls_lists_built_ins_with_their_package(tmp_path):
    result = selfimprove("ls", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {(r[0], r[1]): r for r in table_rows(result.stdout)[1:]}
    built_ins = [
        ("task", "arithmetic"), ("task", "gsm8k"), ("task", "jsonl"), ("generator", "hf"),
        ("verifier", "numeric"), ("verifier", "regex"), ("selector", "correct"), ("updater", "sft"),
    ]  # fmt: skip
    for key in built_ins:
        assert key in rows, (key, result.stdout)
        kind, name, description, package = rows[key]
        assert package.split()[0] == "selfimprove", rows[key]
        assert description and "failed to load" not in description
    assert rows[("verifier", "numeric")][2].startswith("Passes when the completion's final number")


@pytest.mark.parametrize("kind", ["verifier", "verifiers"])
def test_ls_one_kind(tmp_path, kind):
    result = selfimprove("ls", kind, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows[0] == ["kind", "name", "description", "package"]
    assert {r[0] for r in rows[1:]} == {"verifier"}
    assert {"numeric", "regex"} <= {r[1] for r in rows[1:]}


def test_ls_unknown_kind(tmp_path):
    user_error(selfimprove("ls", "nosuchkind", cwd=tmp_path), "Unknown kind 'nosuchkind'. Kinds: task, generator")
