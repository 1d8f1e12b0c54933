# A small, fast recognizer built from this plugin's components and ocrframe's own:
# TinyConv (this plugin) -> BiLSTM (ocrframe-lstm) -> CTC head (ocrframe-ctc) -> ConfidenceDecoder
# (this plugin). Everything else is the paper config's, inherited by its stable name: the charset
# (unknown="skip"), the embedded synthetic words, AtomicCheckpointHook, and its schedules --
# `ocrframe train` picks `schedules['cpu']` (about 30 minutes) when there is no GPU (`cpu_fp32`,
# batch 8, on a CPU without fast bf16 kernels).
#
#   ocrframe train configs/tinyconv_ctc.py
#   ocrframe read work_dirs/tinyconv_ctc/best_*.pth word.png --json   # per-character confidences
_base_ = ["ocrframe::crnn_vgg_bilstm_ctc.py"]

model = dict(
    backbone=dict(_delete_=True, type="TinyConv", channels=32, out_channels=128),
    sequence_encoder=dict(hidden_size=128),
    decoder=dict(_delete_=True, type="ConfidenceDecoder", min_confidence=0.5),
)
