"""The SmallResNet backbone plugin: its frame count matches its real output for any width, it
reduces height 32 to 1, its residual shortcuts are there, and it slots into the recognizer."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mmengine.config import Config
from ocrframe_resnet import SmallResNet
from torch import nn

from conftest import CONFIG
from ocrframe.registry import BACKBONES, MODELS


@pytest.fixture(scope="module")
def tiny_resnet():
    return SmallResNet(channels=(8, 16, 16, 24)).eval()


@settings(max_examples=30)
@given(width=st.integers(1, 300))
@torch.no_grad()
def test_num_frames_matches_the_real_output_width(tiny_resnet, width):
    features = tiny_resnet(torch.zeros(1, 1, 32, width))
    assert features.shape[1:3] == (24, 1)
    assert SmallResNet.num_frames(width) == features.shape[3]


def test_blocks_add_the_input_through_a_projection_where_the_shape_changes():
    backbone = SmallResNet(channels=(8, 16, 16, 24), blocks=(2, 1, 1, 1))
    blocks = [m for m in backbone.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 5
    projected = [len(b.shortcut) > 0 for b in blocks]
    assert projected == [True, False, True, True, True]  # only stage 1's second block keeps the shape (8->8)
    block = blocks[1].eval()
    for conv in block.body:  # zero the residual branch: the block passes its (non-negative) input through
        if isinstance(conv, nn.Conv2d):
            nn.init.zeros_(conv.weight)
    x = torch.rand(2, 8, 16, 10)
    with torch.no_grad():
        assert torch.allclose(block(x), x)


def test_smallresnet_through_the_registry_replaces_vgg_in_the_recognizer():
    cfg = Config.fromfile(str(CONFIG)).model
    cfg.backbone = dict(type="SmallResNet")
    model = MODELS.build(cfg)
    assert isinstance(model.backbone, BACKBONES.get("SmallResNet"))
    assert model.sequence_encoder.layers[0].input_size == 512  # out_channels flowed to the encoder
    with torch.no_grad():
        assert tuple(model.eval()(torch.zeros(2, 1, 32, 100)).shape) == (2, 25, 37)


def test_smallresnet_refuses_a_wrong_layout_with_the_fix():
    with pytest.raises(ValueError, match="resize images to height 32"):
        SmallResNet(input_height=48)
    with pytest.raises(ValueError, match="four stages"):
        SmallResNet(blocks=(1, 1, 1))
    with pytest.raises(ValueError, match="expects images of height 32"):
        SmallResNet()(torch.zeros(1, 1, 24, 100))


@pytest.mark.parametrize("stride", [2, (2, 1)])
def test_the_strided_projection_equals_a_strided_1x1_convolution(stride):
    from ocrframe_resnet.resnet import StridedProjection

    torch.manual_seed(0)
    projection = StridedProjection(8, 16, stride)
    x = torch.randn(2, 8, 16, 37)
    expected = nn.functional.conv2d(x, projection.weight, stride=stride)
    assert torch.allclose(projection(x), expected, atol=1e-6)  # training: the subsampled path
    with torch.no_grad():
        assert torch.allclose(projection(x), expected, atol=1e-6)  # reading: the plain convolution


def test_a_few_channel_resnet_trains_in_channels_last_at_every_width():
    """The widths and channel counts where oneDNN's strided 1x1 backward crashed the process (AVX-512
    hosts): a crash here ends the test run instead of passing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        backbone = SmallResNet(channels=(16, 32, 32, 32)).to(memory_format=torch.channels_last)
        for width in (40, 100, 120, 160, 200):
            x = torch.randn(16, 1, 32, width).to(memory_format=torch.channels_last).requires_grad_()
            backbone(x).sum().backward()
            assert x.grad.shape == x.shape and torch.isfinite(x.grad).all()
    finally:
        torch.set_num_threads(threads)
