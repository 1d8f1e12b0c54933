_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# CPU recipe: without the alignment loss (probe on the backbone's frames) -- what it adds to leaving CTC's plateau.
schedules = {name: dict(model=dict(alignment_loss=0.0)) for name in ("cpu", "cpu_long")}
