_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Backbone: a small ResNet (plugins/ocrframe-resnet) instead of VGG -- residual blocks vs plain convs.
model = dict(backbone=dict(_delete_=True, type="SmallResNet"))
