"""The example third-party plugin, installed with pip as a user would, found through its entry point and used
by the real CLI: listed by `selfimprove plugins`, checked by `validate`, run by `verify` and by a recipe."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import selfimprove, table_rows, user_error

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "selfimprove-wordcount"

RECIPE = """
model: {model}
task: {{name: arithmetic, size: 50, limit: 4}}
verifier: {{name: wordcount, min_words: 1, max_words: {max_words}}}
selector: {{name: correct}}
updater: {{name: sft}}
generator: {{name: hf, max_new_tokens: 6, batch_size: 4}}
eval:
  tasks: [{{name: arithmetic, split: test, limit: 3, size: 50}}]
loop: {{iterations: 0}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, str]:
    """pip-install the plugin (from a copy, so the build leaves nothing in the repository) into a folder of its
    own; the environment that puts it on the path."""
    work = tmp_path_factory.mktemp("plugin")
    source, target = work / "src", work / "site"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", target, source],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {"PYTHONPATH": str(target)}


def test_listed_by_plugins_and_ls(tmp_path, site):
    result = selfimprove("plugins", cwd=tmp_path, env=site)
    assert result.returncode == 0, result.stderr
    assert ["selfimprove-wordcount", "0.1.0", "verifier:wordcount", "ok"] in table_rows(result.stdout)
    ls = selfimprove("ls", "verifier", cwd=tmp_path, env=site)
    row = next(r for r in table_rows(ls.stdout) if r[1] == "wordcount")
    assert row[3] == "selfimprove-wordcount 0.1.0" and row[2].startswith("Passes when the completion has")
    without = selfimprove("plugins", cwd=tmp_path)  # not installed in the venv itself
    assert "selfimprove-wordcount" not in without.stdout


def test_validate_checks_its_arguments(tmp_path, site):
    good = tmp_path / "good.yaml"
    good.write_text(RECIPE.format(model="/nonexistent/model", max_words=20))
    result = selfimprove("validate", str(good), cwd=tmp_path, env=site)
    assert result.returncode == 0 and f"ok  {good}" in result.stdout, result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPE.format(model="/nonexistent/model", max_words="many"))
    user_error(
        selfimprove("validate", str(bad), cwd=tmp_path, env=site),
        f"{bad.resolve()}:4: verifier.max_words: verifier 'wordcount': expected an integer, got 'many'",
    )
    inverted = tmp_path / "inverted.yaml"
    inverted.write_text(RECIPE.format(model="/nonexistent/model", max_words=0).replace("min_words: 1", "min_words: 3"))
    user_error(selfimprove("validate", str(inverted), cwd=tmp_path, env=site), "wordcount: need 0 <= min_words")


def test_verify_command(tmp_path, site):
    (tmp_path / "in.jsonl").write_text(
        json.dumps({"id": "a", "completion": "Light it up"})
        + "\n"
        + json.dumps({"id": "b", "completion": "Dark"})
        + "\n"
    )
    args = ["verify", "--verifier", "wordcount", "min_words=2", "keywords=[light]", "--input", "in.jsonl"]
    result = selfimprove(*args, cwd=tmp_path, env=site)
    assert result.returncode == 0, result.stderr
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(v["id"], v["passed"], v["score"]) for v in verdicts] == [("a", True, 1.0), ("b", False, 0.0)]
    assert verdicts[1]["info"] == {"words": 1, "missing": ["light"]}


def test_a_recipe_runs_with_it(tmp_path, site, tiny_model):
    recipe = tmp_path / "wc.yaml"
    recipe.write_text(RECIPE.format(model=tiny_model, max_words=20))
    result = selfimprove("run", str(recipe), "--run-dir", "run", "--quiet", cwd=tmp_path, env=site)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "iter-000" / "eval" / "arithmetic.jsonl").open()]
    assert len(rows) == 3
    for row in rows:  # each verdict is the plugin's, on what the model wrote
        words = len(re.findall(r"\w+(?:['-]\w+)*", row["completion"]))
        assert row["verdict"]["info"] == {"words": words, "missing": []}
        assert row["verdict"]["passed"] is (1 <= words <= 20)


def test_the_plugins_own_tests_pass(tmp_path, site):
    env = {**os.environ, "PYTHONPATH": site["PYTHONPATH"], "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
