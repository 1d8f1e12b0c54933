"""The CRNN paper's VGG-style backbone as an ocrframe plugin."""
from ocrframe_vgg.vgg import VGG

__all__ = ["VGG"]
