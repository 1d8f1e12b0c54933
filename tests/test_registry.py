"""Slot registries: interface checks at registration and build, helpful unknown-name errors."""
from __future__ import annotations

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope
from torch import nn

from conftest import CONFIG
from ocrframe.registry import SEQUENCE_ENCODERS, ComponentError, Slots


@pytest.fixture
def slots() -> Slots:
    return Slots(detached=True)


class GoodBackbone(nn.Module):
    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.out_channels = 8

    @staticmethod
    def num_frames(width: int) -> int:
        return width

    def forward(self, images):
        return self.conv(images)[:, :, :1]


class BackboneWithoutNumFrames(nn.Module):
    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.out_channels = 8

    def forward(self, images):
        return images


class BackboneWithoutOutChannels(nn.Module):
    def __init__(self, in_channels: int = 1):
        super().__init__()

    @staticmethod
    def num_frames(width: int) -> int:
        return width

    def forward(self, images):
        return images


class EncoderWithoutInputSize(nn.Module):
    def __init__(self, hidden_size: int = 16):
        super().__init__()
        self.output_size = hidden_size

    def forward(self, sequence):
        return sequence


class NotAModule:
    def __init__(self, in_channels: int = 1):
        self.out_channels = 1

    def num_frames(self, width):
        return width

    def forward(self, images):
        return images


def test_backbone_without_num_frames_is_refused_naming_class_and_method(slots):
    with pytest.raises(ComponentError) as info:
        slots.backbone.register_module(module=BackboneWithoutNumFrames)
    message = str(info.value)
    assert "BackboneWithoutNumFrames" in message
    assert "num_frames" in message
    assert "BackboneWithoutNumFrames" not in slots.backbone.module_dict


def test_encoder_whose_init_lacks_input_size_is_refused_naming_the_parameter(slots):
    with pytest.raises(ComponentError) as info:
        slots.sequence_encoder.register_module(module=EncoderWithoutInputSize)
    message = str(info.value)
    assert "EncoderWithoutInputSize" in message
    assert "input_size" in message
    assert "__init__" in message


def test_backbone_that_is_not_an_nn_module_is_refused(slots):
    with pytest.raises(ComponentError, match=r"NotAModule.*subclass torch\.nn"):
        slots.backbone.register_module(module=NotAModule)


def test_complete_backbone_registers_and_builds(slots):
    slots.backbone.register_module(module=GoodBackbone)
    backbone = slots.backbone.build(dict(type="GoodBackbone", in_channels=3))
    assert isinstance(backbone, GoodBackbone)
    assert backbone(torch.zeros(1, 3, 4, 5)).shape == (1, 8, 1, 5)


def test_built_backbone_without_out_channels_is_refused_naming_the_attribute(slots):
    slots.backbone.register_module(module=BackboneWithoutOutChannels)  # only an instance can tell
    with pytest.raises(ComponentError) as info:
        slots.backbone.build(dict(type="BackboneWithoutOutChannels", in_channels=1))
    assert "BackboneWithoutOutChannels" in str(info.value)
    assert "out_channels" in str(info.value)


def test_registering_the_same_name_twice_is_refused(slots):
    slots.backbone.register_module(module=GoodBackbone)
    with pytest.raises(ComponentError, match="registered twice"):
        slots.backbone.register_module(module=GoodBackbone)


def test_detached_slots_do_not_leak_into_the_global_registries(slots):
    slots.backbone.register_module(module=GoodBackbone)
    with pytest.raises(ComponentError):
        Slots(detached=True).backbone.get("GoodBackbone")
    from ocrframe.registry import BACKBONES

    with pytest.raises(ComponentError):
        BACKBONES.get("GoodBackbone")


def test_unknown_name_suggests_the_nearest_registered_one(slots):
    from ocrframe_lstm import LSTM, BiLSTM, Identity

    for encoder in (BiLSTM, LSTM, Identity):
        slots.sequence_encoder.register_module(module=encoder)
    with pytest.raises(ComponentError) as info:
        slots.sequence_encoder.get("BiLTSM")
    message = str(info.value)
    assert "'BiLTSM' is not a registered sequence encoder" in message
    assert "Did you mean: 'BiLSTM'" in message
    assert "Identity" in message  # the full list of what is registered follows


def test_unknown_name_in_the_global_registry_suggests_plugin_components():
    with pytest.raises(ComponentError, match="Did you mean: 'BiLSTM'"):
        SEQUENCE_ENCODERS.build(dict(type="BiLTSM", input_size=8))


def test_unknown_model_type_through_mmengine_gives_the_nearest_name():
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.type = "Recogniser"
    # Exactly how mmengine's Runner builds the model of a config with default_scope = "ocrframe".
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        with pytest.raises(ComponentError) as info:
            MMENGINE_MODELS.build(cfg.model)
    assert "'Recogniser' is not a registered model" in str(info.value)
    assert "Did you mean: 'Recognizer'" in str(info.value)


def test_misspelled_component_inside_a_model_config_is_named():
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.sequence_encoder.type = "BiLTSM"
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        with pytest.raises(ComponentError, match="'BiLTSM' is not a registered sequence encoder.*'BiLSTM'"):
            MMENGINE_MODELS.build(cfg.model)
