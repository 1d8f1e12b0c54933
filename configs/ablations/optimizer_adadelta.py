_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Optimizer: the paper's ADADELTA (rho 0.9) instead of the CPU schedules' Adam (warm-up, decay, clipping kept).
# (cpu-long and cpu-fp32 are based on `cpu`)
schedules = dict(cpu=dict(optim_wrapper=dict(optimizer=dict(_delete_=True, type="Adadelta", lr=1.0, rho=0.9))))
