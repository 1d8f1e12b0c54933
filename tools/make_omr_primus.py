"""Write the independent OMR split -- whole incipits engraved with the held-out settings training
never uses -- as a folder in the PrIMuS / Camera-PrIMuS layout, with a progress bar:

    python tools/make_omr_primus.py OUT [--num 500] [--seed 5] [--camera]

OUT/ID/ID.png (clean engraving with its page margins), OUT/ID/ID.semantic and OUT/ID/ID.agnostic
(the corpus' two encodings), and with --camera also OUT/ID/ID_distorted.jpg (the same engraving
photographed, as Camera-PrIMuS ships it). ID.png of seed S is sample i of
EngravedMusicDataset(style="clean", assets="heldout", seed=S), ID_distorted.jpg that of
style="camera". Evaluate with the PrIMuS reader, as for the real corpus:

    python tools/test.py configs/crnn_omr.py CKPT --data OUT                                     # distorted
    python tools/test.py configs/crnn_omr.py CKPT --data OUT --cfg-options folder_dataset.image=png  # clean
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from ocrframe_omr.render import MusicRenderer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--camera", action="store_true", help="also write ID_distorted.jpg (Camera-PrIMuS)")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty: give a new folder (samples of another split would mix in)")
    from mmengine.utils import ProgressBar

    clean = MusicRenderer("clean", assets="heldout")
    camera = MusicRenderer("camera", assets="heldout") if args.camera else None
    progress = ProgressBar(args.num)
    for i in range(args.num):
        rng = np.random.default_rng([args.seed, i, 1 << 34])  # EngravedMusicDataset's draws for sample i
        incipit = clean.incipit(rng)
        sample_id = f"{args.seed:03d}{i:06d}-1_1_1"
        folder = args.out / sample_id
        folder.mkdir(parents=True)
        clean.finish(incipit.ink, incipit.space, rng).save(folder / f"{sample_id}.png")
        if camera is not None:
            camera.finish(incipit.ink, incipit.space, rng).save(folder / f"{sample_id}_distorted.jpg", quality=90)
        (folder / f"{sample_id}.semantic").write_text(incipit.semantic, encoding="utf-8")
        (folder / f"{sample_id}.agnostic").write_text(incipit.agnostic, encoding="utf-8")
        progress.update()
    print(f"\nwrote {args.num} held-out incipits (seed {args.seed}{', clean and camera' if camera else ''}) "
          f"to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
