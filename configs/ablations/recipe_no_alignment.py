_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# CPU recipe: without the alignment loss (probe on the backbone's frames) -- what it adds to leaving CTC's plateau.
schedules = dict(cpu=dict(model=dict(alignment_loss=0.0)))  # cpu-long and cpu-fp32 are based on `cpu`
