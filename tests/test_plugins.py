"""Plugin discovery and loading: real entry points of installed distributions, and the loader's
handling of broken plugins (import failure, failure midway, name clashes)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from conftest import CONFIG, PLUGIN_TEMPLATE, TESTS
from ocrframe.plugins import GROUP, PluginLoader
from ocrframe.registry import Slots


def entry_point(name: str, module: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"fake_plugins.{module}", group=GROUP)


def run_python(args: list[str], pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def listed(stdout: str) -> dict[str, tuple[str, str]]:
    """`ocrframe list` rows as {component: (slot, provided by)}."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        match = re.match(r"(\S+)\s+(\S+)\s+(.*)$", line)
        if match:
            rows[match[2]] = (match[1], match[3])
    return rows


# -- discovery through real entry points -------------------------------------------------------

@pytest.fixture(scope="module")
def template_source(tmp_path_factory) -> Path:
    """A copy of examples/plugin-template, so build artefacts stay out of the repository."""
    return shutil.copytree(PLUGIN_TEMPLATE, tmp_path_factory.mktemp("template") / "src")


@pytest.fixture(scope="module")
def installed_testplugin(template_source, tmp_path_factory) -> Path:
    """The plugin template, pip-installed into a site directory of its own (on PYTHONPATH in the
    subprocesses below): a third-party plugin as a user installs it."""
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             "--disable-pip-version-check", "--target", str(target), str(template_source)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert list(target.glob("ocrframe_tinyconv-0.1.0.dist-info")), "pip did not install the plugin template"
    return target


def test_list_shows_an_installed_third_party_plugin_with_slot_distribution_and_version(installed_testplugin, tmp_path):
    result = run_python(["-m", "ocrframe.cli", "list"], [installed_testplugin], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = listed(result.stdout)
    assert rows["TinyConv"] == ("backbone", "plugin 'tinyconv' (ocrframe-tinyconv 0.1.0)")
    assert rows["ConfidenceDecoder"] == ("decoder", "plugin 'tinyconv' (ocrframe-tinyconv 0.1.0)")


def test_the_installed_template_passes_its_own_tests(installed_testplugin, template_source, tmp_path):
    result = run_python(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(template_source / "tests")],
                        [installed_testplugin], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    # discovery, 3 widths, a padded batch, 2 decoder tests, the config, 3 training iterations and a reading
    assert re.search(r"\b9 passed\b", result.stdout), result.stdout[-3000:]


def test_list_shows_builtin_plugins_with_their_distributions(installed_testplugin, tmp_path):
    result = run_python(["-m", "ocrframe.cli", "list"], [installed_testplugin], tmp_path)
    rows = listed(result.stdout)
    assert rows["VGG"][0] == "backbone" and "(ocrframe-vgg " in rows["VGG"][1]
    assert rows["BiLSTM"][0] == "sequence_encoder" and "(ocrframe-lstm " in rows["BiLSTM"][1]
    assert rows["CTCHead"][0] == "head" and "(ocrframe-ctc " in rows["CTCHead"][1]
    assert rows["GreedyDecoder"][0] == "decoder" and "(ocrframe-ctc " in rows["GreedyDecoder"][1]
    assert rows["Recognizer"][0] == "model" and "plugin 'core' (ocrframe " in rows["Recognizer"][1]


def test_list_slot_shows_the_components_of_that_slot_only(installed_testplugin, tmp_path):
    everything = listed(run_python(["-m", "ocrframe.cli", "list"], [installed_testplugin], tmp_path).stdout)
    result = run_python(["-m", "ocrframe.cli", "list", "--slot", "decoder"], [installed_testplugin], tmp_path)
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == {name: row for name, row in everything.items() if row[0] == "decoder"}
    assert {"GreedyDecoder", "BeamSearchDecoder", "LexiconDecoder", "ConfidenceDecoder"} <= set(listed(result.stdout))
    assert len(everything) > len(listed(result.stdout))


def test_installed_plugin_backbone_is_usable_from_a_config(installed_testplugin, tmp_path):
    script = textwrap.dedent(f"""
        import torch
        from mmengine.config import Config
        from ocrframe.registry import MODELS
        cfg = Config.fromfile({str(CONFIG)!r})
        cfg.model.backbone = dict(type="TinyConv", out_channels=48)
        model = MODELS.build(cfg.model)
        print(model.backbone.out_channels, model.sequence_encoder.layers[0].input_size,
              tuple(model(torch.zeros(2, 1, 32, 100)).shape))
    """)
    result = run_python(["-c", script], [installed_testplugin], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["48", "48", "(2,", "25,", "37)"]  # 100 // 4 frames, 36 symbols + blank


def test_list_fails_and_names_a_plugin_that_cannot_be_imported(tmp_path):
    # A distribution whose entry point names a module that fails to import, installed as
    # metadata only: importlib.metadata finds it like any installed package.
    dist_info = tmp_path / "site" / "fake_broken-0.2.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-broken\nVersion: 0.2\n")
    (dist_info / "entry_points.txt").write_text("[ocrframe.plugins]\nbroken = fake_plugins.broken_import\n")
    result = run_python(["-m", "ocrframe.cli", "list"], [tmp_path / "site", TESTS], tmp_path)
    assert result.returncode != 0
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED:")]
    assert len(failed) == 1
    assert "plugin 'broken'" in failed[0]
    assert "broken = fake_plugins.broken_import" in failed[0]
    assert "fake-broken" in failed[0]
    assert "ocrframe_dependency_that_is_not_installed" in failed[0]
    assert "VGG" in listed(result.stdout)  # the others still load


# -- the loader, with hand-made entry points ---------------------------------------------------

def test_a_plugin_that_fails_to_import_is_reported_and_the_others_still_load():
    slots = Slots(detached=True)
    loader = PluginLoader(slots)
    loader.load([entry_point("broken", "broken_import"), entry_point("good", "good")])
    assert len(loader.errors) == 1
    error = loader.errors[0]
    assert "plugin 'broken'" in error
    assert "'broken = fake_plugins.broken_import'" in error
    assert "ModuleNotFoundError" in error
    assert "FakeBackbone" in slots.backbone.module_dict
    assert [origin.plugin for origin in loader.loaded] == ["good"]


def test_a_plugin_failing_midway_has_its_registrations_rolled_back():
    slots = Slots(detached=True)
    loader = PluginLoader(slots)
    loader.load([entry_point("midway", "fails_midway"), entry_point("good", "good")])
    assert len(loader.errors) == 1
    assert "plugin 'midway'" in loader.errors[0]
    assert "registration blew up halfway" in loader.errors[0]
    assert "MidwayEncoder" not in slots.sequence_encoder.module_dict
    assert "MidwayBackbone" not in slots.backbone.module_dict
    assert "FakeBackbone" in slots.backbone.module_dict
    assert [origin.plugin for origin in loader.loaded] == ["good"]


def test_two_plugins_registering_the_same_name_are_both_named():
    slots = Slots(detached=True)
    loader = PluginLoader(slots)
    loader.load([entry_point("first", "duplicate_a"), entry_point("second", "duplicate_b")])
    assert len(loader.errors) == 1
    error = loader.errors[0]
    assert "'SharedName'" in error
    assert "plugin 'first'" in error and "plugin 'second'" in error
    # The first registration stands; the second plugin is rolled back entirely.
    assert slots.backbone.get("SharedName").__module__ == "fake_plugins.components"
    assert "DuplicateBEncoder" not in slots.sequence_encoder.module_dict


def test_unknown_name_message_mentions_plugins_that_failed(monkeypatch):
    import ocrframe.plugins

    failed = PluginLoader(Slots(detached=True))
    failed.load([entry_point("broken", "broken_import")])
    monkeypatch.setattr(ocrframe.plugins, "_LOADER", failed)
    slots = Slots(detached=True)
    message = slots.backbone.unknown_message("TinyConv")
    assert "failed to load" in message and "plugin 'broken'" in message
