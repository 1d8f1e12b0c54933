"""Registries: one per slot, each a child of mmengine's registries in the scope ``ocrframe``.

A slot has a small :class:`Interface`. Registering a class that lacks a piece of it fails at once,
with a message naming the class and the missing piece; building an instance checks the attributes
that only exist after construction (such as a backbone's ``out_channels``). Asking for a name
nobody registered lists the nearest registered names.

Besides the eight model and data slots there are the pieces the Runner builds: hooks, optimizer
wrappers, loops, batch samplers, functions (collate) and model wrappers. Every one of them, the
core's included, is registered through the ``ocrframe_register`` plugin hook (``ocrframe/plugins.py``),
so ``ocrframe list`` shows each with its plugin.

mmengine imports ``ocrframe.registry`` when it switches to the ``ocrframe`` scope, so the Runner
finds the recognizer, datasets, metrics, hooks and optimizer wrappers here. Plugins are loaded
before the first lookup, by the loader ``ocrframe/plugins.py`` hands over (:func:`set_loader`).
"""
from __future__ import annotations

import contextlib
import contextvars
import difflib
import inspect
import logging
import os
from dataclasses import dataclass, field

import torch.nn as nn
from mmengine import registry as mm
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import Registry

logger = logging.getLogger("ocrframe.registry")


class ComponentError(KeyError):
    """A component could not be registered or found. ``str()`` gives the whole message."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclass(frozen=True)
class Origin:
    """Who registered a component: the plugin (entry point) name and its distribution."""

    plugin: str
    distribution: str = "?"
    version: str = "?"

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' ({self.distribution} {self.version})"

    @property
    def builtin(self) -> bool:
        return self.distribution in BUILTIN_DISTRIBUTIONS


# The distributions built from this repository; their components win clashes with other plugins'.
BUILTIN_DISTRIBUTIONS = frozenset({"ocrframe", "ocrframe-ctc", "ocrframe-lstm", "ocrframe-omr", "ocrframe-resnet",
                                   "ocrframe-vgg"})
PREFER_VARIABLE = "OCRFRAME_PREFER_PLUGINS"
DIRECT = Origin("<direct registration>", "-", "-")
_CURRENT_ORIGIN: contextvars.ContextVar[Origin] = contextvars.ContextVar("ocrframe_origin", default=DIRECT)


def _no_plugins() -> list[str]:
    return []


# What loads the plugins before the first lookup, and the errors it met: set by ocrframe.plugins,
# which the package imports before any of its modules, so that this module need not import it.
_load_plugins = _no_plugins
_plugin_errors = _no_plugins


def set_loader(load, errors) -> None:
    """Have ``load()`` run before every lookup (it loads the plugins, once) and ``errors()`` name
    the plugins that failed, in messages about unknown names."""
    global _load_plugins, _plugin_errors
    _load_plugins, _plugin_errors = load, errors


def preferred_plugins() -> list[str]:
    """Plugins (entry point names) the user prefers, in $OCRFRAME_PREFER_PLUGINS (comma-separated):
    they load last, and their components replace any others of the same name (logged)."""
    return [name.strip() for name in os.environ.get(PREFER_VARIABLE, "").split(",") if name.strip()]


@contextlib.contextmanager
def registering_as(origin: Origin):
    """Attribute every registration inside the block to ``origin`` (used by the plugin loader)."""
    token = _CURRENT_ORIGIN.set(origin)
    try:
        yield
    finally:
        _CURRENT_ORIGIN.reset(token)


@dataclass(frozen=True)
class Interface:
    """What a slot needs from a component.

    ``init_params``: constructor parameters the framework passes (the dimensions that flow from the
    previous stage). ``methods``: callables the framework calls. ``attributes``: values an instance
    must expose once built. ``options``: class attributes the framework reads where a class has
    them (not checked). Each maps a name to a one-line description used in error messages.
    ``optional``: pieces the framework uses when a class has them, each mapped to what does not
    work without it; a key is a method (``aspect_ratio``) or a method's parameter
    (``forward(lengths)``). Registering a class without one logs a warning saying so.
    docs/plugins.md renders these fields (``ocrframe.plugin_reference``).
    """

    summary: str
    base: type | None = None
    init_params: dict[str, str] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    optional: dict[str, str] = field(default_factory=dict)

    def missing_optional(self, cls) -> dict[str, str]:
        """The ``optional`` pieces ``cls`` lacks, each with what will not work without it."""
        missing = {}
        for key, consequence in self.optional.items():
            method, _, parameter = key.partition("(")
            found = getattr(cls, method, None)
            if not callable(found):
                missing[key] = consequence
            elif parameter:
                try:
                    parameters = inspect.signature(found).parameters
                except (TypeError, ValueError):
                    continue
                if parameter.rstrip(")") not in parameters:
                    missing[key] = consequence
        return missing

    def problems_with_class(self, cls) -> list[str]:
        if not inspect.isclass(cls):
            return [f"{cls!r} is not a class"]
        problems = []
        if self.base is not None and not issubclass(cls, self.base):
            problems.append(f"it must subclass {self.base.__module__}.{self.base.__qualname__}")
        for name, why in self.methods.items():
            if not callable(getattr(cls, name, None)):
                problems.append(f"it has no method `{name}` ({why})")
        params = inspect.signature(cls.__init__).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for name, why in self.init_params.items():
            if name not in params and not takes_kwargs:
                problems.append(f"its __init__ does not accept `{name}` ({why})")
        return problems

    def problems_with_instance(self, obj) -> list[str]:
        return [
            f"the built instance has no attribute `{name}` ({why})"
            for name, why in self.attributes.items()
            if not hasattr(obj, name)
        ]


class OcrRegistry(Registry):
    """An mmengine Registry that checks an interface, remembers who registered what, loads the
    plugins before the first lookup and explains unknown names."""

    def __init__(self, name: str, interface: Interface | None = None, parent: Registry | None = None):
        super().__init__(name, parent=parent, scope="ocrframe")
        self.interface = interface
        self.origins: dict[str, Origin] = {}

    # -- registration -------------------------------------------------------------------------
    def _register_module(self, module, module_name=None, force=False):
        names = [module_name or module.__name__] if not isinstance(module_name, list) else module_name
        origin = _CURRENT_ORIGIN.get()
        if self.interface is not None:
            problems = self.interface.problems_with_class(module)
            if problems:
                raise ComponentError(
                    f"cannot register {getattr(module, '__qualname__', module)!r} as a {self.name} "
                    f"(from {origin}): " + "; ".join(problems)
                    + f". A {self.name} is: {self.interface.summary}"
                )
        if self.interface is not None and inspect.isclass(module):
            # Built-in components lacking an optional piece are known and tested: only at debug level.
            level = logging.DEBUG if origin.builtin else logging.WARNING
            for key, consequence in self.interface.missing_optional(module).items():
                logger.log(level, "%s %s (from %s) has no `%s`: %s", self.name, module.__qualname__, origin, key,
                           consequence)
        replaced = []
        for name in names:
            if name not in self._module_dict:
                continue
            held = self.origins.get(name, _CURRENT_ORIGIN.get())
            clash = (f"{self.name} '{name}' is registered twice: by {held} ({self._module_dict[name].__module__}) "
                     f"and by {origin} ({module.__module__})")
            if origin.plugin in preferred_plugins():
                force = True  # the user's choice: see preferred_plugins
            elif not force:
                raise ComponentError(f"{clash}. Rename one of them, or uninstall one of the two plugins; to use the "
                                     f"second, set {PREFER_VARIABLE}={origin.plugin}.")
            elif held.builtin and not origin.builtin and origin.plugin != DIRECT.plugin:
                raise ComponentError(f"{clash}: a plugin may not replace a built-in component (force=True); the "
                                     f"built-in stays. To use the plugin's, set {PREFER_VARIABLE}={origin.plugin}.")
            replaced.append((name, held))
        super()._register_module(module, names, force)
        for name in names:
            self.origins[name] = origin
        for name, held in replaced:  # never silently
            logger.warning("%s '%s' of %s replaced by the one of %s (%s)", self.name, name, held, origin,
                           module.__module__)

    def unregister(self, origin: Origin) -> None:
        """Remove everything ``origin`` registered (a plugin whose registration failed midway)."""
        for name in [n for n, o in self.origins.items() if o == origin]:
            del self._module_dict[name], self.origins[name]

    # -- lookup -------------------------------------------------------------------------------
    def import_from_location(self) -> None:
        _load_plugins()
        super().import_from_location()

    def get(self, key):
        found = super().get(key)
        if found is None and isinstance(key, str):
            raise ComponentError(self.unknown_message(key))
        return found

    def unknown_message(self, key: str) -> str:
        known = sorted(self.all_names())
        close = difflib.get_close_matches(key.split(".")[-1], known, n=3, cutoff=0.5)
        message = f"'{key}' is not a registered {self.name}."
        if close:
            message += " Did you mean: " + ", ".join(repr(c) for c in close) + "?"
        message += f" Registered {self.name}s: {', '.join(known) or '(none)'}."
        message += " `ocrframe list` shows every component and the plugin that provides it"
        errors = _plugin_errors()
        if errors:
            message += "; these plugins failed to load: " + " | ".join(errors)
        return message + "."

    def all_names(self) -> set[str]:
        """Names visible from this registry: its own and its mmengine parents'."""
        names, registry = set(), self
        while registry is not None:
            names |= set(registry._module_dict)
            registry = registry.parent
        return names

    def build(self, cfg, *args, **kwargs):
        obj = super().build(cfg, *args, **kwargs)
        if self.interface is not None:
            problems = self.interface.problems_with_instance(obj)
            if problems:
                raise ComponentError(f"{type(obj).__qualname__} built as a {self.name}: " + "; ".join(problems))
        return obj


class UnscopedRegistry(OcrRegistry):
    """For components the Runner looks up in mmengine's own registry rather than in the config's
    scope (model wrappers): each registration is kept here (its plugin, ``ocrframe list``) and
    made in mmengine's registry too."""

    def _register_module(self, module, module_name=None, force=False):
        names = [module_name or module.__name__] if not isinstance(module_name, list) else module_name
        root = self.parent
        for name in names if root is not None else ():
            held = root._module_dict.get(name)
            if held is not None and held is not module and name not in self._module_dict:
                raise ComponentError(f"{self.name} '{name}' is mmengine's own ({held.__module__}); rename it")
        super()._register_module(module, module_name, force)
        if root is not None:
            root._register_module(module, names, force=True)

    def unregister(self, origin: Origin) -> None:
        if self.parent is not None:
            for name in [n for n, o in self.origins.items() if o == origin]:
                self.parent._module_dict.pop(name, None)
        super().unregister(origin)


def _slot_interfaces():
    backbone = Interface(
        "an nn.Module mapping images (N, in_channels, H, W) to features (N, out_channels, 1, T); the batch's "
        "images are right-padded with zeros to the widest",
        base=nn.Module,
        init_params={"in_channels": "image channels (1 for the shipped grayscale pipelines), passed by the recognizer"},
        methods={
            "forward": "forward(images) -> features (N, out_channels, 1, T): height 1, one column per frame",
            "num_frames": "num_frames(width) -> T, the frames an image of that width gives before padding (VGG: "
                          "W // 4 + 1); integer arithmetic, so it also takes a tensor of widths",
        },
        attributes={"out_channels": "feature size per frame, passed on to the sequence encoder"},
        optional={"forward(widths)": "the padding of a batch reaches the frames near each image's end (through the "
                                     "convolutions' receptive fields), so an image can read differently in a batch "
                                     "than alone; forward(images, widths=None) gets each image's width before "
                                     "padding, (N,), in evaluation and reading (ocrframe.masked_forward)"},
    )
    sequence_encoder = Interface(
        "an nn.Module mapping frames (N, T, input_size) to (N, T, output_size); frames at or beyond an image's "
        "frame length are padding",
        base=nn.Module,
        init_params={"input_size": "the backbone's out_channels, passed by the recognizer"},
        methods={"forward": "forward(sequence, lengths=None) -> (N, T, output_size); lengths: (N,) int64 frame "
                            "counts from every dataloader batch, None for a bare tensor (model(images), ONNX export)"},
        attributes={"output_size": "feature size per frame, passed on to the head"},
        optional={"forward(lengths)": "the encoder is not told which frames are padding, so in padded evaluation "
                                      "batches a bidirectional or attention encoder reads the padding and an image "
                                      "can read differently than it does alone"},
    )
    head = Interface(
        "an nn.Module turning encoded frames into per-frame log-probabilities and a training loss",
        base=nn.Module,
        init_params={
            "in_features": "the encoder's output_size, passed by the recognizer",
            "num_classes": "charset size including the blank, passed by the recognizer",
            "blank": "index of the blank class, passed by the recognizer",
        },
        methods={
            "forward": "forward(sequence) -> log-probabilities (N, T, num_classes), log_softmax over the last axis",
            "loss": "loss(log_probs, frame_lengths, targets, target_lengths) -> per-sample loss (N,); targets: the "
                    "labels' class indices concatenated (sum of target_lengths,); frame_lengths, target_lengths: (N,)",
        },
    )
    decoder = Interface(
        "turns log-probabilities into text (not an nn.Module: it has no weights)",
        init_params={"charset": "the model's Charset, passed by the recognizer"},
        methods={"decode": "decode(log_probs (N, T, num_classes), frame_lengths (N,)[, lexicons=None]) -> "
                           "list[Prediction], one per image; a decoder that takes `lexicons` gets one word list per "
                           "image when the dataset has them"},
        options={"for_lexicons": "True on the decoder to use when a lexicon is given without a decoder (built with "
                                 "`lexicon`, and with `delta` and `mode` where its constructor takes them)",
                 "best_path_only": "True when the text depends on the per-frame argmax alone: the Reader's fast paths "
                                   "then re-read in fp32 only images whose best path could change"},
    )
    dataset = Interface(
        "a map-style dataset of sample dicts: image, text (str), key (str), after the pipeline image is a (C, 32, W) "
        "tensor and width its width (ToTensor adds it)",
        methods={"__len__": "__len__() -> number of samples",
                 "__getitem__": "__getitem__(index) -> sample dict; IndexError beyond the end, so `for s in dataset` "
                                "ends"},
        optional={"aspect_ratio": "evaluation batches (--val-data, `ocrframe test --data`) are not grouped by width: "
                                  "more padding, slower, and the log says so once; its form: aspect_ratio(index) -> "
                                  "width / height, read without decoding the image"},
    )
    transform = Interface(
        "a callable taking a sample dict and returning it transformed; image is a PIL image until ToTensor; "
        "a step that crops the image records the box in sample['extras']['crop'] = [x0, y0, x1, y1] (pixels of "
        "the image as read), so that the Reader's character positions are those of that image; what a step "
        "finds goes into sample['extras'] (shown by `ocrframe read --json`), None meaning it found nothing "
        "(`ocrframe read` counts those images)",
        methods={"__call__": "__call__(sample) -> sample"},
    )
    metric = Interface(
        "an mmengine BaseMetric; process() receives the model's predict-mode outputs "
        "(dicts of pred, score, gt, key and the decoder's extras)",
        base=BaseMetric,
        methods={"process": "process(data_batch, data_samples) -> None; data_samples: the predict-mode dicts",
                 "compute_metrics": "compute_metrics(results) -> dict of metric name -> number"},
    )
    model = Interface(
        "an mmengine BaseModel (the whole network; Recognizer is the one the other slots plug into)",
        base=BaseModel,
        methods={"forward": "forward(inputs, data_samples=None, mode='tensor') -> log-probabilities (tensor), "
                            "dict of losses (loss) or list of dicts (predict)"},
    )
    return dict(
        backbone=backbone, sequence_encoder=sequence_encoder, head=head, decoder=decoder,
        dataset=dataset, transform=transform, metric=metric, model=model,
    )


class Slots:
    """The set of component registries a plugin registers into (the ``slots`` hook argument).

    ``Slots()`` makes the process-wide set, attached to mmengine's registry tree; tests make
    detached sets with ``Slots(detached=True)``.
    """

    NAMES = ("backbone", "sequence_encoder", "head", "decoder", "dataset", "transform", "metric", "model")
    # What the Runner builds from the config besides the model and the data; no interface is
    # checked beyond mmengine's own.
    RUNNER_NAMES = ("hook", "optim_wrapper", "loop", "data_sampler", "function", "model_wrapper")
    # Slots the mmengine Runner builds itself must hang under mmengine's registries of that kind.
    MMENGINE_PARENTS = dict(dataset=mm.DATASETS, transform=mm.TRANSFORMS, metric=mm.METRICS, model=mm.MODELS,
                            hook=mm.HOOKS, optim_wrapper=mm.OPTIM_WRAPPERS, loop=mm.LOOPS,
                            data_sampler=mm.DATA_SAMPLERS, function=mm.FUNCTIONS, model_wrapper=mm.MODEL_WRAPPERS)

    def __init__(self, detached: bool = False):
        interfaces = _slot_interfaces()
        for name in self.NAMES + self.RUNNER_NAMES:
            parent = None if detached else self.MMENGINE_PARENTS.get(name)
            kind = UnscopedRegistry if name == "model_wrapper" else OcrRegistry
            setattr(self, name, kind(name.replace("_", " "), interfaces.get(name), parent=parent))

    def __iter__(self):
        return ((name, getattr(self, name)) for name in self.NAMES + self.RUNNER_NAMES)

    def unregister(self, origin: Origin) -> None:
        for _, registry in self:
            registry.unregister(origin)


SLOTS = Slots()
BACKBONES, SEQUENCE_ENCODERS, HEADS, DECODERS = SLOTS.backbone, SLOTS.sequence_encoder, SLOTS.head, SLOTS.decoder
DATASETS, TRANSFORMS, METRICS, MODELS = SLOTS.dataset, SLOTS.transform, SLOTS.metric, SLOTS.model
HOOKS = SLOTS.hook  # the runner's other slots are reached as SLOTS.<name> (SLOTS.loop, ...)

# The Runner builds everything (loops, hooks, schedulers, ...) in the config's default scope, so
# every mmengine registry gets an ``ocrframe`` child; lookups fall through to mmengine's own.
_MIRRORS = {
    name: OcrRegistry(root.name, parent=root)
    for name, root in vars(mm).items()
    if isinstance(root, Registry) and root.parent is None and "ocrframe" not in root.children
}


def _registries() -> list[Registry]:
    """Every registry: the slots and mmengine's tree (its roots and all their scoped children)."""
    found, todo = [], [r for r in vars(mm).values() if isinstance(r, Registry) and r.parent is None]
    todo += [registry for _, registry in SLOTS]
    while todo:
        registry = todo.pop()
        found.append(registry)
        todo += list(registry._children.values())
    return found


def unregistered_types(cfg) -> list[str]:
    """The ``type`` values in a config (nested dicts and lists) that name no registered component,
    as a name or ``scope.name``. Building such a type would make mmengine import it by its dotted
    path and call it, which a config that arrived as data must not do."""
    _load_plugins()
    names: set[str] = set()
    for registry in _registries():
        names |= set(registry._module_dict)
        names |= {f"{registry.scope}.{name}" for name in registry._module_dict}
    unknown, todo = [], [cfg]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if "type" in node and not (isinstance(node["type"], str) and node["type"] in names):
                unknown.append(str(node["type"]))
            todo += list(node.values())
        elif isinstance(node, (list, tuple)):
            todo += list(node)
    return sorted(set(unknown))
