"""`selfimprove compare` on small runs made by the loop: metrics side by side, recipe differences, warnings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_RECIPE

from selfimprove.analysis.compare import compare_runs, eval_sampling
from selfimprove.cli import cli
from selfimprove.config import load_recipe
from selfimprove.errors import UserError
from selfimprove.loop.runner import run_recipe

OVERRIDES = ["verifier.name=regex", "verifier.pattern=^[a-zA-Z]", "updater.max_steps=1", "eval.tasks.0.limit=3"]


@pytest.fixture(scope="module")
def runs(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    recipe = root / "star.yaml"
    recipe.write_text(TINY_RECIPE.format(model=tiny_model, limit=4, iterations=1))
    without = root / "star-no-rationalization.yaml"  # the ablation: no second role
    without.write_text(recipe.read_text().split("  - name: rationalization")[0] + recipe.read_text().split(
        "    train_prompt_from: rationale\n")[1])  # fmt: skip
    out = {}
    for name, path, extra in (("star", recipe, []), ("no-rat", without, []), ("seed-1", recipe, ["loop.seed=1"])):
        run_recipe(load_recipe(path, [*OVERRIDES, *extra]), root / name, show_progress=False)
        out[name] = root / name
    return out


def test_compare_shows_metrics_side_by_side_and_what_differs(runs: dict[str, Path]) -> None:
    comparison = compare_runs([str(runs["star"]), str(runs["no-rat"])])
    assert comparison.names == ["star", "no-rat"] and comparison.tasks == ["arithmetic"]
    assert comparison.points() == [0, 1] and not comparison.warnings
    series = comparison.series("arithmetic", "accuracy")
    assert set(series) == {"star", "no-rat"} and all(len(v) == 2 for v in series.values())
    assert series["star"][0] == series["no-rat"][0]  # the same start, the same seed, the same eval set
    keys = [k for k, _ in comparison.differences]
    assert keys == ["roles.1"]  # the one difference: the rationalization role, reported once


def test_compare_warns_when_runs_are_not_like_for_like(runs: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["compare", str(runs["star"]), str(runs["seed-1"]), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "different seeds (0, 1)" in result.output and "loop.seed" in result.output
    page = (tmp_path / "compare.html").read_text()
    assert "Warning: the runs have different seeds" in page and "arithmetic-accuracy.png" in page
    assert (tmp_path / "arithmetic-accuracy.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UserError, match="at least two"):
        compare_runs([str(runs["star"])])


def test_compare_warns_when_the_held_out_pass_samples_differently(runs: dict[str, Path], tmp_path: Path) -> None:
    # a control whose generator writes one token, evaluated under eval.generation that does not say how many
    short = tmp_path / "short"
    shutil.copytree(runs["star"], short)
    manifest = json.loads((short / "manifest.json").read_text())
    manifest["recipe"]["generator"]["max_new_tokens"] = 1
    (short / "manifest.json").write_text(json.dumps(manifest))
    assert "different generation settings" in " ".join(compare_runs([str(runs["star"]), str(short)]).warnings)
    star = json.loads((runs["star"] / "manifest.json").read_text())["recipe"]
    manifest["recipe"]["eval"]["generation"] = eval_sampling(star)  # the control states the eval's settings
    (short / "manifest.json").write_text(json.dumps(manifest))
    assert not compare_runs([str(runs["star"]), str(short)]).warnings
