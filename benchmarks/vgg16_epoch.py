"""Time one training epoch of the lab 3 solution (VGG-16 on CIFAR-10): data loading versus compute.

The code timed is the notebook's own: the setup cell and the solution of every answer cell of
``source/lab/3_vgg16_cifar10.ipynb`` (``make_cifar10_datasets``, ``VGG16``, ``make_optimizer``,
``train_one_epoch``), with the notebook's full-size training configuration (batch size 256, shuffled,
2 DataLoader workers, pinned memory on a GPU).  The data are synthetic images written as a real
pickled CIFAR-10 (``coursekit.kernel.fixtures.write_cifar10``), so loading goes through torchvision's
``CIFAR10``, PIL, ``ToTensor`` and ``Normalize`` exactly as with the real dataset.

Three measurements:

1. *data only*: one pass over the training DataLoader without a model (what the workers can deliver);
2. *compute only*: ``train_one_epoch`` on batches already on the device (what the model can consume),
   after a warm-up;
3. *epoch*: ``train_one_epoch`` on the real DataLoader, timing how long each batch is waited for.
   ``train_one_epoch`` reads ``loss.item()`` after every step, which waits for the device, so the
   time between two batches is the compute time of the batch.

The slower of (1) and (2) is the bottleneck; (3) confirms it with the share of the epoch spent
waiting for data.

    python benchmarks/vgg16_epoch.py                      # 50,000 images, GPU if there is one
    python benchmarks/vgg16_epoch.py --images 2000 --device cpu --json result.json
    python benchmarks/vgg16_epoch.py --data-only          # (1) alone, at full size, e.g. without a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOTEBOOK = ROOT / "source" / "lab" / "3_vgg16_cifar10.ipynb"


def solution_namespace() -> dict:
    """Run the notebook's setup cell and the solutions of its answer cells; return their namespace."""
    import nbformat

    from coursekit import submissions

    nb = nbformat.read(NOTEBOOK, as_version=4)
    answers = submissions.solution_answers(nb)
    setup = next(c for c in nb.cells if submissions.grade_id(c) == "vgg_setup")
    namespace = {"__name__": "vgg16_epoch_solution"}
    os.environ.pop("NBGRADER_EXECUTION", None)  # the full-size configuration, not grading mode
    exec(compile(setup.source, "vgg_setup", "exec"), namespace)
    for grade_id in ("vgg_a_stats", "vgg_b_datasets", "vgg_c_network", "vgg_d_training"):
        exec(compile(answers[grade_id], grade_id, "exec"), namespace)
    return namespace


class TimedLoader:
    """Iterates a DataLoader and adds up the time spent waiting for each batch."""

    def __init__(self, loader):
        self.loader, self.dataset, self.wait = loader, loader.dataset, 0.0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        iterator = iter(self.loader)  # starts the workers: part of the waiting
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                self.wait += time.perf_counter() - start
                return
            self.wait += time.perf_counter() - start
            yield batch


def synchronize(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000, help="training images (default: CIFAR-10's 50,000)")
    parser.add_argument("--batch-size", type=int, default=256, help="the notebook's 256")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (the notebook's 2)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder for the synthetic CIFAR-10 (kept and reused; default: a temporary folder)")
    parser.add_argument("--data-only", action="store_true",
                        help="only measure (1), the DataLoader pass (e.g. 50,000 images on a machine without a GPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    ns = solution_namespace()
    torch, DataLoader = ns["torch"], ns["DataLoader"]
    from coursekit.kernel import fixtures

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    per_batch = -(-args.images // 5)  # five training batch files, like CIFAR-10
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data or Path(scratch)
        folder = Path(root) / "cifar-10-batches-py"
        start = time.perf_counter()
        if args.data is None or not (folder / "data_batch_5").exists() or _batch_size(folder) != per_batch:
            fixtures.write_cifar10(root, n_per_batch=per_batch, n_test=min(per_batch, 10_000))
        written = time.perf_counter() - start
        with fixtures.trusted_checksums(root):
            start = time.perf_counter()
            train_set, _ = ns["make_cifar10_datasets"](str(root))
            datasets_s = time.perf_counter() - start
        train_set = torch.utils.data.Subset(train_set, range(args.images)) if len(train_set) > args.images else train_set
        n = len(train_set)

        pin = device.type == "cuda"
        loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                            pin_memory=pin)
        batches = len(loader)

        # 1. data only
        start = time.perf_counter()
        for images, labels in loader:
            if pin:
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        synchronize(torch, device)
        data_s = time.perf_counter() - start

        if args.data_only:
            return _report(args, torch, device, n, batches, written, datasets_s, data_s)

        # 2. compute only: the same batch, already on the device, for as many steps as the epoch has
        torch.manual_seed(0)
        model = ns["VGG16"]().to(device)
        optimizer = ns["make_optimizer"](model)
        images, labels = next(iter(DataLoader(train_set, batch_size=args.batch_size, shuffle=True)))
        batch = (images.to(device), labels.to(device))
        ns["train_one_epoch"](model, [batch] * 3, optimizer, device)  # warm-up (cuDNN, allocator)
        synchronize(torch, device)
        full, rest = divmod(n, args.batch_size)
        steps = [batch] * full + ([(batch[0][:rest], batch[1][:rest])] if rest else [])
        start = time.perf_counter()
        ns["train_one_epoch"](model, steps, optimizer, device)
        synchronize(torch, device)
        compute_s = time.perf_counter() - start

        # 3. the real epoch
        timed = TimedLoader(loader)
        start = time.perf_counter()
        losses = ns["train_one_epoch"](model, timed, optimizer, device)
        synchronize(torch, device)
        epoch_s = time.perf_counter() - start
        assert len(losses) == batches, f"{len(losses)} losses for {batches} batches"
    return _report(args, torch, device, n, batches, written, datasets_s, data_s, compute_s, epoch_s, timed.wait)


def _report(args, torch, device, n, batches, written, datasets_s, data_s, compute_s=None, epoch_s=None, wait=None):
    result = {
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda" else
                   f"cpu ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"),
        "torch": torch.__version__,
        "images": n,
        "batch_size": args.batch_size,
        "batches": batches,
        "workers": args.workers,
        "write_fixture_s": round(written, 2),
        "make_datasets_s": round(datasets_s, 2),
        "data_only_s": round(data_s, 2),
        "data_only_images_per_s": round(n / data_s, 1),
    }
    print(f"VGG-16, one epoch of {n:,} synthetic 32x32 images, batch size {args.batch_size}, "
          f"{args.workers} workers, on {result['device']}")
    print(f"  make_cifar10_datasets (incl. channel_stats): {datasets_s:8.2f} s")
    print(f"  data only (DataLoader pass):                 {data_s:8.2f} s  {n / data_s:10.1f} images/s")
    if compute_s is not None:
        result.update({
            "compute_only_s": round(compute_s, 2),
            "compute_only_images_per_s": round(n / compute_s, 1),
            "epoch_s": round(epoch_s, 2),
            "epoch_images_per_s": round(n / epoch_s, 1),
            "epoch_data_wait_s": round(wait, 2),
            "epoch_compute_s": round(epoch_s - wait, 2),
            "epoch_data_wait_share": round(wait / epoch_s, 3),
            "bottleneck": "data loading" if data_s > compute_s else "compute (the model on the device)",
        })
        print(f"  compute only (batches on the device):        {compute_s:8.2f} s  {n / compute_s:10.1f} images/s")
        print(f"  epoch (train_one_epoch on the DataLoader):   {epoch_s:8.2f} s  {n / epoch_s:10.1f} images/s")
        print(f"    of which waiting for data {wait:.2f} s ({100 * wait / epoch_s:.0f} %), compute {epoch_s - wait:.2f} s")
        print(f"  bottleneck: {result['bottleneck']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _batch_size(folder: Path) -> int:
    import pickle

    with open(folder / "data_batch_1", "rb") as f:
        return len(pickle.load(f, encoding="latin1")["labels"])


if __name__ == "__main__":
    main()
