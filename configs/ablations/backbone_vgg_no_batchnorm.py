_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Backbone: VGG without the paper's two batch norm layers (after conv5, conv6) -- what they add.
model = dict(backbone=dict(batch_norm="none"))
