"""Synthetic word images (ocrframe/data/synth_text.py) and their dataset (ocrframe/data/synthetic.py).

The real assets of this machine are used (fonts, /usr/share/dict/words, /usr/share/backgrounds):
the set-up installs them, so a missing asset fails here with the module's own message (nothing is
skipped). Assets are discovered inside the tests, not in fixtures, so that message shows up as
the test's failure.
"""
from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFont

from conftest import REPO, load_tool, run_tool
from ocrframe.data import synth_text
from ocrframe.data.assets import held_out
from ocrframe.data.synth_text import (
    _ALWAYS_TRAIN, HELDOUT_DESIGNS, SynthAssets, WordRenderer, design_group, discover_assets,
)
from ocrframe.charset import Charset
from ocrframe.data.synthetic import SynthWordDataset
from ocrframe.registry import DATASETS

ALNUM = string.digits + string.ascii_lowercase + string.ascii_uppercase
LOWER36 = "0123456789abcdefghijklmnopqrstuvwxyz"
CHARSET = dict(symbols=LOWER36, case="lower")
PIPELINE = [dict(type="Grayscale"), dict(type="Resize", height=32, width=100), dict(type="ToTensor")]
SEEDS = range(40)


@functools.cache
def assets(split: str) -> SynthAssets:
    return discover_assets(split)


@functools.cache
def renderer(split: str = "train", alphabet: str = ALNUM, max_length: int = 16, height: int = 32) -> WordRenderer:
    return WordRenderer(assets(split), alphabet, max_length, height)


def render(seed, split: str = "train", **kwargs) -> tuple[Image.Image, str]:
    return renderer(split, **kwargs).render(np.random.default_rng(seed))


def fingerprint(image: Image.Image) -> str:
    return f"{image.mode} {image.size} {hashlib.sha256(image.tobytes()).hexdigest()}"


def family(path: Path) -> str:
    return ImageFont.truetype(str(path), 16).getname()[0]


def groups_of(found: SynthAssets) -> set[str]:
    return {design_group(family(p)) for p in found.fonts}


# ----------------------------------------------------------------------------------------------
# Determinism
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["train", "heldout"])
def test_same_seed_gives_identical_pixels_and_label(split):
    # A second renderer over freshly discovered assets, so no state of the first one carries over.
    fresh = WordRenderer(discover_assets(split))
    for seed in range(12):
        image_a, label_a = render(seed, split)
        image_b, label_b = render(seed, split)  # same renderer again (in-memory caches now warm)
        image_c, label_c = fresh.render(np.random.default_rng(seed))
        assert label_a == label_b == label_c
        assert image_a.size == image_b.size == image_c.size
        assert np.array_equal(np.asarray(image_a), np.asarray(image_b))
        assert np.array_equal(np.asarray(image_a), np.asarray(image_c))


def test_same_seed_is_identical_in_a_fresh_process_with_a_cold_cache(tmp_path):
    """Background downscales are cached on disk: the first (cold) and later renders must agree."""
    train = assets("train")
    assert train.backgrounds, "no background photographs: natural backgrounds are not exercised"
    spec = tmp_path / "assets.json"
    spec.write_text(json.dumps(dict(fonts=list(map(str, train.fonts)),
                                    backgrounds=list(map(str, train.backgrounds)))))
    script = f"""
import hashlib, json, sys
from pathlib import Path
import numpy as np
from ocrframe.data.synth_text import SynthAssets, WordRenderer, read_words
spec = json.loads(Path({str(spec)!r}).read_text())
assets = SynthAssets(tuple(map(Path, spec["fonts"])), tuple(map(Path, spec["backgrounds"])),
                     read_words(Path({str(_words_path())!r})))
r = WordRenderer(assets)
for seed in {list(range(16))!r}:
    image, label = r.render(np.random.default_rng(seed))
    print(label, image.mode, image.size[0], image.size[1], hashlib.sha256(image.tobytes()).hexdigest())
"""
    env = {k: v for k, v in os.environ.items() if k != "OCRFRAME_CACHE"} | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    theirs = out.stdout.split("\n")[:-1]
    ours = []
    for seed in range(16):
        image, label = render(seed)
        ours.append(f"{label} {image.mode} {image.size[0]} {image.size[1]} {hashlib.sha256(image.tobytes()).hexdigest()}")
    assert theirs == ours
    assert any((tmp_path / "cache").rglob("*.jpg")), "no natural background was rendered by these seeds"


def _words_path() -> Path:
    return Path(os.environ.get("OCRFRAME_WORDS") or "/usr/share/dict/words")


def test_different_seeds_give_different_images():
    images = [render(seed)[0] for seed in SEEDS]
    prints = [fingerprint(image) for image in images]
    assert len(set(prints)) == len(prints)
    labels = {render(seed)[1] for seed in SEEDS}
    assert len(labels) > len(SEEDS) // 2


def test_generator_state_is_the_only_input():
    """A generator advanced by one draw is a different seed: the output must change with it."""
    rng = np.random.default_rng(7)
    rng.random()
    image, _ = renderer().render(rng)
    assert fingerprint(image) != fingerprint(render(7)[0])


# ----------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------

ALPHABETS = st.one_of(
    st.sampled_from([ALNUM, LOWER36, string.digits, string.ascii_uppercase, string.ascii_lowercase]),
    st.sets(st.sampled_from(ALNUM), min_size=1, max_size=12).map(lambda s: "".join(sorted(s))),
)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**63 - 1), alphabet=ALPHABETS, max_length=st.integers(1, 20))
def test_sampled_text_uses_only_the_alphabet_within_max_length(seed, alphabet, max_length):
    text = renderer(alphabet=alphabet, max_length=max_length).sample_text(np.random.default_rng(seed))
    assert isinstance(text, str)
    assert 1 <= len(text) <= max_length
    assert set(text) <= set(alphabet), f"{text!r} has {set(text) - set(alphabet)} outside {alphabet!r}"


@settings(max_examples=20)
@given(seed=st.integers(0, 2**63 - 1), alphabet=ALPHABETS, max_length=st.integers(1, 16))
def test_rendered_label_uses_only_the_alphabet_within_max_length(seed, alphabet, max_length):
    image, label = render(seed, alphabet=alphabet, max_length=max_length)
    assert 1 <= len(label) <= max_length
    assert set(label) <= set(alphabet), f"{label!r} has {set(label) - set(alphabet)} outside {alphabet!r}"
    assert image.mode == "RGB"


def test_labels_are_not_all_from_one_source():
    """Dictionary words, random strings and digit codes are all drawn (over 300 seeds)."""
    words = set(assets("train").words)
    labels = [renderer().sample_text(np.random.default_rng(seed)) for seed in range(300)]
    in_dict = sum(label in words or label.lower() in words for label in labels)
    digits_only = sum(label.isdigit() for label in labels)
    assert 0 < in_dict < len(labels)
    assert digits_only > 0
    assert any(c.isupper() for label in labels for c in label)


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["train", "heldout"])
def test_rendered_image_is_rgb_and_not_blank(split):
    for seed in SEEDS:
        image, label = render(seed, split)
        assert image.mode == "RGB"
        assert 32 <= image.height <= 64, (seed, image.size)  # height to 2 * height
        assert image.width >= 8, (seed, image.size)
        gray = np.asarray(image.convert("L"), np.float32)
        assert gray.std() > 4, f"seed {seed} ({label!r}) is nearly uniform: std {gray.std():.1f}"
        # Text and background: the darkest and the brightest pixels are far apart.
        low, high = np.percentile(gray, [1, 99])
        assert high - low > 20, f"seed {seed} ({label!r}): text does not stand out ({low:.0f}..{high:.0f})"


def test_height_follows_the_height_argument():
    for seed in range(10):
        image, _ = render(seed, height=48)
        assert 48 <= image.height <= 96, (seed, image.size)


# ----------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------

def test_train_and_heldout_fonts_are_disjoint_and_non_empty():
    train, heldout = assets("train"), assets("heldout")
    assert train.fonts and heldout.fonts
    assert len(train.fonts) + len(heldout.fonts) >= 40
    real = lambda paths: {os.path.realpath(p) for p in paths}  # noqa: E731
    assert not real(train.fonts) & real(heldout.fonts)
    # Held-out families are unseen designs: no family name is shared between the splits.
    shared = {family(p) for p in train.fonts} & {family(p) for p in heldout.fonts}
    assert not shared, f"font families in both splits: {sorted(shared)}"


def test_train_and_heldout_backgrounds_are_disjoint_and_non_empty():
    train, heldout = assets("train"), assets("heldout")
    assert train.backgrounds and heldout.backgrounds
    real = lambda paths: {os.path.realpath(p) for p in paths}  # noqa: E731
    assert not real(train.backgrounds) & real(heldout.backgrounds)
    assert all(Path(p).is_file() for p in train.backgrounds + heldout.backgrounds)


def test_the_test_set_holds_out_the_listed_designs_the_hash_drew():
    assert groups_of(assets("heldout")) == HELDOUT_DESIGNS  # the set-up installs every one of them
    assert all(held_out(g) for g in HELDOUT_DESIGNS)


def test_a_design_the_list_does_not_name_is_trained_on_even_where_the_hash_would_hold_it_out(monkeypatch):
    # As for a font installed beyond the packages: the list predates it, the hash would hold it out.
    monkeypatch.setattr(synth_text, "HELDOUT_DESIGNS", HELDOUT_DESIGNS - {"vollkorn"})
    train, heldout = (groups_of(discover_assets(split)) for split in ("train", "heldout"))
    assert held_out("vollkorn") and "vollkorn" in train
    assert heldout == HELDOUT_DESIGNS - {"vollkorn"}


def test_fonts_lacking_a_listed_design_are_split_by_the_hash(monkeypatch):
    monkeypatch.setattr(synth_text, "HELDOUT_DESIGNS", HELDOUT_DESIGNS - {"vollkorn"} | {"a design no machine has"})
    train, heldout = (groups_of(discover_assets(split)) for split in ("train", "heldout"))
    assert heldout == {g for g in train | heldout if held_out(g)} - _ALWAYS_TRAIN
    assert heldout and not train & heldout


def test_splits_are_stable_and_share_the_word_list():
    again = discover_assets("train")
    assert again.fonts == assets("train").fonts and again.backgrounds == assets("train").backgrounds
    assert assets("train").words == assets("heldout").words
    assert len(assets("train").words) > 1000


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="heldout"):
        discover_assets("test")


# ----------------------------------------------------------------------------------------------
# Missing assets
# ----------------------------------------------------------------------------------------------

def test_empty_font_dir_raises_naming_the_dir_and_the_fix(tmp_path):
    fonts = tmp_path / "no-fonts"
    fonts.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        discover_assets("train", font_dirs=[fonts])
    message = str(info.value)
    assert "font" in message.lower()
    assert str(fonts) in message
    assert "make setup" in message and "setup/debian-packages.txt" in message


def test_missing_words_file_raises_naming_the_file_and_the_fix(tmp_path):
    words = tmp_path / "missing" / "words"
    with pytest.raises(FileNotFoundError) as info:
        discover_assets("train", words_path=words)
    message = str(info.value)
    assert "word" in message.lower()
    assert str(words) in message
    assert "make setup" in message


def test_renderer_without_fonts_raises_with_the_fix():
    with pytest.raises(FileNotFoundError, match="make setup"):
        WordRenderer(SynthAssets(fonts=(), backgrounds=(), words=("word",)))


# ----------------------------------------------------------------------------------------------
# SynthWordDataset through the registry and the training pipeline
# ----------------------------------------------------------------------------------------------

@functools.cache
def dataset(seed: int) -> SynthWordDataset:
    return DATASETS.build(dict(type="SynthWordDataset", charset=CHARSET, pipeline=PIPELINE, length=1000, seed=seed))


def test_dataset_yields_grayscale_32x100_tensors_with_lowercase_labels():
    ds = dataset(0)
    assert isinstance(ds, SynthWordDataset)
    assert len(ds) == 1000
    for index in range(12):
        sample = ds[index]
        image, text = sample["image"], sample["text"]
        assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
        assert tuple(image.shape) == (1, 32, 100)
        assert sample["width"] == 100
        assert image.std() > 0.01  # not blank after grayscale and resize
        assert text and text == text.lower() and set(text) <= set(LOWER36), text
        # The label is the rendered one, case-folded (not some other string).
        assert text == ds.load(index)["text"].lower()


def test_dataset_is_deterministic_per_index():
    ds = dataset(0)
    rebuilt = DATASETS.build(dict(type="SynthWordDataset", charset=CHARSET, pipeline=PIPELINE, length=1000, seed=0))
    for index in (0, 5, 999):
        a, b, c = ds[index], ds[index], rebuilt[index]
        assert a["text"] == b["text"] == c["text"]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["image"], c["image"])
    assert not torch.equal(ds[0]["image"], ds[1]["image"])


def test_val_seed_differs_from_train_seed_for_the_same_index():
    train, val = dataset(0), dataset(1)
    for index in range(6):
        assert not torch.equal(train[index]["image"], val[index]["image"]), index
        assert train[index]["key"] != val[index]["key"]


def test_the_words_drawn_follow_the_charset():
    from ocrframe.data.synthetic import renderable_alphabet

    # The paper's charset (lowercase folding) draws the renderer's default data, cased letters included.
    assert dataset(0).alphabet == ALNUM
    digits = DATASETS.build(dict(type="SynthWordDataset", charset=dict(symbols="0123456789"), pipeline=PIPELINE,
                                 length=1000, seed=0))
    for difficulty in (1.0, 0.0):  # 0: the curriculum's start, where samples are easy words if any fit
        digits.difficulty = difficulty
        texts = [digits[i]["text"] for i in range(40)]
        assert all(t.isdigit() for t in texts), texts
    assert digits.skipped.total() == 0  # nothing drawn that the charset cannot hold
    upper = DATASETS.build(dict(type="SynthWordDataset", charset=dict(symbols=string.ascii_uppercase), pipeline=PIPELINE,
                                length=1000, seed=0))
    words = set(assets("train").words)
    texts = [upper[i]["text"] for i in range(60)]
    assert all(t.isupper() for t in texts) and any(t.lower() in words for t in texts)  # words, drawn in capitals
    dashed = Charset(symbols=LOWER36 + "-", case="lower")
    rng = np.random.default_rng(0)
    texts = [renderer(alphabet=renderable_alphabet(dashed)).sample_text(rng) for _ in range(400)]
    assert any("-" in t for t in texts)  # a symbol added to the charset is drawn too
    assert all(set(t.lower()) <= set(LOWER36 + "-") for t in texts)


@pytest.mark.parametrize("charset", [dict(symbols=["C4", "D4"]), dict(symbols=[*LOWER36, "ch"]),
                                     dict(symbols="абв"), dict(symbols="ABC", case="lower")])
def test_a_charset_the_renderer_cannot_draw_is_refused_when_the_dataset_is_built(charset):
    with pytest.raises(ValueError, match="SynthWordDataset renders words of letters.*--data"):
        DATASETS.build(dict(type="SynthWordDataset", charset=charset, pipeline=PIPELINE))


def test_missing_fonts_are_reported_when_the_dataset_is_built_not_in_a_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("OCRFRAME_FONT_DIRS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="usable Latin font faces.*make setup"):
        DATASETS.build(dict(type="SynthWordDataset", charset=CHARSET, pipeline=PIPELINE))


# ----------------------------------------------------------------------------------------------
# Text mix, font designs, workers, speed
# ----------------------------------------------------------------------------------------------

def test_text_mix_is_mostly_words_then_random_strings_then_digit_codes():
    words = {w.lower() for w in assets("train").words}
    rng = np.random.default_rng(0)
    texts = [renderer().sample_text(rng) for _ in range(3000)]
    in_dict = sum(t.lower() in words for t in texts) / len(texts)
    digits = sum(t.isdigit() for t in texts) / len(texts)
    assert 0.55 <= in_dict <= 0.68, in_dict  # ~60 % words (a few random strings are words too)
    assert 0.12 <= digits <= 0.22, digits  # ~15 % codes (and the odd all-digit random string)
    cases = {"lower" if t.islower() else "upper" if t.isupper() else "mixed" for t in texts if t.isalpha()}
    assert cases == {"lower", "upper", "mixed"}
    assert not any("'" in w for w in assets("train").words)  # possessives dropped


def test_design_groups_join_clones_weights_and_widths():
    assert design_group("Liberation Sans") == design_group("TeX Gyre Heros") == design_group("FreeSans")
    assert design_group("TeX Gyre Heros Cn") == design_group("TeX Gyre Heros")
    assert design_group("Lato Light") == design_group("Lato") != design_group("Latin Modern Roman")
    assert design_group("TeX Gyre Pagella") != design_group("TeX Gyre Termes")


def test_many_designs_and_no_math_small_caps_or_symbol_faces(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # judge every font afresh, not from the cache
    train, heldout = discover_assets("train"), discover_assets("heldout")
    assert train == assets("train") and heldout == assets("heldout")  # the cache changes nothing
    groups = lambda paths: {design_group(family(p)) for p in paths}  # noqa: E731
    assert len(groups(train.fonts)) >= 20 and len(groups(heldout.fonts)) >= 3
    assert not groups(train.fonts) & groups(heldout.fonts)
    # lmodern and texgyre install math and small-caps faces next to the text faces: never used.
    names = " ".join(Path(p).name.lower() for p in train.fonts + heldout.fonts)
    assert "math" not in names and "caps" not in names


def test_font_dirs_from_the_environment_and_broken_files_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    (fonts / "broken.ttf").write_bytes(b"not a font")
    monkeypatch.setenv("OCRFRAME_FONT_DIRS", str(fonts))
    with pytest.raises(FileNotFoundError, match=r"only 0 usable .* under .*fonts.*make setup"):
        discover_assets("train")


def test_procedural_backgrounds_alone_still_render_visible_text():
    train = assets("train")
    procedural = WordRenderer(SynthAssets(fonts=train.fonts, backgrounds=(), words=train.words))
    for seed in range(10):
        image, label = procedural.render(np.random.default_rng(seed))
        low, high = np.percentile(np.asarray(image.convert("L"), np.float32), [1, 99])
        assert high - low > 20, (seed, label)


def _render_in_forked_child(queue):
    image, label = render(5)
    queue.put((label, image.tobytes()))


def test_forked_worker_renders_the_same_bytes():
    """DataLoader workers fork after the parent has opened fonts and decoded backgrounds."""
    for seed in range(6):
        render(seed)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_render_in_forked_child, args=(queue,))
    child.start()
    label, data = queue.get(timeout=60)
    child.join(timeout=60)
    image, expected = render(5)
    assert (label, data) == (expected, image.tobytes())


# ----------------------------------------------------------------------------------------------
# The label is what is drawn
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["train", "heldout"])
def test_the_label_is_the_text_drawn(split, monkeypatch):
    """Every call that draws text is watched: the runs drawn on the first text layer (the fill;
    per-character runs when the renderer spaces letters itself) spell the label, case included."""
    from PIL import ImageDraw

    renderer(split)  # assets scanned before watching
    real_text = ImageDraw.ImageDraw.text
    for seed in SEEDS:
        calls = []

        def spy(draw, xy, text, *args, **kwargs):
            calls.append((draw, text))  # the draw object kept, so that no other one gets its id
            return real_text(draw, xy, text, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(ImageDraw.ImageDraw, "text", spy)
            _, label = render(seed, split)
        fill = calls[0][0]
        assert "".join(text for draw, text in calls if draw is fill) == label, seed


# ----------------------------------------------------------------------------------------------
# Tools
# ----------------------------------------------------------------------------------------------

def test_make_synth_writes_the_datasets_samples_to_an_lmdb(tmp_path):
    import io

    import lmdb

    result = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "tools" / "make_synth.py"),
                             str(tmp_path / "synth"), "--num", "4", "--seed", "3", "--assets", "heldout"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote 4 synthetic samples (seed 3, heldout assets) to {tmp_path / 'synth'}" in result.stdout
    dataset = SynthWordDataset(charset=dict(symbols=ALNUM), length=4, seed=3, assets="heldout")
    with lmdb.open(str(tmp_path / "synth"), readonly=True, lock=False) as env, env.begin() as txn:
        assert int(txn.get(b"num-samples")) == 4
        for i in range(4):
            sample = dataset.load(i)  # sample i of the seed, labels keeping their case
            assert txn.get(f"label-{i + 1:09d}".encode()).decode() == sample["text"]
            stored = Image.open(io.BytesIO(txn.get(f"image-{i + 1:09d}".encode())))
            assert np.array_equal(np.asarray(stored.convert("RGB")), np.asarray(sample["image"].convert("RGB")))
            assert txn.get(f"lexicon-{i + 1:09d}".encode()) is None


def test_the_fine_tuning_demo_renders_its_family_and_replay_words_once_and_never_leaves_half_an_lmdb(tmp_path, capsys):
    """tools/finetune_demo.py's data: the family's samples in its held-out fonts, the replay samples
    (other words: a seed of their own) in the training split's, each LMDB written whole under
    another name and reused by a second run; a failed render leaves nothing to reuse."""
    import io

    import lmdb

    demo = load_tool("finetune_demo")
    font = WordRenderer(discover_assets("heldout")).font_group_names[0]
    family = demo.rendered(tmp_path / "family.lmdb", 3, demo.TRAIN_SEED, "heldout", font)
    replay = demo.rendered(tmp_path / "replay.lmdb", 3, demo.REPLAY_SEED, "train")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["family.lmdb", "replay.lmdb"]  # no .partial left
    labels = {}
    for path, seed, assets, fonts in ((family, demo.TRAIN_SEED, "heldout", [font]),
                                      (replay, demo.REPLAY_SEED, "train", None)):
        dataset = SynthWordDataset(charset=dict(symbols=ALNUM), length=3, seed=seed, assets=assets, fonts=fonts)
        with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
            assert int(txn.get(b"num-samples")) == 3
            for i in range(3):
                sample = dataset.load(i)
                assert txn.get(f"label-{i + 1:09d}".encode()).decode() == sample["text"]
                stored = Image.open(io.BytesIO(txn.get(f"image-{i + 1:09d}".encode())))
                assert np.array_equal(np.asarray(stored.convert("RGB")), np.asarray(sample["image"].convert("RGB")))
            labels[path] = [txn.get(f"label-{i + 1:09d}".encode()) for i in range(3)]
    assert labels[family] != labels[replay]  # replay brings other words, not the family's in other fonts
    written = (replay / "data.mdb").stat().st_mtime_ns
    assert demo.rendered(replay, 3, demo.REPLAY_SEED, "train") == replay
    assert (replay / "data.mdb").stat().st_mtime_ns == written
    with pytest.raises(SystemExit, match="make_synth.py failed"):
        demo.rendered(tmp_path / "bad.lmdb", 3, demo.TRAIN_SEED, "heldout", "no such family")
    assert not (tmp_path / "bad.lmdb").exists()
    capsys.readouterr()
    assert run_tool("finetune_demo", "--replay", -5) == 2
    assert "--replay -5: give a number of words, 0 or more" in capsys.readouterr().err


def test_the_fine_tuning_demo_refuses_a_misspelt_training_option_before_reading_anything(tmp_path, capsys):
    """--cfg-options goes on to tools/train.py, which would refuse a setting the config lacks only
    after minutes of reading; the demo checks it first and says what was meant."""
    status = run_tool("finetune_demo", "--work-dir", tmp_path, "--cfg-options", "optim_wraper.optimizer.lr=3e-5")
    out, err = capsys.readouterr()
    assert status == 2 and err.startswith("finetune_demo.py: error: ")
    assert "no setting 'optim_wraper'; did you mean 'optim_wrapper'?" in err
    assert "held-out families" not in out
    assert list(tmp_path.iterdir()) == []  # nothing rendered


def test_make_synth_gives_each_sample_a_lexicon_holding_its_word_for_lexicon_sample_tests(tmp_path):
    from ocrframe.data.lmdb_dataset import LMDBDataset

    for name in ("a", "b"):
        assert run_tool("make_synth", "--num", 6, "--seed", 2, "--lexicon-size", 50, tmp_path / name) == 0
    first, again = (LMDBDataset(str(tmp_path / n), charset=dict(symbols="0123456789abcdefghijklmnopqrstuvwxyz", case="lower"))
                    for n in ("a", "b"))
    lexicons = []
    for i in range(6):
        sample = first[i]
        lexicon = sample["lexicon"]
        assert len(lexicon) == len(set(lexicon)) == 50
        assert sample["text"].lower() in lexicon and all(w == w.lower() for w in lexicon)
        assert again[i]["lexicon"] == lexicon  # seeded: the same lexicon every time
        lexicons.append(tuple(lexicon))
    assert len(set(lexicons)) == 6  # one of its own per sample


def test_make_photo_word_writes_a_camera_sized_photo_of_the_word(tmp_path, capsys):
    outputs = {}
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        assert run_tool("make_photo_word", "harbour", tmp_path / f"{name}.jpg", "--seed", seed) == 0
        assert f"wrote {tmp_path / f'{name}.jpg'}" in capsys.readouterr().out
        with Image.open(tmp_path / f"{name}.jpg") as photo:
            assert photo.format == "JPEG" and photo.mode == "RGB"
            outputs[name] = np.asarray(photo)
    for photo in outputs.values():
        height, width = photo.shape[:2]
        assert height > 96 and width > 2 * height  # a 7-letter word at 96 px, not cut to the model's 32
        assert photo.std() > 10  # not a blank page
    assert np.array_equal(outputs["a"], outputs["b"])  # the seed decides
    assert outputs["a"].shape != outputs["c"].shape or not np.array_equal(outputs["a"], outputs["c"])


def test_a_dataset_restricted_to_one_font_family_draws_only_its_faces():
    renderer = WordRenderer(discover_assets("heldout"))
    families = renderer.font_group_names
    assert len(families) >= 2
    chosen = families[1]
    dataset = SynthWordDataset(dict(symbols=string.digits + string.ascii_lowercase), assets="heldout",
                               fonts=[chosen], length=4)
    drawn = {design_group(WordRenderer._family(face)) for group in dataset.renderer.font_groups for face in group}
    assert drawn == {chosen}
    assert dataset.renderer.plain_font_groups == dataset.renderer.font_groups  # easy samples too
    assert chosen in dataset.describe()
    assert dataset[0]["text"]


def test_an_unknown_font_family_is_an_error_listing_the_split_s_families(tmp_path, capsys):
    families = WordRenderer(discover_assets("heldout")).font_group_names
    status = run_tool("make_synth", tmp_path / "never-written.lmdb", "--num", 2, "--assets", "heldout",
                      "--fonts", "comic sans")
    stderr = capsys.readouterr().err
    assert status == 2 and stderr.startswith("make_synth.py: error: ")
    assert "font groups ['comic sans'] are not among this split's" in stderr
    assert families[0] in stderr
    assert not (tmp_path / "never-written.lmdb").exists()


def test_make_synth_reports_an_existing_lmdb_and_a_bad_count_in_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_tool("make_synth", out, "--num", 2) == 0
    capsys.readouterr()
    for args, said in [(("--num", 2), "--overwrite"), (("--num", 0, "--overwrite"), "at least 1"),
                       (("--lexicon-size", -1, "--overwrite"), "at least 1")]:
        status, stderr = run_tool("make_synth", out, *args), capsys.readouterr().err
        assert status == 2 and said in stderr and stderr.splitlines()[-1].startswith("make_synth.py: error: "), stderr
