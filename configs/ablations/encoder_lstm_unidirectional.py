_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Sequence encoder: two unidirectional LSTMs instead of BiLSTMs -- what right-to-left context adds.
model = dict(sequence_encoder=dict(type="LSTM"))
