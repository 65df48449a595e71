"""The built-in data set: handwritten digits rendered onto cluttered colour canvases.

``builtin:digits`` needs no download. Its source is the UCI "Optical Recognition of Handwritten
Digits" data set (Alpaydin & Kaynak, 1998; 1797 grey 8x8 images of the digits 0-9 written by 43
people, CC BY 4.0) as bundled inside scikit-learn (``sklearn.datasets.load_digits``). latkit renders
every source digit, with its own seeded generator (seed ``DIGITS_SEED``), onto a 144x144 RGB canvas:
a random two-colour gradient background with smooth noise, two to four distractor strokes, and the
digit itself smoothly upsampled to 48-112 pixels, rotated by up to 25 degrees, placed at random and
drawn in a colour that differs from the background by a random but bounded contrast, plus pixel
noise. The task stays a 10-class digit problem, but the small, low-contrast, cluttered digits make
capacity matter: after a short training the largest subnet is clearly better than the smallest.

The split is fixed (seeded permutation of the 1797 sources): 1437 training and 360 held-out images.
Generation is deterministic (a few seconds); the full set is cached under ``~/.cache/latkit``
(``$LATKIT_CACHE``), keyed by the generator's source, so later runs load it instantly.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DIGITS_SEED = 20240917
CANVAS = 144
N_HELDOUT = 360
# rendering difficulty (sizes in pixels of the 144 canvas)
DIGIT_SIZE = (64, 121)  # upsampled glyph side, [lo, hi)
MAX_ROTATION_DEG = 20.0
BLUR_RADIUS = (0.3, 1.2)
CONTRAST = (110.0, 190.0)  # distance of the digit colour from the local background colour
DISTRACTORS = (1, 4)  # strokes and rings, [lo, hi)
NOISE_STD = (3.0, 10.0)
ORIGIN = (
    "UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998, CC BY 4.0), as bundled "
    f"in scikit-learn (load_digits), rendered onto {CANVAS}x{CANVAS} cluttered colour canvases by "
    f"latkit's own generator (latkit.supernet.builtin_data, seed {DIGITS_SEED})"
)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    t = (np.cos(ang) * xx + np.sin(ang) * yy)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    low = rng.normal(0, 1, (6, 6, 3))
    smooth = np.asarray(
        Image.fromarray(((low - low.min()) / (np.ptp(low) + 1e-6) * 255).astype(np.uint8))
        .resize((size, size), Image.BICUBIC), dtype=np.float64) / 255 - 0.5
    return img + smooth * rng.uniform(20, 60)


def _draw_distractors(img: Image.Image, rng: np.random.Generator) -> None:
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(*DISTRACTORS))):
        col = tuple(int(v) for v in rng.uniform(0, 255, 3))
        pts = [tuple(float(v) for v in rng.uniform(0, img.width, 2)) for _ in range(3)]
        if rng.random() < 0.5:
            draw.line(pts, fill=col, width=int(rng.integers(2, 6)))
        else:
            x0, y0 = pts[0]
            r = float(rng.uniform(6, 24))
            draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], outline=col, width=int(rng.integers(2, 5)))


def render_digit(glyph: np.ndarray, rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """One 8x8 glyph (values 0..16) rendered to a size x size x 3 uint8 image."""
    bg = _background(rng, size)
    canvas = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    _draw_distractors(canvas, rng)
    s = int(rng.integers(*DIGIT_SIZE))
    mask = Image.fromarray((glyph / 16.0 * 255).astype(np.uint8)).resize((s, s), Image.BICUBIC)
    mask = mask.rotate(float(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)),
                       resample=Image.BICUBIC, expand=True)
    mask = mask.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(*BLUR_RADIUS))))
    mw, mh = mask.size
    x0 = int(rng.integers(0, max(1, size - mw + 1))) if mw < size else (size - mw) // 2
    y0 = int(rng.integers(0, max(1, size - mh + 1))) if mh < size else (size - mh) // 2
    base = np.asarray(canvas, dtype=np.float64)
    region = base[max(0, y0):y0 + mh, max(0, x0):x0 + mw]
    # mostly a lightness difference (towards the side with more room), with a random hue
    mean = region.mean(axis=(0, 1))
    direction = np.abs(rng.normal(0, 1, 3)) + 0.5
    direction *= 1.0 if mean.mean() < 128 else -1.0
    direction /= np.linalg.norm(direction)
    fg = np.clip(mean + direction * float(rng.uniform(*CONTRAST)), 0, 255)
    a = np.asarray(mask, dtype=np.float64)[max(0, -y0):, max(0, -x0):][: region.shape[0], : region.shape[1]]
    a = (a / 255.0)[..., None] * rng.uniform(0.7, 1.0)
    base[max(0, y0):y0 + mh, max(0, x0):x0 + mw] = region * (1 - a) + fg[None, None] * a
    base += rng.normal(0, rng.uniform(*NOISE_STD), base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def cache_dir() -> Path:
    """``$LATKIT_CACHE`` or ``~/.cache/latkit``."""
    return Path(os.environ.get("LATKIT_CACHE") or Path.home() / ".cache" / "latkit")


def _cache_path(name: str) -> Path:
    # keyed by this file's source: editing a generator invalidates the cache
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    return cache_dir() / f"builtin-{name}-{digest}.npz"


def make_digits(max_train: int | None = None, max_heldout: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images N x 144 x 144 x 3 uint8, train labels, held-out images, held-out labels)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(DIGITS_SEED).permutation(len(d.target))
    held, train = order[:N_HELDOUT], order[N_HELDOUT:]

    def render(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        imgs = np.empty((len(idx), CANVAS, CANVAS, 3), dtype=np.uint8)
        for j, i in enumerate(idx):
            # one generator per source image: a subset renders exactly like the full set
            imgs[j] = render_digit(d.images[i], np.random.default_rng([DIGITS_SEED, int(i)]))
        return imgs, d.target[idx].astype(np.int64)

    return _cached("digits", max_train, max_heldout, render, train, held)


def _cached(name: str, max_train: int | None, max_heldout: int | None,
            render, train: np.ndarray, held: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the full set from the cache, or render (the full set is then cached, ~110 MB).

    A subset is a prefix of the full set, rendered directly when the full set is not cached.
    """
    path = _cache_path(name)
    if path.is_file():
        try:
            with np.load(path) as z:
                a = z["x_tr"], z["y_tr"], z["x_ho"], z["y_ho"]
            return a[0][:max_train], a[1][:max_train], a[2][:max_heldout], a[3][:max_heldout]
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: generate again
    x_tr, y_tr = render(train[:max_train])
    x_ho, y_ho = render(held[:max_heldout])
    if max_train is None and max_heldout is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            with open(tmp, "wb") as f:
                np.savez(f, x_tr=x_tr, y_tr=y_tr, x_ho=x_ho, y_ho=y_ho)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home only costs the generation time
    return x_tr, y_tr, x_ho, y_ho


# --------------------------------------------------------------------------------------------
# builtin:gratings
# --------------------------------------------------------------------------------------------

GRATINGS_SEED = 20250101
N_GRATINGS = N_HELDOUT + 480  # 48 training images per class: --epochs-scale 0.01 ~ 2 min
N_CLASSES_GRATINGS = 10
ORIENTATION_JITTER_DEG = 4.0
FREQUENCY = (4.0, 11.0)  # cycles per image
DISTRACTOR_AMPLITUDE = (0.1, 0.5)  # relative to the class grating
NOISE = (0.12, 0.25)
GRATINGS_ORIGIN = (
    "generated by latkit's own generator (latkit.supernet.builtin_data.make_gratings, seed "
    f"{GRATINGS_SEED}): {N_CLASSES_GRATINGS} classes of noisy, colour-mapped sinusoidal gratings "
    f"whose dominant orientation is class * {180 // N_CLASSES_GRATINGS} degrees"
)


def render_grating(c: int, rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """One image of class ``c``: a grating at c * 18 degrees (+-4) under a weaker distractor.

    The class grating has a random spatial frequency (4-11 cycles per image), phase and a smooth
    random amplitude envelope; a second grating of random orientation and frequency is added with
    0.3-0.8 of its amplitude, then pixel noise; the signal is mapped between two random colours.
    Telling the dominant orientation apart from the distractor in the noise takes capacity.
    """
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) / size) - 0.5
    jit = ORIENTATION_JITTER_DEG
    theta = np.deg2rad(c * 180.0 / N_CLASSES_GRATINGS + rng.uniform(-jit, jit))
    sig = np.sin(2 * np.pi * rng.uniform(*FREQUENCY) * (np.cos(theta) * xx + np.sin(theta) * yy)
                 + rng.uniform(0, 2 * np.pi))
    th2 = rng.uniform(0, np.pi)
    sig2 = np.sin(2 * np.pi * rng.uniform(3, 12) * (np.cos(th2) * xx + np.sin(th2) * yy)
                  + rng.uniform(0, 2 * np.pi))
    a2 = rng.uniform(*DISTRACTOR_AMPLITUDE)
    env = np.asarray(Image.fromarray((rng.uniform(0, 1, (4, 4)) * 255).astype(np.uint8))
                     .resize((size, size), Image.BICUBIC), np.float32) / 255
    sgn = (sig * (0.4 + 0.6 * env) + a2 * sig2) / (1 + a2)
    sgn = sgn + rng.normal(0, rng.uniform(*NOISE), sgn.shape)
    t = (np.clip(sgn, -1.5, 1.5) + 1.5) / 3
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def make_gratings(max_train: int | None = None, max_heldout: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, labels, held-out images, labels): 480 / 360 images, balanced classes."""
    labels = np.arange(N_GRATINGS) % N_CLASSES_GRATINGS
    order = np.random.default_rng(GRATINGS_SEED).permutation(N_GRATINGS)
    held, train = order[:N_HELDOUT], order[N_HELDOUT:]
    return _cached("gratings", max_train, max_heldout, lambda idx: (
        np.stack([render_grating(int(labels[i]), np.random.default_rng([GRATINGS_SEED, int(i)]))
                  for i in idx]) if len(idx) else np.empty((0, CANVAS, CANVAS, 3), np.uint8),
        labels[idx].astype(np.int64)), train, held)
