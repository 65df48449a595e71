"""Training data: image sources, transforms (Pillow + numpy, no torchvision), elastic-resolution batches.

A data spec is ``builtin:gratings`` or ``builtin:digits`` (see ``builtin_data``) or a directory in
the class-per-directory layout ImageNet is usually stored in::

    DIR/<class>/<image>.jpg            (a held-out split is drawn from it, ``HOLDOUT_FRACTION``)
    DIR/train/<class>/... + DIR/val/<class>/...   (used as given; ``test/`` is accepted for val)

Transforms: training uses a random-resized crop (area scale ``Augment.min_scale``..1, aspect 3/4..4/3,
as Inception/once-for-all) straight to the batch resolution, an optional horizontal flip, and
ImageNet mean/std normalisation; evaluation uses a centre crop of ``Augment.eval_crop`` of the
shorter side resized to the resolution (0.875: "resize to r/0.875, centre-crop r").

Batches: ``BatchPlan`` decides, from (seed, step) only, which images every rank gets and at which
resolution: all images of a global batch share one resolution drawn from the schedule's list, every
rank draws the same one, ranks take disjoint contiguous slices of the global batch, and a resumed run
gets exactly the batches it would have had. Per-image augmentation is seeded by (seed, step, position
in the global batch), so it does not depend on the number of ranks either.

Corrupt images in a folder are skipped with a warning (the next image is used in their place), so a
long run does not die on one bad file; a run where every image fails stops with a TrainError.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from latkit.errors import LatkitError, TrainError
from latkit.supernet.builtin_data import (
    DIGITS_ORIGIN,
    GRATINGS_ORIGIN,
    N_CLASSES_GRATINGS,
    make_digits,
    make_gratings,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff", ".gif")
HOLDOUT_FRACTION = 0.1
SPLIT_SEED = 0  # the held-out split and calibration subset never depend on the training seed


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    min_scale: float = 0.08  # random-resized-crop area scale lower bound
    flip: bool = True
    eval_crop: float = 0.875
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # random-resized-crop aspect range


class ImageSource:
    """Images with integer labels; ``image(i)`` is an RGB ``PIL.Image``."""

    classes: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> Image.Image:  # pragma: no cover - abstract
        raise NotImplementedError


class ArraySource(ImageSource):
    """In-memory uint8 images (N x H x W x 3)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> None:
        self.images, self.labels, self.classes = images, np.asarray(labels, np.int64), list(classes)

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])


class FolderSource(ImageSource):
    """Image files with labels; unreadable files are replaced by the next readable one (warning)."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], classes: Sequence[str],
                 warn: Callable[[str], None] | None = None) -> None:
        self.files, self.labels, self.classes = list(files), np.asarray(labels, np.int64), list(classes)
        self._warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
        self.bad: set[int] = set()

    def _open(self, i: int) -> Image.Image:
        with Image.open(self.files[i]) as im:
            return im.convert("RGB")

    def image(self, i: int) -> Image.Image:
        return self.item(i)[0]

    def item(self, i: int) -> tuple[Image.Image, int]:
        for k in range(len(self.files)):
            j = (i + k) % len(self.files)
            if j in self.bad:
                continue
            try:
                return self._open(j), int(self.labels[j])
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                self.bad.add(j)
                self._warn(f"skipping unreadable image {self.files[j]} "
                           f"({type(exc).__name__}: {str(exc)[:120]}); using the next one")
        raise TrainError(f"no readable image among the {len(self.files)} files of the data set "
                         f"(first: {self.files[0]}); check the files are images Pillow can open")


@dataclass
class TrainData:
    """A training split, a held-out split and how to transform them."""

    name: str
    origin: str
    train: ImageSource
    heldout: ImageSource
    augment: Augment = field(default_factory=Augment)
    default_resolutions: tuple[int, ...] = (224,)

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    @property
    def n_classes(self) -> int:
        return len(self.train.classes)

    def describe(self) -> dict:
        return {"name": self.name, "origin": self.origin, "n_classes": self.n_classes,
                "classes": list(self.classes), "n_train": len(self.train),
                "n_heldout": len(self.heldout), "augment": asdict(self.augment),
                "default_resolutions": list(self.default_resolutions)}


# --------------------------------------------------------------------------------------------
# Opening data sets
# --------------------------------------------------------------------------------------------

BUILTIN = ("gratings", "digits")
DEFAULT_DATA = "builtin:gratings"


def open_data(spec: str, *, max_train: int | None = None, max_heldout: int | None = None,
              warn: Callable[[str], None] | None = None) -> TrainData:
    """``builtin:NAME`` or a directory (see the module docstring)."""
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if name not in BUILTIN:
            raise TrainError(f"unknown built-in data set {name!r}; built-in: "
                             + ", ".join(f"builtin:{b}" for b in BUILTIN))
        if name == "gratings":
            return builtin_gratings(max_train=max_train, max_heldout=max_heldout)
        return builtin_digits(max_train=max_train, max_heldout=max_heldout)
    return image_folder(Path(spec), max_train=max_train, max_heldout=max_heldout, warn=warn)


def builtin_gratings(max_train: int | None = None, max_heldout: int | None = None) -> TrainData:
    x_tr, y_tr, x_ho, y_ho = make_gratings(max_train, max_heldout)
    step = 180 // N_CLASSES_GRATINGS
    classes = [f"{c * step}deg" for c in range(N_CLASSES_GRATINGS)]
    # no flips and no aspect change: both would change the orientation, i.e. the label
    return TrainData("builtin:gratings", GRATINGS_ORIGIN, ArraySource(x_tr, y_tr, classes),
                     ArraySource(x_ho, y_ho, classes),
                     Augment(min_scale=0.5, flip=False, eval_crop=1.0, ratio=(1.0, 1.0)),
                     default_resolutions=(128, 136, 144))


def builtin_digits(max_train: int | None = None, max_heldout: int | None = None) -> TrainData:
    x_tr, y_tr, x_ho, y_ho = make_digits(max_train, max_heldout)
    classes = [str(i) for i in range(10)]
    return TrainData("builtin:digits", DIGITS_ORIGIN, ArraySource(x_tr, y_tr, classes),
                     ArraySource(x_ho, y_ho, classes),
                     Augment(min_scale=0.5, flip=False, eval_crop=1.0),
                     default_resolutions=(128, 136, 144))


def _class_files(root: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
        if files:
            out[d.name] = files
    return out


def image_folder(root: Path, *, max_train: int | None = None, max_heldout: int | None = None,
                 warn: Callable[[str], None] | None = None) -> TrainData:
    """A class-per-directory image folder (with or without train/ and val/ splits)."""
    layout = "DIR/<class>/<image>.jpg (or DIR/train/<class>/... and DIR/val/<class>/...)"
    if not root.is_dir():
        raise TrainError(f"data directory {root} does not exist; expected {layout}, "
                         "or use --data builtin:gratings")
    val_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and val_dir is not None:
        train_map = _class_files(root / "train")
        classes = list(train_map)
        val_map = _class_files(val_dir)
        unknown = sorted(set(val_map) - set(classes))
        if unknown:
            raise TrainError(f"{val_dir} has classes {unknown[:5]} that {root / 'train'} lacks")
        tr = [(f, classes.index(c)) for c in classes for f in train_map[c]]
        ho = [(f, classes.index(c)) for c in val_map for f in val_map[c]]
    else:
        cmap = _class_files(root)
        classes = list(cmap)
        tr, ho = [], []
        rng = np.random.default_rng(SPLIT_SEED)
        for ci, c in enumerate(classes):
            files = cmap[c]
            n_ho = int(round(HOLDOUT_FRACTION * len(files))) if len(files) >= 2 else 0
            n_ho = max(n_ho, 1 if len(files) >= 2 else 0)
            perm = rng.permutation(len(files))
            ho += [(files[j], ci) for j in perm[:n_ho]]
            tr += [(files[j], ci) for j in sorted(perm[n_ho:])]
    if not tr:
        raise TrainError(f"data directory {root} holds no images in class subdirectories; "
                         f"expected {layout} with extensions {', '.join(IMAGE_EXTENSIONS)}")
    if len(classes) < 2:
        raise TrainError(f"data directory {root} has {len(classes)} class directory; need >= 2")
    if max_train is not None:
        tr = [tr[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(tr))[:max_train]]
    if max_heldout is not None:
        ho = ho[:max_heldout]
    if not ho:
        ho = tr[:1]
    return TrainData(
        name=str(root), origin=f"image folder {root}",
        train=FolderSource([f for f, _ in tr], [c for _, c in tr], classes, warn),
        heldout=FolderSource([f for f, _ in ho], [c for _, c in ho], classes, warn),
        augment=Augment(), default_resolutions=(224,),
    )


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------


def random_resized_box(w: int, h: int, rng: np.random.Generator, min_scale: float,
                       ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """A random crop box (x0, y0, x1, y1) of area scale min_scale..1 and the given aspect range."""
    area = w * h
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(min_scale, 1.0)
        aspect = math.exp(rng.uniform(*log_r))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return x0, y0, x0 + cw, y0 + ch
    return center_box(w, h, 1.0)


def center_box(w: int, h: int, crop: float) -> tuple[int, int, int, int]:
    """The centred square box of side ``crop`` x the shorter side."""
    s = max(1, int(round(min(w, h) * crop)))
    x0, y0 = (w - s) // 2, (h - s) // 2
    return x0, y0, x0 + s, y0 + s


def train_transform(img: Image.Image, r: int, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    box = random_resized_box(img.width, img.height, rng, aug.min_scale, aug.ratio)
    out = img.resize((r, r), Image.BILINEAR, box=box)
    if aug.flip and rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(out, dtype=np.uint8)


def eval_transform(img: Image.Image, r: int, aug: Augment) -> np.ndarray:
    """Evaluation view at resolution r.

    ``eval_crop < 1`` (image folders): once-for-all's evaluation transform, as torchvision's
    ``Resize(ceil(r / 0.875))`` + ``CenterCrop(r)``: the shorter side resized (bilinear) to
    ``ceil(r / eval_crop)``, the longer in proportion, then the centred r x r. ``eval_crop == 1``
    (the built-in sets): the centred square resized to r.
    """
    if aug.eval_crop >= 1.0:
        box = center_box(img.width, img.height, aug.eval_crop)
        return np.asarray(img.resize((r, r), Image.BILINEAR, box=box), dtype=np.uint8)
    size = int(math.ceil(r / aug.eval_crop))
    w, h = img.width, img.height
    nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    img = img.resize((nw, nh), Image.BILINEAR)
    top, left = int(round((nh - r) / 2.0)), int(round((nw - r) / 2.0))
    return np.asarray(img.crop((left, top, left + r, top + r)), dtype=np.uint8)


def _decode_eval(args: tuple[str, int, Augment]) -> np.ndarray | None:
    """One image file through ``eval_transform`` (a worker process's job); None if unreadable."""
    path, r, aug = args
    try:
        with Image.open(path) as im:
            return eval_transform(im.convert("RGB"), r, aug)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def to_tensor(batch_u8: np.ndarray):
    """N x H x W x 3 uint8 -> N x 3 x H x W float tensor normalised with ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(batch_u8)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _item(source: ImageSource, i: int) -> tuple[Image.Image, int]:
    if isinstance(source, FolderSource):
        return source.item(int(i))
    return source.image(int(i)), int(source.labels[i])


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


class BatchPlan:
    """Which images (and resolution) each rank trains on at each global step; see module docstring."""

    def __init__(self, n_images: int, batch_size: int, resolutions: Sequence[int], seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.global_batch = batch_size * world_size
        if n_images < self.global_batch:
            raise TrainError(f"the training split has {n_images} images, fewer than one global batch "
                             f"({batch_size} x {world_size} ranks); lower --batch-size")
        self.n, self.batch_size, self.seed = n_images, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.resolutions = tuple(resolutions)
        self.steps_per_epoch = n_images // self.global_batch
        self._perm_epoch, self._perm = -1, np.arange(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, 1, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return self._perm

    def epoch(self, step: int) -> float:
        return step / self.steps_per_epoch

    def resolution(self, step: int) -> int:
        rng = np.random.default_rng([self.seed, 2, step])
        return int(self.resolutions[int(rng.integers(0, len(self.resolutions)))])

    def global_indices(self, step: int) -> np.ndarray:
        e, b = divmod(step, self.steps_per_epoch)
        return self._permutation(e)[b * self.global_batch:(b + 1) * self.global_batch]

    def indices(self, step: int) -> np.ndarray:
        """This rank's slice of the global batch."""
        g = self.global_indices(step)
        return g[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]


def load_train_batch(data: TrainData, plan: BatchPlan, step: int):
    """(images tensor, labels tensor, resolution) of this rank for ``step``."""
    r = plan.resolution(step)
    idx = plan.indices(step)
    offset = plan.rank * plan.batch_size
    arrays, labels = [], []
    for j, i in enumerate(idx):
        img, y = _item(data.train, int(i))
        rng = np.random.default_rng([plan.seed, 3, step, offset + j])
        arrays.append(train_transform(img, r, data.augment, rng))
        labels.append(y)
    return to_tensor(np.stack(arrays)), torch.tensor(labels, dtype=torch.long), r


class _StepBatches(torch.utils.data.Dataset):
    """Item ``step`` is ``load_train_batch(data, plan, step)`` (a worker process's job); a latkit
    error comes back as a value, so that the main process raises it as itself (one line)."""

    def __init__(self, data: TrainData, plan: BatchPlan, steps: int) -> None:
        self.data, self.plan, self.steps = data, plan, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int):
        try:
            return load_train_batch(self.data, self.plan, int(step))
        except LatkitError as exc:
            return exc


class BatchLoader:
    """This rank's batches for steps ``start``, ``start + 1``, ... ``stop - 1``, in order.

    ``workers`` > 0 decodes and augments in that many worker processes (``torch.utils.data``'s,
    forked), ``prefetch`` batches ahead each, into pinned memory when ``pin_memory`` (a CUDA
    device's host-to-device copy then overlaps the step); 0 loads in this process, when asked.
    Batches are functions of (seed, step), so they are the same either way. A context manager:
    leaving it stops the workers.
    """

    def __init__(self, data: TrainData, plan: BatchPlan, start: int, stop: int | None = None, *,
                 workers: int = 0, prefetch: int = 2, pin_memory: bool = False) -> None:
        self.data, self.plan, self.step = data, plan, start
        self.workers = workers
        self._it = None
        if workers > 0:
            stop = stop if stop is not None else start + 10 ** 9
            steps = _StepBatches(data, plan, stop)
            self._loader = torch.utils.data.DataLoader(
                steps, batch_size=None, sampler=range(start, stop), num_workers=workers,
                prefetch_factor=prefetch, pin_memory=pin_memory, persistent_workers=False,
                multiprocessing_context="fork",
                # its own generator: the workers' base seed must not be drawn from the global RNG
                # (a resumed run restores that and must continue it exactly as the original did)
                generator=torch.Generator().manual_seed(plan.seed))
            self._it = iter(self._loader)

    def __iter__(self) -> BatchLoader:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        step = self.step
        self.step += 1
        if self._it is None:
            return load_train_batch(self.data, self.plan, step)
        item = next(self._it)
        if isinstance(item, LatkitError):
            raise item
        return item

    def close(self) -> None:
        it, self._it = self._it, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()

    def __enter__(self) -> BatchLoader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_eval_images(source: ImageSource, indices: Sequence[int], r: int, aug: Augment,
                     workers: int = 0, on_progress: Callable[[int], None] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Centre-cropped uint8 images (N x r x r x 3) and labels, for calibration or evaluation.

    ``workers`` > 1 decodes image files in that many processes (in order; an unreadable file is
    then replaced in this process, as ``FolderSource.item`` does); ``on_progress(n)`` after every
    n images.
    """
    indices = [int(i) for i in indices]
    arrays: list[np.ndarray | None] = []
    labels: list[int] = []
    if workers > 1 and isinstance(source, FolderSource) and len(indices) >= 4 * workers:
        import multiprocessing  # noqa: PLC0415 -- only for multi-process decoding

        jobs = [(str(source.files[i]), r, aug) for i in indices]
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for a in pool.imap(_decode_eval, jobs, chunksize=16):
                arrays.append(a)
                if on_progress is not None:
                    on_progress(1)
        for k, i in enumerate(indices):
            if arrays[k] is None:
                img, y = source.item(i)
                arrays[k] = eval_transform(img, r, aug)
                labels.append(y)
            else:
                labels.append(int(source.labels[i]))
        return np.stack(arrays), np.asarray(labels, np.int64)
    for i in indices:
        img, y = _item(source, i)
        arrays.append(eval_transform(img, r, aug))
        labels.append(y)
        if on_progress is not None:
            on_progress(1)
    return np.stack(arrays), np.asarray(labels, np.int64)


def calibration_indices(data: TrainData, n: int) -> np.ndarray:
    """The fixed subset of training images BN statistics are re-estimated on (seeded, sorted)."""
    n = min(n, len(data.train))
    return np.sort(np.random.default_rng([SPLIT_SEED, 4]).permutation(len(data.train))[:n])


def heldout_indices(data: TrainData, n: int | None) -> np.ndarray:
    m = len(data.heldout)
    return np.arange(m if n is None else min(n, m))
