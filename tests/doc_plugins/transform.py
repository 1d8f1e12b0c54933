"""A transform: white text on black becomes black on white (PIL image, before ToTensor)."""
from PIL import ImageOps, ImageStat

from ocrframe import hookimpl


class DarkToLight:
    def __init__(self, threshold: int = 128):
        self.threshold = threshold

    def __call__(self, sample: dict) -> dict:
        if ImageStat.Stat(sample["image"].convert("L")).mean[0] < self.threshold:
            sample["image"] = ImageOps.invert(sample["image"].convert("RGB"))
        return sample


@hookimpl
def ocrframe_register(slots):
    slots.transform.register_module(module=DarkToLight)
