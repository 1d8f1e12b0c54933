"""Padded batches read as single images.

Evaluation and reading batch images of different widths, right-padded to the widest. A
convolution near an image's right end then sees the padding where, alone, it sees its own zero
padding, and the image can read differently in a batch than alone. :func:`masked_forward` runs a
backbone's layers so that it cannot.
"""
from __future__ import annotations

import inspect

import torch
from torch import nn


def masked_forward(layers: nn.Sequential, images: torch.Tensor, widths: torch.Tensor | None) -> torch.Tensor:
    """``layers`` (convolutions, max pooling, and layers that work column by column: batch norm,
    activations, dropout) over a right-padded batch, each image getting exactly the columns it
    gets alone. ``widths``: each image's width before padding; None runs ``layers`` as they are.

    Before each convolution or max pooling, the columns beyond an image's own width are set to
    what that layer pads an image with alone (0, or -inf for max pooling), and the width is
    carried through the layer. A block of another structure (a residual block) takes part if its
    ``forward`` has a ``widths`` parameter (it masks its own inputs, e.g. with this function) and
    its ``output_width(width)`` gives the width it makes of an input of ``width``."""
    if widths is None or not bool((widths < images.shape[-1]).any()):
        return layers(images)
    x, valid = images, widths.to(images.device)
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            outside = torch.arange(x.shape[-1], device=x.device) >= valid[:, None]  # (N, W)
            x = x.masked_fill(outside[:, None, None, :], 0.0 if isinstance(layer, nn.Conv2d) else float("-inf"))
            valid = output_width(layer, valid)
        elif masks_itself(layer):
            x, valid = layer(x, widths=valid), layer.output_width(valid)
            continue
        elif not isinstance(layer, COLUMNWISE):
            raise TypeError(f"masked_forward cannot carry widths through {type(layer).__name__}: give it "
                            "convolutions, max pooling, column-wise layers, and blocks with forward(x, widths) "
                            "and output_width(width)")
        x = layer(x)
    return x


# layers whose output at a column depends on that column only
COLUMNWISE = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardswish,
              nn.Dropout, nn.Dropout2d, nn.Identity)


def masks_itself(layer: nn.Module) -> bool:
    return callable(getattr(layer, "output_width", None)) and \
        "widths" in inspect.signature(layer.forward).parameters


def output_width(layer: nn.Conv2d | nn.MaxPool2d, width):
    """The width a convolution or max pooling gives an input of ``width`` (an int or a tensor)."""
    def along_width(value):
        return value[-1] if isinstance(value, tuple) else value

    if getattr(layer, "ceil_mode", False):
        raise TypeError("masked_forward: max pooling with ceil_mode=True is not supported")
    kernel, stride = along_width(layer.kernel_size), along_width(layer.stride)
    padding, dilation = along_width(layer.padding), along_width(layer.dilation)
    return (width + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
