_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# CPU recipe: without the curriculum (every sample at full difficulty from the start) -- what easy samples first add.
_hooks = [dict(type="CurvePlotHook"), dict(type="WorstErrorsHook")]
schedules = dict(
    cpu=dict(custom_hooks=[*_hooks, dict(type="AlignmentLossDecay", fraction=0.5, handover=True),
                           dict(type="TimeBudgetHook", minutes=27, validations=6)]),
    cpu_long=dict(custom_hooks=[*_hooks, dict(type="AlignmentLossDecay", fraction=0.5 / 6, handover=True),
                                dict(type="TimeBudgetHook", minutes=180, validations=9)]),
)
