_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Sequence encoder: none (each frame read from its convolutional features) -- what recurrence adds.
model = dict(sequence_encoder=dict(_delete_=True, type="Identity"))
