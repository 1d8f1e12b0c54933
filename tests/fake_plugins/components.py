"""Minimal valid components the fake plugins register."""
from torch import nn


class FakeBackbone(nn.Module):
    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.out_channels = in_channels

    @staticmethod
    def num_frames(width: int) -> int:
        return width

    def forward(self, images):
        return images[:, :, :1]


class FakeEncoder(nn.Module):
    def __init__(self, input_size: int):
        super().__init__()
        self.output_size = input_size

    def forward(self, sequence):
        return sequence
