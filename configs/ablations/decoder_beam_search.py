_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Decoder: CTC prefix beam search (10 beams) instead of greedy best path -- what a wider search finds.
model = dict(decoder=dict(_delete_=True, type="BeamSearchDecoder", beam_width=10))
