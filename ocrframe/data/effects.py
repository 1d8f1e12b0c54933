"""Image effects shared by the synthetic renderers (words, engraved music): background textures and
photographs, perspective warps, uneven light, blur, sensor noise and JPEG compression.

Every effect draws its randomness from the numpy Generator passed in, so a renderer stays a pure
function of its seed. Arrays are float32 RGB in [0, 1], shape (h, w, 3), unless noted.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ocrframe.data.assets import load_background


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def homography(src: np.ndarray, dst: np.ndarray) -> tuple[float, ...]:
    """Coefficients of Image.PERSPECTIVE mapping output points ``dst`` onto input points ``src``."""
    a = []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return tuple(np.linalg.solve(np.array(a, float), src.reshape(-1).astype(float)))


def apply_homography(coefficients, points: np.ndarray) -> np.ndarray:
    """Points (x, y) mapped by the projective transform of Image.PERSPECTIVE coefficients, e.g.
    a glyph's box carried onto the warped image with ``homography(dst, src)`` (the other way)."""
    a, b, c, d, e, f, g, h = coefficients
    x, y = points[:, 0], points[:, 1]
    w = g * x + h * y + 1
    return np.stack([(a * x + b * y + c) / w, (d * x + e * y + f) / w], axis=1)


def random_color(rng: np.random.Generator) -> np.ndarray:
    grey = np.full(3, rng.random(), np.float32)
    if rng.random() < 0.35:  # greys are common in print
        return grey
    return grey + (rng.random(3).astype(np.float32) - grey) * rng.uniform(0.3, 1)  # muted to vivid


def contrasting(color: np.ndarray, against: float, rng: np.random.Generator, gap: float) -> np.ndarray:
    """``color`` moved toward black or white until its luminance differs from ``against`` by ``gap``."""
    lum = float(luminance(color))
    if abs(lum - against) >= gap:
        return color
    target = 0.0 if against > 0.5 else 1.0
    want = against - gap if target == 0.0 else against + gap
    want = float(np.clip(want + rng.uniform(0, 0.15) * (1 if target else -1), 0, 1))
    t = (want - lum) / (target - lum) if target != lum else 1.0
    return color * (1 - t) + target * t


def procedural_background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A flat colour, gradient, paper-like blotches, stripes, ruled paper or a fine noise texture."""
    kind = rng.choice(6, p=(0.2, 0.2, 0.25, 0.1, 0.1, 0.15))  # 0: a flat colour
    base = random_color(rng)
    if rng.random() < 0.4:  # paper-like light tones are the commonest real background
        base = 1 - rng.random(3).astype(np.float32) * rng.uniform(0.02, 0.25)
    img = np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 1:  # linear gradient to a second colour
        t = np.cos(rng.uniform(0, np.pi)) * xx / w + np.sin(rng.uniform(0, np.pi)) * yy / h
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
        img = img + (random_color(rng) - base) * t[..., None] * rng.uniform(0.3, 1)
    elif kind == 2:  # low-frequency blotches (paper, walls, card) plus grain
        gh, gw = int(rng.integers(2, 6)), int(rng.integers(3, 16))
        coarse = Image.fromarray((rng.random((gh, gw)) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        blot = np.asarray(coarse, np.float32) / 255 - 0.5
        img = img + blot[..., None] * rng.uniform(0.05, 0.35) * (rng.random(3) * 0.5 + 0.5)
        img = img + rng.normal(0, rng.uniform(0.005, 0.04), (h, w, 1))
    elif kind == 3:  # stripes
        period = rng.uniform(3, 40)
        angle = rng.uniform(0, np.pi)
        wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        if rng.random() < 0.5:
            wave = np.sign(wave)
        img = img + (random_color(rng) - base) * (wave[..., None] * 0.5 + 0.5) * rng.uniform(0.1, 0.5)
    elif kind == 4:  # ruled or squared paper
        step = int(rng.integers(8, 30))
        lines = (yy.astype(int) % step == 0)
        if rng.random() < 0.4:
            lines |= xx.astype(int) % step == 0
        img = np.where(lines[..., None], img * 0.6 + random_color(rng) * 0.4, img)
    elif kind == 5:  # fine noise texture (concrete, fabric)
        img = img + rng.normal(0, rng.uniform(0.03, 0.12), (h, w, 1 if rng.random() < 0.7 else 3))
    return img


def photo_background(photos, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of one of ``photos`` (paths), rescaled, sometimes flipped and tinted."""
    path = photos[int(rng.integers(len(photos)))]
    photo = load_background(path)
    ph, pw = photo.shape[:2]
    scale = min(rng.uniform(0.4, 2.5), pw / w, ph / h)  # photo pixels per output pixel
    ch, cw = max(2, int(h * scale)), max(2, int(w * scale))
    y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = Image.fromarray(photo[y:y + ch, x:x + cw]).resize((w, h), Image.BILINEAR)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    img = np.asarray(crop, np.float32) / 255
    if rng.random() < 0.5:  # calm busy photos down, as if printed on a tinted surface
        img = img * (1 - (k := rng.uniform(0.2, 0.7))) + random_color(rng) * k
    return img


def background(photos, h: int, w: int, rng: np.random.Generator, photo_share: float = 0.4) -> np.ndarray:
    """A photograph crop (``photo_share`` of the time, when there are photos) or a procedural texture."""
    if photos and rng.random() < photo_share:
        return photo_background(photos, h, w, rng)
    return procedural_background(h, w, rng)


def uneven_light(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A linear light falloff in a random direction, as from a lamp or window to one side."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    t = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    return img * (rng.uniform(0.55, 0.95) + t[..., None] * rng.uniform(0.1, 0.5))


def to_image(img: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


@dataclass(frozen=True)
class Degradation:
    """Camera and scanner effects on a finished RGB image, each applied with its probability:
    Gaussian blur (sigma in pixels at the reference height, scaled by ``scale``) or else horizontal
    motion blur, additive sensor noise (sigma in grey levels), JPEG compression."""

    blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    motion_blur: float = 0.08
    noise: float = 0.35
    noise_sigma: tuple[float, float] = (2, 12)
    jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (25, 85)

    def __call__(self, img: Image.Image, rng: np.random.Generator, scale: float = 1.0) -> Image.Image:
        if rng.random() < self.blur:
            img = img.filter(ImageFilter.GaussianBlur(rng.uniform(*self.blur_sigma) * scale))
        elif rng.random() < self.motion_blur:  # Pillow kernels are 3x3 or 5x5
            k = 3 if rng.random() < 0.5 else 5
            img = img.filter(ImageFilter.Kernel((k, k), [float(i // k == k // 2) for i in range(k * k)], k))
        if rng.random() < self.noise:
            arr = np.asarray(img, np.float32)
            sigma = rng.uniform(*self.noise_sigma)
            arr = arr + rng.normal(0, sigma, arr.shape if rng.random() < 0.5 else arr.shape[:2] + (1,))
            img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        if rng.random() < self.jpeg:
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=int(rng.integers(*self.jpeg_quality)))
            img = Image.open(buf).convert("RGB")
        return img
