"""Per-frame classifier and the CTC loss: -log p(label | frames), summed over paths by torch."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class CTCHead(nn.Module):
    """Linear classifier over the encoded frames (K = symbols + blank) with the CTC loss.

    Log-probabilities are computed in fp32 even under autocast: CTC's forward-backward sums
    many small probabilities and loses them in half precision. ``zero_infinity``: a label longer
    than its frames has an infinite loss; the recognizer leaves such samples out of the mean, and
    zeroing them here keeps their backward pass from writing NaN into the batch's gradients.
    """

    def __init__(self, in_features: int, num_classes: int, blank: int, zero_infinity: bool = True):
        super().__init__()
        self.classifier = nn.Linear(in_features, num_classes)
        self.blank = blank
        self.zero_infinity = zero_infinity

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        return self.classifier(sequence).float().log_softmax(-1)

    def loss(self, log_probs: torch.Tensor, frame_lengths: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor) -> torch.Tensor:
        """Per-sample negative log-likelihood; ``targets`` are concatenated, ``frame_lengths`` per sample."""
        with fp32_here(log_probs.device.type):
            return F.ctc_loss(log_probs.float().transpose(0, 1), targets, frame_lengths, target_lengths,
                              blank=self.blank, reduction="none", zero_infinity=self.zero_infinity)


def fp32_here(device_type: str):
    """Autocast off on ``device_type``; nothing to turn off on a device autocast does not know."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
