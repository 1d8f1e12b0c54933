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
    projected = [not isinstance(b.shortcut, nn.Identity) for b in blocks]
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
