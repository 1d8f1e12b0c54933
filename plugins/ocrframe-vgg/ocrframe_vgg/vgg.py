"""VGG backbone of CRNN, paper Table 1 (bottom to top):

    conv1 64  pool1 2x2 | conv2 128  pool2 2x2 | conv3 256  conv4 256  pool3 1x2 |
    conv5 512 +BN  conv6 512 +BN  pool4 1x2 | conv7 512 2x2 no padding

All convs 3x3, stride 1, padding 1, ReLU (conv7: 2x2, padding 0). The 1x2 pools halve the height
only; like the reference Torch code they use a 2x2 window, stride (2, 1) and width padding 1, so a
32x100 image gives a 1x26 map: 26 frames of 512 features.
"""
from __future__ import annotations

import torch
from torch import nn

from ocrframe import masked_forward

PAPER_LAYERS = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "pool3", "conv5", "conv6", "pool4", "conv7")
CHANNELS = dict(conv1=64, conv2=128, conv3=256, conv4=256, conv5=512, conv6=512, conv7=512)
PAPER_BATCH_NORM = ("conv5", "conv6")


class VGG(nn.Module):
    """Args:
        in_channels: image channels (1 for the paper's grayscale input).
        remove: convs to leave out; ``("conv4", "conv6")`` is the paper's OMR model (section 3.4).
        batch_norm: "paper" (after conv5 and conv6), "all" (after every conv) or "none".
        input_height: the height this backbone reduces to 1 (only 32 is supported by the layout).
    """

    def __init__(self, in_channels: int = 1, remove: tuple[str, ...] = (), batch_norm: str = "paper",
                 input_height: int = 32):
        super().__init__()
        unknown = set(remove) - {"conv3", "conv4", "conv5", "conv6"}
        if unknown:
            raise ValueError(f"VGG can remove conv3..conv6, not {sorted(unknown)}")
        if batch_norm not in ("paper", "all", "none"):
            raise ValueError(f"batch_norm must be 'paper', 'all' or 'none', not {batch_norm!r}")
        if input_height != 32:
            raise ValueError("VGG's pooling layout maps height 32 to 1; resize images to height 32")
        self.input_height = input_height
        layers, channels = [], in_channels
        for name in PAPER_LAYERS:
            if name in remove:
                continue
            if name.startswith("pool"):
                # pool1/pool2 halve both sides; pool3/pool4 only the height (width stays, +1 from padding)
                wide = name in ("pool3", "pool4")
                layers.append(nn.MaxPool2d(2, stride=(2, 1), padding=(0, 1)) if wide else nn.MaxPool2d(2, 2))
                continue
            out = CHANNELS[name]
            final = name == "conv7"
            layers.append(nn.Conv2d(channels, out, 2 if final else 3, 1, 0 if final else 1))
            if batch_norm == "all" or (batch_norm == "paper" and name in PAPER_BATCH_NORM):
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels

    @staticmethod
    def num_frames(width: int) -> int:
        """Frames for an input width: /2 (pool1), /2 (pool2), +1 (pool3), +1 (pool4), -1 (conv7)."""
        return width // 2 // 2 + 1 + 1 - 1

    def forward(self, images: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        """``widths``: each image's width before the batch's right padding; given, each image gets
        the frames it gets alone."""
        if images.shape[-2] != self.input_height:
            raise ValueError(f"VGG expects images of height {self.input_height}, got {tuple(images.shape)}")
        return masked_forward(self.layers, images, widths)
