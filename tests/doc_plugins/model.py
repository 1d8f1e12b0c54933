"""A model: a backbone from the backbone slot, then one classifier per frame, without recurrence."""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from ocrframe import SLOTS, Charset, hookimpl


class FrameClassifier(BaseModel):
    def __init__(self, charset: dict, backbone: dict):
        super().__init__()
        self.charset = Charset(**charset)
        self.backbone = SLOTS.backbone.build(backbone, default_args=dict(in_channels=1))
        self.classifier = torch.nn.Linear(self.backbone.out_channels, self.charset.num_classes)

    def forward(self, inputs, data_samples=None, mode="tensor"):
        log_probs = self.classifier(self.backbone(inputs).squeeze(2).transpose(1, 2)).log_softmax(-1)
        if mode == "tensor":
            return log_probs
        widths = data_samples["widths"]
        lengths = self.backbone.num_frames(widths).clamp(max=log_probs.shape[1])
        if mode == "loss":
            targets = [torch.tensor(self.charset.encode(t)) for t in data_samples["texts"]]
            loss = F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets), lengths,
                              torch.tensor([len(t) for t in targets]), blank=self.charset.blank, zero_infinity=True)
            return dict(loss=loss)
        best = log_probs.argmax(-1).tolist()
        out = []
        for path, length, gt, key in zip(best, lengths.tolist(), data_samples["texts"], data_samples["keys"]):
            path = path[:length]
            symbols = [c for t, c in enumerate(path) if c != self.charset.blank and (t == 0 or c != path[t - 1])]
            out.append(dict(pred=self.charset.decode(symbols), score=0.0, gt=gt, key=key))
        return out


@hookimpl
def ocrframe_register(slots):
    slots.model.register_module(module=FrameClassifier)
