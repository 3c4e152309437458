"""`selfimprove report` on a small run made by the loop on a tiny model: every plot is drawn and referenced."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import TINY_RECIPE

from selfimprove.config import load_recipe
from selfimprove.errors import UserError
from selfimprove.loop.runner import Runner
from selfimprove.report import write_report

OVERRIDES = [
    "verifier.name=regex",
    "verifier.pattern=^[a-zA-Z]",
    "eval.n=4",
    "eval.tasks.0.limit=4",
    "updater.max_steps=1",
]


@pytest.fixture(scope="module")
def small_run(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    (root / "recipe.yaml").write_text(TINY_RECIPE.format(model=tiny_model, limit=4, iterations=1))
    Runner(load_recipe(root / "recipe.yaml", OVERRIDES), root / "run", show_progress=False).execute()
    return root / "run"


def test_report_references_every_plot_and_they_exist(small_run: Path) -> None:
    page = write_report(small_run).read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    names = {Path(i).stem for i in images}
    assert names == {
        "heldout-arithmetic", "training", "length", "entropy", "passk-arithmetic", "difficulty-arithmetic", "sparsity",
    }  # fmt: skip
    for image in images:
        png = small_run / image
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    summary = json.loads((small_run / "summary.json").read_text())
    accuracy = summary["iterations"][1]["eval"]["arithmetic"]["accuracy"]
    assert f"{accuracy:.1%} after iteration 1" in page


def test_report_without_the_base_model_leaves_out_only_sparsity(small_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copied"
    shutil.copytree(small_run, copy, ignore=shutil.ignore_patterns("report*"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["recipe"]["model"] = str(tmp_path / "not-here")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    page = write_report(copy).read_text()
    assert "sparsity.png" not in page and "No sparsity plot" in page
    assert "passk-arithmetic.png" in page


def test_report_needs_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no summary.json"):
        write_report(tmp_path)


@pytest.fixture(scope="module")
def online_run(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny online RLSP run (PPO, reward parts, a weight-0 metric) with eval samples at its start and end."""
    from selfimprove.loop.runner import run_recipe

    root = tmp_path_factory.mktemp("online-report")
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "tiny" / "rlsp.yaml"
    run_recipe(load_recipe(recipe, [f"model={tiny_model}", "eval.n=4", "loop.steps=3"]), root / "run",
               show_progress=False)  # fmt: skip
    return root / "run"


def test_online_report_plots_training_signals_per_step(online_run: Path) -> None:
    page = write_report(online_run).read_text()
    names = {Path(i).stem for i in re.findall(r'<img src="([^"]+)"', page)}
    assert names == {
        "heldout-arithmetic", "reward", "reward-parts", "passed", "length", "entropy", "update", "time",
        "passk-arithmetic", "sparsity",
    }  # fmt: skip
    assert "solver: mean reward" in page and "3 steps" in page
    summary = json.loads((online_run / "summary.json").read_text())
    assert f"{summary['steps'][-1]['eval']['arithmetic']['accuracy']:.1%} after step 3" in page


def test_analyze_an_online_run(online_run: Path) -> None:
    from click.testing import CliRunner

    from selfimprove.cli import cli

    runner = CliRunner()
    entropy = runner.invoke(cli, ["analyze", "entropy", str(online_run)])
    assert entropy.exit_code == 0 and "step 0" in entropy.output and "solver" in entropy.output
    sparsity = runner.invoke(cli, ["analyze", "sparsity", "--run", str(online_run)])
    assert sparsity.exit_code == 0, sparsity.output
    assert re.search(r"\b2\b.*%", sparsity.output) and re.search(r"\b3\b.*%", sparsity.output)  # kept steps 2, 3
    passk = runner.invoke(cli, ["analyze", "passk", "--run", str(online_run), "--task", "arithmetic", "--limit", "2",
                                "--n", "2", "--max-new-tokens", "4"])  # fmt: skip
    assert passk.exit_code == 0, passk.output
    assert "step 0" in passk.output and "step 3" in passk.output
