"""Sequence encoders (CRNN's recurrent layers) as an ocrframe plugin."""
from ocrframe_lstm.encoders import LSTM, BiLSTM, Identity

__all__ = ["BiLSTM", "LSTM", "Identity"]
