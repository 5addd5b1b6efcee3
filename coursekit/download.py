"""Download the datasets and weights the notebooks need, once, before grading.

Graded notebooks run in a sandbox without network and with a read-only data folder, so
everything they read must already be in ``COURSE_DATA_DIR`` (default ``data/``) and
``TORCH_HOME`` (default ``data/torch``) when ``nbgrader autograde`` starts; the files land
exactly where the notebooks' own download code puts them on Colab.  ``python -m coursekit
download-data`` fetches what is missing; :func:`missing` is the check that the autograder runs
first (a notebook whose data is missing still grades, but its driver cells fail and its
feedback fills with errors).
"""

from __future__ import annotations

import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

NAMES_URL = "https://archive.ics.uci.edu/static/public/591/gender+by+name.zip"
PHOTO_URL = "https://upload.wikimedia.org/wikipedia/commons/7/73/Lion_waiting_in_Namibia.jpg"
PHOTO_CREDIT = "'Lion waiting in Namibia' by Kevin Pluck, CC BY 2.0, via Wikimedia Commons"
RESNET18_FILE = "resnet18-f37072fd.pth"


@dataclass(frozen=True)
class Resource:
    """A dataset or weights file the notebooks read: where it lies, how to download it, and the small fixture in
    the same format that stands in for it offline (``coursekit.offline``)."""

    name: str
    what: str
    files: tuple[str, ...]  # relative to the data folder; "torch/..." relative to TORCH_HOME
    fetch: Callable[[Path, Path], None]
    size: str
    fixture: Callable[[Path], None]  # writes the offline stand-in into a data folder (TORCH_HOME = <folder>/torch)

    def paths(self, data_dir: Path, torch_home: Path) -> list[Path]:
        return [torch_home / f.removeprefix("torch/") if f.startswith("torch/") else data_dir / f for f in self.files]

    def present(self, data_dir: Path, torch_home: Path) -> bool:
        return all(p.exists() for p in self.paths(data_dir, torch_home))


def _svhn(data_dir: Path, torch_home: Path) -> None:
    import torchvision

    for split in ("train", "test"):
        torchvision.datasets.SVHN(str(data_dir), split=split, download=True)


def _mnist(data_dir: Path, torch_home: Path) -> None:
    import torchvision

    for train in (True, False):
        torchvision.datasets.MNIST(str(data_dir), train=train, download=True)


def _cifar10(data_dir: Path, torch_home: Path) -> None:
    import torchvision

    for train in (True, False):
        torchvision.datasets.CIFAR10(str(data_dir), train=train, download=True)


def _resnet18(data_dir: Path, torch_home: Path) -> None:
    import torch
    from torchvision.models import ResNet18_Weights

    torch.hub.load_state_dict_from_url(ResNet18_Weights.IMAGENET1K_V1.url,
                                       model_dir=str(torch_home / "hub" / "checkpoints"), progress=True)


def _names(data_dir: Path, torch_home: Path) -> None:
    archive = data_dir / "gender_by_name.zip"
    urllib.request.urlretrieve(NAMES_URL, archive)
    try:
        with zipfile.ZipFile(archive) as zipped:
            member = next(m for m in zipped.namelist() if m.endswith("name_gender_dataset.csv"))
            with zipped.open(member) as source, open(data_dir / "name_gender_dataset.csv", "wb") as target:
                shutil.copyfileobj(source, target)
    finally:
        archive.unlink(missing_ok=True)


def _photo(data_dir: Path, torch_home: Path) -> None:
    import io

    from PIL import Image

    request = urllib.request.Request(PHOTO_URL, headers={"User-Agent": "deep-learning-course-kit/1.0"})
    with urllib.request.urlopen(request, timeout=60) as response:
        photo = Image.open(io.BytesIO(response.read())).convert("RGB")
    (data_dir / "photos").mkdir(parents=True, exist_ok=True)
    photo.save(data_dir / "photos" / "example.jpg", quality=95)
    (data_dir / "photos" / "example.jpg.credit.txt").write_text(PHOTO_CREDIT)


def _fixture(name: str, *args, **kwargs):
    """A fixture writer of ``coursekit.kernel.fixtures``, called with the data folder (imported when it runs)."""
    def write(root: Path) -> None:
        from .kernel import fixtures

        getattr(fixtures, name)(*[a(root) if callable(a) else a for a in args], **kwargs)
    return write


RESOURCES = (
    Resource("svhn", "SVHN house numbers (exam 3)", ("train_32x32.mat", "test_32x32.mat"), _svhn, "246 MB",
             _fixture("write_svhn", lambda root: root, n_train=600, n_test=300)),
    Resource("mnist", "MNIST digits (lab 2)", tuple(f"MNIST/raw/{f}" for f in (
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")),
        _mnist, "55 MB", _fixture("write_mnist", lambda root: root, n_train=600, n_test=300)),
    Resource("cifar10", "CIFAR-10 (lab 3)", tuple(f"cifar-10-batches-py/{f}" for f in (
        "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")),
        _cifar10, "178 MB", _fixture("write_cifar10", lambda root: root, n_per_batch=120, n_test=120)),
    Resource("resnet18", "ImageNet weights of ResNet-18 (exam 1)", (f"torch/hub/checkpoints/{RESNET18_FILE}",),
             _resnet18, "45 MB", _fixture("write_resnet18_weights", lambda root: root / "torch")),
    Resource("names", "UCI gender by name (exam 2)", ("name_gender_dataset.csv",), _names, "4 MB",
             _fixture("write_gender_csv", lambda root: root / "name_gender_dataset.csv", n=600)),
    Resource("photo", "example photo of Grad-CAM (exam 1)", ("photos/example.jpg",), _photo, "1 MB",
             _fixture("write_photo", lambda root: root / "photos" / "example.jpg")),
)

# which notebooks read which resources
NEEDS = {
    "1_gradcam": ("resnet18", "photo"),
    "2_elman_gender": ("names",),
    "3_svhn_cnn": ("svhn",),
    "2_mnist_first_network": ("mnist",),
    "3_vgg16_cifar10": ("cifar10",),
}


def folders(root: str | Path, environ: dict | None = None) -> tuple[Path, Path]:
    """The data folder and TORCH_HOME the graded notebooks use (as ``nbgrader_config.py`` sets them)."""
    environ = os.environ if environ is None else environ
    data_dir = Path(environ.get("COURSE_DATA_DIR") or Path(root) / "data")
    torch_home = Path(environ.get("TORCH_HOME") or data_dir / "torch")
    return data_dir.resolve(), torch_home.resolve()


def needed(notebooks: list[str] | None = None) -> list[Resource]:
    """The resources that ``notebooks`` read (all of them when None)."""
    if notebooks is None:
        return list(RESOURCES)
    names = {name for nb in notebooks for name in NEEDS.get(nb, ())}
    return [r for r in RESOURCES if r.name in names]


def missing(root: str | Path, notebooks: list[str] | None = None, environ: dict | None = None) -> list[Resource]:
    """The resources of ``notebooks`` not yet in the data folders."""
    data_dir, torch_home = folders(root, environ)
    return [r for r in needed(notebooks) if not r.present(data_dir, torch_home)]


def download(root: str | Path, notebooks: list[str] | None = None, say=print) -> list[str]:
    """Fetch every missing resource; return a message for each one that failed (empty: all there)."""
    data_dir, torch_home = folders(root)
    data_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    for resource in needed(notebooks):
        if resource.present(data_dir, torch_home):
            say(f"  {resource.name:9} already there: {resource.what}")
            continue
        say(f"  {resource.name:9} downloading {resource.what} ({resource.size}) ...")
        try:
            resource.fetch(data_dir, torch_home)
        except Exception as error:  # noqa: BLE001 - no network, server down: report, go on with the rest
            failures.append(f"{resource.name}: {type(error).__name__}: {error}")
            say(f"  {resource.name:9} FAILED: {error}")
            continue
        if not resource.present(data_dir, torch_home):
            failures.append(f"{resource.name}: downloaded, but {', '.join(resource.files)} not all there")
    return failures


def warning(root: str | Path, notebooks: list[str], environ: dict | None = None) -> str | None:
    """A one-paragraph warning naming the missing data of ``notebooks``, or None when all is there."""
    gone = missing(root, notebooks, environ)
    if not gone:
        return None
    data_dir, _ = folders(root, environ)
    return (f"Missing data in {data_dir}: {', '.join(r.what for r in gone)}. Graded notebooks have no network, "
            "so their data cells will fail (the hidden tests do not need the data, but the feedback fills with "
            "errors). Run `python -m coursekit download-data` first.")
