"""Reading images with a trained model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from ocrframe.checkpoint import load_checkpoint
from ocrframe.data.transforms import Compose, pad_collate
from ocrframe.model import Prediction
from ocrframe.registry import MODELS


class Reader:
    """A recognizer in eval mode with its test pipeline: ``Reader.from_checkpoint(path).read(images)``."""

    def __init__(self, model, pipeline, batch_size: int = 64):
        self.model = model.eval()
        self.pipeline = Compose(pipeline)
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, config: str | None = None, device: str = "cpu") -> "Reader":
        state = load_checkpoint(checkpoint)
        if config is not None:
            cfg = Config.fromfile(config)
        elif "cfg" in state.get("meta", {}):
            cfg = Config.fromstring(state["meta"]["cfg"], file_format=".py")
        else:
            raise ValueError(f"{checkpoint} stores no config; pass the config it was trained with (--config)")
        model = MODELS.build(cfg.model)
        model.load_state_dict(state.get("state_dict", state))
        return cls(model.to(device), cfg.test_pipeline)

    @torch.inference_mode()
    def read(self, images) -> list[Prediction]:
        """Images as paths, PIL images or HxW(xC) uint8 arrays -> one Prediction each."""
        samples = [self.pipeline(dict(image=_as_pil(image), text="", key=str(i))) for i, image in enumerate(images)]
        predictions = []
        for start in range(0, len(samples), self.batch_size):
            batch = pad_collate(samples[start:start + self.batch_size])
            device = next(self.model.parameters()).device
            outputs = self.model(batch["inputs"].to(device), batch["data_samples"], mode="predict")
            predictions += [Prediction(o["pred"], o["score"]) for o in outputs]
        return predictions


def _as_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        return Image.fromarray(image).convert("RGB")
    path = Path(image)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    return Image.open(path).convert("RGB")
