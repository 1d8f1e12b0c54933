_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Sequence encoder: one BiLSTM instead of two -- how much the second recurrent layer adds.
model = dict(sequence_encoder=dict(num_layers=1))
