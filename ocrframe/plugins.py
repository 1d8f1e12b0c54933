"""The plugin API: pluggy hook specifications, and the loader that finds plugins by entry point.

A plugin is an installable package that declares, in its pyproject.toml::

    [project.entry-points."ocrframe.plugins"]
    my_plugin = "my_package.plugin"

and implements the hooks below in that module::

    from ocrframe import hookimpl

    @hookimpl
    def ocrframe_register(slots):
        slots.backbone.register_module(module=MyBackbone)

Plugins are loaded once, before the first component is looked up. A plugin that fails to import or
to register is reported (plugin name, entry point, cause) and rolled back; the others still load.
"""
from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Iterable

import pluggy

from ocrframe.registry import BUILTIN_DISTRIBUTIONS, SLOTS, Origin, Slots, preferred_plugins, registering_as, set_loader

GROUP = "ocrframe.plugins"
hookspec = pluggy.HookspecMarker("ocrframe")
hookimpl = pluggy.HookimplMarker("ocrframe")
logger = logging.getLogger("ocrframe.plugins")


class Hookspecs:
    """Every hook a plugin may implement. This class is the documented extension API."""

    @hookspec
    def ocrframe_register(self, slots: Slots) -> None:
        """Register the plugin's components, one ``register_module`` call per component::

            slots.backbone.register_module(module=VGG)
            slots.decoder.register_module(module=GreedyDecoder, name="greedy")

        Slots: backbone, sequence_encoder, head, decoder, dataset, transform, metric, model; each
        checks its interface when a class is registered (see ``ocrframe/registry.py``). And what
        the Runner builds: hook, optim_wrapper, loop, data_sampler, function (e.g. a collate
        function), model_wrapper.
        """

    @hookspec
    def ocrframe_models(self) -> list:
        """Paths of the plugin's released models' cards (``NAME.md`` beside ``NAME.safetensors``;
        see ``ocrframe/pretrained.py``): ``ocrframe models`` lists them and every command that
        takes a checkpoint takes their names::

            return [Path(__file__).parent / "models" / "crnn-de.md"]
        """


class PluginLoader:
    """Loads entry points into a set of slots, keeping what failed and why."""

    def __init__(self, slots: Slots):
        self.slots = slots
        self.manager = pluggy.PluginManager("ocrframe")
        self.manager.add_hookspecs(Hookspecs)
        self.errors: list[str] = []
        self.loaded: list[Origin] = []

    def load(self, eps: Iterable[EntryPoint]) -> None:
        for ep in sorted(eps, key=load_order):
            dist = getattr(ep, "dist", None)
            origin = Origin(ep.name, dist.name if dist else "?", dist.version if dist else "?")
            where = f"plugin '{ep.name}' (entry point '{ep.name} = {ep.value}' in {origin.distribution})"
            try:
                with registering_as(origin):  # registrations at import time count as the plugin's too
                    module = ep.load()
                self.manager.register(module, name=ep.name)
            except (Exception, SystemExit) as exc:  # a broken plugin (even one calling sys.exit) must not take the others down
                self.report(f"{where} failed to load: {type(exc).__name__}: {exc}")
                continue
            for impl in self.manager.hook.ocrframe_register.get_hookimpls():
                if impl.plugin is not module:
                    continue
                try:
                    with registering_as(origin):
                        impl.function(**{name: self.slots for name in impl.argnames})
                except (Exception, SystemExit) as exc:
                    self.slots.unregister(origin)
                    self.manager.unregister(module)
                    self.report(f"{where} failed to register: {type(exc).__name__}: {exc}")
                    break
            else:
                self.loaded.append(origin)

    def published_models(self) -> list[tuple[Origin, list]]:
        """(plugin, model card paths) from each loaded plugin's ``ocrframe_models`` hook; a hook
        that fails is reported like a plugin that fails to load (``ocrframe/pretrained.py`` reads
        the cards)."""
        origins = {origin.plugin: origin for origin in self.loaded}
        published = []
        for impl in self.manager.hook.ocrframe_models.get_hookimpls():
            if impl.plugin_name not in origins:
                continue
            try:
                published.append((origins[impl.plugin_name], list(impl.function())))
            except (Exception, SystemExit) as exc:
                self.report(f"plugin '{impl.plugin_name}' failed to list its models: {type(exc).__name__}: {exc}")
        return published

    def report(self, message: str) -> None:
        """Record a plugin's failure (shown by ``ocrframe list`` and ``ocrframe models``)."""
        self.errors.append(message)
        logger.error("%s -- its components are not available; the other plugins still load.", message)


def load_order(ep: EntryPoint) -> tuple:
    """The core, then the other built-in plugins, then third-party ones, each by name (not by
    where they sit in site-packages), then those in $OCRFRAME_PREFER_PLUGINS: the first to register
    a name keeps it, but a preferred plugin replaces it (see ``OcrRegistry._register_module``)."""
    dist = getattr(ep, "dist", None)
    distribution = dist.name if dist else "?"
    return (ep.name in preferred_plugins(), ep.name != "core", distribution not in BUILTIN_DISTRIBUTIONS,
            distribution, ep.name)


_LOADER: PluginLoader | None = None


def load_plugins() -> PluginLoader:
    """Load every installed plugin into the process-wide slots, once."""
    global _LOADER
    if _LOADER is None:
        _LOADER = PluginLoader(SLOTS)  # set before loading: lookups during loading must not recurse
        _LOADER.load(entry_points(group=GROUP))
    return _LOADER


def plugin_errors() -> list[str]:
    return list(_LOADER.errors) if _LOADER else []


set_loader(load_plugins, plugin_errors)  # the registries load the plugins before their first lookup
