"""The plugin's own tests: each component directly, through ocrframe's registry (so the slot's
interface check runs), and in a recognizer built from the plugin's config."""
import itertools
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from ocrframe import Charset
from ocrframe.registry import BACKBONES, DECODERS, MODELS

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tinyconv_ctc.py"
CHARSET = Charset("abc")  # blank = 0, a = 1, b = 2, c = 3


@pytest.mark.parametrize("width", [16, 100, 257])
def test_tinyconv_gives_the_frames_it_promises(width):
    backbone = BACKBONES.build(dict(type="TinyConv", out_channels=48), default_args=dict(in_channels=1)).eval()
    features = backbone(torch.zeros(2, 1, 32, width))
    assert features.shape == (2, backbone.out_channels, 1, backbone.num_frames(width))


def log_probs_of(rows):
    """(1, T, 4) log-probabilities from per-frame probability rows."""
    return torch.tensor([rows]).log()


def test_confidence_is_the_best_frame_of_each_character():
    decoder = DECODERS.build(dict(type="ConfidenceDecoder", min_confidence=0.5), default_args=dict(charset=CHARSET))
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
    decoder = DECODERS.build(dict(type="ConfidenceDecoder"), default_args=dict(charset=CHARSET))
    predictions = decoder.decode(log_probs, lengths)
    for row, (prediction, length) in enumerate(zip(predictions, lengths.tolist())):
        text, score = most_probable_path(log_probs[row], length)
        assert prediction.text == text
        assert prediction.score == pytest.approx(score, abs=1e-5)
        assert len(prediction.extras["confidences"]) == len(prediction.text)
    assert len({p.text for p in predictions}) > 4 and any(len(p.text) > 1 for p in predictions)
    # ocrframe-ctc's GreedyDecoder, a separate implementation, reads the same
    greedy = DECODERS.build(dict(type="GreedyDecoder"), default_args=dict(charset=CHARSET)).decode(log_probs, lengths)
    assert [p.text for p in predictions] == [p.text for p in greedy]
    assert [p.score for p in predictions] == pytest.approx([p.score for p in greedy], abs=1e-5)


def test_the_config_builds_a_recognizer_with_both_components():
    model = MODELS.build(Config.fromfile(str(CONFIG)).model).eval()
    assert type(model.backbone).__name__ == "TinyConv"
    assert model.sequence_encoder.layers[0].input_size == model.backbone.out_channels  # sizes flowed
    with torch.no_grad():
        (prediction,) = model(torch.zeros(1, 1, 32, 100), mode="predict")
    assert "confidences" in prediction
