"""Entry point module: tells ocrframe what this package provides."""
from ocrframe import hookimpl

from ocrframe_lstm.encoders import LSTM, BiLSTM, Identity


@hookimpl
def ocrframe_register(slots):
    for encoder in (BiLSTM, LSTM, Identity):
        slots.sequence_encoder.register_module(module=encoder)
