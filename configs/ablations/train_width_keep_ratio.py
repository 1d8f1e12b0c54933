_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Training width: keep the aspect ratio (>= 100 px, as evaluation does), not 100 px -- undistorted shapes.
train_pipeline = [dict(type="Grayscale"), dict(type="Resize", height=32, width=None, min_width=100),
                  dict(type="ToTensor")]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
