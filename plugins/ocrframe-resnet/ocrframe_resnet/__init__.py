"""A small ResNet-style backbone as an ocrframe plugin."""
from ocrframe_resnet.resnet import SmallResNet

__all__ = ["SmallResNet"]
