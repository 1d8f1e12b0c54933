"""Sample transforms: each takes and returns a sample dict whose ``image`` is a PIL image until
``ToTensor`` turns it into a normalised (C, H, W) tensor and records its ``width``."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


class Compose:
    """Builds the transforms of a pipeline config and applies them in order."""

    def __init__(self, transforms=()):
        from ocrframe.registry import TRANSFORMS

        self.transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in transforms]

    def __call__(self, sample: dict) -> dict:
        for transform in self.transforms:
            sample = transform(sample)
        return sample


class Grayscale:
    """RGB -> one channel (the paper's input)."""

    def __call__(self, sample: dict) -> dict:
        if sample["image"].mode != "L":  # datasets decode to L directly for a pipeline starting here
            sample["image"] = sample["image"].convert("L")
        return sample


class Resize:
    """Resize to ``height``. With ``width`` set, to exactly that width (training: the paper's
    100x32); with ``width=None``, keep the aspect ratio, clamped to [min_width, max_width]
    (evaluation: the paper keeps the ratio with a width of at least 100). ``max_width`` bounds
    the memory one image takes (4096 px at height 32: a line of ~100 characters); an image
    squeezed to it says so in ``sample["extras"]["squeezed_from"]`` (its width kept at this
    height), which the Reader reports: squeezed glyphs are misread."""

    def __init__(self, height: int = 32, width: int | None = 100, min_width: int = 100, max_width: int = 4096):
        self.height, self.width, self.min_width, self.max_width = height, width, min_width, max_width

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        width = self.width
        if width is None:
            natural = round(image.width * self.height / max(image.height, 1))
            width = min(max(natural, self.min_width), self.max_width)
            if natural > width:
                sample.setdefault("extras", {})["squeezed_from"] = natural
        if image.size != (width, self.height):
            image = image.resize((width, self.height), Image.BILINEAR)
        sample["image"] = image
        return sample


class ToTensor:
    """PIL image -> float tensor (C, H, W) normalised as (x / 255 - mean) / std."""

    def __init__(self, mean: float = 0.5, std: float = 0.5):
        self.mean, self.std = mean, std

    def __call__(self, sample: dict) -> dict:
        array = np.asarray(sample["image"], dtype=np.float32)
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        # (x / 255 - mean) / std as one multiply and one subtract, in place
        array *= 1.0 / (255.0 * self.std)
        array -= self.mean / self.std
        sample["image"] = torch.from_numpy(np.ascontiguousarray(array))
        sample["width"] = sample["image"].shape[-1]
        return sample


def pad_collate(samples: list[dict]) -> dict:
    """Batch samples of equal height and any width: right-pad images to the widest, keep each
    true width so the recognizer can ignore the frames of the padding."""
    images = [s["image"] for s in samples]
    height, width = images[0].shape[-2], max(i.shape[-1] for i in images)
    if all(image.shape[-1] == width for image in images):  # training: one width, nothing to pad
        out = None
        if torch.utils.data.get_worker_info() is not None:  # as default_collate: straight into shared memory
            storage = images[0]._typed_storage()._new_shared(len(images) * images[0].numel(), device="cpu")
            out = images[0].new(storage).resize_(len(images), *images[0].shape)
        batch = torch.stack(images, out=out)
    else:
        batch = images[0].new_zeros((len(images), images[0].shape[0], height, width))
        for i, image in enumerate(images):
            batch[i, :, :, : image.shape[-1]] = image
    data_samples = dict(
        texts=[s["text"] for s in samples],
        keys=[s["key"] for s in samples],
        widths=torch.tensor([s["width"] for s in samples]),
    )
    if any("lexicon" in s for s in samples):
        data_samples["lexicons"] = [s.get("lexicon") for s in samples]
    if any("char_x" in s for s in samples):  # character positions, as fractions of each image's own width
        data_samples["char_x"] = [s.get("char_x") for s in samples]
    if any(s.get("unreadable") for s in samples):  # evaluation: see OcrDataset's on_bad_sample="mark"
        data_samples["unreadable"] = [s.get("unreadable") for s in samples]
    return dict(inputs=batch, data_samples=data_samples)
