"""Best-path decoding that also reports how many frames the text used."""
from ocrframe import Charset, Prediction, hookimpl


class FrameCountingDecoder:
    def __init__(self, charset: Charset):
        self.charset = charset

    def decode(self, log_probs, frame_lengths) -> list:
        best_scores, best = log_probs.max(-1)
        predictions = []
        for path, scores, length in zip(best.tolist(), best_scores.tolist(), frame_lengths.tolist()):
            path = path[:length]
            symbols = [c for t, c in enumerate(path) if c != self.charset.blank and (t == 0 or c != path[t - 1])]
            predictions.append(Prediction(self.charset.decode(symbols), sum(scores[:length]), dict(frames=length)))
        return predictions


@hookimpl
def ocrframe_register(slots):
    slots.decoder.register_module(module=FrameCountingDecoder)
