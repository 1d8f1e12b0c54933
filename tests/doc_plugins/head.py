"""A CTC head with a hidden layer."""
import torch
import torch.nn.functional as F
from torch import nn

from ocrframe import hookimpl


class TwoLayerCTCHead(nn.Module):
    def __init__(self, in_features: int, num_classes: int, blank: int, hidden: int = 32):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        self.blank = blank

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        return self.layers(sequence).log_softmax(-1)

    def loss(self, log_probs, frame_lengths, targets, target_lengths) -> torch.Tensor:
        return F.ctc_loss(log_probs.transpose(0, 1), targets, frame_lengths, target_lengths, blank=self.blank,
                          reduction="none", zero_infinity=True)


@hookimpl
def ocrframe_register(slots):
    slots.head.register_module(module=TwoLayerCTCHead)
