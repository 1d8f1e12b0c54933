"""The OMR plugin (plugins/ocrframe-omr): pitch spelling, PrIMuS reading, engraved snippets, the
pitch-sequence metrics, and the OMR config through the runner and tools/test.py."""
from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_tool
from ocrframe.data.base import BadSample
from ocrframe.registry import DATASETS, METRICS
from ocrframe_omr.engrave import Engraver, random_melody
from ocrframe_omr.metrics import sequence_metrics
from ocrframe_omr.pitch import (
    TREBLE_RANGE, SemanticError, diatonic_index, pitch_range, semantic_to_pitches, to_kern,
)
from ocrframe_omr.render import MusicRenderer

OMR_CONFIG = REPO / "configs" / "crnn_omr.py"
CHARSET = dict(symbols=TREBLE_RANGE)

# ----------------------------------------------------------------------------------------------
# Pitches and their spellings
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pitch, kern", [("C4", "c"), ("C5", "cc"), ("C6", "ccc"), ("A3", "A"), ("B3", "B"),
                                         ("C3", "C"), ("B2", "BB"), ("F#4", "f#"), ("Bb3", "B-"), ("Ebb5", "ee--")])
def test_humdrum_spelling(pitch, kern):
    assert to_kern(pitch) == kern


def test_no_two_pitches_share_a_humdrum_spelling():
    pitches = [f"{letter}{accidental}{octave}" for letter in "CDEFGAB" for accidental in ["", "#", "##", "b", "bb", "n"]
               for octave in range(9)]
    assert len({to_kern(p) for p in pitches}) == len(pitches)


def test_treble_range_is_a3_to_c6_in_staff_steps():
    assert TREBLE_RANGE[0] == "A3" and TREBLE_RANGE[-1] == "C6" and len(TREBLE_RANGE) == 17
    assert [diatonic_index(p) for p in TREBLE_RANGE] == list(range(diatonic_index("A3"), diatonic_index("C6") + 1))
    assert pitch_range("B3", "D4") == ["B3", "C4", "D4"]


@pytest.mark.parametrize("bad", ["H4", "C", "c4", "C#"])
def test_malformed_pitch_is_named_in_the_error(bad):
    with pytest.raises(ValueError, match=repr(bad)):
        to_kern(bad)


# Hand-written lines in the PrIMuS semantic encoding (tab-separated, trailing tab as in the corpus).
PRIMUS_LINE = ("clef-G2\tkeySignature-CM\ttimeSignature-3/4\tnote-C4_quarter\tnote-E4_eighth\tnote-G4_eighth\t"
               "barline\trest-quarter\tnote-A3_half.\tbarline\tmultirest-2\tbarline\tnote-C6_quarter_fermata\ttie\t"
               "note-C6_quarter\tgracenote-B5_sixteenth\tnote-A5_whole\tbarline\t")
SHARP_LINE = "clef-G2\tkeySignature-GM\ttimeSignature-C\tnote-G4_quarter\tnote-F#4_eighth.\tnote-Bb4_sixteenth\t"


def test_semantic_to_pitches_keeps_notes_in_order_and_drops_everything_else():
    assert semantic_to_pitches(PRIMUS_LINE) == ["C4", "E4", "G4", "A3", "C6", "C6", "B5", "A5"]


def test_accidentals_follow_the_policy():
    assert semantic_to_pitches(SHARP_LINE, accidentals="natural") == ["G4", "F4", "B4"]
    assert semantic_to_pitches(SHARP_LINE, accidentals="keep") == ["G4", "F#4", "Bb4"]
    with pytest.raises(SemanticError, match="note-F#4_eighth.") as skipped:
        semantic_to_pitches(SHARP_LINE, accidentals="skip")
    assert skipped.value.reason == "accidental outside C major"
    with pytest.raises(ValueError, match="'natural' reads the staff position"):
        semantic_to_pitches(SHARP_LINE, accidentals="error")


def test_other_clefs_and_unknown_tokens_are_reported():
    with pytest.raises(SemanticError, match="clef-F4") as clef:
        semantic_to_pitches("clef-F4\tnote-C3_quarter\t", clefs=("G2",))
    assert clef.value.reason == "clef F4 not read by this model"
    assert semantic_to_pitches("clef-F4\tnote-C3_quarter\t") == ["C3"]  # no clef filter
    with pytest.raises(SemanticError, match="chord-C4"):
        semantic_to_pitches("clef-G2\tchord-C4\t")


# ----------------------------------------------------------------------------------------------
# PrIMuS folders
# ----------------------------------------------------------------------------------------------


def write_primus(root: Path, samples: dict[str, str], camera: tuple[str, ...] = ()) -> Path:
    """One folder per sample: ID/ID.png (and ID/ID_distorted.jpg for ``camera``) and ID/ID.semantic."""
    for sample_id, semantic in samples.items():
        folder = root / sample_id
        folder.mkdir(parents=True)
        Image.new("RGB", (120, 40), "white").save(folder / f"{sample_id}.png")
        if sample_id in camera:
            Image.new("RGB", (120, 40), "grey").save(folder / f"{sample_id}_distorted.jpg")
        (folder / f"{sample_id}.semantic").write_text(semantic)
    return root


def test_primus_folder_reads_pitches_and_counts_what_it_skips(tmp_path):
    root = write_primus(tmp_path / "primus", {
        "000100001-1_1_1": PRIMUS_LINE, "000100002-1_1_1": SHARP_LINE,
        "000100003-1_1_1": "clef-F4\tnote-A3_quarter\t", "000100004-1_1_1": "clef-G2\tnote-E6_quarter\t",
        "000100005-1_1_1": "clef-G2\tnote-D4_quarter\tnote-F5_quarter\t"}, camera=("000100005-1_1_1",))
    dataset = DATASETS.build(dict(type="PrimusDataset", root=str(root), charset=CHARSET))
    assert [e[1] for e in dataset.entries] == ["C4 E4 G4 A3 C6 C6 B5 A5", "D4 F5"]
    assert dict(dataset.skipped.counts) == {"accidental outside C major": 1, "clef F4 not read by this model": 1,
                                            "symbols outside the charset": 1}  # E6 is above the range
    camera = dataset[1]
    assert camera["key"].endswith("000100005-1_1_1_distorted.jpg") and camera["text"] == "D4 F5"
    clean = DATASETS.build(dict(type="PrimusDataset", root=str(root), charset=CHARSET, image="png",
                                accidentals="natural"))
    assert [e[1] for e in clean.entries][1] == "G4 F4 B4" and clean[2]["key"].endswith(".png")


def test_primus_folder_with_bad_samples_and_the_error_policy(tmp_path):
    root = write_primus(tmp_path / "primus", {"a": SHARP_LINE, "b": "clef-G2\tnote-C4_quarter\t"})
    with pytest.raises(BadSample, match="accidental outside C major.*on_bad_sample='skip'"):
        DATASETS.build(dict(type="PrimusDataset", root=str(root), charset=CHARSET, on_bad_sample="error"))
    (root / "b" / "b.png").write_bytes(b"not a png")
    dataset = DATASETS.build(dict(type="PrimusDataset", root=str(root), charset=CHARSET))
    with pytest.raises(RuntimeError, match="every sample is unusable: .*1 undecodable image"):
        dataset[0]
    # evaluated (`--data` marks unreadable images): the image counts as an error against its own truth
    marked = DATASETS.build(dict(type="PrimusDataset", root=str(root), charset=CHARSET, on_bad_sample="mark"))
    sample = marked[0]
    assert sample["unreadable"] == "undecodable image" and sample["text"] == "C4"
    assert sample["key"].endswith("b.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a gt.txt nor sample folders"):
        DATASETS.build(dict(type="PrimusDataset", root=str(tmp_path / "empty"), charset=CHARSET))


def test_primus_reader_accepts_a_gt_txt(tmp_path):
    root = tmp_path / "gt"
    root.mkdir()
    Image.new("RGB", (60, 30), "white").save(root / "x.png")
    (root / "gt.txt").write_text("x.png\tC4 E4 G4\nx.png\tC4 H9\nx.png\t\n")
    dataset = DATASETS.build(dict(type="PrimusDataset", root=str(root), charset=CHARSET))
    assert len(dataset) == 1 and dataset[0]["text"] == "C4 E4 G4"
    assert dict(dataset.skipped.counts) == {"symbols outside the charset": 1, "empty label": 1}


# ----------------------------------------------------------------------------------------------
# Engraving and snippets
# ----------------------------------------------------------------------------------------------


@functools.cache
def engraved_line(seed: int = 0, font: str = "Leipzig"):
    rng = np.random.default_rng(seed)
    return Engraver().engrave(random_melody(rng, 24, (3, 4)), (3, 4), font=font, space_px=7.0)


@pytest.mark.parametrize("font", ["Leipzig", "Petaluma"])
def test_engraved_note_heads_sit_where_their_pitches_belong(font):
    """Read back from verovio's SVG: one head per note, each on the staff position of its pitch."""
    line = engraved_line(1, font)
    assert len(line.notes) == len(line.pitches) == 24
    e4 = diatonic_index("E4")  # the bottom staff line
    for (left, right, y), pitch in zip(line.notes, line.pitches):
        steps = (line.staff[1] - y) / (line.space / 2)
        assert abs(steps - round(steps)) < 0.15 and round(steps) + e4 == diatonic_index(pitch)
        assert left < right
    assert all(a[0] < b[0] for a, b in zip(line.notes, line.notes[1:]))  # left to right
    for y in line.staff:  # the staff lines are drawn there, across the line
        band = line.ink[int(y) - 1:int(y) + 2].max(0)
        assert (band > 40).mean() > 0.9


def test_snippet_holds_exactly_the_notes_of_its_label():
    line = engraved_line()
    for seed in range(20):
        (x0, top, x1, bottom), start, end = MusicRenderer.cut(line, np.random.default_rng(seed))
        inside = [i for i, (left, right, y) in enumerate(line.notes) if x0 <= left and right <= x1]
        partly = [i for i, (left, right, y) in enumerate(line.notes) if left < x1 and right > x0]
        assert inside == partly == list(range(start, end)) and 3 <= end - start <= 20
        assert all(top < y < bottom for _, _, y in line.notes)  # A3..C6 heads stay in the crop


def test_snippet_margins_are_drawn_from_the_range_asked_for():
    line = engraved_line()
    for margins in [(2.75, 3.75), (2.0, 4.5)]:
        above, below = np.array([
            ((line.staff[0] - top) / line.space, (bottom - line.staff[1]) / line.space)
            for top, bottom in (MusicRenderer.cut(line, np.random.default_rng(seed), margins=margins)[0][1::2]
                                for seed in range(200))]).T
        for side in (above, below):  # within the range (give or take the rounding to pixels), across most of it
            assert margins[0] - 0.1 < side.min() < margins[0] + 0.15 and margins[1] - 0.15 < side.max() < margins[1] + 0.1
    with pytest.raises(ValueError, match="room for C6 and A3"):
        DATASETS.build(dict(type="EngravedMusicDataset", charset=CHARSET, margins=(1.0, 3.0)))


@pytest.mark.parametrize("style", ["clean", "synthesized", "camera"])
def test_rendered_snippet_has_the_label_tokens_and_is_not_blank(style):
    renderer = MusicRenderer(style)
    image, label = renderer.snippet(engraved_line(), np.random.default_rng(3), count=7)
    assert len(label.split()) == 7 and set(label.split()) <= set(TREBLE_RANGE)
    grey = np.asarray(image.convert("L"), np.float32)
    assert image.mode == "RGB" and image.height > 40 and image.width > image.height
    assert grey.std() > 20  # ink stands out from the paper
    again, _ = renderer.snippet(engraved_line(), np.random.default_rng(3), count=7)
    assert again.tobytes() == image.tobytes()  # a pure function of the seed


def test_note_positions_follow_the_augmentations_geometry():
    """snippet_aligned's note positions are where the augmentation draws the points it was given:
    a dot of ink at each, warped (stretch, rotation, perspective) with the effects that change
    nothing's position switched off, is darkest where the position says."""
    import dataclasses

    from ocrframe_omr.render import AUGMENTATIONS

    renderer = MusicRenderer("camera")  # the strongest geometry
    renderer.augmentation = dataclasses.replace(
        AUGMENTATIONS["camera"], perspective=1.0, background=0, uneven_light=0, speckle=0, low_resolution=0,
        degradation=dataclasses.replace(AUGMENTATIONS["clean"].degradation))
    points = np.array([[20.0, 30.0], [90.0, 12.0], [170.0, 50.0]])
    for seed in range(10):
        ink = np.zeros((64, 200), np.uint8)
        for x, y in points.astype(int):
            ink[y - 1:y + 2, x - 1:x + 2] = 255
        image, moved = renderer._augment(Image.fromarray(ink), 7.0, np.random.default_rng(seed), points)
        grey = np.asarray(image.convert("L"), np.float32)
        assert not np.allclose(moved, points, atol=2)  # the geometry did move them
        for x, y in moved:
            window = grey[int(y) - 4:int(y) + 5, int(x) - 4:int(x) + 5]
            dy, dx = np.unravel_index(window.argmin(), window.shape)
            assert abs(int(x) - 4 + dx - x) <= 1.5 and abs(int(y) - 4 + dy - y) <= 1.5 and window.min() < 128


@pytest.mark.parametrize("style", ["clean", "synthesized", "camera"])
def test_each_snippet_says_where_its_notes_are_drawn(style):
    """The same image as snippet(), and one position per note of the label, left to right, each on
    the note: in a clean snippet the head's column has the head's ink at the head's height."""
    renderer, line = MusicRenderer(style), engraved_line()
    for seed in range(5):
        image, label, note_x = renderer.snippet_aligned(line, np.random.default_rng([seed, 3]), count=7)
        again, again_label = renderer.snippet(line, np.random.default_rng([seed, 3]), count=7)
        assert again.tobytes() == image.tobytes() and again_label == label
        assert len(note_x) == len(label.split()) == 7 and 0 < note_x[0] and note_x[-1] < 1
        assert all(a < b for a, b in zip(note_x, note_x[1:]))
    if style == "clean":
        (x0, top, _, _), start, _ = MusicRenderer.cut(line, np.random.default_rng([4, 3]), 7)
        ink = np.asarray(image.convert("L")) < 128
        for x, (_, _, y) in zip(note_x, line.notes[start:start + 7]):
            column = int(x * image.width)
            assert ink[int(y - top) - 1:int(y - top) + 2, column - 1:column + 2].any()
    dataset = DATASETS.build(dict(type="EngravedMusicDataset", charset=CHARSET, seed=3, lines=2, style=style))
    sample = dataset.load(0)
    assert len(sample["char_x"]) == len(sample["text"].split())
    heldout = DATASETS.build(dict(type="EngravedMusicDataset", charset=CHARSET, seed=3, style=style, assets="heldout"))
    assert "char_x" not in heldout.load(0)  # whole incipits: no positions, the alignment loss leaves them out


def test_twenty_note_snippets_give_ctc_enough_frames_at_height_32():
    """The config's input geometry: at 32 pixels high, squeezed by the strongest horizontal scaling of
    the augmentation, a 20-note snippet still has a frame per pitch plus one per repeated pitch."""
    from ocrframe_omr.render import AUGMENTATIONS
    from ocrframe_vgg.vgg import VGG

    renderer = MusicRenderer("clean")
    for seed in range(3):
        line = renderer.line(np.random.default_rng([7, seed]))
        for draw in range(3):
            image, label = renderer.snippet(line, np.random.default_rng([7, seed, draw]), count=20)
            tokens = label.split()
            needed = len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:]))
            width = int(image.width * 32 / image.height * AUGMENTATIONS["synthesized"].stretch[0])
            assert VGG.num_frames(width) >= needed + 5, (width, label)


def test_dataset_is_fixed_by_seed_and_length_groups_share_a_note_count():
    make = functools.partial(DATASETS.build, default_args=dict(charset=CHARSET))
    a = make(dict(type="EngravedMusicDataset", length=8, seed=5, lines=2, length_group=4))
    b = make(dict(type="EngravedMusicDataset", length=8, seed=5, lines=2, length_group=4))
    c = make(dict(type="EngravedMusicDataset", length=8, seed=6, lines=2, length_group=4))
    samples = [a[i] for i in range(8)]
    assert [len(s["text"].split()) for s in samples[:4]] == [len(samples[0]["text"].split())] * 4
    assert samples[5]["image"].tobytes() == b[5]["image"].tobytes() and samples[5]["key"] == "synthesized/5-5"
    assert samples[5]["text"] != c[5]["text"]
    with pytest.raises(ValueError, match="style must be one of"):
        make(dict(type="EngravedMusicDataset", style="blurry"))


def curriculum_draws(dataset, monkeypatch, count: int) -> list[tuple[int, bool]]:
    """(notes, augmented) of the dataset's first ``count`` snippets."""
    augmented = []
    real_augment = dataset.renderer._augment

    def spy(*args, **kwargs):
        augmented.append(True)
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(dataset.renderer, "_augment", spy)
    draws = []
    for index in range(count):
        augmented.clear()
        draws.append((len(dataset.load(index)["text"].split()), bool(augmented)))
    monkeypatch.undo()
    return draws


@pytest.mark.parametrize("difficulty", [0.0, 0.5, 1.0])
def test_curriculum_makes_a_share_one_minus_difficulty_of_the_snippets_short_and_clean(difficulty, monkeypatch):
    from ocrframe_omr.datasets import EASY_MAX_NOTES

    dataset = DATASETS.build(dict(type="EngravedMusicDataset", charset=CHARSET, seed=3, lines=2,
                                  difficulty=difficulty))
    draws = curriculum_draws(dataset, monkeypatch, 300)
    easy = [notes <= EASY_MAX_NOTES and not augmented for notes, augmented in draws]
    # an easy snippet is never augmented; a full one always is, and has 3 to 20 notes
    assert all(augmented for (_, augmented), e in zip(draws, easy) if not e)
    share = sum(easy) / len(easy)
    assert abs(share - (1 - difficulty)) < 0.1, share
    if difficulty > 0:
        assert max(notes for notes, augmented in draws if augmented) > EASY_MAX_NOTES


def test_curriculum_decides_per_length_group_and_survives_pickling(monkeypatch):
    import pickle

    dataset = DATASETS.build(dict(type="EngravedMusicDataset", charset=CHARSET, seed=3, lines=2, length_group=8,
                                  difficulty=0.5))
    draws = curriculum_draws(dataset, monkeypatch, 160)
    groups = [draws[i:i + 8] for i in range(0, 160, 8)]
    assert all(len(set(group)) == 1 for group in groups)  # one note count, one kind, per batch
    assert 0 < sum(group[0][1] for group in groups) < len(groups)  # both kinds occur
    fresh = DATASETS.build(dict(type="EngravedMusicDataset", charset=CHARSET, difficulty=0.5))
    copy = pickle.loads(pickle.dumps(fresh))  # as a spawned worker gets it
    assert copy.difficulty == 0.5
    copy.difficulty = 0.9  # the copy has shared memory of its own
    assert fresh.difficulty == 0.5
    with pytest.raises(ValueError, match="difficulty must be in"):
        dataset.difficulty = 1.5


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------

# (prediction, ground truth, key): edit distances on whole tokens 0, 1 (substitution), 1 (deletion), 1
PAIRS = [("C4 E4 G4", "C4 E4 G4", "clean/0"), ("C4 F4 G4", "C4 E4 G4", "clean/1"),
         ("C4 G4", "C4 E4 G4", "camera/0"), ("", "C4", "camera/1")]


def test_fragment_accuracy_and_mean_edit_distance_on_known_pairs():
    metrics = sequence_metrics([(p, g) for p, g, _ in PAIRS])
    assert metrics == pytest.approx(dict(fragment_acc=1 / 4, mean_edit_distance=3 / 4))
    # Tokens, not characters: "C5" for "C4" is one edit, "A3" for "A33" is not a near miss.
    assert sequence_metrics([("C5 D4", "C4 D4")])["mean_edit_distance"] == 1


def test_metric_reports_each_split_in_one_table_with_the_reference():
    metric = METRICS.build(dict(type="PitchSequenceMetric", splits=("clean", "synthesized", "camera"),
                                reference={"CRNN (paper)": dict(clean=(0.746, 0.37), camera=(0.84, 0.30))}))
    metric.process(None, [dict(pred=p, gt=g, key=k) for p, g, k in PAIRS])
    results = metric.compute_metrics(metric.results)
    assert results["clean/fragment_acc"] == 0.5 and results["clean/mean_edit_distance"] == 0.5
    assert results["camera/fragment_acc"] == 0.0 and results["camera/mean_edit_distance"] == 1.0
    assert "synthesized/fragment_acc" not in results  # no sample of it
    table = metric.table(results, [("clean", 2), ("camera", 2)])
    assert "| CRNN (paper) | 74.6 % / 0.37 | 84.0 % / 0.30 |" in table
    assert "| this model | 50.0 % / 0.50 | 0.0 % / 1.00 |" in table


# ----------------------------------------------------------------------------------------------
# The config through the runner and the tools
# ----------------------------------------------------------------------------------------------

TINY = ["train_cfg.max_iters=3", "train_cfg.val_interval=3", "default_hooks.logger.interval=1",
        "default_hooks.checkpoint.interval=3", "train_dataloader.batch_size=4", "train_dataloader.num_workers=0",
        "train_dataloader.persistent_workers=False", "train_dataloader.dataset.lines=2",
        "train_dataloader.dataset.length_group=4", "val_dataloader.num_workers=0",
        "val_dataloader.persistent_workers=False", "val_dataloader.dataset.length=4", "test_dataloader.num_workers=0",
        *[f"test_dataloader.dataset.datasets.{i}.length=2" for i in range(5)]]


def tool(name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def omr_run(tmp_path_factory) -> Path:
    """configs/crnn_omr.py for 3 iterations on engraved snippets, then its three test splits."""
    work_dir = tmp_path_factory.mktemp("omr") / "work"
    result = tool("train", OMR_CONFIG, "--work-dir", work_dir, "--cfg-options", *TINY, cwd=work_dir.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir


def test_omr_config_trains_validates_and_tests_the_three_splits(omr_run):
    log = next(omr_run.glob("*/*.log")).read_text()
    scalars = [json.loads(line) for line in next(omr_run.glob("*/vis_data/scalars.json")).read_text().splitlines()]
    losses = [r["loss"] for r in scalars if "loss" in r]
    assert len(losses) == 3 and all(np.isfinite(losses)) and all(loss > 0 for loss in losses)
    assert any("fragment_acc" in r and "mean_edit_distance" in r for r in scalars)  # validation
    assert "schedule: cpu" in log and "VGG" in (omr_run / "crnn_omr.py").read_text()
    assert all(r["loss_align"] > 0 for r in scalars if "loss" in r)  # the cpu schedule's alignment loss
    for split in ("clean", "synthesized", "camera", "heldout_clean", "heldout_camera"):
        assert f"{split}/fragment_acc" in log
    assert "| CRNN (paper) | 74.6 % / 0.37 | 81.5 % / 0.30 | 84.0 % / 0.30 | - | - |" in log
    assert (omr_run / "iter_3.pth").is_file()


def test_omr_model_is_the_papers_simplified_crnn(omr_run):
    from mmengine.config import Config
    from ocrframe.registry import MODELS

    model = MODELS.build(Config.fromfile(str(OMR_CONFIG)).model)
    convs = [m for m in model.backbone.modules() if m.__class__.__name__ == "Conv2d"]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512]  # conv4 and conv6 removed
    assert [lstm.bidirectional for lstm in model.sequence_encoder.layers] == [False, False]  # 2 unidirectional
    assert model.charset.num_classes == 18 and model.charset.separator == " "


def test_tools_test_evaluates_a_primus_folder_and_a_made_lmdb(omr_run, tmp_path):
    root = write_primus(tmp_path / "primus", {"s1": "clef-G2\tnote-C4_quarter\tnote-G4_half\t", "s2": SHARP_LINE})
    result = tool("test", OMR_CONFIG, omr_run / "iter_3.pth", "--data", root, "--work-dir", tmp_path / "w1",
                  "--cfg-options", "test_dataloader.num_workers=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(metrics) == {"fragment_acc", "mean_edit_distance"}
    assert "PrIMuS folder" in result.stderr + result.stdout and "1 accidental outside C major" in result.stderr

    assert run_tool("make_omr_synth", tmp_path / "camera.lmdb", "--num", 3, "--seed", 4, "--style", "camera") == 0
    lmdb = DATASETS.build(dict(type="LMDBDataset", path=str(tmp_path / "camera.lmdb"), charset=CHARSET))
    rendered = DATASETS.build(dict(type="EngravedMusicDataset", charset=CHARSET, length=3, seed=4, style="camera"))
    assert [lmdb[i]["text"] for i in range(3)] == [rendered[i]["text"] for i in range(3)]
    result = tool("test", OMR_CONFIG, omr_run / "iter_3.pth", "--data", tmp_path / "camera.lmdb",
                  "--work-dir", tmp_path / "w2", "--cfg-options", "test_dataloader.num_workers=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_read_judges_music_token_for_token_as_test_does(omr_run, tmp_path):
    """`ocrframe read` with ground truth scores a model of tokens ("C4 E4") as `ocrframe test` does:
    every token right, not under the text benchmark's case-insensitive alphanumerics."""
    from mmengine.config import Config
    from ocrframe.evaluation import reading_is_right
    from ocrframe.registry import MODELS

    omr = reading_is_right(MODELS.build(Config.fromfile(str(OMR_CONFIG)).model))
    text = reading_is_right(MODELS.build(Config.fromfile(str(REPO / "configs" / "crnn_vgg_bilstm_ctc.py")).model))
    assert omr("C4 E4", "C4 E4") and not omr("C4 E4", "c4 e4") and not omr("C4 E4", "C4E4")
    assert text("Hello", "hello!")

    Image.new("RGB", (120, 32), "white").save(tmp_path / "blank.png")
    (tmp_path / "gt.txt").write_text("blank.png\tC4 E4\n")
    result = tool("infer", omr_run / "iter_3.pth", tmp_path / "gt.txt", "--json", "--runtime", "torch", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["correct"] == (record["text"] == "C4 E4")
    assert "accuracy on 1 labelled images: sequence accuracy" in result.stderr
    assert "alphanumerics" not in result.stderr


def test_read_json_reports_the_staff_it_normalised(omr_run, tmp_path):
    """`ocrframe read --json` on a held-out incipit (page margins, a scale training never renders) and
    on a blank image: the staff's geometry, or null where there is none."""
    from ocrframe_omr.render import MusicRenderer

    renderer = MusicRenderer("clean", assets="heldout")
    rng = np.random.default_rng([5, 0, 1 << 34])
    incipit = renderer.incipit(rng)
    renderer.finish(incipit.ink, incipit.space, rng).save(tmp_path / "incipit.png")
    Image.new("RGB", (200, 60), "white").save(tmp_path / "blank.png")
    result = tool("infer", omr_run / "iter_3.pth", tmp_path / "incipit.png", tmp_path / "blank.png", "--json",
                  "--runtime", "torch", cwd=tmp_path)  # the staff, not the inference path, is tested here
    assert result.returncode == 0, result.stderr[-3000:]
    records = {Path(r["image"]).name: r for r in map(json.loads, result.stdout.strip().splitlines())}
    staff = records["incipit.png"]["staff"]
    assert staff["space"] == pytest.approx(incipit.space, rel=0.05)
    assert staff["top"] == pytest.approx(incipit.staff[0], abs=0.25 * incipit.space)
    x0, y0, x1, y1 = records["incipit.png"]["crop"]
    assert (y1 - y0) / staff["space"] == pytest.approx(10.5, abs=0.01)  # 3.25 + 4 + 3.25 staff spaces
    assert records["blank.png"]["staff"] is None
