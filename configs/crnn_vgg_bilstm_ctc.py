# CRNN (Shi, Bai & Yao 2015): VGG backbone (Table 1), two BiLSTMs of 256 units per direction, CTC
# over 36 lowercase alphanumerics + blank: 8.3M parameters. Swap any stage with one line below.
#
# The settings at top level are the paper's: ADADELTA (rho 0.9), 100x32 grayscale training images,
# batch 64. The paper trains on Synth90k for ~50 h on a GPU: `tools/train.py CONFIG --data LMDB`
# trains on an LMDB instead of the embedded synthetic words.
#
# Without a GPU, tools/train.py applies `schedules['cpu']` (`cpu_fp32` where the CPU has no fast
# bf16 kernels; it says which in the log): Adam with a short warm-up and cosine decay, bf16 autocast
# where the CPU has fast bf16 kernels, sized to finish within 30 minutes on the machine at hand.
# `--schedule cpu-long` is a 3-hour CPU run; `--schedule paper` keeps the paper's settings anyway.
default_scope = "ocrframe"

charset = dict(symbols="0123456789abcdefghijklmnopqrstuvwxyz", case="lower", blank="first", unknown="skip")

model = dict(
    type="Recognizer",
    charset=charset,
    backbone=dict(type="VGG"),
    sequence_encoder=dict(type="BiLSTM", hidden_size=256, num_layers=2),
    head=dict(type="CTCHead"),
    decoder=dict(type="GreedyDecoder"),
)

train_pipeline = [dict(type="Grayscale"), dict(type="Resize", height=32, width=100), dict(type="ToTensor")]
# Evaluation keeps the aspect ratio, width at least 100 (paper section 3.2).
test_pipeline = [dict(type="Grayscale"), dict(type="Resize", height=32, width=None, min_width=100),
                 dict(type="ToTensor")]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="LazyInfiniteSampler", shuffle=True),  # mmengine's InfiniteSampler, order drawn lazily
    collate_fn=dict(type="ocrframe.pad_collate"),
    dataset=dict(type="SynthWordDataset", charset=charset, pipeline=train_pipeline, length=100_000_000, seed=0),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="ocrframe.pad_collate"),
    dataset=dict(type="SynthWordDataset", charset=charset, pipeline=test_pipeline, length=1000, seed=1),
)
# The independent check: fonts and backgrounds that training never uses.
test_dataloader = dict(val_dataloader, persistent_workers=False,
                       dataset=dict(val_dataloader["dataset"], seed=2, assets="heldout"))
val_evaluator = dict(type="WordMetric")
test_evaluator = val_evaluator

train_cfg = dict(type="ResumableIterBasedTrainLoop", max_iters=300_000, val_interval=5000)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

optim_wrapper = dict(type="GuardedOptimWrapper", optimizer=dict(type="Adadelta", lr=1.0, rho=0.9))
param_scheduler = []
# `tools/train.py --auto-scale-lr` (or enable=True) multiplies the learning rate by
# (processes x batch_size) / base_batch_size. ADADELTA's lr=1.0 is not a step size to scale (it
# adapts per parameter): leave it off for the paper schedule, use it for Adam (see docs/distributed.md).
auto_scale_lr = dict(base_batch_size=64, enable=False)

default_hooks = dict(
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),  # validation logged by iteration
    checkpoint=dict(type="AtomicCheckpointHook", by_epoch=False, interval=5000, max_keep_ckpts=3,
                    save_last=True, save_best="word_acc", rule="greater"),
)
# curves.png after each validation; worst_errors.png (image, truth, reading) after a test
custom_hooks = [dict(type="CurvePlotHook"), dict(type="WorstErrorsHook")]
# Logs go to vis_data/scalars.json; `tools/train.py --tensorboard` adds dict(type="TensorboardVisBackend").
visualizer = dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")])
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=True, dist_cfg=dict(backend="nccl"))

# Named overrides, merged over the settings above by tools/train.py --schedule NAME.
# The CPU schedules are sized in wall-clock time, not iterations: CPUs differ several-fold in speed
# (fast bf16 kernels or not), so TimeBudgetHook times the first iterations and then sets how many
# fit, the validation interval and the end of the cosine decay; max_iters is only an upper bound,
# beyond any CPU budget (the log says if it cuts a run short).
#
# The CPU recipe deviates from the paper to leave CTC's initial plateau (the network emitting only
# blanks) in minutes instead of most of a 30-minute budget; every trial, kept or dropped, with its
# command and curve: docs/benchmarks.md ("The CPU recipe").
# - Adam (lr 1e-3, 30 warm-up iterations, cosine decay, gradient clipping at 5) for ADADELTA: the
#   paper's optimizer needs far more updates than 30 CPU minutes give. In `make train` on an AVX-512
#   BF16 host, a peak of 2e-3 read 79.8 % against 81.3-83.0 % at 1e-3, and a moving average of the
#   weights 1.2 points below the last weights.
# - Batch 16 for 64: on two cores a batch of 16 costs at most ~15 % more per image and gives 4x the
#   updates (tools/benchmark.py train-recipe); 8 where the CPU trains in fp32 (`cpu_fp32` below).
# - Batch norm after every convolution (paper: conv5 and conv6 only), via `backbone_defaults`, so a
#   config that sets its backbone's batch_norm, or swaps the backbone, keeps its own. The paper's
#   placement instead: 42.3 % against 62.1 % validation word accuracy after 10 minutes (*).
# - Alignment supervision: the renderer knows where each character is drawn; a linear probe on the
#   backbone's frames (training only; predictions never use it, 19k parameters in the checkpoint)
#   learns to name the character under each frame. Measured: the backbone alone then names 51 % of
#   the characters after 960 easy images, while through the BiLSTMs it names 0 %. Its weight falls
#   from 1 to 0 over the first half of training (AlignmentLossDecay): CTC alone finishes.
#   Without it: 11.8 % against 62.1 % after 10 minutes, one seed of three still on the plateau (*).
#   Handover (AlignmentLossDecay's `handover`): meanwhile the share of CTC's gradient that reaches
#   the backbone rises from 0 to 1, so the probe alone shapes its first features (on images with
#   character positions; an LMDB's keep CTC's full gradient, nothing else teaches). Where the CTC head
#   reads the backbone's frames directly (no sequence encoder), CTC's plateau gradient otherwise
#   drowns the probe's: on an AVX2 host, fp32, batch 8, 600 iterations, that model read 0.0 % without
#   and 22.6 % with it; the paper model 1.4 % both (1 - NED 0.355 / 0.362). docs/ablations.md.
# - Curriculum: a share 1 - d of the samples is easy (short dictionary words, everyday typefaces, no
#   distortion), d rising from 0 to 1 over the first 40 % of training (DifficultyRamp).
#   Without it: 46.7 % against 62.1 % after 10 minutes (*).
# - Validation on 500 images at the training geometry (100x32): keeping the aspect ratio pads every
#   batch to its widest word, and six such validations of 1000 images took 22 % of a 27-minute run
#   on the AVX2 host. The final test keeps the paper's protocol (aspect ratio kept, width >= 100).
# (*) each part left out on its own, `tools/ablate.py --budget 10m --seeds 3`, 3000 validation words, on
#   an AVX-512 BF16 host: docs/ablations.md ("The CPU recipe's parts left out").
# Together: `make train` went from 0.0 % to 62.0-68.9 % test word accuracy on 2-core AVX2 hosts (at
# batch 16; 41.9 % on one whose step ran about 2x slower, 52.3 % there at batch 8) and from 52.0 % to
# 79.8-84.2 % on 2-core AVX-512 BF16 hosts (quiet hosts, 30 minutes with set-up).
# bf16 autocast runs where the CPU has fast bf16 kernels (fp32 elsewhere, said in the log).
cpu_hooks = [dict(type="AlignmentLossDecay", fraction=0.5, handover=True),
             dict(type="DifficultyRamp", start=0.0, fraction=0.4)]
schedules = dict(cpu=dict(
    model=dict(alignment_loss=1.0, backbone_defaults=dict(batch_norm="all")),
    train_dataloader=dict(batch_size=16),
    val_dataloader=dict(dataset=dict(pipeline=train_pipeline, length=500)),
    train_cfg=dict(max_iters=1_000_000, val_interval=1000),
    optim_wrapper=dict(_delete_=True, type="AutocastOptimWrapper", dtype="bfloat16",
                       optimizer=dict(type="Adam", lr=1e-3), clip_grad=dict(max_norm=5.0)),
    param_scheduler=[dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=30),
                     dict(type="CosineAnnealingLR", eta_min=1e-5, by_epoch=False, begin=30, end=1_000_000)],
    custom_hooks=[*custom_hooks, *cpu_hooks, dict(type="TimeBudgetHook", minutes=27, validations=6)],
    env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")),
))
# CPUs without fast bf16 kernels (AVX2 only) train in fp32, whose step took 1.6x bf16's on one
# AVX-512 CPU and 2-5x on the AVX2 CPUs measured; tools/train.py picks this schedule there (it says
# so in the log), based on `cpu` (so a config that changes `cpu` changes it too): batch 8, so
# about twice the updates for about as many images. Measured, 27 minutes: on an AVX2 host whose
# step ran ~2x slower than most (876 updates of 16), test 41.9 -> 52.3 %; in fp32 on an AVX-512 host
# (3,744 updates of 16), 78.7 -> 77.9 % (1 - NED 0.939 both). With native bf16 batch 8 read 80.8 %
# against 81.9-82.9 % at 16, so `cpu` keeps 16.
# `based_on`: only the changes are written here, merged over that schedule's settings.
schedules["cpu_fp32"] = dict(based_on="cpu", train_dataloader=dict(batch_size=8))
# Three hours: the alignment loss and the curriculum take the same number of iterations as in `cpu`
# on the same machine, a sixth of this run.
schedules["cpu_long"] = dict(
    based_on="cpu",
    custom_hooks=[*custom_hooks, dict(type="AlignmentLossDecay", fraction=0.5 / 6, handover=True),
                  dict(type="DifficultyRamp", start=0.0, fraction=0.4 / 6),
                  dict(type="TimeBudgetHook", minutes=180, validations=9)],
)
# Fine-tuning trained weights on your data (`tools/train.py CONFIG --load-from crnn-en --data LMDB` picks it):
# the released model's architecture (batch norm after every conv; no alignment probe, no curriculum:
# the model already reads), a tenth of the CPU schedule's learning rate so the new data refines what
# the weights know instead of overwriting it, and 10 minutes.
schedules["finetune"] = dict(
    based_on="cpu",
    model=dict(alignment_loss=0.0),
    optim_wrapper=dict(optimizer=dict(_delete_=True, type="Adam", lr=1e-4)),
    custom_hooks=[*custom_hooks, dict(type="TimeBudgetHook", minutes=10, validations=4)],
)
del cpu_hooks
