"""Released models: safetensors weights with a model card, found by name through the plugin hook,
refused when altered, and fine-tuned to another charset without losing the shared classes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

from conftest import READING_ALPHABET, REPO, load_tool, random_words, render_word
from ocrframe.checkpoint import load_checkpoint, store_config, stored_config
from ocrframe.plugins import GROUP, PluginLoader
from ocrframe.pretrained import ModelCard, card_front_matter, find_weights, model_cards, read_weights, write_weights
from ocrframe.registry import Slots

NAME = "reader-test"


def release(checkpoint: Path, folder: Path, dtype=None, name: str = NAME) -> Path:
    """``checkpoint`` released as NAME.safetensors + NAME.md in ``folder``; returns the card."""
    state = load_checkpoint(checkpoint)
    weights = write_weights(state["state_dict"], store_config({}, stored_config(state, checkpoint)),
                            folder / f"{name}.safetensors", dtype)
    card = folder / f"{name}.md"
    card.write_text(card_front_matter(name, weights, "a test reader", {"word accuracy": 0.9}) + "\n# test\n")
    return card


@pytest.fixture
def published(reading_checkpoint, tmp_path, monkeypatch):
    """The reading model released in fp32 and published by a plugin (tests/fake_plugins/ships_model.py)
    through the ocrframe_models hook; the process-wide model list is that plugin's."""
    import fake_plugins.ships_model as ships_model

    import ocrframe.pretrained

    card = release(reading_checkpoint, tmp_path)
    monkeypatch.setattr(ships_model, "CARDS", [card])
    loader = PluginLoader(Slots(detached=True))
    loader.load([EntryPoint(name="ships", value="fake_plugins.ships_model", group=GROUP)])
    assert not loader.errors
    cards = model_cards(loader)
    monkeypatch.setattr(ocrframe.pretrained, "available_models", lambda: cards)
    return cards[NAME]


def readings(reader, words):
    return [(p.text, round(p.score, 5)) for p in reader.read([render_word(w) for w in words])]


def test_a_plugin_publishes_a_model_through_the_hook(published):
    assert published.name == NAME
    assert published.plugin.startswith("plugin 'ships'")
    assert published.metrics == {"word accuracy": 0.9}
    assert published.weights.name == f"{NAME}.safetensors"


def test_by_name_by_path_and_from_the_checkpoint_the_readings_are_identical(published, reading_checkpoint):
    from ocrframe.inference import Reader

    words = random_words(12, seed=7, letters=READING_ALPHABET)
    same_path = dict(precision="fp32", runtime="torch")  # one path for all three: only the weights differ
    by_name = readings(Reader.from_pretrained(NAME, **same_path), words)
    by_path = readings(Reader.from_checkpoint(published.weights, **same_path), words)
    original = readings(Reader.from_checkpoint(reading_checkpoint, **same_path), words)
    assert by_name == by_path == original
    assert sum(text == word for (text, _), word in zip(by_name, words)) >= 10  # it is the trained model


def test_bf16_weights_are_half_the_size_and_read_the_same_words(reading_checkpoint, tmp_path):
    from ocrframe.inference import Reader

    fp32 = ModelCard.read(release(reading_checkpoint, tmp_path / "fp32")).weights
    bf16 = ModelCard.read(release(reading_checkpoint, tmp_path / "bf16", dtype=torch.bfloat16)).weights
    assert bf16.stat().st_size < 0.55 * fp32.stat().st_size
    words = random_words(20, seed=8, letters=READING_ALPHABET)

    def texts(path):
        return [t for t, _ in readings(Reader.from_checkpoint(path, precision="fp32", runtime="torch"), words)]

    assert sum(a == b for a, b in zip(texts(fp32), texts(bf16))) >= 19


def test_an_unknown_name_lists_the_installed_models(published):
    from ocrframe.inference import Reader

    with pytest.raises(ValueError, match=f"no released model is named 'reader-tset'; installed: {NAME}"):
        Reader.from_pretrained("reader-tset")


@pytest.mark.parametrize("typo", ["crnn-eng", "CRNN-EN", "crnn_en"])
def test_a_misspelled_model_name_lists_the_released_models_and_the_closest(typo, tmp_path, monkeypatch):
    from ocrframe.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"no checkpoint file or released model is named '{typo}'; installed: "
                                                r".*crnn-en.* \(`ocrframe models`\); did you mean 'crnn-en'\?"):
        main(["read", typo, "word.png", "--precision", "fp32", "--runtime", "torch", "--device", "cpu"])


def test_a_folder_named_like_a_released_model_does_not_hide_it_and_a_file_says_it_is_used(tmp_path, monkeypatch,
                                                                                          caplog):
    from ocrframe.inference import Reader
    from ocrframe.pretrained import available_models

    monkeypatch.chdir(tmp_path)
    (tmp_path / "crnn-en").mkdir()
    assert find_weights("crnn-en") == available_models()["crnn-en"].weights
    (tmp_path / "crnn-en").rmdir()
    (tmp_path / "crnn-en").write_bytes(b"a checkpoint")
    with caplog.at_level("WARNING", logger="ocrframe.pretrained"):
        assert find_weights("crnn-en") is None  # the file is loaded as a checkpoint
        assert find_weights("crnn-en") is None
    (message,) = [r.getMessage() for r in caplog.records]  # once, however often the name is looked up
    assert f"using the file {(tmp_path / 'crnn-en').resolve()}, not the released model of that name" in message
    reader = Reader.from_pretrained("crnn-en", precision="fp32", runtime="torch")  # by name: never the file
    assert reader.read([render_word("harbour")])[0].text == "harbour"


def test_an_altered_weights_file_is_refused_by_name(published):
    data = bytearray(published.weights.read_bytes())
    data[-3] ^= 0xFF  # one weight's bits: the file still parses, so only the checksum can tell
    published.weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is not the file its model card .* describes .* truncated or was altered"):
        find_weights(NAME)


def test_a_truncated_weights_file_is_refused_with_a_clear_error(published, tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(published.weights.read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_checkpoint(cut)


def test_a_safetensors_file_that_is_not_an_ocrframe_model_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an ocrframe model"):
        read_weights(tmp_path / "other.safetensors")


def test_a_stored_config_naming_an_unregistered_type_is_refused_not_imported(published, tmp_path):
    state = read_weights(published.weights)
    config = json.loads(state["meta"]["cfg"])
    config["model"]["backbone"]["type"] = "os.system"  # mmengine would import and call a dotted path
    evil = write_weights(state["state_dict"], dict(state["meta"], cfg=json.dumps(config)), tmp_path / "evil.safetensors")
    from ocrframe.inference import Reader

    with pytest.raises(ValueError, match="names types that are not registered components: 'os.system'"):
        Reader.from_checkpoint(evil)


def test_a_plugin_card_without_front_matter_is_reported():
    loader = PluginLoader(Slots(detached=True))
    loader.load([EntryPoint(name="badcard", value="fake_plugins.bad_card", group=GROUP)])
    assert model_cards(loader) == {}
    assert len(loader.errors) == 1 and "plugin 'badcard' failed to list its models" in loader.errors[0]
    assert "no YAML front matter" in loader.errors[0]


def test_ocrframe_models_lists_the_shipped_models_offline_without_a_cache(tmp_path):
    """No network is needed and ocrframe writes no cache: HOME points at an empty directory and no
    proxy reaches anything (a request would fail)."""
    env = dict(os.environ, HOME=str(tmp_path), OCRFRAME_CACHE=str(tmp_path / "cache"),
               https_proxy="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9")
    result = subprocess.run([sys.executable, "-m", "ocrframe.cli", "models"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    shipped = sorted(p.stem for p in (REPO / "ocrframe" / "models").glob("*.md"))
    assert shipped, "ocrframe/models holds no released model"
    for name in shipped:
        assert f"\n{name}\n" in f"\n{result.stdout}", result.stdout
    assert "test word accuracy" in result.stdout
    # nothing downloaded or cached by ocrframe (other libraries may keep their own caches under HOME)
    assert not (tmp_path / "cache").exists() and not (tmp_path / ".cache" / "ocrframe").exists()


# -- fine-tuning to another charset -------------------------------------------------------------

def test_fine_tuning_to_a_larger_charset_keeps_every_shared_class_and_logs_the_new_ones(
        published, reading_config, tmp_path, capsys):
    """The runner's own load path (load_from, as tools/train.py --load-from sets it): after
    loading, before any step, every class the two charsets share has its trained row bit for bit."""
    from ocrframe.runner import build_runner, load_config

    symbols = "0123456789abcdefghijklmnopqrstuvwxyzABCDE"  # the paper's 36, then 5 new ones
    cfg = load_config(str(reading_config), schedule="paper", work_dir=str(tmp_path / "work"),
                      cfg_options={"model.charset": dict(symbols=symbols, case="keep", blank="first", unknown="skip"),
                                   "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
                                   "val_dataloader.num_workers": 0, "val_dataloader.persistent_workers": False})
    cfg.load_from = NAME
    runner = build_runner(cfg)
    capsys.readouterr()
    runner.load_or_resume()
    log = capsys.readouterr().out
    trained = read_weights(published.weights)["state_dict"]
    trained_classes = stored_config(read_weights(published.weights), NAME).model.charset
    old_rows = {s: i for i, s in enumerate([None, *trained_classes["symbols"]])}
    head = runner.model.head.classifier
    for new_row, symbol in enumerate([None, *symbols]):
        if symbol in old_rows:
            assert torch.equal(head.weight[new_row], trained["head.classifier.weight"][old_rows[symbol]]), symbol
            assert torch.equal(head.bias[new_row], trained["head.classifier.bias"][old_rows[symbol]]), symbol
    assert head.weight.shape[0] == len(symbols) + 1
    for name, value in runner.model.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(value, trained[name]), name
    message = next(line for line in log.splitlines() if "charset differs" in line)
    assert "kept the weights of 37 shared classes" in message
    assert "5 new classes start from fresh weights: A B C D E" in message
    assert "size mismatch" not in log  # what mmengine loads after the hook is the rearranged weights


def test_the_released_text_model_reads_the_example_photos():
    """crnn-en on docs/examples (held-out fonts over photographs, perspective, blur, JPEG 55):
    two read exactly; OPEN24, digits on a busy photograph, within one character."""
    import editdistance

    from ocrframe.inference import Reader

    examples = REPO / "docs" / "examples"
    reader = Reader.from_pretrained("crnn-en", precision="fp32", runtime="torch")
    texts = [p.text for p in reader.read([examples / "Harbour.jpg", examples / "Station.jpg", examples / "OPEN24.jpg"])]
    assert texts[:2] == ["harbour", "station"]
    assert editdistance.eval(texts[2], "open24") <= 1, texts[2]


def test_the_omr_model_says_which_images_have_no_staff(tmp_path, capsys):
    from ocrframe.cli import main

    render_word("open").save(tmp_path / "word.png")
    assert main(["read", "crnn-omr", str(tmp_path / "word.png"), "--precision", "fp32", "--runtime", "torch",
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'word.png'}: no staff found; read as it is" in err
    assert "read as they are: 1 image(s) with no staff found" in err


def test_the_release_tool_writes_weights_and_a_card_stating_accuracy_and_what_fp16_changes(reading_checkpoint,
                                                                                             tmp_path):
    from ocrframe.pretrained import sha256_of

    result = subprocess.run([sys.executable, str(REPO / "tools" / "release_model.py"), str(reading_checkpoint),
                             "--name", "tool-test", "--summary", "a test reader", "--out", str(tmp_path),
                             "--limit", "40"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr
    card = ModelCard.read(tmp_path / "tool-test.md")
    assert card.sha256 == sha256_of(card.weights)
    from safetensors import safe_open

    with safe_open(str(card.weights), "pt") as stored:
        assert {stored.get_tensor(k).dtype for k in stored.keys() if "num_batches" not in k} == {torch.float16}
    assert read_weights(card.weights)["state_dict"]["head.classifier.weight"].dtype == torch.float32  # read back
    metrics = card.metrics
    assert metrics["test images"] == 40
    assert 0 <= metrics["transcriptions differing from fp32 weights (fp16)"] <= 40
    assert 0 <= metrics["test word accuracy"] <= 1 and 0 <= metrics["test 1 - NED"] <= 1
    # the fp32 figure is measured on the same images: fp16 may change a few transcriptions, not many
    assert abs(metrics["test word accuracy"] - metrics["test word accuracy with fp32 weights"]) <= 0.1
    assert f"test word accuracy {metrics['test word accuracy']:.1%}" in result.stdout
    # a release that fails (here: its card's notes are missing) leaves the released model as it was
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    failed = subprocess.run([sys.executable, str(REPO / "tools" / "release_model.py"), str(reading_checkpoint),
                             "--name", "tool-test", "--summary", "again", "--out", str(tmp_path), "--limit", "4",
                             "--notes", str(tmp_path / "no-such-card.md")], capture_output=True, text=True, cwd=REPO,
                            timeout=600)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr and "no-such-card.md" in failed.stderr
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before  # nothing staged is left behind either


def test_the_release_tool_measures_each_named_test_split_of_a_config():
    from mmengine.config import Config

    release_model = load_tool("release_model")
    splits = release_model.test_sets(Config.fromfile(str(REPO / "configs" / "crnn_omr.py")), limit=3)
    assert list(splits) == ["clean", "synthesized", "camera", "heldout_clean", "heldout_camera"]
    assert all(len(split) == 3 for split in splits.values())
    assert splits["heldout_camera"].dataset.split == "heldout_camera"
    cfg = Config.fromfile(str(REPO / "configs" / "crnn_omr.py"))
    cfg.test_splits = list(cfg.test_splits)[:-1]  # a split without a name would go unmeasured
    with pytest.raises(ValueError, match="one name per part"):
        release_model.test_sets(cfg, limit=3)


def test_the_released_omr_model_reads_held_out_incipits_by_name():
    """crnn-omr, shipped by the OMR plugin through the ocrframe_models hook, reads the first held-out
    incipits (another font, scale and page margins than training) exactly."""
    from ocrframe import Reader
    from ocrframe.pretrained import available_models
    from ocrframe.registry import DATASETS

    assert available_models()["crnn-omr"].plugin.startswith("plugin 'omr'")
    reader = Reader.from_pretrained("crnn-omr", precision="fp32", runtime="torch")
    dataset = DATASETS.build(dict(type="EngravedMusicDataset", charset=reader.model.charset, length=3, seed=5,
                                  style="clean", assets="heldout"))
    samples = [dataset.load(i) for i in range(3)]
    assert [p.text for p in reader.read([s["image"] for s in samples])] == [s["text"] for s in samples]


def test_the_table_two_evaluation_of_a_token_model_names_its_accuracy_as_whole_sequences(tmp_path, capsys):
    """`ocrframe test --lexicon none` on the OMR model: an image is right when its reading equals the
    truth, pitch for pitch, and the header says so instead of the text models' "case-insensitive
    alphanumerics"."""
    from mmengine.config import Config

    from ocrframe.cli import main
    from ocrframe.registry import DATASETS

    charset = Config.fromfile(str(REPO / "configs" / "crnn_omr.py")).charset
    dataset = DATASETS.build(dict(type="EngravedMusicDataset", charset=charset, length=3, seed=5, style="clean",
                                  assets="heldout"))
    lines = []
    for i in range(3):
        sample = dataset.load(i)
        sample["image"].save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png\t{sample['text']}")
    (tmp_path / "gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["test", str(REPO / "configs" / "crnn_omr.py"), "crnn-omr", "--data", str(tmp_path), "--lexicon",
                 "none", "--predictions", str(tmp_path / "p.tsv"), "--work-dir", str(tmp_path / "w")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("sequence accuracy % (every token right") and "alphanumerics" not in printed
    assert "| 100.0 / 1.000 /" in printed  # the same three incipits the Reader reads exactly above
