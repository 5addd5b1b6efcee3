"""Tiny datasets and weights in the exact on-disk formats torchvision reads.

Nothing here downloads anything.  The notebooks keep torchvision's real
loading code; tests and the offline example run point that code at these
files.  torchvision checks MD5 sums of dataset files, so, like torchvision's
own tests, the *harness* (never a notebook) makes it trust the fixture files:
:func:`trusted_checksums` patches the dataset classes' md5 entries.

Formats (see ``../shared/STYLE.md``, "Data and fixtures"):

* SVHN ``{train,test}_32x32.mat``: ``X (32, 32, 3, N) uint8``, ``y (N, 1)`` labels
  1..10 where 10 means the digit 0.
* CIFAR-10 ``cifar-10-batches-py/``: pickled dicts ``data (N, 3072) uint8``
  (R, G, B planes) and ``labels``, plus ``batches.meta`` with ``label_names``.
* MNIST ``MNIST/raw/*-ubyte``: IDX files (magic 2051 images, 2049 labels).
* ResNet-18 ImageNet weights: a state dict at
  ``$TORCH_HOME/hub/checkpoints/<original file name>``; torchvision loads a
  pre-placed file without a hash check.
* UCI "Gender by Name": CSV ``Name,Gender,Count,Probability``, UTF-8 with BOM,
  CRLF line ends, no final newline.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import struct
from pathlib import Path

import numpy as np

# 3x5 bitmaps of the ten digits, so that fixture images look like digits and
# a model can learn something from them.
_GLYPHS = {
    0: ["111", "101", "101", "101", "111"],
    1: ["010", "110", "010", "010", "111"],
    2: ["111", "001", "111", "100", "111"],
    3: ["111", "001", "111", "001", "111"],
    4: ["101", "101", "111", "001", "001"],
    5: ["111", "100", "111", "001", "111"],
    6: ["111", "100", "111", "101", "111"],
    7: ["111", "001", "010", "010", "010"],
    8: ["111", "101", "111", "101", "111"],
    9: ["111", "101", "111", "001", "111"],
}

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]


def md5(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digit_images(labels: np.ndarray, size: int, rng: np.random.Generator,
                 colour: bool = True, neighbours: bool = False) -> np.ndarray:
    """Images of the digits in ``labels``: ``(N, size, size, 3)`` or ``(N, size, size)`` uint8."""
    n = len(labels)
    out = np.empty((n, size, size, 3), dtype=np.float32)
    scale = max(1, size // 8)
    gh, gw = 5 * scale, 3 * scale
    for i, digit in enumerate(labels):
        background = rng.uniform(0, 255, size=3) if colour else np.full(3, rng.uniform(0, 40))
        foreground = 255 - background if colour else np.full(3, 255.0)
        canvas = np.tile(background, (size, size, 1))
        glyph = np.kron(np.array([[c == "1" for c in row] for row in _GLYPHS[int(digit)]], dtype=np.float32),
                        np.ones((scale, scale), dtype=np.float32))
        top = (size - gh) // 2 + int(rng.integers(-1, 2))
        left = (size - gw) // 2 + int(rng.integers(-1, 2))
        spots = [(top, left, glyph)]
        if neighbours:  # SVHN digits have neighbours on both sides
            for side in (-1, 1):
                other = np.kron(np.array([[c == "1" for c in row] for row in _GLYPHS[int(rng.integers(10))]],
                                         dtype=np.float32), np.ones((scale, scale), dtype=np.float32))
                spots.append((top, left + side * (gw + scale), other))
        for t, l, g in spots:
            t0, l0 = max(t, 0), max(l, 0)
            t1, l1 = min(t + g.shape[0], size), min(l + g.shape[1], size)
            if t1 <= t0 or l1 <= l0:
                continue
            mask = g[t0 - t:t1 - t, l0 - l:l1 - l, None]
            canvas[t0:t1, l0:l1] = canvas[t0:t1, l0:l1] * (1 - mask) + foreground * mask
        canvas += rng.normal(0, 12, size=canvas.shape)
        out[i] = canvas
    out = np.clip(out, 0, 255).astype(np.uint8)
    return out if colour else out[..., 0]


# --------------------------------------------------------------------------- SVHN
def write_svhn(root: str | os.PathLike, n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict:
    """Write ``train_32x32.mat`` and ``test_32x32.mat``; return ``{split: digits}`` (0..9)."""
    from scipy.io import savemat

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    digits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = digit_images(labels, 32, rng, colour=True, neighbours=True)  # (N, 32, 32, 3)
        y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(n, 1)
        savemat(root / f"{split}_32x32.mat", {"X": np.ascontiguousarray(images.transpose(1, 2, 3, 0)), "y": y})
        digits[split] = labels
    return digits


# ----------------------------------------------------------------------- CIFAR-10
def write_cifar10(root: str | os.PathLike, n_per_batch: int = 100, n_test: int = 100, seed: int = 0) -> dict:
    """Write ``cifar-10-batches-py`` with five training batches and a test batch."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}

    def batch(name, n, label):
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        # class-dependent colour so that the classes are learnable
        base = np.array(labels, dtype=np.float32)[:, None] * 20 + 30
        data = np.clip(base + rng.normal(0, 40, size=(n, 3072)), 0, 255).astype(np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": label, "labels": labels, "data": data,
                         "filenames": [f"img_{i}.png" for i in range(n)]}, f)
        written[name] = (data, labels)

    for k in range(1, 6):
        batch(f"data_batch_{k}", n_per_batch, f"training batch {k} of 5")
    batch("test_batch", n_test, "testing batch 1 of 1")
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR10_CLASSES, "num_cases_per_batch": n_per_batch, "num_vis": 3072}, f)
    return written


# -------------------------------------------------------------------------- MNIST
def _write_idx(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        if array.ndim == 3:
            f.write(struct.pack(">IIII", 2051, *array.shape))
        else:
            f.write(struct.pack(">II", 2049, array.shape[0]))
        f.write(array.astype(np.uint8).tobytes())


def write_mnist(root: str | os.PathLike, n_train: int = 600, n_test: int = 200, seed: int = 0) -> None:
    """Write ``MNIST/raw`` IDX files (uncompressed, as torchvision leaves them after download)."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", digit_images(labels, 28, rng, colour=False))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)


# ---------------------------------------------------------------- gender by name
def write_gender_csv(path: str | os.PathLike, n: int = 400, seed: int = 0) -> None:
    """A small CSV in the real format of UCI dataset 591 (BOM, CRLF, no final newline)."""
    rng = np.random.default_rng(seed)
    starts = ["an", "mar", "el", "jo", "kat", "li", "ro", "sa", "ben", "da", "al", "ev", "mi", "th", "ju"]
    middles = ["", "r", "l", "n", "ri", "le", "de", "ma", "to", "vi"]
    female_ends = ["a", "ie", "ine", "elle", "anna", "ia", "ette", "y"]
    male_ends = ["o", "us", "an", "er", "ik", "on", "ard", "-paul"]
    # at most len(starts) * len(middles) * len(ends) distinct names per gender
    n = min(n, len(starts) * len(middles) * (len(female_ends) + len(male_ends)) // 2)
    rows, seen = [], set()
    while len(rows) < n:
        female = bool(rng.random() < 0.6)
        ends = female_ends if female else male_ends
        name = (rng.choice(starts) + rng.choice(middles) + rng.choice(ends)).capitalize()
        if (name, female) in seen:
            continue
        seen.add((name, female))
        rows.append([name, "F" if female else "M", int(rng.integers(5, 5000))])
    total = sum(r[2] for r in rows)
    lines = ["Name,Gender,Count,Probability"] + [f"{a},{g},{c},{c / total:.12g}" for a, g, c in rows]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        f.write("\r\n".join(lines))


# ---------------------------------------------------------------------- weights
def resnet18_weights_path(torch_home: str | os.PathLike) -> Path:
    from torchvision.models import ResNet18_Weights

    name = os.path.basename(ResNet18_Weights.IMAGENET1K_V1.url)
    return Path(torch_home) / "hub" / "checkpoints" / name


def write_resnet18_weights(torch_home: str | os.PathLike, seed: int = 0) -> Path:
    """Random-weight ResNet-18 state dict where torchvision caches the ImageNet weights."""
    import torch
    import torchvision

    path = resnet18_weights_path(torch_home)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None)
    torch.save(model.state_dict(), path)
    return path


def write_photo(path: str | os.PathLike, width: int = 320, height: int = 240, seed: int = 0) -> Path:
    """A generated colour photo (JPEG or PNG by suffix) for when no real photo is at hand."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), dtype=np.float32)
    image[...] = [90, 140, 60]  # grass
    cy, cx = height * 0.55, width * 0.45
    blob = ((yy - cy) / (height * 0.25)) ** 2 + ((xx - cx) / (width * 0.2)) ** 2 < 1
    image[blob] = [200, 140, 60]
    image += rng.normal(0, 10, size=image.shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return path


# ------------------------------------------------------------- trusting fixtures
def _patch_checksums(root: str | os.PathLike):
    """Point torchvision's md5 entries at the fixture files found under ``root``.

    Returns a function that undoes the patch.
    """
    from torchvision import datasets

    root = Path(root)
    undo = []

    def set_attr(obj, name, value):
        undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    svhn = {split: list(entry) for split, entry in datasets.SVHN.split_list.items()}
    for split, entry in svhn.items():
        if (root / entry[1]).exists():
            entry[2] = md5(root / entry[1])
    set_attr(datasets.SVHN, "split_list", svhn)

    folder = root / datasets.CIFAR10.base_folder
    if folder.exists():
        def fixed(entries):
            return [[name, md5(folder / name) if (folder / name).exists() else digest] for name, digest in entries]

        set_attr(datasets.CIFAR10, "train_list", fixed(datasets.CIFAR10.train_list))
        set_attr(datasets.CIFAR10, "test_list", fixed(datasets.CIFAR10.test_list))
        meta = dict(datasets.CIFAR10.meta)
        if (folder / meta["filename"]).exists():
            meta["md5"] = md5(folder / meta["filename"])
        set_attr(datasets.CIFAR10, "meta", meta)

    def restore():
        for obj, name, value in reversed(undo):
            setattr(obj, name, value)

    return restore


@contextlib.contextmanager
def trusted_checksums(root: str | os.PathLike):
    """Within the block torchvision accepts the fixture files under ``root``."""
    restore = _patch_checksums(root)
    try:
        yield
    finally:
        restore()


def trust_checksums_for_session(root: str | os.PathLike) -> None:
    """Patch for the rest of the process (used by the offline kernels' start-up file)."""
    _patch_checksums(root)


@contextlib.contextmanager
def fake_download(dataset_cls, write):
    """Replace ``dataset_cls.download`` by ``write(self)``; yield the list of calls.

    Lets a test see that a dataset is created with ``download=True`` without a network.
    """
    calls = []
    original = dataset_cls.download

    def download(self):
        calls.append(self.root)
        write(self)

    dataset_cls.download = download
    try:
        yield calls
    finally:
        dataset_cls.download = original
