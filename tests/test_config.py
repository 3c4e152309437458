"""Recipes: includes, overrides, locations in messages, component arguments, roles, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfimprove.config import Recipe, load_recipe
from selfimprove.config.schema import Role
from selfimprove.errors import ConfigError, UserError

MINIMAL = """\
model: some/model
task: {name: arithmetic, size: 50}
verifier: numeric
selector: {name: correct}
updater: {name: sft}
"""

TWO_ROLES = """\
model: some/model
task: arithmetic
verifier: numeric
selector: correct
updater: sft
roles:
  - name: rationale
  - name: rationalization
    source: {name: task, role: rationale, passed: false}
    prompt: {template: "{question} (Hint: {answer})"}
    train_prompt_from: rationale
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems(path: Path, overrides: list[str] = ()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_recipe(path, list(overrides))
    return info.value.problems


def loc(path: Path, line: int) -> str:
    return f"{path.resolve()}:{line}"


# -- defaults ----------------------------------------------------------------------------------------------


def test_minimal_recipe_gets_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", MINIMAL))
    assert isinstance(recipe, Recipe)
    assert (recipe.generator.kind, recipe.generator.name, recipe.generator.args) == ("generator", "hf", {})
    assert recipe.roles == [Role(name="solver")]
    assert recipe.roles[0].prompt.template == "{question}"
    assert (recipe.loop.iterations, recipe.loop.init, recipe.loop.seed) == (1, "base", 0)
    assert recipe.adapter.type == "lora"
    assert recipe.eval.tasks == [] and recipe.eval.generation == {"temperature": 0.0}
    # a bare string names a component; a mapping carries its arguments
    assert (recipe.verifier.name, recipe.verifier.args) == ("numeric", {})
    assert (recipe.task.name, recipe.task.args, recipe.task.split, recipe.task.limit) == (
        "arithmetic",
        {"size": 50},
        "train",
        None,
    )
    assert recipe.source == str((tmp_path / "r.yaml").resolve())
    assert recipe.resolved["task"] == {"name": "arithmetic", "size": 50}


def test_task_split_and_limit_are_the_loops_not_the_components(tmp_path):
    text = MINIMAL.replace("{name: arithmetic, size: 50}", "{name: arithmetic, size: 50, split: test, limit: 7}")
    text += "eval:\n  tasks: [{name: arithmetic, limit: 3}]\n"
    recipe = load_recipe(write(tmp_path, "r.yaml", text))
    assert (recipe.task.split, recipe.task.limit, recipe.task.args) == ("test", 7, {"size": 50})
    (ev,) = recipe.eval.tasks
    assert (ev.split, ev.limit, ev.args) == ("test", 3, {})  # eval tasks default to the test split


def test_build_makes_the_component(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", MINIMAL))
    task = recipe.task.build()
    assert task.size == 50
    assert recipe.selector.build(max_per_prompt=3).max_per_prompt == 3  # build() overrides win


def test_missing_required_sections_are_all_reported(tmp_path):
    path = write(tmp_path, "r.yaml", "name: x\n")
    found = problems(path)
    for key in ("model", "updater"):
        assert any(f"missing required key '{key}'" in p for p in found), found
    assert all(p.startswith(loc(path, 1)) for p in found)
    # an offline run also needs a task, a verifier and a selector (an online one may draw from no task)
    path = write(tmp_path, "r.yaml", "model: m\nupdater: sft\n")
    found = problems(path)
    for key in ("task", "verifier", "selector"):
        assert any(f"an offline run needs '{key}'" in p for p in found), found


def test_empty_file_reports_a_location(tmp_path):
    path = write(tmp_path, "r.yaml", "# nothing here\n")
    found = problems(path)
    assert found and all(p.startswith(loc(path, 1)) for p in found)


# -- YAML --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line",
    [
        ("model: x\ntask: {name: arithmetic\nverifier: numeric\n", 3),  # unclosed flow mapping
        ("model: x\n  task: arithmetic\n", 2),  # bad indentation
        ('model: "abc\nname: x\n', 3),  # unclosed quote
        ("model: x\nname: a\x07\n", 2),  # a control character
    ],
)
def test_malformed_yaml_names_file_and_line(tmp_path, text, line):
    path = write(tmp_path, "r.yaml", text)
    (problem,) = problems(path)
    assert problem.startswith(f"{loc(path, line)}: malformed YAML")


def test_unclosed_bracket_says_where_it_opened(tmp_path):
    path = write(tmp_path, "r.yaml", "model: x\ntask: {name: arithmetic\nverifier: numeric\n")
    (problem,) = problems(path)
    assert "at line 2" in problem


def test_not_utf8(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"model: \xff\xfe\n")
    (problem,) = problems(path)
    assert str(path.resolve()) in problem and "UTF-8" in problem


def test_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "model: other\n")
    (problem,) = problems(path)
    assert problem == f"{loc(path, 6)}: duplicate key 'model'"


def test_on_as_a_key_is_caught(tmp_path):
    # YAML 1.1 reads a bare `on` as True; the schema uses `when:` and the loader refuses non-string keys.
    path = write(tmp_path, "r.yaml", MINIMAL + "roles:\n  - name: a\n    on: {role: b}\n")
    (problem,) = problems(path)
    assert problem.startswith(loc(path, 8)) and "keys must be strings, got True" in problem


def test_recipe_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "r.yaml", "- a\n- b\n")
    (problem,) = problems(path)
    assert "must be a mapping" in problem and problem.startswith(loc(path, 1))


def test_merge_keys_share_a_prompt_and_own_keys_win(tmp_path):
    text = MINIMAL + (
        "roles:\n  - name: a\n    prompt: &p {system: S, template: 'Q {question}'}\n"
        "  - name: b\n    prompt:\n      <<: *p\n      template: 'H {question} {answer}'\n"
    )
    recipe = load_recipe(write(tmp_path, "r.yaml", text))
    assert recipe.roles[1].prompt.system == "S" and recipe.roles[1].prompt.template == "H {question} {answer}"
    dup = MINIMAL + "roles:\n  - name: a\n    prompt:\n      system: S\n      system: T\n"
    (problem,) = problems(write(tmp_path, "d.yaml", dup))
    assert "duplicate key 'system'" in problem


def test_aliases_work(tmp_path):
    text = MINIMAL + (
        "roles:\n  - name: a\n    prompt: {system: &sys 'Be careful.'}\n  - name: b\n    prompt: {system: *sys}\n"
    )
    recipe = load_recipe(write(tmp_path, "r.yaml", text))
    assert [r.prompt.system for r in recipe.roles] == ["Be careful.", "Be careful."]


def test_exponent_without_dot_is_a_number(tmp_path):
    # Plain YAML 1.1 reads 1e-4 as the string '1e-4'; learning rates are written like that.
    text = MINIMAL.replace("updater: {name: sft}", "updater: {name: sft, learning_rate: 1e-4}")
    recipe = load_recipe(write(tmp_path, "r.yaml", text))
    assert recipe.updater.args["learning_rate"] == pytest.approx(1e-4)
    recipe = load_recipe(write(tmp_path, "r.yaml", MINIMAL), ["updater.learning_rate=3E-5"])
    assert recipe.updater.args["learning_rate"] == pytest.approx(3e-5)


# -- includes ----------------------------------------------------------------------------------------------

BASE = """\
model: base/model
task: {name: arithmetic, size: 100, seed: 1}
verifier: numeric
selector: {name: correct, max_per_prompt: 2}
updater: sft
roles:
  - name: a
  - name: b
loop: {iterations: 2, seed: 5}
"""


def test_include_relative_path_local_keys_win_deep_merge(tmp_path):
    write(tmp_path, "shared/base.yaml", BASE)
    top = write(
        tmp_path,
        "recipes/top.yaml",
        "include: ../shared/base.yaml\nmodel: top/model\ntask: {seed: 3}\nloop: {iterations: 4}\nroles: [{name: c}]\n",
    )
    recipe = load_recipe(top)
    assert recipe.model == "top/model"  # local keys win
    assert recipe.task.args == {"size": 100, "seed": 3}  # mappings merge deeply
    assert (recipe.loop.iterations, recipe.loop.seed) == (4, 5)
    assert recipe.selector.args == {"max_per_prompt": 2}  # untouched keys come from the include
    assert [r.name for r in recipe.roles] == ["c"]  # lists are replaced, not concatenated
    assert "include" not in recipe.resolved


def test_include_list_later_wins_and_nested_includes_are_relative_to_their_file(tmp_path):
    write(tmp_path, "lib/inner.yaml", "loop: {iterations: 7, seed: 9}\n")
    write(tmp_path, "lib/outer.yaml", "include: inner.yaml\nloop: {iterations: 8}\n")  # relative to lib/
    write(tmp_path, "base.yaml", BASE)
    top = write(tmp_path, "top.yaml", "include: [base.yaml, lib/outer.yaml]\n")
    recipe = load_recipe(top)
    assert (recipe.loop.iterations, recipe.loop.seed) == (8, 9)
    assert recipe.model == "base/model"


def test_include_cycle_is_detected(tmp_path):
    a = write(tmp_path, "a.yaml", "include: b.yaml\nmodel: x\n")
    write(tmp_path, "b.yaml", "include: a.yaml\n")
    (problem,) = problems(a)
    assert "include cycle" in problem
    assert f"{(tmp_path / 'a.yaml').resolve()} -> {(tmp_path / 'b.yaml').resolve()}" in problem


def test_self_include_is_a_cycle(tmp_path):
    a = write(tmp_path, "a.yaml", "include: a.yaml\n")
    (problem,) = problems(a)
    assert "include cycle" in problem


def test_missing_include_names_the_file_and_line(tmp_path):
    top = write(tmp_path, "top.yaml", "model: x\ninclude: nope.yaml\n")
    (problem,) = problems(top)
    assert problem.startswith(loc(top, 2)) and str(tmp_path / "nope.yaml") in problem


def test_problems_point_into_the_file_that_holds_the_key(tmp_path):
    base = write(tmp_path, "base.yaml", BASE.replace("verifier: numeric", "verifier: {name: numeric, tolerence: 1}"))
    top = write(tmp_path, "top.yaml", "include: base.yaml\nloop: {iterations: many}\n")
    found = problems(top)
    assert any(p.startswith(f"{loc(base, 3)}: verifier.tolerence:") for p in found), found
    assert any(p.startswith(f"{loc(top, 2)}: loop.iterations:") for p in found), found


# -- overrides ---------------------------------------------------------------------------------------------


def test_overrides_nested_list_index_and_yaml_types(tmp_path):
    path = write(tmp_path, "r.yaml", TWO_ROLES)
    recipe = load_recipe(
        path,
        [
            "generator.temperature=0.5",  # no generator in the recipe: the default hf gets the setting
            "roles.0.n=2",
            "roles.1.source.passed=true",
            "task.kinds=[add, sub]",
            "task.limit=null",
            "loop.iterations=0",
            "name=hello world",
            "description=",
        ],
    )
    assert (recipe.generator.name, recipe.generator.args) == ("hf", {"temperature": 0.5})
    assert recipe.roles[0].n == 2 and recipe.roles[1].n == 1
    assert recipe.roles[1].source.args == {"role": "rationale", "passed": True}
    assert (recipe.task.name, recipe.task.args) == ("arithmetic", {"kinds": ["add", "sub"]})  # `task: arithmetic`
    assert recipe.task.limit is None
    assert recipe.loop.iterations == 0
    assert recipe.name == "hello world"
    assert recipe.description == ""
    assert recipe.resolved["roles"][0]["n"] == 2  # the resolved recipe records the override


def test_override_into_a_short_form_component_in_a_list(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "eval: {tasks: [arithmetic]}\n")
    (task,) = load_recipe(path, ["eval.tasks.0.limit=3", "eval.tasks.0.size=40"]).eval.tasks
    assert (task.name, task.limit, task.args) == ("arithmetic", 3, {"size": 40})


def test_a_generator_section_without_a_name_keeps_the_default(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", MINIMAL + "generator: {max_new_tokens: 8}\n"))
    assert (recipe.generator.name, recipe.generator.args) == ("hf", {"max_new_tokens": 8})
    # components without a default still need their name
    (problem,) = problems(write(tmp_path, "r.yaml", MINIMAL.replace("verifier: numeric", "verifier: {tolerance: 1}")))
    assert "a verifier needs a 'name'" in problem


def test_override_type_error_is_located_on_the_command_line(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    (problem,) = problems(path, ["loop.iterations=abc"])
    assert problem == "command line (loop.iterations=abc): loop.iterations: expected an integer, got 'abc'"


def test_override_creating_an_unknown_section_is_located_on_the_command_line(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    (problem,) = problems(path, ["modle.x=1"])
    assert problem.startswith("command line (modle.x=1): modle: unknown key. Did you mean 'model'?")


@pytest.mark.parametrize(
    "override, message",
    [
        ("notakeyvalue", "overrides must look like key=value, got 'notakeyvalue'"),
        ("=3", "overrides must look like key=value, got '=3'"),
        ("roles.5.n=2", "'roles.5.n': no 'roles.5' to set"),
        ("model.x=1", "'model.x': cannot set this key"),
    ],
)
def test_bad_overrides(tmp_path, override, message):
    path = write(tmp_path, "r.yaml", TWO_ROLES)
    (problem,) = problems(path, [override])
    assert problem == f"command line: {message}"


def test_override_problems_are_reported_with_the_recipes(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("verifier: numeric", "verifier: numric"))
    found = problems(path, ["notakeyvalue", "loop.iterations=x"])
    assert len(found) == 3, found
    assert any("notakeyvalue" in p for p in found)
    assert any("loop.iterations: expected an integer" in p for p in found)
    assert any("Unknown verifier 'numric'" in p for p in found)


# -- locations and schema problems -------------------------------------------------------------------------


def test_unknown_key_suggests_and_is_located(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "loop:\n  seed: 1\n  iteratons: 2\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{loc(path, 8)}: loop.iteratons: unknown key. Did you mean 'iterations'?")
    assert "Allowed: mode, seed, iterations, init" in problem


def test_wrong_types_name_the_expected_type(tmp_path):
    text = MINIMAL + "loop: {iterations: three, init: latest}\nadapter: {r: 1.5}\n"
    path = write(tmp_path, "r.yaml", text)
    found = problems(path)
    assert f"{loc(path, 6)}: loop.iterations: expected an integer, got 'three'" in found
    assert f"{loc(path, 6)}: loop.init: expected one of 'base', 'previous', got 'latest'" in found
    assert f"{loc(path, 7)}: adapter.r: expected an integer, got 1.5" in found
    assert len(found) == 3


def test_booleans_are_not_integers(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "loop: {iterations: true}\n")
    (problem,) = problems(path)
    assert "loop.iterations: expected an integer, got True" in problem


def test_section_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "loop: 3\n")
    (problem,) = problems(path)
    assert problem == f"{loc(path, 6)}: loop: expected a mapping, got 3"


def test_unknown_component_suggests(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("verifier: numeric", "verifier: {name: numric}"))
    (problem,) = problems(path)
    assert problem.startswith(f"{loc(path, 3)}: verifier.name: Unknown verifier 'numric'. Did you mean: numeric?")


def test_component_needs_a_name(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("verifier: numeric", "verifier: {tolerance: 1}"))
    (problem,) = problems(path)
    assert problem.startswith(loc(path, 3)) and "a verifier needs a 'name'" in problem


# -- component arguments -----------------------------------------------------------------------------------


def test_unknown_argument_with_suggestion(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("{name: correct}", "{name: correct, max_per_promt: 1}"))
    (problem,) = problems(path)
    assert problem.startswith(f"{loc(path, 4)}: selector.max_per_promt: selector 'correct' has no argument")
    assert "Did you mean 'max_per_prompt'?" in problem and "Accepts: max_per_prompt, dedupe" in problem


def test_missing_required_argument(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("verifier: numeric", "verifier: regex"))
    (problem,) = problems(path)
    assert problem == f"{loc(path, 3)}: verifier: verifier 'regex' needs argument 'pattern'"


def test_wrong_argument_type(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("verifier: numeric", "verifier: {name: numeric, tolerance: x}"))
    (problem,) = problems(path)
    assert problem == f"{loc(path, 3)}: verifier.tolerance: verifier 'numeric': expected a number, got 'x'"


def test_constructor_checks_run_at_validation(tmp_path):
    text = MINIMAL.replace("size: 50}", "size: 50, test_fraction: 1.5}")
    text = text.replace("verifier: numeric", "verifier: {name: regex, pattern: '(unclosed'}")
    path = write(tmp_path, "r.yaml", text)
    found = problems(path)
    assert any(p.startswith(f"{loc(path, 2)}: task:") and "test_fraction must be between 0 and 1" in p for p in found)
    assert any(p.startswith(f"{loc(path, 3)}: verifier:") and "bad pattern" in p for p in found)


def test_missing_data_file_is_found_at_validation(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("{name: arithmetic, size: 50}", "{name: jsonl, path: /no.jsonl}"))
    (problem,) = problems(path)
    assert problem == f"{loc(path, 2)}: task: data file not found: /no.jsonl"


def test_task_limit_type(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("size: 50}", "size: 50, limit: ten}"))
    (problem,) = problems(path)
    assert "task.limit: expected an integer or null, got 'ten'" in problem


def test_generation_settings_are_checked_against_the_generator(tmp_path):
    text = MINIMAL + "roles: [{name: a, generation: {temprature: 1.0}}]\neval: {generation: {top_p: high}}\n"
    found = problems(write(tmp_path, "r.yaml", text))
    assert any("roles.0.generation.temprature" in p and "Did you mean 'temperature'?" in p for p in found), found
    assert any("eval.generation.top_p" in p and "expected a number" in p for p in found), found


# -- roles -------------------------------------------------------------------------------------------------


def role_problems(tmp_path: Path, roles: str, extra: str = "") -> list[str]:
    return problems(write(tmp_path, "r.yaml", MINIMAL + "roles:\n" + roles + extra))


def test_a_source_must_name_an_earlier_role(tmp_path):
    found = role_problems(tmp_path, "  - name: a\n    source: {name: task, role: b}\n  - name: b\n")
    assert len(found) == 1
    assert "roles.0.source: reads role 'b', which is not an earlier role (earlier: none)" in found[0]
    found = role_problems(tmp_path, "  - name: a\n  - name: b\n    source: {name: task, role: b}\n")
    assert len(found) == 1 and "roles.1.source: reads role 'b', which is not an earlier role (earlier: a)" in found[0]


def test_a_retired_key_says_what_replaced_it(tmp_path):
    (problem,) = role_problems(tmp_path, "  - name: a\n  - name: b\n    when: {role: a, passed: false}\n")
    assert "roles.1.when: replaced by the role's source" in problem
    assert "source: {name: task, role: R, passed: P}" in problem


def test_an_offline_role_reads_no_buffer(tmp_path):
    (problem,) = role_problems(tmp_path, "  - name: a\n    source: {name: buffer, buffer: tasks}\n")
    assert "roles.0.source: reads buffer 'tasks', which is not declared (buffers: none)" in problem


def test_duplicate_role_names(tmp_path):
    (problem,) = role_problems(tmp_path, "  - name: a\n  - name: a\n")
    assert problem == f"{loc(tmp_path / 'r.yaml', 8)}: roles.1.name: duplicate role name 'a'"


def test_train_prompt_from_and_eval_prompt_from_must_exist(tmp_path):
    found = role_problems(tmp_path, "  - name: a\n    train_prompt_from: ghost\n", "eval: {prompt_from: spirit}\n")
    assert any("roles.0.train_prompt_from: no role 'ghost'" in p for p in found), found
    assert any("eval.prompt_from: no role 'spirit'" in p for p in found), found


def test_roles_need_n_at_least_one_and_at_least_one_role(tmp_path):
    (problem,) = role_problems(tmp_path, "  - name: a\n    n: 0\n")
    assert "roles.0.n: must be at least 1, got 0" in problem
    (problem,) = problems(write(tmp_path, "r.yaml", MINIMAL + "roles: []\n"))
    assert "roles: needs at least one role" in problem


def test_role_needs_a_name(tmp_path):
    (problem,) = role_problems(tmp_path, "  - n: 2\n")
    assert "roles.0: missing required key 'name'" in problem


def test_bad_template_is_located_at_the_template(tmp_path):
    (problem,) = role_problems(tmp_path, "  - name: a\n    prompt:\n      template: '{question'\n")
    assert problem.startswith(f"{loc(tmp_path / 'r.yaml', 9)}: roles.0.prompt.template: bad template")
    (problem,) = role_problems(tmp_path, "  - name: a\n    prompt: {template: 'Q: {}'}\n")
    assert "fields must be named" in problem


def test_system_message_is_not_a_template(tmp_path):
    # The system message is sent verbatim, so braces in it are fine.
    recipe = load_recipe(write(tmp_path, "r.yaml", MINIMAL + "roles: [{name: a, prompt: {system: 'Use { and }'}}]\n"))
    assert recipe.roles[0].prompt.system == "Use { and }"


def test_few_shot_examples_need_the_template_fields_and_a_completion(tmp_path):
    roles = "  - name: a\n    prompt:\n      template: '{question} ({answer})'\n      few_shot:\n"
    ok = roles + "        - {question: '1+1?', answer: 2, completion: 'It is 2.'}\n"
    recipe = load_recipe(write(tmp_path, "r.yaml", MINIMAL + "roles:\n" + ok))
    assert recipe.roles[0].prompt.few_shot == [{"question": "1+1?", "answer": 2, "completion": "It is 2."}]
    bad = roles + "        - {question: '1+1?'}\n"
    (problem,) = role_problems(tmp_path, bad)
    assert "roles.0.prompt.few_shot.0: few-shot example lacks answer, completion" in problem


def test_an_eval_task_listed_twice_is_refused(tmp_path):
    text = MINIMAL + "eval:\n  tasks: [{name: arithmetic, seed: 1}, {name: arithmetic, seed: 2}]\n"
    (problem,) = problems(write(tmp_path, "r.yaml", text))
    assert "eval.tasks.1: task 'arithmetic' is listed twice" in problem


def test_all_problems_are_reported_at_once(tmp_path):
    text = MINIMAL.replace("verifier: numeric", "verifier: numric") + "modle: x\nloop: {iterations: three}\n"
    path = write(tmp_path, "r.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert len(info.value.problems) == 3
    assert str(info.value).startswith("3 problems in the recipe:\n  - ")
    assert isinstance(info.value, UserError) and info.value.exit_code == 2


def test_missing_recipe_file(tmp_path):
    (problem,) = problems(tmp_path / "nope.yaml")
    assert problem == f"{(tmp_path / 'nope.yaml').resolve()}: recipe file not found"
