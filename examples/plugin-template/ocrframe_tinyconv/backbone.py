"""A small convolutional backbone: images (N, C, 32, W) -> features (N, out_channels, 1, W // 4)."""
from __future__ import annotations

import torch
from torch import nn

from ocrframe import masked_forward


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class TinyConv(nn.Module):
    def __init__(self, in_channels: int = 1, channels: int = 32, out_channels: int = 64):
        super().__init__()
        self.layers = nn.Sequential(
            *_block(in_channels, channels), nn.MaxPool2d(2),          # 16 x W/2
            *_block(channels, 2 * channels), nn.MaxPool2d(2),         # 8 x W/4
            nn.Conv2d(2 * channels, out_channels, (8, 1)),             # 1 x W/4
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        )
        self.out_channels = out_channels

    @staticmethod
    def num_frames(width: int) -> int:
        return width // 2 // 2

    def forward(self, images: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        if images.shape[-2] != 32:
            raise ValueError(f"TinyConv expects images of height 32, got {tuple(images.shape)}")
        # each image of a padded batch gets the frames it gets alone (evaluation and reading pass widths)
        return masked_forward(self.layers, images, widths)
