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

    Before each convolution or max pooling, the columns beyond an image's own width that the layer
    reads for the image's last output column are set to what the layer pads an image with alone (0,
    or -inf for max pooling), and the width is carried through the layer. Columns further right hold
    whatever the padding made of them: no output column of the image reads them. A block of another
    structure (a residual block) takes part if its ``forward`` has a ``widths`` parameter (it masks
    its own inputs, e.g. with this function) and its ``output_width(width)`` gives the width it
    makes of an input of ``width``."""
    if widths is None or not bool((widths < images.shape[-1]).any()):
        return layers(images)
    x, valid = images, widths.cpu()  # widths are bookkept on the host: no device sync per layer
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            if getattr(layer, "padding_mode", "zeros") != "zeros":
                raise TypeError(f"masked_forward: a convolution with padding_mode={layer.padding_mode!r} pads an "
                                "image alone with its own pixels, which a padded batch cannot give it; use zeros")
            out = output_width(layer, valid)
            # a few columns per image (one for a 3x3 convolution) rather than the whole padding: on a
            # CPU, masking every column before every layer cost as much as the bf16 network itself
            x = _fill_columns(x, images, valid, last_column_read(layer, out),
                              0.0 if isinstance(layer, nn.Conv2d) else float("-inf"))
            valid = out
        elif masks_itself(layer):
            x, valid = layer(x, widths=valid), layer.output_width(valid)
            continue
        elif not isinstance(layer, COLUMNWISE):
            raise TypeError(f"masked_forward cannot carry widths through {type(layer).__name__}: give it "
                            "convolutions, max pooling, column-wise layers, and blocks with forward(x, widths) "
                            "and output_width(width)")
        x = layer(x)
    return x


def _fill_columns(x: torch.Tensor, images: torch.Tensor, first: torch.Tensor, last: torch.Tensor,
                  value: float) -> torch.Tensor:
    """``x`` with the columns ``first[i]..last[i]`` (within its width) of each image ``i`` set to
    ``value``: in place when ``x`` is an intermediate no gradient needs, else on a copy (never the
    caller's ``images``)."""
    span = int((last - first + 1).clamp(min=0).max())
    if span == 0:
        return x
    columns = first[:, None] + torch.arange(span)  # (N, span)
    wanted = (columns <= last[:, None]) & (columns < x.shape[-1])
    if not bool(wanted.any()):
        return x
    if x is images or x.requires_grad:
        x = x.clone()
    rows = torch.arange(len(x))[:, None].expand_as(columns)
    index = (rows[wanted].to(x.device), columns[wanted].to(x.device))
    x.permute(0, 3, 1, 2).index_put_(index, torch.tensor(value, dtype=x.dtype, device=x.device))
    return x


# layers whose output at a column depends on that column only
COLUMNWISE = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardswish,
              nn.Dropout, nn.Dropout2d, nn.Identity)


def masks_itself(layer: nn.Module) -> bool:
    return callable(getattr(layer, "output_width", None)) and \
        "widths" in inspect.signature(layer.forward).parameters


def last_column_read(layer: nn.Conv2d | nn.MaxPool2d, out_width):
    """The last input column (counted without the layer's own padding) that a convolution or max
    pooling reads for output column ``out_width - 1``."""
    kernel, stride, padding, dilation = _geometry(layer)
    return (out_width - 1) * stride - padding + dilation * (kernel - 1)


def output_width(layer: nn.Conv2d | nn.MaxPool2d, width):
    """The width a convolution or max pooling gives an input of ``width`` (an int or a tensor)."""
    kernel, stride, padding, dilation = _geometry(layer)
    return (width + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _geometry(layer: nn.Conv2d | nn.MaxPool2d) -> tuple[int, int, int, int]:
    """(kernel, stride, padding, dilation) along the width."""
    def along_width(value):
        return value[-1] if isinstance(value, tuple) else value

    if getattr(layer, "ceil_mode", False):
        raise TypeError("masked_forward: max pooling with ceil_mode=True is not supported")
    if isinstance(layer.padding, str):
        raise TypeError(f"masked_forward: padding={layer.padding!r} is not supported; give the padding in pixels")
    return tuple(along_width(v) for v in (layer.kernel_size, layer.stride, layer.padding, layer.dilation))
