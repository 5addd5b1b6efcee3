"""Train the lab 2 solution on real MNIST digits on the CPU: 8,000 of the real test digits for training,
the other 2,000 for testing.

Only MNIST's real *test* set (10,000 digits, ``t10k-*.gz``) is at hand offline (``../shared/data/mnist``).
This script splits it with a seeded random permutation into 8,000 "training" and 2,000 "test" digits and
writes them as a real MNIST folder (``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``, the
uncompressed IDX files torchvision leaves after a download).  Then it runs the notebook's own code: the setup
cell and the solution of every answer cell of ``source/lab/2_mnist_first_network.ipynb``
(``make_mnist_loaders``, ``MNISTNet``, ``make_loss_and_optimizer``, ``train_one_epoch``, ``evaluate``) with the
configuration of the notebook's training cell (batch size 100, Adam 1e-3, seed 0, training and test accuracy
after every epoch), 10 epochs by default.

    python benchmarks/mnist_real_digits.py                       # 10 epochs, prints a table
    python benchmarks/mnist_real_digits.py --epochs 3 --threads 1 --json result.json

Measured (torch 2.14.1, 2 shared CPU cores, 1 thread): training accuracy 0.9999, test accuracy 0.9550 after
10 epochs, about 10 s in all (0.5 s per training epoch).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import platform
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOTEBOOK = ROOT / "source" / "lab" / "2_mnist_first_network.ipynb"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
ANSWERS = ("mnist_a_loaders", "mnist_b_network", "mnist_c_training", "mnist_d_evaluate")


def solution_namespace() -> dict:
    """Run the notebook's setup cell and the solutions of its answer cells; return their namespace."""
    import nbformat

    from coursekit import submissions

    nb = nbformat.read(NOTEBOOK, as_version=4)
    answers = submissions.solution_answers(nb)
    setup = next(c for c in nb.cells if submissions.grade_id(c) == "mnist_setup")
    namespace = {"__name__": "mnist_real_digits_solution"}
    os.environ.pop("NBGRADER_EXECUTION", None)  # the full configuration, not grading mode
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(setup.source, "mnist_setup", "exec"), namespace)
    for grade_id in ANSWERS:
        exec(compile(answers[grade_id], grade_id, "exec"), namespace)
    return namespace


def read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        if array.ndim == 3:
            f.write(struct.pack(">IIII", 2051, *array.shape))
        else:
            f.write(struct.pack(">II", 2049, array.shape[0]))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_split(source: Path, root: Path, n_train: int = 8000, seed: int = 0) -> dict:
    """Write ``root/MNIST/raw`` with ``n_train`` of the real test digits as training split, the rest as test split."""
    images = read_idx_gz(source / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx_gz(source / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz")
    order = np.random.default_rng(seed).permutation(len(labels))
    train, test = order[:n_train], order[n_train:]
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    write_idx(raw / "train-images-idx3-ubyte", images[train])
    write_idx(raw / "train-labels-idx1-ubyte", labels[train])
    write_idx(raw / "t10k-images-idx3-ubyte", images[test])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[test])
    return {"train": len(train), "test": len(test)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_MNIST, help="folder holding MNIST/raw/t10k-*.gz")
    parser.add_argument("--train", type=int, default=8000, help="digits for training (the rest test)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (training uses seed 0 as the notebook)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); on shared cores "
                        "1 thread is often faster than several")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)

    import torch

    ns = solution_namespace()
    device = torch.device("cpu")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = _train(ns, args, device)
    finally:
        torch.set_num_threads(threads)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


def _train(ns, args, device) -> dict:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        sizes = write_split(args.data, Path(tmp), args.train, args.seed)
        start = time.perf_counter()
        train_loader, test_loader = ns["make_mnist_loaders"](tmp)
        load_s = time.perf_counter() - start
        torch.manual_seed(0)  # as the notebook's training cell
        model = ns["MNISTNet"]().to(device)
        loss_fn, optimizer = ns["make_loss_and_optimizer"](model)
        epochs = []
        for epoch in range(args.epochs):
            start = time.perf_counter()
            train_loss = ns["train_one_epoch"](model, train_loader, loss_fn, optimizer, device)
            train_s = time.perf_counter() - start
            train_acc = ns["evaluate"](model, train_loader, device)
            test_acc = ns["evaluate"](model, test_loader, device)
            epochs.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                           "test_acc": test_acc, "train_s": train_s,
                           "eval_s": time.perf_counter() - start - train_s})
            print(f"epoch {epoch + 1:2d}/{args.epochs}: training loss {train_loss:.4f}, training accuracy "
                  f"{train_acc:.4f}, test accuracy {test_acc:.4f} ({train_s:.1f} s training, "
                  f"{epochs[-1]['eval_s']:.1f} s evaluating)")
    result = {
        "train_images": sizes["train"], "test_images": sizes["test"], "epochs": args.epochs,
        "train_acc": epochs[-1]["train_acc"] if epochs else None,
        "test_acc": epochs[-1]["test_acc"] if epochs else None,
        "total_s": load_s + sum(e["train_s"] + e["eval_s"] for e in epochs),
        "train_s": sum(e["train_s"] for e in epochs), "per_epoch": epochs,
        "device": "cpu", "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(f"{sizes['train']} real digits for training, {sizes['test']} for testing, {args.epochs} epochs on the CPU "
          f"(torch threads: {result['torch_threads']}): training accuracy {result['train_acc']:.4f}, test accuracy "
          f"{result['test_acc']:.4f}, {result['total_s']:.1f} s in all ({result['train_s']:.1f} s training)")
    return result


if __name__ == "__main__":
    main()
