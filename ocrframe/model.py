"""The recognizer: CRNN's stages wired together, each one a pluggable component.

    images (N, C, 32, W)
      -> backbone              convolutional layers            (N, D, 1, T)
      -> map-to-sequence       column t of the map is frame t  (N, T, D)
      -> sequence encoder      recurrent layers                (N, T, E)
      -> head                  per-frame class log-probs       (N, T, K)  + CTC loss in training
      -> decoder               transcription                   list[Prediction]

Each stage gets its input size from the one before, so swapping a component is one config line.
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field

import torch
from mmengine.model import BaseModel

from ocrframe.charset import Charset
from ocrframe.registry import BACKBONES, DECODERS, HEADS, SEQUENCE_ENCODERS

logger = logging.getLogger("ocrframe.model")


@dataclass
class Prediction:
    """One transcription: text, its log-probability under the model, and decoder extras."""

    text: str
    score: float
    extras: dict = field(default_factory=dict)


def takes_per_image_lexicons(decoder) -> bool:
    """Whether a decoder (class or instance) accepts ``decode(..., lexicons=[one word list per image])``."""
    return "lexicons" in inspect.signature(decoder.decode).parameters


class Recognizer(BaseModel):
    def __init__(self, charset: dict, backbone: dict, sequence_encoder: dict, head: dict, decoder: dict,
                 in_channels: int = 1, channels_last: bool = True, data_preprocessor: dict | None = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.charset = Charset.build(charset)
        self.in_channels = in_channels
        self.backbone = BACKBONES.build(backbone, default_args=dict(in_channels=in_channels))
        self.sequence_encoder = SEQUENCE_ENCODERS.build(
            sequence_encoder, default_args=dict(input_size=self.backbone.out_channels))
        self.head = HEADS.build(head, default_args=dict(
            in_features=self.sequence_encoder.output_size,
            num_classes=self.charset.num_classes, blank=self.charset.blank))
        self.decoder = DECODERS.build(decoder, default_args=dict(charset=self.charset))
        self.skipped_labels = 0  # training labels the CTC loss could not use (see loss())
        # channels_last lets oneDNN pick its fast convolution kernels (see docs/benchmarks.md).
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def frame_lengths(self, widths: torch.Tensor) -> torch.Tensor:
        """Frames each image yields before padding, so padded columns never reach CTC."""
        return torch.tensor([self.backbone.num_frames(int(w)) for w in widths], dtype=torch.long)

    def forward(self, inputs: torch.Tensor, data_samples: dict | None = None, mode: str = "tensor"):
        if mode == "loss" and not torch.isfinite(inputs).all():
            return self.non_finite_inputs(inputs, data_samples or {})
        features = self.backbone(inputs.contiguous(memory_format=self.memory_format))  # (N, D, 1, T)
        sequence = features.squeeze(2).transpose(1, 2)   # (N, T, D): map-to-sequence
        sequence = self.sequence_encoder(sequence)       # (N, T, E)
        log_probs = self.head(sequence)                  # (N, T, K)
        if mode == "tensor":
            return log_probs
        data_samples = data_samples or {}
        widths = data_samples.get("widths", torch.full((len(inputs),), inputs.shape[-1]))
        lengths = self.frame_lengths(widths).clamp(max=log_probs.shape[1])
        if mode == "loss":
            return self.loss(log_probs, lengths, data_samples)
        if mode == "predict":
            predictions = self.decoder.decode(log_probs.float(), lengths, **self.lexicon_kwargs(data_samples))
            unknown = [None] * len(predictions)
            outputs = [dict(pred=p.text, score=p.score, gt=gt, key=key, **p.extras)
                       for p, gt, key in zip(predictions, data_samples.get("texts", unknown),
                                             data_samples.get("keys", unknown))]
            for out, reason in zip(outputs, data_samples.get("unreadable", unknown)):
                if reason:  # a blank stood in for an unreadable image: nothing was read
                    out.update(pred="", score=float("-inf"), unreadable=reason)
            return outputs
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', not {mode!r}")

    def non_finite_inputs(self, inputs: torch.Tensor, data_samples: dict) -> dict:
        """A NaN loss, without running the network: NaN pixels would also poison batch norm's
        running statistics, which no skipped optimizer step undoes."""
        bad = ~torch.isfinite(inputs).flatten(1).all(1)
        keys = [k for k, b in zip(data_samples.get("keys", []), bad.tolist()) if b]
        logger.warning("non-finite pixels in %d image(s) of the batch: %s", int(bad.sum()), keys)
        return {"loss": inputs.new_tensor(float("nan"))}

    def lexicon_kwargs(self, data_samples: dict) -> dict:
        """The images' own lexicons (a dataset's ``lexicon`` field), for a decoder whose
        ``decode`` takes ``lexicons``, when every image of the batch has one."""
        lexicons = data_samples.get("lexicons")
        if lexicons is None or any(words is None for words in lexicons):
            return {}
        if not takes_per_image_lexicons(self.decoder):
            return {}
        return dict(lexicons=lexicons)

    def loss(self, log_probs, lengths, data_samples) -> dict:
        targets = [self.charset.encode(t) for t in data_samples["texts"]]
        # CTC needs one frame per symbol plus one between repeated symbols; samples that do not
        # fit would give an infinite loss. They are left out of the mean and reported by key.
        needed = torch.tensor([len(t) + sum(a == b for a, b in zip(t, t[1:])) for t in targets])
        usable = (needed <= lengths) & (needed > 0)
        if not usable.all():
            keys = [k for k, ok in zip(data_samples.get("keys", []), usable.tolist()) if not ok]
            self.skipped_labels += int((~usable).sum())
            logger.warning("left %d sample(s) out of the CTC loss (label empty or longer than the frames "
                           "the image gives): %s; %d so far", int((~usable).sum()), keys, self.skipped_labels)
        flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
        target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
        per_sample = self.head.loss(log_probs, lengths, flat, target_lengths)
        # A non-finite loss (NaN pixels, overflow, diverged weights) is reported by key and kept in
        # the total, which the optimizer wrapper then refuses to step on (ocrframe/optim.py).
        broken = usable & ~torch.isfinite(per_sample.detach())
        if broken.any():
            keys = [k for k, bad in zip(data_samples.get("keys", []), broken.tolist()) if bad]
            logger.warning("non-finite CTC loss for %d sample(s): %s", int(broken.sum()), keys)
        per_sample = torch.where(usable, per_sample, torch.zeros_like(per_sample))  # not inf * 0 = NaN
        return {"loss": per_sample.sum() / usable.sum().clamp(min=1)}
