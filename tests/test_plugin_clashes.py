"""Plugin clashes are settled the same way on every machine: the built-in plugins load first and
keep their names, third-party plugins load by name, a replacement is never silent, and the user
can prefer a plugin with OCRFRAME_PREFER_PLUGINS. A plugin that exits at import is contained."""
from __future__ import annotations

import logging
from importlib.metadata import EntryPoint
from types import SimpleNamespace

import pytest

from ocrframe.plugins import GROUP, PluginLoader
from ocrframe.registry import Slots


def entry_point(name: str, module: str, distribution: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"fake_plugins.{module}", group=GROUP)._for(
        SimpleNamespace(name=distribution, version="1.0"))


BUILTIN = ("vgg", "duplicate_a", "ocrframe-vgg")     # a built-in distribution's plugin
THIRD_PARTY = ("aaa", "duplicate_b", "aaa-plugin")   # sorts before it by name


def loaded(*eps) -> tuple[Slots, PluginLoader]:
    slots = Slots(detached=True)
    loader = PluginLoader(slots)
    loader.load([entry_point(*ep) for ep in eps])
    return slots, loader


@pytest.mark.parametrize("order", [(THIRD_PARTY, BUILTIN), (BUILTIN, THIRD_PARTY)])
def test_the_built_in_component_wins_a_clash_whatever_the_installation_order(order):
    slots, loader = loaded(*order)
    assert slots.backbone.get("SharedName").__module__ == "fake_plugins.components"  # duplicate_a's
    assert slots.backbone.origins["SharedName"].distribution == "ocrframe-vgg"
    (error,) = loader.errors
    assert "plugin 'aaa'" in error and "OCRFRAME_PREFER_PLUGINS=aaa" in error


def test_a_third_party_plugin_cannot_force_out_a_built_in_one():
    slots, loader = loaded(BUILTIN, ("forcing", "forcing", "forcing-plugin"))
    assert slots.backbone.get("SharedName").__module__ == "fake_plugins.components"
    (error,) = loader.errors
    assert "may not replace a built-in component" in error


def test_a_forced_replacement_between_third_party_plugins_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="ocrframe.registry"):
        slots, loader = loaded(("aaa", "duplicate_a", "aaa-plugin"), ("forcing", "forcing", "forcing-plugin"))
    assert not loader.errors
    assert slots.backbone.get("SharedName").__name__ == "ForcedBackbone"
    assert "backbone 'SharedName' of plugin 'aaa' (aaa-plugin 1.0) replaced by the one of plugin 'forcing'" in caplog.text


def test_the_user_can_prefer_a_third_party_plugin(monkeypatch, caplog):
    monkeypatch.setenv("OCRFRAME_PREFER_PLUGINS", "aaa")
    with caplog.at_level(logging.WARNING, logger="ocrframe.registry"):
        slots, loader = loaded(THIRD_PARTY, BUILTIN)
    assert not loader.errors
    assert slots.backbone.get("SharedName").__name__ == "OtherBackbone"  # duplicate_b's
    assert "replaced by the one of plugin 'aaa'" in caplog.text


def test_a_plugin_calling_sys_exit_at_import_is_reported_and_the_others_load():
    slots, loader = loaded(("exits", "exits", "exits-plugin"), BUILTIN)
    (error,) = loader.errors
    assert "plugin 'exits'" in error and "SystemExit: 3" in error
    assert "SharedName" in slots.backbone.module_dict
