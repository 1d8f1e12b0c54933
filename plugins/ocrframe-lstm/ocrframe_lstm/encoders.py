"""Sequence encoders: (N, T, input_size) -> (N, T, output_size).

``forward(sequence, lengths)`` gets each image's frame count; frames beyond it are padding (images of
different widths in one evaluation batch)."""
from __future__ import annotations

import re

import torch
from torch import nn


def host_lengths_if_padded(lengths: torch.Tensor | None, frames: int) -> torch.Tensor | None:
    """The frame lengths on the host (one copy from a GPU per batch) if any sequence of the batch is
    shorter than its ``frames``, else None (nothing to leave out)."""
    if lengths is None:
        return None
    lengths = lengths.cpu().clamp(min=1)
    return lengths if bool((lengths < frames).any()) else None


def run_lstm(lstm: nn.LSTM, sequence: torch.Tensor, host_lengths: torch.Tensor | None) -> torch.Tensor:
    """A bidirectional LSTM's outputs, each sequence read over its own frames only: the backward
    direction starts at the image's last frame, not at the end of the padding.
    Outputs at padding frames are zeros."""
    if host_lengths is None:
        return lstm(sequence)[0]
    frames, device = sequence.shape[1], sequence.device
    steps = torch.arange(frames, device=device)[None]
    lengths = host_lengths.to(device)[:, None]
    # The forward direction reads left to right: the padding, on the right, never reaches a real
    # frame. The backward direction reads a copy of the batch rolled right until every sequence ends
    # at the last frame, so that it starts at each sequence's own last frame; one call reads both.
    # (A packed sequence reads each frame once, but on a CPU it ran many times slower than a plain
    # batch of twice the size: docs/benchmarks.md.)
    shift = frames - lengths
    rolled = sequence.gather(1, ((steps - shift) % frames)[..., None].expand_as(sequence))
    both = lstm(torch.cat([sequence, rolled]))[0]
    half = both.shape[-1] // 2
    forward, backward = both[: len(sequence), :, :half], both[len(sequence):, :, half:]
    backward = backward.gather(1, ((steps + shift) % frames)[..., None].expand_as(backward))  # rolled back
    return torch.cat([forward, backward], dim=-1).masked_fill((steps >= lengths)[..., None], 0.0)


class BiLSTM(nn.Module):
    """CRNN's deep bidirectional LSTM: ``num_layers`` BiLSTMs of ``hidden_size`` units per direction.

    As in the reference code, each BiLSTM but the last is followed by a linear projection of its
    2*hidden outputs back to ``hidden_size``; the paper's 8.3M parameters count these.
    """

    def __init__(self, input_size: int, hidden_size: int = 256, num_layers: int = 2):
        super().__init__()
        layers, size = [], input_size
        for i in range(num_layers):
            layers.append(nn.LSTM(size, hidden_size, batch_first=True, bidirectional=True))
            if i < num_layers - 1:
                layers.append(nn.Linear(2 * hidden_size, hidden_size))
            size = hidden_size
        self.layers = nn.ModuleList(layers)
        self.output_size = 2 * hidden_size

    def forward(self, sequence: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        host_lengths = host_lengths_if_padded(lengths, sequence.shape[1])
        for layer in self.layers:
            sequence = run_lstm(layer, sequence, host_lengths) if isinstance(layer, nn.LSTM) else layer(sequence)
        return sequence


class LSTM(nn.Module):
    """A stack of unidirectional LSTMs (the paper's OMR model uses two).

    One single-layer ``nn.LSTM`` per layer, the same computation as ``nn.LSTM(num_layers=N)``:
    torch's ONNX exporter cannot give a multi-layer LSTM a free sequence length."""

    def __init__(self, input_size: int, hidden_size: int = 256, num_layers: int = 2):
        super().__init__()
        sizes = [input_size] + [hidden_size] * num_layers
        self.layers = nn.ModuleList(nn.LSTM(i, hidden_size, batch_first=True) for i in sizes[:-1])
        self.output_size = hidden_size
        self.register_load_state_dict_pre_hook(self._rename_multi_layer_keys)

    @staticmethod
    def _rename_multi_layer_keys(module, state_dict, prefix, *args) -> None:
        """Checkpoints saved with one ``nn.LSTM(num_layers=N)`` (``lstm.weight_ih_l1``) load into the
        stack (``layers.1.weight_ih_l0``)."""
        old = re.compile(re.escape(prefix) + r"lstm\.(weight|bias)_(ih|hh)_l(\d+)$")
        for key in [k for k in state_dict if old.match(k)]:
            kind, gate, layer = old.match(key).groups()
            state_dict[f"{prefix}layers.{layer}.{kind}_{gate}_l0"] = state_dict.pop(key)

    def forward(self, sequence: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # One direction reads left to right: padding, at the right, never reaches a real frame.
        for layer in self.layers:
            sequence = layer(sequence)[0]
        return sequence


class Identity(nn.Module):
    """No recurrence: each frame is classified from its convolutional features alone (ablations)."""

    def __init__(self, input_size: int):
        super().__init__()
        self.output_size = input_size

    def forward(self, sequence: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return sequence
