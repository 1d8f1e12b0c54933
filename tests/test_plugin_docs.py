"""docs/plugins.md is enough to write a plugin: its generated part matches the code, and one plugin
per slot written from it (tests/doc_plugins/, importing only the names the docs list) registers
without warnings and works where the framework uses it: datasets that end, evaluation without
aspect ratios, sequence encoders told where the padding is, configs inheriting ocrframe's."""
from __future__ import annotations

import ast
import importlib
import logging
import re
import textwrap

import pytest
import torch

from conftest import CONFIG, REPO, TESTS, render_word
from ocrframe.plugin_reference import generated_part, render
from ocrframe.registry import SLOTS, Origin, Slots, registering_as

DOC = REPO / "docs" / "plugins.md"
DOC_PLUGINS = sorted(p.stem for p in (TESTS / "doc_plugins").glob("*.py") if p.stem != "__init__")
WORDS = ["cab", "deaf", "bead", "fa", "acedbe"]


def test_the_generated_part_of_the_docs_matches_the_code():
    assert generated_part(DOC.read_text(encoding="utf-8")) == render(), \
        "docs/plugins.md is out of date: python -m ocrframe.plugin_reference docs/plugins.md"


def documented_names() -> set[tuple[str, str]]:
    """("ocrframe", NAME) for each name in the docs' table of the public API."""
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| name | what it is |"):]
    table = table[:table.index("\n\n")]
    return {("ocrframe", name) for row in table.splitlines()[2:] for name in re.findall(r"`(\w+)`", row.split("|")[1])}


def test_the_docs_list_the_public_api_and_every_slot():
    import ocrframe

    assert {name for _, name in documented_names()} == set(ocrframe.__all__)
    for _, name in documented_names():
        assert getattr(ocrframe, name) is not None
    text = DOC.read_text(encoding="utf-8")
    for slot in Slots.NAMES:
        assert f"#### `{slot}`" in text


def ocrframe_imports(module: str) -> set[tuple[str, str]]:
    tree = ast.parse((TESTS / "doc_plugins" / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ocrframe":
            found |= {(node.module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {(alias.name, "*") for alias in node.names if alias.name.split(".")[0] == "ocrframe"}
    return found


@pytest.mark.parametrize("module", DOC_PLUGINS)
def test_each_doc_plugin_imports_only_names_the_docs_list(module):
    imported = ocrframe_imports(module)
    assert imported, f"doc_plugins/{module}.py imports nothing from ocrframe (not even hookimpl)"
    assert imported <= documented_names(), f"not in docs/plugins.md: {sorted(imported - documented_names())}"


@pytest.fixture
def doc_plugins(caplog):
    """Every tests/doc_plugins module registered in the process-wide slots, each as a plugin of
    its own (as its hook would be called), removed afterwards; yields the warnings logged."""
    from ocrframe.plugins import load_plugins

    load_plugins()
    origins = [Origin(f"doc_{name}", "doc-plugins", "0") for name in DOC_PLUGINS]
    caplog.set_level(logging.WARNING, logger="ocrframe.registry")
    try:
        for name, origin in zip(DOC_PLUGINS, origins):
            with registering_as(origin):
                importlib.import_module(f"doc_plugins.{name}").ocrframe_register(SLOTS)
        yield [r.getMessage() for r in caplog.records if r.name == "ocrframe.registry"]
    finally:
        for origin in origins:
            SLOTS.unregister(origin)


def test_one_doc_plugin_per_slot_registers_with_a_warning_only_for_what_it_leaves_out(doc_plugins):
    from ocrframe import list_components

    slots = {c.slot for c in list_components() if c.origin.plugin.startswith("doc_")}
    assert slots == set(Slots.NAMES)
    (warning,) = doc_plugins
    assert "TsvDatasetWithoutRatios" in warning and "`aspect_ratio`" in warning and "not grouped by width" in warning


def test_an_encoder_without_lengths_is_registered_with_a_warning_saying_what_goes_wrong(caplog):
    class ForwardOnly(torch.nn.Module):
        def __init__(self, input_size: int):
            super().__init__()
            self.output_size = input_size

        def forward(self, sequence):
            return sequence

    slots = Slots(detached=True)
    with caplog.at_level(logging.WARNING, logger="ocrframe.registry"), registering_as(Origin("mine", "my-dist", "1")):
        slots.sequence_encoder.register_module(module=ForwardOnly)
    (record,) = [r for r in caplog.records if r.name == "ocrframe.registry"]
    assert "ForwardOnly" in record.getMessage() and "`forward(lengths)`" in record.getMessage()
    assert "reads the padding" in record.getMessage() and "plugin 'mine'" in record.getMessage()


def write_tsv_folder(root, words, dark: tuple[int, ...] = ()):
    """PNG word images and a labels.tsv; the images at the ``dark`` positions are white on black."""
    from PIL import ImageOps

    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, word in enumerate(words):
        image = render_word(word)
        (ImageOps.invert(image) if i in dark else image).save(root / f"w{i}.png")
        lines.append(f"w{i}.png\t{word}")
    (root / "labels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_the_doc_dataset_ends_its_iteration_and_its_transform_runs(doc_plugins, tmp_path):
    from ocrframe.registry import DATASETS

    folder = write_tsv_folder(tmp_path / "tsv", WORDS, dark=(1,))
    dataset = DATASETS.build(dict(type="TsvDataset", root=str(folder), charset=dict(symbols="abcdef"),
                                  pipeline=[dict(type="DarkToLight"), dict(type="Grayscale"),
                                            dict(type="Resize", height=32, width=None, min_width=16),
                                            dict(type="ToTensor")]))
    samples = list(dataset)  # ends: an index past the end is an IndexError, not the first sample again
    assert [s["text"] for s in samples] == WORDS
    assert dataset[-1]["key"] == samples[-1]["key"]
    with pytest.raises(IndexError, match="out of range"):
        dataset[len(WORDS)]
    assert samples[1]["image"].mean() > 0  # white on black turned dark on light (ToTensor maps white to 1)
    assert len({s["width"] for s in samples}) > 2


def test_a_recognizer_of_doc_components_trains_and_predicts_and_the_doc_model_and_metric_work(doc_plugins, tmp_path):
    from ocrframe.data.transforms import pad_collate
    from ocrframe.registry import DATASETS, METRICS, MODELS
    from ocrframe.runner import load_config

    cfg = load_config(str(CONFIG))
    dataset = DATASETS.build(dict(type="TsvDataset", root=str(write_tsv_folder(tmp_path / "tsv", WORDS)),
                                  charset=cfg.charset, pipeline=cfg.test_pipeline))
    batch = pad_collate(list(dataset))
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, backbone=dict(type="FourLayerCNN"), sequence_encoder=dict(type="BiGRU"),
                              head=dict(type="TwoLayerCTCHead"), decoder=dict(type="FrameCountingDecoder")))
    loss = model(batch["inputs"], batch["data_samples"], mode="loss")["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.backbone.layers[0].weight.grad.abs().sum() > 0
    outputs = model.eval()(batch["inputs"], batch["data_samples"], mode="predict")
    assert [o["gt"] for o in outputs] == WORDS
    assert [o["frames"] for o in outputs] == [w // 4 for w in batch["data_samples"]["widths"].tolist()]
    metric = METRICS.build(dict(type="PositionalCharAccuracy"))
    metric.process(None, [dict(o, pred=o["gt"][:2]) for o in outputs])
    expected = sum(min(2, len(w)) for w in WORDS) / sum(len(w) for w in WORDS)
    assert metric.compute_metrics(metric.results) == pytest.approx(dict(char_acc=expected))
    whole = MODELS.build(dict(type="FrameClassifier", charset=cfg.charset, backbone=dict(type="FourLayerCNN")))
    assert torch.isfinite(whole(batch["inputs"], batch["data_samples"], mode="loss")["loss"])
    assert [o["key"] for o in whole(batch["inputs"], batch["data_samples"], mode="predict")] == batch["data_samples"]["keys"]


def padded_batch(lengths: list[int], size: int, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Random frame sequences of the given lengths, and the batch they make padded with zeros."""
    generator = torch.Generator().manual_seed(seed)
    alone = [torch.randn(n, size, generator=generator) for n in lengths]
    batch = torch.zeros(len(lengths), max(lengths), size)
    for i, sequence in enumerate(alone):
        batch[i, :len(sequence)] = sequence
    return batch, alone


@pytest.mark.parametrize("encoder", [dict(type="BiLSTM", hidden_size=8, num_layers=2), dict(type="BiGRU")])
def test_a_bidirectional_encoder_reads_a_padded_batch_as_it_reads_each_sequence_alone(doc_plugins, encoder):
    from ocrframe.registry import SEQUENCE_ENCODERS

    torch.manual_seed(0)
    module = SEQUENCE_ENCODERS.build(encoder, default_args=dict(input_size=6)).eval()
    lengths = [7, 3, 5, 7]
    batch, alone = padded_batch(lengths, 6)
    with torch.no_grad():
        together = module(batch, lengths=torch.tensor(lengths))
        unaware = module(batch)
        for i, sequence in enumerate(alone):
            expected = module(sequence[None])[0]
            assert torch.allclose(together[i, :lengths[i]], expected, atol=1e-5)
            if lengths[i] < max(lengths):  # what the lengths are for: read backwards, padding changes every frame
                assert not torch.allclose(unaware[i, :lengths[i]], expected, atol=1e-3)


def test_the_recognizer_tells_the_encoder_each_images_frame_count(doc_plugins):
    from mmengine.config import Config

    from ocrframe.data.transforms import pad_collate
    from ocrframe.registry import MODELS

    cfg = Config.fromfile(str(CONFIG))
    model = MODELS.build(dict(cfg.model, backbone=dict(type="FourLayerCNN"),
                              sequence_encoder=dict(type="BiLSTM", hidden_size=8))).eval()
    seen = []
    model.sequence_encoder.register_forward_hook(lambda m, args, kwargs, out: seen.append(kwargs.get("lengths")),
                                                 with_kwargs=True)
    samples = [dict(image=torch.zeros(1, 32, width), width=width, text="a", key=str(width)) for width in (100, 160)]
    batch = pad_collate(samples)
    with torch.no_grad():
        model(batch["inputs"], batch["data_samples"], mode="predict")
        model(batch["inputs"])  # a bare tensor: no widths, no lengths
    assert seen[0].tolist() == [100 // 4, 160 // 4] and seen[1] is None


def test_evaluation_of_a_folder_dataset_without_aspect_ratios_falls_back_and_says_so_once(doc_plugins, tmp_path,
                                                                                        caplog):
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from ocrframe.data import sampler
    from ocrframe.runner import load_config, use_data

    sampler._TOLD.discard("TsvDatasetWithoutRatios")
    folder = write_tsv_folder(tmp_path / "tsv", WORDS)
    cfg = load_config(str(CONFIG), cfg_options={"folder_dataset.type": "TsvDatasetWithoutRatios"})
    use_data(cfg.val_dataloader, [str(folder)], cfg)  # what --val-data and `ocrframe test --data` do
    init_default_scope(cfg.default_scope)  # as the Runner does
    with caplog.at_level(logging.WARNING, logger="ocrframe.data"):
        for _ in range(2):  # as validation does, at each interval
            loader = Runner.build_dataloader(dict(cfg.val_dataloader, batch_size=2, num_workers=0,
                                                  persistent_workers=False))
            assert [k for batch in loader for k in batch["data_samples"]["keys"]] == [f"w{i}.png" for i in range(5)]
    told = [r for r in caplog.records if "has no aspect_ratio" in r.getMessage()]
    assert len(told) == 1 and "TsvDatasetWithoutRatios" in told[0].getMessage()


def test_a_plugin_config_inherits_the_paper_config_by_its_stable_name(tmp_path):
    from ocrframe.runner import load_config

    (tmp_path / "mine.py").write_text(textwrap.dedent("""
        _base_ = ["ocrframe::crnn_vgg_bilstm_ctc.py"]
        model = dict(backbone=dict(_delete_=True, type="SmallResNet"))
    """))
    cfg = load_config(str(tmp_path / "mine.py"))
    assert cfg.model.backbone == dict(type="SmallResNet") and cfg.model.sequence_encoder.type == "BiLSTM"
    assert cfg.default_hooks.checkpoint.type == "AtomicCheckpointHook" and cfg.charset.unknown == "skip"
    assert cfg.schedule in ("cpu", "cpu-fp32") or torch.cuda.is_available()  # the base's schedules came along
    assert "_scope_" not in cfg.model  # the components stay as the base wrote them
    (tmp_path / "nested.py").write_text('_base_ = ["ocrframe::ablations/encoder_identity.py"]\n')
    assert load_config(str(tmp_path / "nested.py")).model.sequence_encoder.type == "Identity"
    (tmp_path / "typo.py").write_text('_base_ = ["ocrframe::crnn_vgg_bilstm.py"]\n')
    with pytest.raises(FileNotFoundError, match=r"'ocrframe::crnn_vgg_bilstm.py' names no ocrframe config; the "
                                                r"names: .*ocrframe::crnn_vgg_bilstm_ctc.py"):
        load_config(str(tmp_path / "typo.py"))


def test_list_components_filters_by_slot_and_pattern_and_names_the_plugin():
    from ocrframe import list_components

    decoders = list_components(slot="decoder")
    assert decoders and {c.slot for c in decoders} == {"decoder"}
    (greedy,) = list_components(slot="decoder", pattern="greedy*")
    assert greedy.name == "GreedyDecoder" and greedy.origin.plugin == "ctc"
    assert greedy.origin.distribution == "ocrframe-ctc" and greedy.obj.__name__ == "GreedyDecoder"
    assert len(list_components()) > len(decoders)
    with pytest.raises(ValueError, match="no slot 'decoders'; the slots: backbone, sequence_encoder"):
        list_components(slot="decoders")
