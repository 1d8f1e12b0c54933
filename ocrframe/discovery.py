"""What is installed: every registered component with the plugin that provides it, and the plugins
that failed to load. ``ocrframe list`` prints this; it loads the plugins first if need be."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from ocrframe.registry import Origin


@dataclass(frozen=True)
class Component:
    """One registered component: its slot (``backbone``, ...), its registered name, the class (or
    function) and who registered it (``origin.plugin``, ``origin.distribution``, ``origin.version``)."""

    slot: str
    name: str
    obj: object
    origin: Origin


def list_components(slot: str | None = None, pattern: str = "*") -> list[Component]:
    """Registered components, by slot then name: all of them, those of one ``slot``, and/or those
    whose name matches the shell-style ``pattern`` (case-insensitive, e.g. ``"*Decoder"``)."""
    from ocrframe.plugins import load_plugins
    from ocrframe.registry import SLOTS

    names = [name for name, _ in SLOTS]
    if slot is not None and slot not in names:
        raise ValueError(f"no slot {slot!r}; the slots: {', '.join(names)}")
    load_plugins()
    return [Component(name_of_slot, name, registry.module_dict[name], registry.origins[name])
            for name_of_slot, registry in SLOTS if slot in (None, name_of_slot)
            for name in sorted(registry.module_dict) if fnmatch.fnmatch(name.lower(), pattern.lower())]


def loaded_plugins() -> list[Origin]:
    """The plugins that loaded, in load order (the core first)."""
    from ocrframe.plugins import load_plugins

    return list(load_plugins().loaded)


def failed_plugins() -> list[str]:
    """One message per plugin that failed to import or to register: its name, entry point,
    distribution and the error. Its components are not available; the other plugins' are."""
    from ocrframe.plugins import load_plugins

    return list(load_plugins().errors)
