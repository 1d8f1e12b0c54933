"""A small ResNet-style backbone: residual blocks (He et al. 2016) laid out like CRNN's VGG.

    stem conv 3x3            32 x W      channels[0] / 2
    stage 1  stride 2        16 x W/2    channels[0]
    stage 2  stride 2         8 x W/4    channels[1]
    stage 3  stride (2, 1)    4 x W/4    channels[2]   (height only, as VGG's pool3/pool4)
    stage 4  stride (2, 1)    2 x W/4    channels[3]
    conv 2x1, no padding      1 x W/4    channels[3]

Each stage is ``blocks[i]`` basic blocks (two 3x3 convs with batch norm, plus the input through a
1x1 projection where the shape changes). A 32x100 image gives 25 frames of 512 features, against
VGG's 26, with about as many parameters as VGG at the default sizes (5.4M against 5.6M).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from ocrframe import masked_forward
from torch import nn


class StridedProjection(nn.Conv2d):
    """A 1x1 convolution with a stride. When gradients flow it is computed as every stride-th pixel
    through a 1x1 convolution (the same numbers, the same weights): oneDNN's own strided 1x1
    backward crashes the process on AVX-512 CPUs for inputs of few channels in channels_last
    (torch 2.13: 8 channels, width 160). Without gradients (reading, ONNX export) it is the plain
    strided convolution, which exporters and quantizers know."""

    def __init__(self, in_channels: int, out_channels: int, stride: int | tuple[int, int]):
        super().__init__(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export() or not (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        rows, columns = self.stride
        return F.conv2d(x[:, :, ::rows, ::columns], self.weight)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int | tuple[int, int] = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels),
        )
        reshaped = stride != 1 or in_channels != out_channels
        # the input itself (an empty Sequential) where the shape stays
        self.shortcut = nn.Sequential(
            StridedProjection(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels),
        ) if reshaped else nn.Sequential()
        self.relu = nn.ReLU(inplace=True)
        self.column_stride = stride[1] if isinstance(stride, tuple) else stride

    def forward(self, x: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        """``widths``: each image's width in a right-padded batch; both branches then mask the padding
        (``masked_forward``), so that each image gets what it gets alone."""
        return self.relu(masked_forward(self.body, x, widths) + masked_forward(self.shortcut, x, widths))

    def output_width(self, width):
        """The width of the output for an input of ``width`` (3x3 with padding 1, or 1x1, at the stride)."""
        return (width - 1) // self.column_stride + 1


class SmallResNet(nn.Module):
    """Args:
        in_channels: image channels (1 for grayscale).
        channels: output channels of the four stages.
        blocks: basic blocks per stage.
        input_height: the height this backbone reduces to 1 (only 32 is supported by the layout).
    """

    STRIDES = (2, 2, (2, 1), (2, 1))

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (64, 128, 256, 512),
                 blocks: tuple[int, ...] = (1, 1, 1, 1), input_height: int = 32):
        super().__init__()
        if len(channels) != 4 or len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"SmallResNet needs four stages of at least one block: channels={channels}, "
                             f"blocks={blocks}")
        if input_height != 32:
            raise ValueError("SmallResNet's strides map height 32 to 1; resize images to height 32")
        self.input_height = input_height
        stem = channels[0] // 2
        layers = [nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)]
        previous = stem
        for out, count, stride in zip(channels, blocks, self.STRIDES):
            layers.append(BasicBlock(previous, out, stride))
            layers += [BasicBlock(out, out) for _ in range(count - 1)]
            previous = out
        # the last 2 rows -> 1, as VGG's conv7
        layers += [nn.Conv2d(previous, previous, (2, 1), 1, 0, bias=False), nn.BatchNorm2d(previous),
                   nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)
        self.out_channels = previous

    @staticmethod
    def num_frames(width: int) -> int:
        """Frames for an input width: two stride-2 convs with padding 1, each rounding up."""
        return -(-width // 4)

    def forward(self, images: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        """``widths``: each image's width before padding (evaluation and reading); the padding then
        never reaches an image's frames."""
        if images.shape[-2] != self.input_height:
            raise ValueError(f"SmallResNet expects images of height {self.input_height}, got {tuple(images.shape)}")
        return masked_forward(self.layers, images, widths)
