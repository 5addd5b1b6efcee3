"""How fast the kit autogrades a whole assignment: against plain ``jupyter nbconvert --execute``, cold
against warm kernels, and the thread pool against a Dask cluster.

On a throw-away copy of the course with the offline data (fixtures in the real formats), the
example students' submissions of one assignment (default: the exam, four notebooks; ``--copies`` makes more
students of them) are

1. executed with plain ``jupyter nbconvert --to notebook --execute`` (no nbgrader, no sandbox,
   no guard; one process per student with all their notebooks), in grading mode (``NBGRADER_EXECUTION=autograde``,
   so both run the same tiny configuration): the baseline;
2. graded with ``coursekit.autograde`` (``nbgrader autograde`` per student: sanitize, repair,
   SafeExecute in the bubblewrap sandbox, guard, gradebook) with 1 worker, first with cold kernels (a new
   interpreter and ``import torch`` per notebook, ``COURSEKIT_WARM_KERNELS=0``), then warm (the default);
3. graded again (``force``) by the thread pool and by a Dask ``LocalCluster`` with the same number of worker
   processes, for each of ``--parallel`` (default 1 2 4): students per minute, and the cluster's cost against
   the thread pool (the cluster and the course it grades in are set up before the clock starts; both are printed
   apart).

It prints seconds per student, the ratios, and projects the wall time for ``--target-students`` on
``--machines`` machines of ``--target-cores`` cores (linear in workers at the efficiency measured here; memory
allowing: see the peak kernel memory printed).

    python benchmarks/autograde_throughput.py                       # exam, 4 students
    python benchmarks/autograde_throughput.py --students 7 --copies 2 --parallel 1 2 4
    python benchmarks/autograde_throughput.py --assignment lab --students 6 --parallel 2
    python benchmarks/autograde_throughput.py --notebook 3_svhn_cnn  # one notebook per submission
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coursekit import course, offline  # noqa: E402
from coursekit.autograde import autograde  # noqa: E402
from coursekit.pipeline import collect_examples, run_nbgrader  # noqa: E402


def plain_execute(root: Path, assignment: str, students: list[str]) -> float:
    """Seconds to run every notebook of ``students`` with plain nbconvert, one after the other."""
    env = course.command_env({"NBGRADER_EXECUTION": "autograde"})
    out = root / "nbconvert-out"
    started = time.perf_counter()
    for student in students:  # one nbconvert process per student, as nbgrader autograde runs one
        folder = root / "submitted" / student / assignment
        target = out / student
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                        "--ExecutePreprocessor.timeout=600", "--allow-errors", f"--output-dir={target}",
                        *sorted(str(p) for p in folder.glob("*.ipynb"))],
                       cwd=folder, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def peak_memory_mb(root: Path, assignment: str, students: list[str]) -> float:
    peaks = [nbformat.read(p, as_version=4).metadata.get("coursekit", {}).get("peak_memory_mb") or 0
             for s in students for p in (root / "autograded" / s / assignment).glob("*.ipynb")]
    return max(peaks, default=0)


def timed(label: str, n: int, baseline: float | None, run) -> float:
    started = time.perf_counter()
    outcomes = run()
    seconds = time.perf_counter() - started
    failed = [o.student for o in outcomes if o.status != "graded"]
    ratio = f"   (x{seconds / baseline:.2f} the baseline)" if baseline else ""
    print(f"{label:44s} {seconds:7.1f} s = {seconds / n:5.1f} s per student = {60 * n / seconds:5.1f} students/min"
          f"{ratio}{'  FAILED: ' + ', '.join(failed) if failed else ''}", flush=True)
    return seconds


def copy_students(root: Path, assignment: str, students: list[str], copies: int) -> list[str]:
    made = list(students)
    for k in range(2, copies + 1):
        for student in students:
            shutil.copytree(root / "submitted" / student, root / "submitted" / f"{student}_{k}")
            made.append(f"{student}_{k}")
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="exam")
    parser.add_argument("--students", type=int, default=4, help="how many example students (default 4)")
    parser.add_argument("--copies", type=int, default=1, help="grade each example student this many times")
    parser.add_argument("--parallel", type=int, nargs="*", default=[1, 2, 4],
                        help="worker counts of the thread pool / cluster comparison (default 1 2 4)")
    parser.add_argument("--notebook", default=None, help="only this notebook of each submission (e.g. 3_svhn_cnn)")
    parser.add_argument("--target-students", type=int, default=3000)
    parser.add_argument("--target-cores", type=int, default=16)
    parser.add_argument("--machines", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="coursekit-bench-") as tmp:
        root = course.copy_course(ROOT, Path(tmp) / "course")
        shutil.copytree(ROOT / "examples", root / "examples")
        offline.apply(root / "data" / "offline")
        run_nbgrader(root, "generate_assignment", args.assignment, "--force", say=lambda line: None)
        everyone = [s for s in collect_examples(root) if (root / "submitted" / s / args.assignment).exists()]
        students = everyone[: args.students]
        for extra in everyone[args.students:]:
            shutil.rmtree(root / "submitted" / extra)
        if args.notebook:
            for path in (root / "submitted").glob(f"*/{args.assignment}/*.ipynb"):
                if path.stem != args.notebook:
                    path.unlink()
        students = copy_students(root, args.assignment, students, args.copies)
        notebooks = 1 if args.notebook else len(course.released_notebooks(root, args.assignment))
        n = len(students)
        print(f"{args.assignment}{'/' + args.notebook if args.notebook else ''}: {notebooks} notebook(s), {n} students, "
              f"{os.cpu_count()} CPUs here", flush=True)

        baseline = plain_execute(root, args.assignment, students)
        print(f"{'plain nbconvert --execute, sequential':44s} {baseline:7.1f} s = {baseline / n:5.1f} s per student",
              flush=True)

        def grade(workers=1, **options):
            return lambda: autograde(root, args.assignment, workers=workers, force=True, progress=False,
                                     canary=False, **options)

        cold = timed("coursekit autograde, 1 worker, cold kernels", n, baseline,
                     grade(env={"COURSEKIT_WARM_KERNELS": "0"}))
        warm = timed("coursekit autograde, 1 worker, warm kernels", n, baseline, grade())
        print(f"warm kernels: x{cold / warm:.2f} faster than cold ({(cold - warm) / n:.1f} s less per student)")
        print(f"peak memory of one grading kernel: {peak_memory_mb(root, args.assignment, students):.0f} MB")

        from distributed import Client, LocalCluster

        from coursekit import cluster as dask_cluster

        started = time.perf_counter()
        dask_cluster.template_files(root, args.assignment)
        print(f"cluster set-up of the assignment (generate_assignment in a throw-away copy, once per version of the "
              f"assignment, kept for later runs): {time.perf_counter() - started:.1f} s", flush=True)
        pool, dask = {}, {}
        for p in args.parallel:
            pool[p] = timed(f"thread pool, {p} worker(s)", n, None, grade(p))
            started = time.perf_counter()
            with LocalCluster(n_workers=p, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                    Client(cluster) as client:
                client.wait_for_workers(p)
                print(f"  (LocalCluster of {p} worker processes started in {time.perf_counter() - started:.1f} s)")
                dask[p] = timed(f"Dask LocalCluster, {p} worker process(es)", n, None, grade(client=client))
            print(f"  cluster against thread pool at {p}: {dask[p] / pool[p] - 1:+.1%} time")

        best = max(args.parallel, key=lambda p: (pool[1] / dask[p]) / p if 1 in pool else 0)
        efficiency = min(1.0, (pool.get(1, warm) / dask[best]) / min(best, os.cpu_count() or 1))
        workers = args.machines * args.target_cores
        projected = args.target_students * (warm / n) / (workers * efficiency)
        print(f"projection: {args.target_students} students on {args.machines} machines x {args.target_cores} cores "
              f"({workers} single-threaded Dask workers, {efficiency:.0%} efficiency per core as measured here with "
              f"{min(best, os.cpu_count() or 1)} busy cores, {warm / n:.1f} s of one core per student, the data and the "
              f"kit on every machine, memory for {args.target_cores} kernels per machine): {projected / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
