"""Alignment supervision: the renderer says where each character is drawn, and the recognizer's
optional frame-level loss learns from it. Switched off, the model is the paper's."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub

from conftest import CONFIG
from ocrframe.data.synth_text import WordRenderer, discover_assets
from ocrframe.data.synthetic import SynthWordDataset
from ocrframe.data.transforms import pad_collate
from ocrframe.recipe import AlignmentLossDecay
from ocrframe.registry import MODELS


@pytest.fixture(scope="module")
def renderer():
    return WordRenderer(discover_assets("train"))


def model(alignment_loss: float = 0.0):
    cfg = Config.fromfile(str(CONFIG)).model
    return MODELS.build(dict(cfg, alignment_loss=alignment_loss))


def test_positions_come_with_the_same_image_and_label(renderer):
    for seed in range(20):
        image, text = renderer.render(np.random.default_rng(seed))
        image2, text2, positions = renderer.render_aligned(np.random.default_rng(seed))
        assert text2 == text and np.array_equal(np.asarray(image2), np.asarray(image))
        assert len(positions) == len(text)
        assert all(0 <= x <= 1 for x in positions)


def test_positions_run_left_to_right_and_spread_over_the_word(renderer):
    gaps = []
    for seed in range(200):
        _, text, positions = renderer.render_aligned(np.random.default_rng(seed))
        if len(text) < 2:
            continue
        assert positions == sorted(positions), (seed, text, positions)
        gaps.append(positions[-1] - positions[0])
    # Margins take a share of the crop, the text the rest: the centres span most of it.
    assert 0.4 < float(np.median(gaps)) < 0.95


def test_centres_fall_on_each_characters_ink(renderer):
    """Before distortion, each reported centre must lie on that character's ink (the fill mask)."""
    from ocrframe.data.synth_text import _font

    for seed in range(30):
        rng = np.random.default_rng(seed)
        text = renderer.sample_text(rng)
        font = _font(renderer.font_groups[seed % len(renderer.font_groups)][0], 40)
        layers, _, centres = renderer._text_layers(text, font, rng)
        fill = np.asarray(layers)[..., 0] > 0
        for (x, _), char in zip(centres, text):
            column = fill[:, max(0, round(x) - 2):round(x) + 3]
            assert column.any(), f"no ink of {char!r} of {text!r} at its centre x={x:.1f}"


def test_distortion_moves_the_centres_with_the_image():
    """A dot warped by Pillow with the renderer's homography lands where the points are mapped to."""
    from PIL import Image

    from ocrframe.data import effects

    rng = np.random.default_rng(0)
    for _ in range(10):
        w, h = 200, 60
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
        dst = src + rng.normal(0, 6, (4, 2))
        dst -= dst.min(0)
        point = np.array([[rng.uniform(20, 180), rng.uniform(10, 50)]])
        dot = Image.new("L", (w, h))
        dot.putpixel((int(point[0, 0]), int(point[0, 1])), 255)
        size = tuple(int(v) + 1 for v in dst.max(0))
        warped = np.asarray(dot.transform(size, Image.PERSPECTIVE, effects.homography(src, dst), Image.BILINEAR))
        ys, xs = np.nonzero(warped)
        expected = effects.apply_homography(effects.homography(dst, src), point + 0.5)[0]
        assert abs(np.average(xs + 0.5, weights=warped[ys, xs]) - expected[0]) < 1.0
        assert abs(np.average(ys + 0.5, weights=warped[ys, xs]) - expected[1]) < 1.0


def test_dataset_samples_carry_positions_through_the_pipeline_and_collate():
    cfg = Config.fromfile(str(CONFIG))
    dataset = SynthWordDataset(cfg.charset, cfg.train_pipeline, length=8, seed=5)
    samples = [dataset[i] for i in range(4)]
    for sample in samples:
        assert len(sample["char_x"]) == len(sample["text"])
    batch = pad_collate(samples)
    assert batch["data_samples"]["char_x"] == [s["char_x"] for s in samples]


def test_switched_off_the_model_is_the_paper_model_and_adds_no_loss():
    paper, aligned = model(0.0), model(1.0)
    assert not hasattr(paper, "alignment_probe")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(aligned) - count(paper) == count(aligned.alignment_probe) == 512 * 37 + 37
    torch.manual_seed(0)
    images = torch.randn(2, 1, 32, 100)
    samples = dict(texts=["abc", "hello"], keys=["a", "b"], widths=torch.tensor([100, 100]),
                   char_x=[[0.2, 0.5, 0.8], [0.1, 0.3, 0.5, 0.7, 0.9]])
    paper.train()
    losses = paper(images, samples, mode="loss")
    assert set(losses) == {"loss"}
    missing, unexpected = aligned.load_state_dict(paper.state_dict(), strict=False)
    assert set(missing) == {"alignment_probe.weight", "alignment_probe.bias"} and not unexpected
    aligned.train()
    with_alignment = aligned(images, samples, mode="loss")
    assert set(with_alignment) == {"loss", "loss_align"}
    assert torch.allclose(with_alignment["loss"], losses["loss"])  # CTC sees the paper model's outputs
    assert with_alignment["loss_align"] > 0
    aligned.load_state_dict(paper.state_dict(), strict=False)  # the same batch norm statistics
    paper.eval(), aligned.eval()
    with torch.no_grad():  # the probe never reaches predictions
        assert torch.equal(paper(images), aligned(images))
    aligned.alignment_weight = 0.0  # decayed to 0: no alignment term
    aligned.train()
    assert set(aligned(images, samples, mode="loss")) == {"loss"}


def test_the_alignment_loss_teaches_the_backbone_not_the_recurrent_layers():
    m = model(1.0).train()
    images = torch.randn(2, 1, 32, 100)
    samples = dict(texts=["abc", "hello"], keys=["a", "b"], widths=torch.tensor([100, 100]),
                   char_x=[[0.2, 0.5, 0.8], [0.1, 0.3, 0.5, 0.7, 0.9]])
    m(images, samples, mode="loss")["loss_align"].backward()
    assert m.alignment_probe.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.backbone.parameters())
    assert all(p.grad is None for p in [*m.sequence_encoder.parameters(), *m.head.parameters()])


def test_alignment_targets_the_centre_frames_with_their_characters_and_far_frames_with_blank():
    m = model(1.0)
    blank = m.charset.blank
    targets = [m.charset.encode("ab")]
    lengths = torch.tensor([10])
    # Frames 2 and 7 hold the centres; the right answer puts all mass there, blank elsewhere.
    right = torch.full((1, 10, m.charset.num_classes), -30.0)
    right[0, :, blank] = 0.0
    right[0, 2, :] = -30.0
    right[0, 2, targets[0][0]] = 0.0
    right[0, 7, :] = -30.0
    right[0, 7, targets[0][1]] = 0.0
    shifted = right.roll(3, dims=1)  # the same spikes at the wrong frames
    char_x = [[0.25, 0.75]]
    good = m.alignment_loss(right.log_softmax(-1), lengths, targets, char_x)
    bad = m.alignment_loss(shifted.log_softmax(-1), lengths, targets, char_x)
    assert good < 1e-6 < 1.0 < bad
    # Frames next to a centre are not supervised: moving blank mass there costs nothing.
    nudged = right.clone()
    nudged[0, 3, :] = -30.0
    nudged[0, 3, targets[0][1]] = 0.0
    assert math.isclose(float(m.alignment_loss(nudged.log_softmax(-1), lengths, targets, char_x)), float(good),
                        abs_tol=1e-6)


def test_images_without_or_with_mismatched_positions_are_left_out():
    m = model(1.0)
    log_probs = torch.randn(2, 10, m.charset.num_classes).log_softmax(-1)
    targets = [m.charset.encode("ab"), m.charset.encode("cd")]
    lengths = torch.tensor([10, 10])
    only_first = m.alignment_loss(log_probs[:1], lengths[:1], targets[:1], [[0.25, 0.75]])
    both = m.alignment_loss(log_probs, lengths, targets, [[0.25, 0.75], [0.5]])  # 1 position for 2 chars
    assert torch.allclose(only_first, both)
    assert float(m.alignment_loss(log_probs, lengths, targets, [None, None])) == 0.0


class _Loop:
    def __init__(self, max_iters):
        self.max_iters = max_iters


class _Runner:
    def __init__(self, model, max_iters):
        self.model, self.train_loop, self.iter = model, _Loop(max_iters), 0
        self.message_hub = MessageHub.get_instance(f"test-{id(self)}")


def test_the_weight_decays_linearly_to_zero_and_follows_the_iteration_on_resume():
    m = model(2.0)
    hook = AlignmentLossDecay(fraction=0.5)
    runner = _Runner(m, 100)
    weights = []
    for it in (0, 25, 50, 75):
        runner.iter = it
        hook.before_train_iter(runner, it)
        weights.append(m.alignment_weight)
    assert weights == pytest.approx([2.0, 1.0, 0.0, 0.0])
    # A resumed run builds a fresh model and hook: the weight is the same at the same iteration.
    resumed, hook2 = model(2.0), AlignmentLossDecay(fraction=0.5)
    runner2 = _Runner(resumed, 100)
    runner2.iter = 25
    hook2.before_train_iter(runner2, 25)
    assert resumed.alignment_weight == pytest.approx(1.0)


def test_with_no_ctc_gradient_share_the_backbone_learns_from_the_probe_alone_and_outputs_are_unchanged():
    torch.manual_seed(0)
    images = torch.randn(2, 1, 32, 100)
    samples = dict(texts=["abc", "hello"], keys=["a", "b"], widths=torch.tensor([100, 100]),
                   char_x=[[0.2, 0.5, 0.8], [0.1, 0.3, 0.5, 0.7, 0.9]])
    full, shielded = model(1.0).train(), model(1.0).train()
    shielded.load_state_dict(full.state_dict())
    shielded.backbone_ctc_gradient = 0.0
    ctc_full, ctc_shielded = full(images, samples, mode="loss")["loss"], shielded(images, samples, mode="loss")["loss"]
    assert torch.allclose(ctc_full, ctc_shielded)  # the forward pass is the same
    ctc_shielded.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in shielded.backbone.parameters())
    assert shielded.head.classifier.weight.grad.abs().sum() > 0  # the head and encoder still learn CTC
    ctc_full.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in full.backbone.parameters())
    # A share s scales CTC's gradient into the backbone by s.
    half = model(1.0).train()
    half.load_state_dict(full.state_dict())
    half.backbone_ctc_gradient = 0.5
    half(images, samples, mode="loss")["loss"].backward()
    first = next(p for p in full.backbone.parameters() if p.grad is not None and p.grad.abs().sum() > 0)
    index = [p is first for p in full.backbone.parameters()].index(True)
    assert torch.allclose(list(half.backbone.parameters())[index].grad, 0.5 * first.grad, rtol=1e-4, atol=1e-7)


def test_images_without_positions_keep_ctcs_full_gradient_under_the_handover():
    """An LMDB has no character positions: nothing but CTC teaches the backbone on its images."""
    torch.manual_seed(0)
    images = torch.randn(2, 1, 32, 100)
    base = dict(texts=["abc", "hello"], keys=["a", "b"], widths=torch.tensor([100, 100]))
    reference = model(1.0).train()

    def gradient_at_backbone_output(samples, share):
        """CTC's gradient arriving at the backbone's features, per image."""
        m = model(1.0).train()
        m.load_state_dict(reference.state_dict())
        m.backbone_ctc_gradient = share
        features = []

        def keep(module, args, out):
            out.retain_grad()
            features.append(out)

        m.backbone.register_forward_hook(keep)
        m(images, samples, mode="loss")["loss"].backward()  # CTC alone
        return features[0].grad.flatten(1)

    full = gradient_at_backbone_output(base, 1.0)
    assert (full.abs().sum(1) > 0).all()
    assert torch.equal(gradient_at_backbone_output(base, 0.0), full)  # no positions at all
    assert torch.equal(gradient_at_backbone_output(dict(base, char_x=[None, None]), 0.0), full)
    # One image with positions, one without: only the second one's CTC gradient reaches the backbone.
    mixed = gradient_at_backbone_output(dict(base, char_x=[[0.2, 0.5, 0.8], None]), 0.0)
    assert mixed[0].abs().sum() == 0
    assert torch.allclose(mixed[1], full[1])


def test_the_handover_raises_ctcs_gradient_share_as_the_alignment_weight_falls():
    m = model(1.0)
    hook = AlignmentLossDecay(fraction=0.5, handover=True)
    runner = _Runner(m, 100)
    shares = []
    for it in (0, 25, 50, 75):
        runner.iter = it
        hook.before_train_iter(runner, it)
        shares.extend([m.alignment_weight, m.backbone_ctc_gradient])
    assert shares == pytest.approx([1.0, 0.0, 0.5, 0.5, 0.0, 1.0, 0.0, 1.0])
    plain = model(1.0)
    AlignmentLossDecay(fraction=0.5).before_train_iter(_Runner(plain, 100), 0)
    assert plain.backbone_ctc_gradient == 1.0  # without handover, CTC's gradient is never scaled
    unaligned = model(0.0)  # no alignment loss to hand over from: CTC teaches the backbone from the start
    AlignmentLossDecay(fraction=0.5, handover=True).before_train_iter(_Runner(unaligned, 100), 0)
    assert unaligned.backbone_ctc_gradient == 1.0
