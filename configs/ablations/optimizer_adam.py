_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Optimizer: Adam (lr 1e-3) instead of the paper's ADADELTA, for `--schedule paper` (the CPU schedules use Adam).
optim_wrapper = dict(optimizer=dict(_delete_=True, type="Adam", lr=1e-3))
