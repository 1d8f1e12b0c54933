# Optical music recognition, CRNN paper section 3.4: read the pitch sequence of a score snippet
# (treble clef, C major, no chords). The paper's simplified CRNN: VGG without conv4 and conv6, a
# 2-layer unidirectional LSTM, CTC over the 17 pitches A3..C6 + blank. Data: engraved synthetic
# snippets of 3-20 notes (the `ocrframe-omr` plugin: verovio + resvg, augmented as in the paper).
#
#   python tools/train.py configs/crnn_omr.py                     # trains, then tests the three splits
#   python tools/test.py configs/crnn_omr.py CKPT                 # clean / synthesized / camera table
#   python tools/test.py configs/crnn_omr.py CKPT --data FOLDER   # a PrIMuS / Camera-PrIMuS folder
#
# Input geometry. VGG maps a height of 32 to 1, so snippets are resized to 32 pixels high, keeping
# their aspect ratio (padded per batch; the padded frames never reach CTC). A pitch is a height in
# that input, so the vertical geometry must not depend on the crop an image comes with: StaffNormalize
# finds the five staff lines (any margins, scale, line thickness, skew up to 3 degrees) and crops
# every image read to 3.25 staff spaces above and below the staff (room for C6 and A3 on ledger
# lines; the middle of the training snippets' margins) and to the staff's own extent (an image whose
# margins are already those of the training snippets keeps its rows). A staff space is then ~3 pixels and a
# note with its spacing 6-12 pixels: 1.5-3 frames of 4 pixels each. A 20-note snippet is ~110-250
# pixels wide, 28-60 frames, enough for CTC's one frame per pitch plus a blank between equal
# neighbours (~22 for the generated melodies; tests/test_omr.py checks it); a whole 20-note incipit
# with its clef and time signature up to ~400. A fixed width would squeeze the long snippets below
# that and stretch the short ones.
default_scope = "ocrframe"

pitches = ["A3", "B3", "C4", "D4", "E4", "F4", "G4", "A4", "B4", "C5", "D5", "E5", "F5", "G5", "A5", "B5", "C6"]
charset = dict(symbols=pitches, blank="first", unknown="skip")  # labels: "C4 E4 G4" (separator " ")

model = dict(
    type="Recognizer",
    charset=charset,
    # Batch norm after every conv (the paper has it after conv5 and conv6 only; conv6 is gone here):
    # the short CPU run needs the faster start it gives.
    backbone=dict(type="VGG", remove=("conv4", "conv6"), batch_norm="all"),
    sequence_encoder=dict(type="LSTM", hidden_size=256, num_layers=2),
    head=dict(type="CTCHead"),
    decoder=dict(type="GreedyDecoder"),
)

resize = [dict(type="Resize", height=32, width=None, min_width=32, max_width=800), dict(type="ToTensor")]
# Training snippets are cut with 2.75-3.75 staff spaces above and below, known from the engraving.
train_pipeline = [dict(type="Grayscale"), *resize]
test_pipeline = [dict(type="Grayscale"), dict(type="StaffNormalize", spaces_above=3.25, spaces_below=3.25), *resize]

train_dataloader = dict(
    batch_size=32,
    # One worker keeps up (a snippet, plus an engraved line every 8 samples) and engraves each line once.
    num_workers=1,
    persistent_workers=True,
    # In order: each batch is consecutive samples, which share their note count (length_group, as
    # large as the batch), so a batch has little padding. The samples are random draws: there is
    # nothing to shuffle.
    sampler=dict(type="LazyInfiniteSampler", shuffle=False),
    collate_fn=dict(type="ocrframe.pad_collate"),
    # Snippets are cut from 2000 engraved lines (~60k notes), engraved once and kept: engraving
    # costs ~20x more than cutting and augmenting a snippet, and every cut and effect stays fresh.
    dataset=dict(type="EngravedMusicDataset", charset=charset, pipeline=train_pipeline, length=100_000_000,
                 seed=0, style="synthesized", lines=2000, length_group=32),
)
val_dataloader = dict(
    batch_size=50,
    # Each evaluated snippet engraves a line of its own (~0.12 s): evaluation waits on its workers,
    # so it takes both cores (one worker made the AVX2 host's final test take 9 of 27 minutes).
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="ocrframe.pad_collate"),
    dataset=dict(type="EngravedMusicDataset", charset=charset, pipeline=test_pipeline, length=300, seed=1,
                 style="synthesized"),
)
# The paper's three test sets, freshly generated (seeds training never uses): Clean, Synthesized
# and a camera split standing in for Real-World (held-out background photographs). Then the
# independent split: whole incipits with page margins, engraved with settings training never uses
# (another font, scale, spacing, staff-line and stem width), clean and camera-like.
test_splits = dict(clean=dict(seed=2, style="clean"), synthesized=dict(seed=3, style="synthesized"),
                   camera=dict(seed=4, style="camera"),
                   heldout_clean=dict(seed=5, style="clean", assets="heldout"),
                   heldout_camera=dict(seed=6, style="camera", assets="heldout"))
test_dataloader = dict(
    val_dataloader,
    persistent_workers=False,
    dataset=dict(type="ConcatDataset", ignore_keys=["name"], datasets=[
        dict(type="EngravedMusicDataset", charset=charset, pipeline=test_pipeline, length=500, **split)
        for split in test_splits.values()]),
)
# `--data FOLDER` reads folders as PrIMuS / Camera-PrIMuS (or gt.txt) folders, labels from the
# .semantic files (else .agnostic); sharps and flats are skipped and counted (accidentals="natural"
# reads their staff position instead), other clefs likewise, each by name.
folder_dataset = dict(type="PrimusDataset", accidentals="skip", clefs=("G2",), encoding="auto")

val_evaluator = dict(type="PitchSequenceMetric")
test_evaluator = dict(
    type="PitchSequenceMetric", splits=tuple(test_splits),
    # Paper, section 3.4 (fragment accuracy, mean edit distance); its Real-World set <-> camera.
    reference={"Capella Scan (paper)": dict(clean=(0.519, 1.75), synthesized=(0.200, 2.31), camera=(0.435, 3.05)),
               "PhotoScore (paper)": dict(clean=(0.550, 2.34), synthesized=(0.280, 1.85), camera=(0.204, 3.00)),
               "CRNN (paper)": dict(clean=(0.746, 0.37), synthesized=(0.815, 0.30), camera=(0.840, 0.30))},
)

train_cfg = dict(type="ResumableIterBasedTrainLoop", max_iters=100_000, val_interval=5000)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

# The paper's optimiser (ADADELTA, rho 0.9), for a GPU.
optim_wrapper = dict(type="GuardedOptimWrapper", optimizer=dict(type="Adadelta", lr=1.0, rho=0.9))
param_scheduler = []

default_hooks = dict(
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type="AtomicCheckpointHook", by_epoch=False, interval=5000, max_keep_ckpts=3,
                    save_last=True, save_best="fragment_acc", rule="greater"),
)
custom_hooks = [dict(type="CurvePlotHook", metrics=("fragment_acc",))]
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=True, dist_cfg=dict(backend="nccl"))

# Without a GPU, tools/train.py merges `schedules['cpu']` (`cpu_fp32` on a CPU without fast bf16
# kernels; it says which in the log): Adam with warm-up and cosine decay, sized in wall-clock time:
# TimeBudgetHook times the first iterations and sets how many fit in 27 minutes with the
# validations (max_iters is only an upper bound).
# Measured on a 2-core AVX-512 BF16 host (docs/benchmarks.md, "Optical music recognition"):
# - bf16 autocast where the CPU has fast bf16 kernels (fp32 elsewhere, said in the log): 0.30-0.35 s
#   per iteration instead of ~1.0; synthesized fragment accuracy 40.8 % (fp32, AVX2 host) -> 78.8 %.
# - Curriculum (DifficultyRamp, as the text config): a share 1 - d of the snippets is easy, 3 to 6
#   notes without augmentation, d rising from 0 to 1 over the first 40 %: 78.8 % -> 85.2 %
#   (that run also had more iterations: the first one shared the cores with tests).
# - Alignment supervision (as the text config): the engraving knows where each note head is drawn;
#   a linear probe on the backbone's frames learns to name the pitch under each frame, its weight
#   falling from 1 to 0 over the first half of training (AlignmentLossDecay). On a 2-core AVX2 host
#   (fp32, 0.7-1.7 s per iteration), 27 minutes: synthesized 71.0 % -> 82.4 % (validation 39.7 % ->
#   73.0 % after ~800 iterations), camera 38.2 -> 53.8 %, held-out camera 63.8 -> 73.4 %, but
#   held-out clean 97.4 -> 87.6 %. With all three on a 2-core AVX-512 BF16 host (AMD EPYC, 0.31-0.54 s
#   per iteration), 26.4 minutes: synthesized 89.0 % / 0.26 mean edit distance. The text config's
#   handover (CTC's gradient kept from the backbone at first) was tried on an AVX2 host (fp32, batch 8,
#   27 minutes, one run each): synthesized 84.8 % without, 83.4 % with it; not used here.
# - Batch 16 instead of 32 (as the text recipe): about the same cost per snippet, so twice the
#   updates in the same minutes. 27 minutes: AVX2 host (one seed), synthesized 65.8 -> 69.0 %,
#   camera 32.6 -> 35.6 %, held-out camera 67.0 -> 64.4 %; AVX-512 BF16 host (AMD EPYC), test splits
#   synthesized 89.0 % / 0.26 -> 88.2 % / 0.26 and 89.4 % / 0.23 (two seeds), camera 60.0 -> 64.6 and
#   68.0 %, held-out clean 94.2 -> 98.6 and 99.6 %, held-out camera 70.6 -> 76.0 and 75.4 %; on four
#   other splits (seeds 13-16) synthesized 87.5 % / 0.26 -> 90.2 % / 0.24 and 88.2 % / 0.24.
#   On an AVX2 host whose step ran about 2x slower (1.7-2.6x), 897 updates in 28 minutes: synthesized 63.0 % / 0.84.
schedules = dict(cpu=dict(
    model=dict(alignment_loss=1.0),
    train_dataloader=dict(batch_size=16, dataset=dict(length_group=16)),
    train_cfg=dict(max_iters=20_000, val_interval=1000),
    optim_wrapper=dict(_delete_=True, type="AutocastOptimWrapper", dtype="bfloat16",
                       optimizer=dict(type="Adam", lr=1e-3), clip_grad=dict(max_norm=5.0)),
    param_scheduler=[dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=80),
                     dict(type="CosineAnnealingLR", eta_min=1e-5, by_epoch=False, begin=80, end=20_000)],
    custom_hooks=[dict(type="CurvePlotHook", metrics=("fragment_acc",)),
                  dict(type="DifficultyRamp", start=0.0, fraction=0.4),
                  dict(type="TimeBudgetHook", minutes=27, validations=3),
                  dict(type="AlignmentLossDecay", fraction=0.5)],
    env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")),
))
# CPUs without fast bf16 kernels train in fp32, a slower step, and tools/train.py picks this
# schedule there, based on `cpu` (only the changes are written here, as in the text config): batch 8, twice the updates.
# On an AVX2 host whose step ran ~2x slower, 27 minutes: synthesized 63.0 % / 0.84 -> 73.4 % / 0.60, clean
# 81.8 -> 90.8 %, camera 34.2 -> 41.4 %, held-out clean 95.0 -> 95.4 %, held-out camera 61.4 -> 62.6 %.
schedules["cpu_fp32"] = dict(based_on="cpu", train_dataloader=dict(batch_size=8, dataset=dict(length_group=8)))
# Fine-tuning trained weights on your data (`tools/train.py configs/crnn_omr.py --load-from crnn-omr
# --data LMDB` picks it): no alignment probe and no curriculum (the model already reads), a tenth of
# the learning rate so the new data refines what the weights know, and 10 minutes.
schedules["finetune"] = dict(
    based_on="cpu",
    model=dict(alignment_loss=0.0),
    optim_wrapper=dict(optimizer=dict(_delete_=True, type="Adam", lr=1e-4)),
    custom_hooks=[dict(type="CurvePlotHook", metrics=("fragment_acc",)),
                  dict(type="TimeBudgetHook", minutes=10, validations=2)],
)
