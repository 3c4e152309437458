"""Registries: names, suggestions, built-ins and third-party plugins through real entry points."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from selfimprove import registry
from selfimprove.config import load_recipe
from selfimprove.errors import ConfigError, PluginError, UserError
from selfimprove.registry import KINDS, Registry, registries
from selfimprove.verifiers.numeric import NumericVerifier

BUILT_INS = {
    "task": {"arithmetic", "gsm8k", "jsonl"},
    "generator": {"hf"},
    "verifier": {"numeric", "regex"},
    "selector": {"correct"},
    "updater": {"sft", "grpo"},
    "source": {"task", "fixed", "role", "buffer"},
    "parser": {"completion", "between"},
    "reward": {"verdict", "children"},
}
PLUGIN_MODULES = ("fakeplug_good", "fakeplug_broken")


def make_fake_plugin(site: Path) -> Path:
    """An installed distribution 'fakeplug' 1.0 with three verifiers: one loads, one fails to import, one is missing."""
    dist = site / "fakeplug-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[selfimprove.verifiers]\n"
        "good = fakeplug_good:GoodVerifier\n"
        "broken = fakeplug_broken:BrokenVerifier\n"
        "missing = fakeplug_good:NoSuchClass\n"
    )
    (site / "fakeplug_good.py").write_text(
        "class GoodVerifier:\n"
        '    """Passes everything (a test plugin)."""\n\n'
        "    def __init__(self, strict: bool = False):\n"
        "        self.strict = strict\n"
    )
    (site / "fakeplug_broken.py").write_text('raise ImportError("fakeplug needs libfoo")\n')
    return site


@pytest.fixture
def plugin_site(tmp_path, monkeypatch) -> Path:
    site = make_fake_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    for name in PLUGIN_MODULES:  # whatever this test imports is forgotten afterwards
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.invalidate_caches()
    return site


# -- names and suggestions ---------------------------------------------------------------------------------


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UserError) as info:
        registries["verifier"].get("numric")
    message = str(info.value)
    assert message.startswith("Unknown verifier 'numric'. Did you mean: numeric? Available: ")
    assert "numeric" in message.split("Available: ")[1] and "regex" in message.split("Available: ")[1]
    assert not isinstance(info.value, PluginError)


def test_unknown_name_without_a_close_match():
    message = registries["selector"].unknown_message("zzzzzz")
    assert "Did you mean" not in message and message.startswith("Unknown selector 'zzzzzz'. Available: ")
    assert "correct" in message


def test_empty_registry_message():
    assert Registry("verifier", "selfimprove.no-such-group").unknown_message("x") == (
        "Unknown verifier 'x'. Available: (none)"
    )


# -- built-ins ---------------------------------------------------------------------------------------------


def test_built_ins_are_entry_points_of_selfimprove():
    version = metadata.version("selfimprove")
    for kind, names in BUILT_INS.items():
        entries = registries[kind].entries()
        assert names <= set(entries), (kind, sorted(entries))
        for name in names:
            assert (entries[name].package, entries[name].version) == ("selfimprove", version)
    numeric = registries["verifier"].entries()["numeric"]
    assert numeric.target == "selfimprove.verifiers.numeric:NumericVerifier"
    assert registries["verifier"].get("numeric") is NumericVerifier
    assert registry.get("verifier", "numeric") is NumericVerifier
    assert set(KINDS) == set(BUILT_INS) == set(registries)


def test_describe_is_the_first_docstring_line():
    assert registries["verifier"].describe("numeric") == (
        "Passes when the completion's final number equals the reference answer (within a tolerance)."
    )


def test_built_ins_are_imported_only_when_used():
    code = (
        "import sys\n"
        "from selfimprove.registry import registries\n"
        "names = {k: r.names() for k, r in registries.items()}\n"
        "print(sorted(m for m in sys.modules if m.startswith('selfimprove.') and m.count('.') > 1))\n"
        "registries['verifier'].get('numeric')\n"
        "print('selfimprove.verifiers.numeric' in sys.modules, 'selfimprove.verifiers.regex' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    listed, used = result.stdout.splitlines()
    assert listed == "[]"  # listing every kind imported no component module
    assert used == "True False"


def test_register_in_code():
    reg = Registry("verifier", "selfimprove.no-such-group")
    reg.register("mine", NumericVerifier)
    reg.register("lazy", "selfimprove.verifiers.regex:RegexVerifier")
    reg.register("bad", "selfimprove_no_such_module:Thing")
    assert reg.names() == ["bad", "lazy", "mine"]
    assert reg.get("mine") is NumericVerifier
    assert reg.get("lazy").__name__ == "RegexVerifier"
    assert reg.entries()["mine"].package == "<registered in code>"
    with pytest.raises(PluginError, match="ModuleNotFoundError"):
        reg.get("bad")


def test_registrations_in_a_scope_are_forgotten_after_it():
    from selfimprove.verifiers.regex import RegexVerifier

    reg = Registry("verifier", "selfimprove.no-such-group")
    reg.register("kept", NumericVerifier)
    with reg.scope():
        reg.register("passing", RegexVerifier)
        reg.register("kept", RegexVerifier)
        assert reg.get("passing") is RegexVerifier and reg.get("kept") is RegexVerifier
    assert reg.names() == ["kept"] and reg.get("kept") is NumericVerifier


def test_a_test_registers_a_component(registrations):
    registries["verifier"].register("only-in-one-test", NumericVerifier)
    assert registries["verifier"].get("only-in-one-test") is NumericVerifier


def test_and_the_next_test_does_not_see_it():
    assert "only-in-one-test" not in registries["verifier"].names()  # conftest.registrations scoped it


# -- third-party plugins -----------------------------------------------------------------------------------


def test_plugin_entry_points_are_listed_without_importing(plugin_site):
    reg = Registry("verifier", "selfimprove.verifiers")
    entries = reg.entries()
    assert {"good", "broken", "missing", "numeric", "regex"} <= set(reg.names())
    assert (entries["good"].package, entries["good"].version) == ("fakeplug", "1.0")
    assert entries["broken"].target == "fakeplug_broken:BrokenVerifier"
    assert entries["numeric"].package == "selfimprove"
    assert not any(name in sys.modules for name in PLUGIN_MODULES)


def test_plugin_loads_and_a_broken_one_fails_alone(plugin_site):
    reg = Registry("verifier", "selfimprove.verifiers")
    with pytest.raises(PluginError) as info:
        reg.get("broken")
    message = str(info.value)
    assert "verifier 'broken' from package 'fakeplug' failed to load" in message
    assert "ImportError: fakeplug needs libfoo" in message
    assert isinstance(info.value, UserError)  # printed without a traceback, exit code 2
    good = reg.get("good")
    assert good.__name__ == "GoodVerifier" and good.__module__ == "fakeplug_good"
    assert reg.describe("good") == "Passes everything (a test plugin)."
    assert reg.get("numeric") is NumericVerifier  # built-ins are unaffected
    with pytest.raises(PluginError, match="'missing' from package 'fakeplug'.*AttributeError"):
        reg.get("missing")


def test_a_name_two_packages_declare_is_an_error_naming_both(plugin_site):
    dist = plugin_site / "otherplug-2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: otherplug\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text("[selfimprove.verifiers]\ngood = otherplug:Good\nnumeric = otherplug:N\n")
    importlib.invalidate_caches()
    reg = Registry("verifier", "selfimprove.verifiers")
    assert {"good", "numeric"} <= set(reg.names())  # still listed
    for name, first in (("good", "fakeplug 1.0"), ("numeric", "selfimprove")):
        with pytest.raises(PluginError) as info:
            reg.get(name)
        message = str(info.value)
        assert f"verifier '{name}' is declared by more than one package" in message
        assert first in message and "otherplug 2.0" in message  # both named, not a silent last-wins
    assert reg.get("regex").__name__ == "RegexVerifier"  # names nobody else declares are unaffected


def test_recipes_can_name_plugins(plugin_site, tmp_path, monkeypatch):
    monkeypatch.setitem(registries, "verifier", Registry("verifier", "selfimprove.verifiers"))
    base = "model: m\ntask: arithmetic\nselector: correct\nupdater: sft\n"
    good = tmp_path / "good.yaml"
    good.write_text(base + "verifier: {name: good, strict: true}\n")
    recipe = load_recipe(good)
    assert recipe.verifier.build().strict is True
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "verifier: {name: good, strickt: true}\neval: {verifier: broken}\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(bad)
    found = info.value.problems
    assert any("verifier.strickt" in p and "Did you mean 'strict'?" in p for p in found), found
    assert any(
        p.startswith(f"{bad.resolve()}:6: eval.verifier.name:") and "package 'fakeplug' failed to load" in p
        for p in found
    ), found


def cli(*args: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "1000"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "selfimprove", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def table_rows(text: str) -> list[list[str]]:
    """The cells of each one-line row of a rich table (run with a wide COLUMNS so that rows do not wrap)."""
    lines = [line.strip() for line in text.splitlines() if line.startswith(("│", "┃"))]
    return [[c.strip() for c in re.split("[│┃]", line[1:-1])] for line in lines]


def test_plugins_command_shows_packages_names_and_failures(tmp_path):
    site = make_fake_plugin(tmp_path / "site")
    result = cli("plugins", site=site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    (cells,) = [r for r in rows if r[0] == "fakeplug"]
    assert cells[:3] == ["fakeplug", "1.0", "verifier:broken, verifier:good, verifier:missing"]
    assert "ImportError: fakeplug needs libfoo" in cells[3] and "AttributeError" in cells[3]
    assert not [r for r in rows if r[0] == "selfimprove"]  # built-ins are not plugins
    assert "Traceback" not in result.stderr


def test_plugins_command_without_plugins(tmp_path):
    installed = {ep.dist.name for group in KINDS.values() for ep in metadata.entry_points(group=group) if ep.dist}
    if installed - {"selfimprove"}:
        pytest.skip(f"plugin packages are installed here: {sorted(installed - {'selfimprove'})}")
    result = cli("plugins", site=tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "No plugins installed" in result.stdout


def test_ls_shows_plugins_and_their_failures(tmp_path):
    site = make_fake_plugin(tmp_path / "site")
    result = cli("ls", "verifier", site=site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {cells[1]: cells for cells in table_rows(result.stdout)}
    assert {cells[0] for cells in rows.values()} == {"kind", "verifier"}
    assert rows["good"][2:] == ["Passes everything (a test plugin).", "fakeplug 1.0"]
    assert "failed to load" in rows["broken"][2] and "fakeplug needs libfoo" in rows["broken"][2]
    assert rows["numeric"][3].startswith("selfimprove ")
