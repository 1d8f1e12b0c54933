_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Backbone: VGG with batch norm after every conv, not only conv5 and conv6 -- whether more helps.
model = dict(backbone=dict(batch_norm="all"))
