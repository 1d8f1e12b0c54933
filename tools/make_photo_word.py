"""Make a photo-like word image for trying `tools/infer.py`: a word in a held-out font (one that
training never sees) printed large on a held-out photograph, then photographed badly: perspective,
uneven light, blur and JPEG compression, kept at camera resolution (not 32 pixels high).

    python tools/make_photo_word.py WORD OUT.jpg [--seed 0]
"""
import argparse
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ocrframe.data.synth_text import discover_assets


def make_photo_word(word: str, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    assets = discover_assets("heldout")
    font = ImageFont.truetype(str(assets.fonts[rng.integers(len(assets.fonts))]), 96)
    left, top, right, bottom = font.getbbox(word)
    width, height = right - left + 120, bottom - top + 90
    if assets.backgrounds:
        photo = Image.open(assets.backgrounds[rng.integers(len(assets.backgrounds))]).convert("RGB")
        photo = photo.resize((max(width, photo.width * height // photo.height), height))
        x = int(rng.integers(0, photo.width - width + 1))
        canvas = photo.crop((x, 0, x + width, height))
    else:
        canvas = Image.new("RGB", (width, height), (200, 190, 170))
    # Ink that contrasts with the photo under the word.
    ink = (20, 20, 30) if np.asarray(canvas.convert("L")).mean() > 110 else (245, 240, 225)
    ImageDraw.Draw(canvas).text((60 - left, 45 - top), word, font=font, fill=ink)
    # A camera that is not square to the page: map the corners inward unevenly.
    dx, dy = width * 0.06, height * 0.12
    quad = (rng.uniform(0, dx), rng.uniform(0, dy), rng.uniform(0, dx), height - rng.uniform(0, dy),
            width - rng.uniform(0, dx), height - rng.uniform(0, dy), width - rng.uniform(0, dx), rng.uniform(0, dy))
    canvas = canvas.transform((width, height), Image.QUAD, quad, Image.BICUBIC)
    light = np.linspace(rng.uniform(0.55, 0.8), rng.uniform(1.0, 1.15), width)[None, :, None]
    canvas = Image.fromarray(np.clip(np.asarray(canvas) * light, 0, 255).astype(np.uint8))
    return canvas.filter(ImageFilter.GaussianBlur(1.6))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("word")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_photo_word(args.word, args.seed).save(args.out, quality=55)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
