"""The recognizer: CRNN's stages wired together, each one a pluggable component.

    images (N, C, 32, W)
      -> backbone              convolutional layers            (N, D, 1, T)
      -> map-to-sequence       column t of the map is frame t  (N, T, D)
      -> sequence encoder      recurrent layers                (N, T, E)
      -> head                  per-frame class log-probs       (N, T, K)  + CTC loss in training
      -> decoder               transcription                   list[Prediction]

Each stage gets its input size from the one before, so swapping a component is one config line.

The stages are pluggable, but the recognizer is built for CTC, as CRNN is: a head emits per-frame
classes including a blank (``Charset.blank``), and the core reads its output as CTC does.
``Recognizer.loss`` leaves out labels that CTC cannot fit in the frames (one frame per symbol, one
more between repeats), the alignment loss targets the blank between characters, and the Reader's
character positions come from the best CTC path (``decoders.ctc_alignment``). Another kind of
transcription (attention, say) would need these three to change; the head, the CTC loss itself
and the decoders are the CTC plugin's.
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

    @classmethod
    def unread(cls) -> "Prediction":
        """What an image that could not be read gets: no text, no confidence (an error in the metrics)."""
        return cls("", float("-inf"))


def takes_per_image_lexicons(decoder) -> bool:
    """Whether a decoder (class or instance) accepts ``decode(..., lexicons=[one word list per image])``."""
    return "lexicons" in inspect.signature(decoder.decode).parameters


def accepted_arguments(component: dict, registry, defaults: dict) -> dict:
    """The ``defaults`` that the component's class takes as arguments. A schedule can thus set, say,
    ``batch_norm`` for backbones that have it, as a default: a config that sets it keeps its value,
    and a backbone without it is built as it is."""
    cls = component["type"] if isinstance(component["type"], type) else registry.get(component["type"])
    parameters = inspect.signature(cls).parameters if cls is not None else {}
    return {k: v for k, v in defaults.items() if k in parameters}


class Recognizer(BaseModel):
    """The CRNN stages built from their configs (see the module docstring).

    ``alignment_loss``: weight of the frame-level alignment loss on data that knows where its
    characters are (see :meth:`alignment_loss`); 0, the default, trains as the paper does.
    ``backbone_defaults``: arguments for the backbone where its class takes them and its config
    does not set them (the CPU recipe's batch norm after every convolution).
    """

    def __init__(self, charset: dict, backbone: dict, sequence_encoder: dict, head: dict, decoder: dict,
                 in_channels: int = 1, channels_last: bool = True, alignment_loss: float = 0.0,
                 backbone_defaults: dict | None = None, data_preprocessor: dict | None = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.charset = Charset.build(charset)
        self.in_channels = backbone.get("in_channels", in_channels)  # a backbone config may set its own
        self.backbone = BACKBONES.build(backbone, default_args=dict(
            in_channels=self.in_channels, **accepted_arguments(backbone, BACKBONES, backbone_defaults or {})))
        self.sequence_encoder = SEQUENCE_ENCODERS.build(
            sequence_encoder, default_args=dict(input_size=self.backbone.out_channels))
        self.head = HEADS.build(head, default_args=dict(
            in_features=self.sequence_encoder.output_size,
            num_classes=self.charset.num_classes, blank=self.charset.blank))
        self.decoder = DECODERS.build(decoder, default_args=dict(charset=self.charset))
        self.skipped_labels = 0  # training labels the CTC loss could not use (see loss())
        # Weight of the frame-level alignment loss (see alignment_loss()); 0 trains as the paper does.
        # AlignmentLossDecay lowers it during training. The loss reads the backbone's frames through
        # a linear probe of their own, used in training only: through the recurrent layers, which
        # learn slowly from scratch, it would teach the backbone several times slower.
        self.alignment_weight = float(alignment_loss)
        if self.alignment_weight > 0:
            self.alignment_probe = torch.nn.Linear(self.backbone.out_channels, self.charset.num_classes)
        # Share of the sequence encoder's gradient (CTC's) that reaches the backbone in training, on
        # images the alignment loss teaches (see share_ctc_gradient()); 1 trains as the paper does.
        # AlignmentLossDecay(handover=True) raises it from 0 to 1 as the alignment loss fades, so the
        # probe alone shapes the backbone's first features.
        self.backbone_ctc_gradient = 1.0
        # channels_last lets oneDNN pick its fast convolution kernels (see docs/benchmarks.md).
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def frame_lengths(self, widths, at_most: int | None = None) -> torch.Tensor:
        """Frames each image yields before padding, so padded columns never reach CTC; ``at_most``
        (the frames the network gave the padded batch) bounds them, should a backbone's
        ``num_frames`` round up.

        Computed where the widths are, in one tensor operation: ``num_frames`` is integer
        arithmetic, which works on a tensor of widths as on one int. A backbone whose ``num_frames``
        takes Python ints only costs one copy of the widths to the host."""
        widths = torch.as_tensor(widths)
        try:
            frames = self.backbone.num_frames(widths)
        except (TypeError, ValueError, RuntimeError):
            frames = None
        if not (isinstance(frames, torch.Tensor) and frames.shape == widths.shape):
            frames = torch.tensor([self.backbone.num_frames(w) for w in widths.tolist()], device=widths.device)
        return frames.long() if at_most is None else frames.long().clamp(max=at_most)

    def forward(self, inputs: torch.Tensor, data_samples: dict | None = None, mode: str = "tensor"):
        if inputs.dim() != 4 or inputs.shape[1] != self.in_channels:
            raise ValueError(f"the recognizer takes images (N, {self.in_channels}, H, W) (in_channels={self.in_channels}), "
                             f"got {tuple(inputs.shape)}: does the pipeline make them grayscale (Grayscale) or the "
                             "model take colour (model.in_channels=3)?")
        finite = statistics = None
        if mode == "loss":
            # Images with non-finite pixels run through the network as zeros, so that every rank runs
            # the same collectives (SyncBatchNorm) and no rank waits for one that returned early; the
            # loss is then NaN (the step is skipped) and batch norm's statistics are put back.
            finite = torch.isfinite(inputs).flatten(1).all(1)
            inputs = torch.where(finite[:, None, None, None], inputs, 0.0)
            statistics = [(s, s.clone()) for s in self.batch_norm_statistics()]
        data_samples = data_samples or {}
        widths = data_samples.get("widths")
        inputs = inputs.contiguous(memory_format=self.memory_format)
        if widths is not None and not self.training and self.reads_padded_images_alone:
            # evaluation and reading: each image of a padded batch is read as it is alone (in training
            # this would cost a device sync per step, and training batches of text have one width)
            features = self.backbone(inputs, widths=widths)
        else:
            features = self.backbone(inputs)                                 # (N, D, 1, T)
        frames = features.squeeze(2).transpose(1, 2)     # (N, T, D): map-to-sequence
        lengths = None
        if widths is not None:  # in a padded batch, the frames of each image (tensor mode too)
            lengths = self.frame_lengths(widths, at_most=frames.shape[1]).to(frames.device)
        encoder_input, taught = frames, None
        if mode == "loss" and self.alignment_weight > 0 and data_samples.get("char_x") is not None:
            targets = [self.charset.encode(t) for t in data_samples["texts"]]
            taught = with_positions(targets, data_samples["char_x"])  # the images the alignment loss teaches
            if self.backbone_ctc_gradient != 1.0:
                encoder_input = self.share_ctc_gradient(frames, taught)
        sequence = self.encode(encoder_input, lengths)   # (N, T, E)
        log_probs = self.head(sequence)                  # (N, T, K)
        if mode == "tensor":
            return log_probs
        if lengths is None:
            lengths = self.frame_lengths(torch.full((len(inputs),), inputs.shape[-1], device=inputs.device),
                                         at_most=log_probs.shape[1]).to(log_probs.device)
        if mode == "loss":
            all_finite = finite.all()
            for current, before in statistics:  # through .data: backward does not read them in training
                current.data.copy_(torch.where(all_finite, current, before))
            losses = self.loss(log_probs, lengths, data_samples, finite)
            if taught is not None:
                probe = self.alignment_probe(frames).float().log_softmax(-1)
                losses["loss_align"] = self.alignment_weight * self.alignment_loss(
                    probe, lengths, targets, data_samples["char_x"])
            return losses
        if mode == "predict":
            predictions = self.decoder.decode(log_probs.float(), lengths, **self.lexicon_kwargs(data_samples))
            unknown = [None] * len(predictions)
            outputs = []
            for p, gt, key, reason in zip(predictions, data_samples.get("texts", unknown),
                                          data_samples.get("keys", unknown), data_samples.get("unreadable", unknown)):
                if reason:  # a blank stood in for an unreadable image: nothing was read
                    p = Prediction.unread()
                outputs.append(dict(pred=p.text, score=p.score, gt=gt, key=key, **p.extras,
                                    **({"unreadable": reason} if reason else {})))
            return outputs
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', not {mode!r}")

    def share_ctc_gradient(self, frames: torch.Tensor, taught: list[bool]) -> torch.Tensor:
        """The frames unchanged, but only ``backbone_ctc_gradient`` of the gradient that comes back
        through them reaches the backbone -- for the images the alignment loss teaches (``taught``,
        see :func:`with_positions`); the others' backbone learns from CTC in full, as nothing else
        teaches it."""
        share = torch.where(torch.tensor(taught, device=frames.device), self.backbone_ctc_gradient, 1.0)
        share = share.to(frames.dtype)[:, None, None]
        return frames * share + frames.detach() * (1.0 - share)

    def encode(self, frames: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The sequence encoder's output; ``lengths`` (frames per image) go to an encoder whose
        ``forward`` takes them, so that it can leave the padding of a batch out."""
        if lengths is not None and self._encoder_takes_lengths:
            return self.sequence_encoder(frames, lengths=lengths)
        return self.sequence_encoder(frames)

    @property
    def _encoder_takes_lengths(self) -> bool:
        return "lengths" in inspect.signature(self.sequence_encoder.forward).parameters

    @property
    def reads_padded_images_alone(self) -> bool:
        """Whether, given each image's width, the backbone reads a padded batch's images as it reads
        them alone (``ocrframe.masked_forward``); other backbones see the padding."""
        return "widths" in inspect.signature(self.backbone.forward).parameters

    def batch_norm_statistics(self) -> list[torch.Tensor]:
        """The running statistics of every batch norm layer (SyncBatchNorm included)."""
        return [buffer for module in self.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
                for buffer in (module.running_mean, module.running_var, module.num_batches_tracked)
                if buffer is not None]

    def lexicon_kwargs(self, data_samples: dict) -> dict:
        """The images' own lexicons (a dataset's ``lexicon`` field), for a decoder whose
        ``decode`` takes ``lexicons``, when every image of the batch has one."""
        lexicons = data_samples.get("lexicons")
        if lexicons is None or any(words is None for words in lexicons):
            return {}
        if not takes_per_image_lexicons(self.decoder):
            return {}
        return dict(lexicons=lexicons)

    def loss(self, log_probs, lengths, data_samples, finite_inputs: torch.Tensor | None = None) -> dict:
        """Mean CTC loss over the usable samples; ``finite_inputs`` (N,) marks images whose pixels
        are all finite (the loss is NaN otherwise, so the step is skipped). Every tensor is made on
        the device of ``log_probs``, and the host reads one small tensor of flags per step."""
        device = log_probs.device
        keys = data_samples.get("keys", [])
        targets = [self.charset.encode(t) for t in data_samples["texts"]]
        # CTC needs one frame per symbol plus one between repeated symbols; samples that do not
        # fit would give an infinite loss. They are left out of the mean and reported by key.
        needed = torch.tensor([len(t) + sum(a == b for a, b in zip(t, t[1:])) for t in targets], device=device)
        usable = (needed <= lengths) & (needed > 0)
        flat = torch.tensor([i for t in targets for i in t], dtype=torch.long, device=device)
        target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long, device=device)
        per_sample = self.head.loss(log_probs, lengths, flat, target_lengths)
        if finite_inputs is None:
            finite_inputs = torch.ones_like(usable)
        # A non-finite loss (overflow, diverged weights) is reported by key and kept in the total,
        # which the optimizer wrapper then refuses to step on (ocrframe/optim.py).
        broken = usable & ~torch.isfinite(per_sample.detach())
        flags = torch.stack([(~finite_inputs).any(), (~usable).any(), broken.any()]).cpu().tolist()
        if any(flags):
            self.report_samples(keys, flags, finite_inputs, usable, broken)
        per_sample = torch.where(usable, per_sample, torch.zeros_like(per_sample))  # not inf * 0 = NaN
        loss = per_sample.sum() / usable.sum().clamp(min=1)
        return {"loss": torch.where(finite_inputs.all(), loss, torch.full_like(loss, float("nan")))}

    def report_samples(self, keys, flags, finite_inputs, usable, broken) -> None:
        """Log the keys behind the flags the loss raised (rare: the masks are read only then)."""
        bad_pixels, unusable, non_finite = flags
        if bad_pixels:
            bad = [k for k, ok in zip(keys, finite_inputs.tolist()) if not ok]
            logger.warning("non-finite pixels in %d image(s) of the batch: %s", int((~finite_inputs).sum()), bad)
        if unusable:
            left_out = int((~usable).sum())
            self.skipped_labels += left_out
            logger.warning("left %d sample(s) out of the CTC loss (label empty or longer than the frames the image "
                           "gives): %s; %d so far", left_out, [k for k, ok in zip(keys, usable.tolist()) if not ok],
                           self.skipped_labels)
        if non_finite:
            logger.warning("non-finite CTC loss for %d sample(s): %s", int(broken.sum()),
                           [k for k, bad in zip(keys, broken.tolist()) if bad])

    def alignment_loss(self, log_probs, lengths, targets, char_x) -> torch.Tensor:
        """Frame-level cross-entropy where the data says where each character is drawn (synthetic
        data knows): the frame over a character's centre should predict it, frames more than one
        frame away from every centre should predict blank, the rest are left to CTC. This is the
        peaky alignment CTC converges to, given from the first step, so training skips CTC's initial
        plateau (the network emitting only blanks); see docs/benchmarks.md. Frames are taken to
        cover equal shares of the image width; images without positions for each character of their
        label are left out (:func:`with_positions`)."""
        frame_targets = torch.full(log_probs.shape[:2], -100, dtype=torch.long)
        for i, (xs, label, n, ok) in enumerate(zip(char_x, targets, lengths.tolist(), with_positions(targets, char_x))):
            if not ok or n == 0:
                continue
            frames = [min(n - 1, int(x * n)) for x in xs]
            row = frame_targets[i]
            row[:n] = self.charset.blank
            for f in frames:  # alignment is approximate: the centre's neighbours are left to CTC
                row[max(0, f - 1):f + 2] = -100
            for f, symbol in zip(frames, label):
                if frames.count(f) == 1:  # two centres in one frame: CTC sorts them out
                    row[f] = symbol
        frame_targets = frame_targets.to(log_probs.device).flatten()
        nll = -log_probs.flatten(0, 1).gather(1, frame_targets.clamp(min=0)[:, None])[:, 0]
        # Blank frames outnumber character frames several times; averaged together, predicting blank
        # everywhere would be a good start -- the plateau again. Each kind is averaged on its own.
        loss = log_probs.new_zeros(())
        for kind in (frame_targets == self.charset.blank, (frame_targets >= 0) & (frame_targets != self.charset.blank)):
            if kind.any():
                loss = loss + nll[kind].mean()
        return loss


def with_positions(targets: list[list[int]], char_x: list) -> list[bool]:
    """Per image, whether the data says where each character of its label is drawn -- the images
    the alignment loss can teach (synthetic data knows the positions; an LMDB's images do not)."""
    return [xs is not None and len(xs) == len(label) for xs, label in zip(char_x, targets)]
