"""The CRNN model: the paper's facts (Table 1, 8.3M parameters, 26 frames for width 100) and
swapping stages by config."""
from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from mmengine.config import Config
from ocrframe_vgg import VGG
from torch import nn

from conftest import CONFIG
from ocrframe.registry import MODELS

PAPER_CONV_CHANNELS = [64, 128, 256, 256, 512, 512, 512]  # Table 1, conv1..conv7


def paper_config() -> Config:
    return Config.fromfile(str(CONFIG))


def build(model_cfg) -> nn.Module:
    return MODELS.build(model_cfg)


def count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@functools.lru_cache(maxsize=None)
def vgg(remove: tuple[str, ...] = ()) -> VGG:
    return VGG(remove=remove).eval()


def test_paper_model_for_37_classes_has_8_3_million_parameters():
    model = build(paper_config().model)
    assert model.charset.num_classes == 37
    parameters = sum(p.numel() for p in model.parameters())
    # PAPER.md: 8.3M; 8,330,789 with the reference code's layout. Counted by hand, layer by layer:
    # a conv has k*k*in*out weights and out biases, batch norm 2 * channels (scale and shift), an
    # LSTM direction 4 gates x (in + hidden + 2 biases) x hidden, a linear in*out + out.
    convs = [(3, 1, 64), (3, 64, 128), (3, 128, 256), (3, 256, 256), (3, 256, 512), (3, 512, 512), (2, 512, 512)]
    by_hand = sum(k * k * cin * cout + cout for k, cin, cout in convs) + 2 * (2 * 512)
    by_hand += 2 * 4 * (512 + 256 + 2) * 256 + (512 * 256 + 256)   # BiLSTM 1 and its projection
    by_hand += 2 * 4 * (256 + 256 + 2) * 256 + (512 * 37 + 37)     # BiLSTM 2 and the classifier
    assert by_hand == 8_330_789
    assert parameters == by_hand


def test_paper_backbone_follows_table_1():
    backbone = build(paper_config().model).backbone
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == PAPER_CONV_CHANNELS
    assert [c.kernel_size for c in convs] == [(3, 3)] * 6 + [(2, 2)]
    assert count(backbone, nn.BatchNorm2d) == 2  # after conv5 and conv6
    assert count(backbone, nn.MaxPool2d) == 4
    assert count(backbone, nn.Linear) == 0  # no fully connected layers


@torch.no_grad()
def test_width_100_gives_26_frames_of_512_features():
    model = build(paper_config().model).eval()
    features = model.backbone(torch.zeros(1, 1, 32, 100))
    assert tuple(features.shape) == (1, 512, 1, 26)
    assert model.backbone.num_frames(100) == 26
    assert tuple(model(torch.zeros(3, 1, 32, 100)).shape) == (3, 26, 37)


@given(width=st.integers(16, 400), remove=st.sampled_from([(), ("conv4", "conv6")]))
@torch.no_grad()
def test_num_frames_matches_the_real_output_width(width, remove):
    features = vgg(remove)(torch.zeros(1, 1, 32, width))
    assert features.shape[2] == 1
    assert VGG.num_frames(width) == features.shape[3]


def test_omr_variant_drops_conv4_and_conv6():
    cfg = paper_config().model
    cfg.backbone = dict(type="VGG", remove=("conv4", "conv6"))
    cfg.sequence_encoder = dict(type="LSTM", hidden_size=256, num_layers=2)
    model = build(cfg)
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512]
    assert count(model.backbone, nn.BatchNorm2d) == 1  # only conv5's is left
    layers = model.sequence_encoder.layers
    assert [(lstm.input_size, lstm.hidden_size, lstm.bidirectional) for lstm in layers] == [(512, 256, False),
                                                                                         (256, 256, False)]
    with torch.no_grad():
        assert tuple(model(torch.zeros(2, 1, 32, 100)).shape) == (2, 26, 37)


def test_the_lstm_stack_computes_what_a_multi_layer_lstm_does():
    from ocrframe_lstm import LSTM

    torch.manual_seed(0)
    stack, reference = LSTM(input_size=12, hidden_size=8, num_layers=3), nn.LSTM(12, 8, num_layers=3, batch_first=True)
    with torch.no_grad():
        for k, layer in enumerate(stack.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(reference, f"{name}_l{k}").copy_(getattr(layer, f"{name}_l0"))
    sequence = torch.randn(2, 9, 12)
    assert torch.allclose(stack(sequence), reference(sequence)[0], atol=1e-6)
    assert sum(p.numel() for p in stack.parameters()) == sum(p.numel() for p in reference.parameters())
    # checkpoints of the single multi-layer module (earlier OMR runs) load into the stack
    old = {f"lstm.{name}": value for name, value in reference.state_dict().items()}
    loaded = LSTM(input_size=12, hidden_size=8, num_layers=3)
    loaded.load_state_dict(old)
    assert torch.equal(loaded(sequence), stack(sequence))


@pytest.mark.parametrize("batch_norm, expected", [("paper", 2), ("all", 7), ("none", 0)])
def test_batch_norm_option_sets_the_number_of_batchnorm_layers(batch_norm, expected):
    backbone = VGG(batch_norm=batch_norm)
    assert count(backbone, nn.BatchNorm2d) == expected
    assert count(backbone, nn.Conv2d) == 7
    with torch.no_grad():
        assert tuple(backbone.eval()(torch.zeros(1, 1, 32, 64)).shape) == (1, 512, 1, VGG.num_frames(64))


@pytest.mark.parametrize("encoder, head_inputs", [("BiLSTM", 512), ("LSTM", 256), ("Identity", 512)])
def test_swapping_the_sequence_encoder_is_one_config_line(encoder, head_inputs):
    cfg = paper_config()
    cfg.model.sequence_encoder = dict(type=encoder)
    model = build(cfg.model)
    assert model.head.classifier.in_features == head_inputs  # the dimension flowed from the encoder
    images = torch.randn(2, 1, 32, 100)
    log_probs = model(images)
    assert tuple(log_probs.shape) == (2, 26, 37)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 26), atol=1e-4)
    loss = model(images, dict(texts=["ab", "cd"], keys=["a", "b"], widths=torch.tensor([100, 100])), mode="loss")
    assert torch.isfinite(loss["loss"])


def test_colour_images_for_a_grayscale_model_are_an_error_naming_the_pipeline():
    model = build(paper_config().model)
    with pytest.raises(ValueError, match=r"takes images \(N, 1, H, W\).*got \(2, 3, 32, 100\).*Grayscale"):
        model(torch.zeros(2, 3, 32, 100))


def test_vgg_refuses_an_input_height_other_than_32():
    with pytest.raises(ValueError, match="32"):
        VGG(input_height=48)


def test_vgg_forward_names_the_expected_height_for_a_wrong_image():
    with pytest.raises(ValueError, match=r"height 32.*\(1, 1, 48, 100\)"):
        VGG()(torch.zeros(1, 1, 48, 100))


def test_vgg_refuses_to_remove_an_unknown_layer():
    with pytest.raises(ValueError, match="conv7"):
        VGG(remove=("conv7",))


def test_predict_without_data_samples_reads_every_frame_of_each_image():
    model = build(paper_config().model).eval()
    images = torch.randn(3, 1, 32, 120)
    with torch.no_grad():
        predictions = model(images, mode="predict")
        log_probs = model(images)
    assert len(predictions) == 3
    for prediction, per_image in zip(predictions, log_probs):
        # no widths given: the whole image counts, so the best-path score sums all its frames
        assert prediction["score"] == pytest.approx(per_image.max(-1).values.sum().item(), rel=1e-5)
        assert prediction["gt"] is None


def randomized_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norm statistics away from identity, so that padding's effect is not hidden by them."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model.eval()


def padded(images: list[torch.Tensor], value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (C, 32, W) images to the widest with ``value``: a batch and its widths."""
    widest = max(i.shape[-1] for i in images)
    batch = torch.full((len(images), images[0].shape[0], 32, widest), value)
    for row, image in enumerate(images):
        batch[row, ..., : image.shape[-1]] = image
    return batch, torch.tensor([i.shape[-1] for i in images])


def small_resnet():
    from ocrframe_resnet import SmallResNet

    return SmallResNet(channels=(8, 16, 16, 24), blocks=(2, 1, 1, 1))  # residual blocks, with and without projection


@pytest.mark.parametrize("make_backbone", [lambda: VGG(batch_norm="all"),
                                           lambda: VGG(remove=("conv4", "conv6"), batch_norm="all"),
                                           small_resnet], ids=["vgg", "vgg-without-conv4-conv6", "resnet"])
def test_a_backbone_gives_each_image_of_a_padded_batch_the_frames_it_gets_alone(make_backbone):
    torch.manual_seed(0)  # the weights: one padded column changes a small ResNet's last frame by only ~2e-3
    backbone = randomized_batch_norm(make_backbone())
    generator = torch.Generator().manual_seed(1)
    images = [torch.rand(1, 32, w, generator=generator) * 2 - 1 for w in (37, 100, 61, 16, 99)]
    batch, widths = padded(images, value=1.0)  # white padding: far from what a conv pads with
    with torch.inference_mode():
        masked, unmasked = backbone(batch, widths=widths), backbone(batch)
        alone = [backbone(image[None])[0] for image in images]
    changed = 0
    for row, (image, own) in enumerate(zip(images, alone)):
        frames = backbone.num_frames(image.shape[-1])
        assert own.shape[-1] == frames
        torch.testing.assert_close(masked[row, ..., :frames], own, atol=1e-5, rtol=1e-4)
        # ten times the tolerance above: a real change, however small, is told from rounding
        changed += not torch.allclose(unmasked[row, ..., :frames], own, atol=1e-4, rtol=0)
    assert changed == 4  # without the widths, padding reaches the last frames of every narrower image


def test_the_paper_model_reads_each_image_of_a_padded_batch_as_alone_in_evaluation_only():
    model = randomized_batch_norm(build(paper_config().model))
    generator = torch.Generator().manual_seed(2)
    images = [torch.rand(1, 32, w, generator=generator) * 2 - 1 for w in (100, 45, 160)]
    batch, widths = padded(images, value=0.0)
    with torch.inference_mode():
        together = model(batch, dict(widths=widths))
        for row, image in enumerate(images):
            alone = model(image[None])[0]
            torch.testing.assert_close(together[row, : len(alone)], alone, atol=1e-4, rtol=1e-4)
    # training batches keep their padding as it is (no device sync per step): the backbone gets no widths
    seen = []
    model.backbone.register_forward_hook(lambda module, args, kwargs, out: seen.append("widths" in kwargs),
                                         with_kwargs=True)
    model.train()(batch, dict(widths=widths))
    model.eval()(batch, dict(widths=widths))
    assert seen == [False, True]


def test_masked_forward_names_a_layer_it_cannot_carry_widths_through():
    from ocrframe import masked_forward

    layers = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AvgPool2d(2))
    images = torch.zeros(2, 1, 32, 20)
    with pytest.raises(TypeError, match="cannot carry widths through AvgPool2d"):
        masked_forward(layers, images, torch.tensor([12, 20]))
    assert masked_forward(layers, images, torch.tensor([20, 20])).shape == (2, 2, 16, 10)  # nothing padded


def test_masked_forward_reads_each_image_as_alone_through_any_convolution_geometry_and_leaves_the_batch_as_given():
    from ocrframe import masked_forward

    torch.manual_seed(3)
    layers = nn.Sequential(
        nn.Conv2d(1, 3, 5, padding=2), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=2, dilation=2), nn.ReLU(),
        nn.MaxPool2d((2, 2), (2, 1), (0, 1)), nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4),
        nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(4, 4, (1, 2))).eval()
    images = [torch.rand(1, 32, w) * 2 - 1 for w in (23, 9, 17, 12)]
    batch, widths = padded(images, value=1.0)
    given = batch.clone().requires_grad_()
    together = masked_forward(layers, given, widths)
    assert torch.equal(given.detach(), batch)  # the caller's batch is not written to
    with torch.no_grad():
        alone = [layers(image[None])[0] for image in images]
        assert torch.equal(masked_forward(layers, batch, widths), together)  # in place or not, the same
    for row, own in enumerate(alone):
        torch.testing.assert_close(together[row, ..., :own.shape[-1]].detach(), own, atol=1e-5, rtol=1e-4)
    # gradients flow through the masking, and the images' own outputs never reach into their padding
    sum(together[row, ..., :own.shape[-1]].sum() for row, own in enumerate(alone)).backward()
    for row, width in enumerate(widths.tolist()):
        assert given.grad[row, ..., width:].abs().sum() == 0 and given.grad[row, ..., :width].abs().sum() > 0


def test_masked_forward_refuses_a_convolution_that_pads_with_the_image_itself():
    from ocrframe import masked_forward

    layers = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(TypeError, match="padding_mode='reflect'"):
        masked_forward(layers, torch.zeros(2, 1, 8, 10), torch.tensor([6, 10]))


@pytest.mark.parametrize("make_backbone", [lambda: VGG(batch_norm="all"), lambda: VGG(batch_norm="paper"), small_resnet],
                         ids=["vgg", "vgg-paper-batch-norm", "resnet"])
def test_folding_batch_norm_into_the_convolutions_keeps_what_a_backbone_computes(make_backbone):
    import copy

    from ocrframe.inference import fold_batch_norm

    backbone = randomized_batch_norm(make_backbone())
    generator = torch.Generator().manual_seed(4)
    batch, widths = padded([torch.rand(1, 32, w, generator=generator) for w in (64, 41, 100)], value=0.0)
    folded = fold_batch_norm(copy.deepcopy(backbone))
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    assert norms > 0 and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.inference_mode():
        torch.testing.assert_close(folded(batch, widths=widths), backbone(batch, widths=widths), atol=1e-4, rtol=1e-4)
