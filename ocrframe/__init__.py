"""ocrframe: a plugin-based, registry-driven OCR framework. Reference model: CRNN."""
from ocrframe.charset import Charset
from ocrframe.inference import Reader
from ocrframe.model import Prediction, Recognizer
from ocrframe.plugins import hookimpl, load_plugins
from ocrframe.registry import SLOTS, Slots

__version__ = "0.1.0"
__all__ = ["Charset", "Prediction", "Reader", "Recognizer", "SLOTS", "Slots", "hookimpl", "load_plugins"]
