# A small, fast recognizer built from this plugin's components and ocrframe's own:
# TinyConv (this plugin) -> BiLSTM (ocrframe-lstm) -> CTC head (ocrframe-ctc) -> ConfidenceDecoder
# (this plugin), trained on ocrframe's embedded synthetic words.
#
#   ocrframe train configs/tinyconv_ctc.py
#   ocrframe read work_dirs/tinyconv_ctc/best_*.pth word.png --json   # per-character confidences
default_scope = "ocrframe"

charset = dict(symbols="0123456789abcdefghijklmnopqrstuvwxyz", case="lower", blank="first")
model = dict(
    type="Recognizer",
    charset=charset,
    backbone=dict(type="TinyConv", channels=32, out_channels=128),
    sequence_encoder=dict(type="BiLSTM", hidden_size=128, num_layers=2),
    head=dict(type="CTCHead"),
    decoder=dict(type="ConfidenceDecoder", min_confidence=0.5),
)

train_pipeline = [dict(type="Grayscale"), dict(type="Resize", height=32, width=100), dict(type="ToTensor")]
test_pipeline = [dict(type="Grayscale"), dict(type="Resize", height=32, width=None, min_width=100),
                 dict(type="ToTensor")]

train_dataloader = dict(
    batch_size=64, num_workers=2, persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="ocrframe.pad_collate"),
    dataset=dict(type="SynthWordDataset", charset=charset, pipeline=train_pipeline, seed=0),
)
val_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="ocrframe.pad_collate"),
    dataset=dict(type="SynthWordDataset", charset=charset, pipeline=test_pipeline, length=500, seed=1),
)
val_evaluator = dict(type="WordMetric")

train_cfg = dict(type="IterBasedTrainLoop", max_iters=2000, val_interval=500)
val_cfg = dict(type="ValLoop")
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="Adam", lr=1e-3), clip_grad=dict(max_norm=5.0))
param_scheduler = [dict(type="CosineAnnealingLR", eta_min=1e-5, by_epoch=False, begin=0, end=2000)]

default_hooks = dict(
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=500, save_best="word_acc", rule="greater"),
)
custom_hooks = [dict(type="CurvePlotHook")]
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend="gloo"))
