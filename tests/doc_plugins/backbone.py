"""A 4-layer CNN backbone: images (N, C, 32, W) -> features (N, out_channels, 1, W // 4)."""
import torch
from torch import nn

from ocrframe import hookimpl, masked_forward


class FourLayerCNN(nn.Module):
    def __init__(self, in_channels: int = 1, channels: int = 8, out_channels: int = 16):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 16 x W/2
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),      # 8 x W/4
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d((8, 1)),  # 1 x W/4
            nn.Conv2d(channels, out_channels, 1), nn.ReLU(),
        )
        self.out_channels = out_channels

    @staticmethod
    def num_frames(width):
        return width // 2 // 2

    def forward(self, images: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        if images.shape[-2] != 32:
            raise ValueError(f"FourLayerCNN expects images 32 pixels high, got shape {tuple(images.shape)}")
        return masked_forward(self.layers, images, widths)


@hookimpl
def ocrframe_register(slots):
    slots.backbone.register_module(module=FourLayerCNN)
