"""The plugin's own tests: each component directly, through ocrframe's registry (so the slot's
interface check runs), discovery through the installed entry point, a recognizer built from the
plugin's config, and three training iterations of that config on a tiny LMDB."""
import io
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from ocrframe import SLOTS, Charset, list_components, load_config, write_lmdb

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tinyconv_ctc.py"
CHARSET = Charset("abc")  # blank = 0, a = 1, b = 2, c = 3


def test_the_components_are_found_through_the_installed_entry_point():
    found = {c.name: c for c in list_components(pattern="*") if c.origin.plugin == "tinyconv"}
    assert set(found) == {"TinyConv", "ConfidenceDecoder"}
    assert (found["TinyConv"].slot, found["ConfidenceDecoder"].slot) == ("backbone", "decoder")
    assert found["TinyConv"].origin.distribution == "ocrframe-tinyconv"


@pytest.mark.parametrize("width", [16, 100, 257])
def test_tinyconv_gives_the_frames_it_promises(width):
    backbone = SLOTS.backbone.build(dict(type="TinyConv", out_channels=48), default_args=dict(in_channels=1)).eval()
    features = backbone(torch.zeros(2, 1, 32, width))
    assert features.shape == (2, backbone.out_channels, 1, backbone.num_frames(width))
    assert int(backbone.num_frames(torch.tensor([width]))[0]) == backbone.num_frames(width)  # tensors of widths too


def test_tinyconv_reads_each_image_of_a_padded_batch_as_alone():
    backbone = SLOTS.backbone.build(dict(type="TinyConv"), default_args=dict(in_channels=1))
    for module in backbone.modules():  # statistics away from identity, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
    backbone.eval()
    images = [torch.rand(1, 32, width) for width in (40, 100, 73)]
    batch = torch.ones(3, 1, 32, 100)  # padded with white
    for row, image in enumerate(images):
        batch[row, ..., : image.shape[-1]] = image
    with torch.inference_mode():
        features = backbone(batch, widths=torch.tensor([40, 100, 73]))
        for row, image in enumerate(images):
            alone = backbone(image[None])[0]
            torch.testing.assert_close(features[row, ..., : alone.shape[-1]], alone, atol=1e-5, rtol=1e-4)


def log_probs_of(rows):
    """(1, T, 4) log-probabilities from per-frame probability rows."""
    return torch.tensor([rows]).log()


def test_confidence_is_the_best_frame_of_each_character():
    decoder = SLOTS.decoder.build(dict(type="ConfidenceDecoder", min_confidence=0.5), default_args=dict(charset=CHARSET))
    #            blank  a    b    c
    frames = [[0.1, 0.6, 0.2, 0.1],   # a
              [0.1, 0.9, 0.0, 0.0],   # a (same character: its confidence is now 0.9)
              [0.7, 0.1, 0.1, 0.1],   # blank
              [0.1, 0.6, 0.2, 0.1],   # a again, after a blank: a new character
              [0.2, 0.1, 0.3, 0.4],   # c, unsure
              [0.0, 0.0, 0.0, 1.0]]   # padding: beyond the frame length, ignored
    (prediction,) = decoder.decode(log_probs_of(frames), torch.tensor([5]))
    assert prediction.text == "aac"
    assert prediction.extras["confidences"] == pytest.approx([0.9, 0.6, 0.4])
    assert prediction.extras["uncertain"] == [2]


def most_probable_path(log_probs: torch.Tensor, length: int) -> tuple[str, float]:
    """Reference: the single most probable path over the first ``length`` frames, found by
    trying every path, then collapsed (repeats merged, blanks dropped); and its log-probability."""
    best_path, best_score = None, -math.inf
    for path in itertools.product(range(log_probs.shape[1]), repeat=length):
        score = sum(float(log_probs[t, c]) for t, c in enumerate(path))
        if score > best_score:
            best_path, best_score = path, score
    symbols = [c for t, c in enumerate(best_path) if c != CHARSET.blank and (t == 0 or c != best_path[t - 1])]
    return CHARSET.decode(symbols), best_score


def test_text_and_score_are_those_of_the_most_probable_path():
    torch.manual_seed(0)
    log_probs = (3 * torch.randn(8, 6, 4)).log_softmax(-1)   # peaked: repeats and blanks both occur
    lengths = torch.tensor([6, 5, 1, 6, 3, 6, 4, 2])            # rows shorter than 6 are padded
    decoder = SLOTS.decoder.build(dict(type="ConfidenceDecoder"), default_args=dict(charset=CHARSET))
    predictions = decoder.decode(log_probs, lengths)
    for row, (prediction, length) in enumerate(zip(predictions, lengths.tolist())):
        text, score = most_probable_path(log_probs[row], length)
        assert prediction.text == text
        assert prediction.score == pytest.approx(score, abs=1e-5)
        assert len(prediction.extras["confidences"]) == len(prediction.text)
    assert len({p.text for p in predictions}) > 4 and any(len(p.text) > 1 for p in predictions)
    # ocrframe-ctc's GreedyDecoder, a separate implementation, reads the same
    greedy = SLOTS.decoder.build(dict(type="GreedyDecoder"), default_args=dict(charset=CHARSET)).decode(log_probs, lengths)
    assert [p.text for p in predictions] == [p.text for p in greedy]
    assert [p.score for p in predictions] == pytest.approx([p.score for p in greedy], abs=1e-5)


def test_the_config_builds_a_recognizer_with_both_components():
    cfg = load_config(str(CONFIG))  # as `ocrframe train` reads it: the paper config, then this one
    model = SLOTS.model.build(cfg.model).eval()
    assert type(model.backbone).__name__ == "TinyConv"
    assert type(model.decoder).__name__ == "ConfidenceDecoder"
    assert model.sequence_encoder.layers[0].input_size == model.backbone.out_channels  # sizes flowed
    assert cfg.charset.unknown == "skip" and cfg.default_hooks.checkpoint.type == "AtomicCheckpointHook"
    with torch.no_grad():
        (prediction,) = model(torch.zeros(1, 1, 32, 100), mode="predict")
    assert set(prediction) >= {"pred", "score", "gt", "key", "confidences"}


def word_image(word: str) -> bytes:
    """``word`` in black on white, 32 pixels high, as PNG bytes."""
    font = ImageFont.load_default(size=22)
    image = Image.new("L", (int(font.getlength(word)) + 8, 32), 255)
    ImageDraw.Draw(image).text((4, 4), word, font=font, fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# Three iterations, no worker processes, a checkpoint and a validation at the end, no final test.
FEW_ITERATIONS = ["train_cfg.max_iters=3", "train_cfg.val_interval=3", "default_hooks.checkpoint.interval=3",
                  "default_hooks.logger.interval=1", "train_dataloader.batch_size=4",
                  "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
                  "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False"]


def test_three_training_iterations_on_a_tiny_lmdb_then_reading(tmp_path):
    words = ["cab", "bead", "face", "deaf", "ace", "bad", "fade", "dab"]
    written, _ = write_lmdb(tmp_path / "words.lmdb", ((f"w{i}", word_image(w), w, None) for i, w in enumerate(words)))
    assert written == len(words)
    work_dir = tmp_path / "work"
    command = [sys.executable, "-m", "ocrframe.cli", "train", str(CONFIG), "--work-dir", str(work_dir),
               "--data", str(tmp_path / "words.lmdb"), "--val-data", str(tmp_path / "words.lmdb"), "--no-test",
               "--cfg-options", *FEW_ITERATIONS]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (work_dir / "iter_3.pth").is_file()
    (tmp_path / "cab.png").write_bytes(word_image("cab"))
    # --runtime torch: the reading itself, without timing the inference paths for this one image
    result = subprocess.run([sys.executable, "-m", "ocrframe.cli", "read", str(work_dir / "iter_3.pth"),
                             str(tmp_path / "cab.png"), "--json", "--runtime", "torch"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout)
    assert len(record["confidences"]) == len(record["text"])  # this plugin's decoder did the reading
