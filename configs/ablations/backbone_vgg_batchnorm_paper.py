_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Backbone: VGG with the paper's batch norm (after conv5 and conv6 only) in the CPU schedules, which put it after every conv.
model = dict(backbone=dict(batch_norm="paper"))
