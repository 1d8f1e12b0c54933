_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# CPU recipe trial (not adopted): easy samples in batches of their own, resized to 64 px wide instead of 100.
_easy = [dict(type="Grayscale"), dict(type="Resize", height=32, width=64), dict(type="ToTensor")]
schedules = dict(cpu=dict(train_dataloader=dict(
    sampler=dict(type="LazyInfiniteSampler", shuffle=False),
    dataset=dict(easy_group=16, easy_pipeline=_easy))))
