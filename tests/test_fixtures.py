"""Fixtures are in the real on-disk formats: torchvision reads them as it reads the real files."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch
import torchvision

from coursekit.kernel import fixtures

from .conftest import SHARED_DATA, absent


def test_svhn_fixture_loads_with_torchvision(tmp_path):
    digits = fixtures.write_svhn(tmp_path, n_train=30, n_test=20)
    with fixtures.trusted_checksums(tmp_path):
        train = torchvision.datasets.SVHN(tmp_path, split="train", download=True)
        test = torchvision.datasets.SVHN(tmp_path, split="test")
    assert len(train) == 30 and len(test) == 20
    assert train.data.shape == (30, 3, 32, 32) and train.data.dtype == np.uint8
    assert np.array_equal(train.labels, digits["train"])  # 10 on disk is the digit 0 here
    assert 0 in train.labels
    # outside the block torchvision checks the real md5 again and refuses the fixture
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        torchvision.datasets.SVHN(tmp_path, split="train")


def test_cifar10_fixture_loads_with_torchvision(tmp_path):
    fixtures.write_cifar10(tmp_path, n_per_batch=7, n_test=5)
    with fixtures.trusted_checksums(tmp_path):
        train = torchvision.datasets.CIFAR10(tmp_path, train=True, download=True)
        test = torchvision.datasets.CIFAR10(tmp_path, train=False)
    assert len(train) == 35 and len(test) == 5
    assert train.data.shape == (35, 32, 32, 3) and train.classes == fixtures.CIFAR10_CLASSES


def test_mnist_fixture_loads_with_torchvision(tmp_path):
    fixtures.write_mnist(tmp_path, n_train=12, n_test=8)
    train = torchvision.datasets.MNIST(tmp_path, train=True, download=True)
    test = torchvision.datasets.MNIST(tmp_path, train=False)
    assert len(train) == 12 and len(test) == 8 and train.data.shape == (12, 28, 28)


def test_resnet18_weights_are_loaded_from_the_torch_cache_without_a_download(tmp_path, monkeypatch):
    fixtures.write_resnet18_weights(tmp_path, seed=1)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    saved = torch.load(fixtures.resnet18_weights_path(tmp_path))
    assert torch.equal(model.conv1.weight, saved["conv1.weight"])


def test_gender_csv_fixture_has_the_real_format(tmp_path):
    path = tmp_path / "name_gender_dataset.csv"
    fixtures.write_gender_csv(path, n=50)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfName,Gender,Count,Probability\r\n") and not raw.endswith(b"\n")
    rows = raw.decode("utf-8-sig").split("\r\n")[1:]
    assert len(rows) == 50 and {r.split(",")[1] for r in rows} == {"F", "M"}
    assert abs(sum(float(r.split(",")[3]) for r in rows) - 1) < 1e-6


@pytest.mark.skipif(absent(SHARED_DATA / "gender_by_name"), reason="../shared/data not present")
def test_gender_csv_fixture_matches_the_real_file():
    real = (SHARED_DATA / "gender_by_name" / "name_gender_dataset.csv").read_bytes()
    assert real.startswith(b"\xef\xbb\xbfName,Gender,Count,Probability\r\n") and not real.endswith(b"\n")


@pytest.mark.skipif(absent(SHARED_DATA / "mnist"), reason="../shared/data not present")
def test_mnist_fixture_has_the_layout_of_the_real_files(tmp_path):
    fixtures.write_mnist(tmp_path, n_train=4, n_test=4)
    raw = SHARED_DATA / "mnist" / "MNIST" / "raw"
    real = gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())
    ours = (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()
    assert real[:4] == ours[:4] and real[8:16] == ours[8:16]  # magic number and 28x28
    target = tmp_path / "real" / "MNIST" / "raw"
    target.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (target / name).write_bytes(gzip.decompress((raw / f"{name}.gz").read_bytes()))
    shutil.copy(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", target)
    shutil.copy(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", target)
    assert len(torchvision.datasets.MNIST(tmp_path / "real", train=False)) == 10_000


def test_offline_startup_file_makes_a_kernel_trust_the_fixtures(offline_env):
    """The IPython start-up file lets unmodified notebook code load the fixtures in a kernel."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(
        "import os, torchvision\n"
        "len(torchvision.datasets.SVHN(os.environ['COURSE_DATA_DIR'], split='test', download=True))")])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    import os
    old = {k: os.environ.get(k) for k in offline_env}
    os.environ.update(offline_env)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    assert nb.cells[0].outputs[-1].data["text/plain"] == "300"
