"""How fast the kit autogrades a whole assignment, against plain ``jupyter nbconvert --execute``.

On a throw-away copy of the course with the offline data (fixtures in the real formats), the
example students' submissions of one assignment (default: the exam, four notebooks) are

1. executed with plain ``jupyter nbconvert --to notebook --execute`` (no nbgrader, no sandbox,
   no guard; one process per student with all their notebooks), in grading mode (``NBGRADER_EXECUTION=autograde``,
   so both run the same tiny configuration): the baseline;
2. graded with ``coursekit.autograde`` (``nbgrader autograde`` per student: sanitize, repair,
   SafeExecute in the bubblewrap sandbox, guard, gradebook) with 1 worker;
3. graded again (``force``) with 2 workers (or ``--workers``).

It prints seconds per student for each, the overhead ratio against the baseline and the
parallel speed-up, and projects the wall time for 300 students on a 16-core machine
(linear in workers at the measured efficiency per worker; memory allowing: see the peak
kernel memory printed).

    python benchmarks/autograde_throughput.py                  # exam, 4 students
    python benchmarks/autograde_throughput.py --assignment lab --students 6 --workers 2
    python benchmarks/autograde_throughput.py --notebook 3_svhn_cnn        # one notebook per submission
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="exam")
    parser.add_argument("--students", type=int, default=4, help="how many example students (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel run (default 2)")
    parser.add_argument("--notebook", default=None, help="only this notebook of each submission (e.g. 3_svhn_cnn)")
    parser.add_argument("--target-students", type=int, default=300)
    parser.add_argument("--target-cores", type=int, default=16)
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
        notebooks = 1 if args.notebook else len(course.released_notebooks(root, args.assignment))
        n = len(students)
        print(f"{args.assignment}{'/' + args.notebook if args.notebook else ''}: {notebooks} notebook(s), {n} students ({', '.join(students)}), "
              f"{os.cpu_count()} CPUs here")

        baseline = plain_execute(root, args.assignment, students)
        print(f"plain nbconvert --execute, sequential: {baseline:7.1f} s  = {baseline / n:6.1f} s per student")

        started = time.perf_counter()
        outcomes = autograde(root, args.assignment, workers=1, force=True, progress=False, canary=False)
        one = time.perf_counter() - started
        failed = [o.student for o in outcomes if o.status != "graded"]
        print(f"coursekit autograde, 1 worker:          {one:7.1f} s  = {one / n:6.1f} s per student"
              f"   (x{one / baseline:.2f} the baseline){'  FAILED: ' + ', '.join(failed) if failed else ''}")

        started = time.perf_counter()
        autograde(root, args.assignment, workers=args.workers, force=True, progress=False, canary=False)
        many = time.perf_counter() - started
        speedup = one / many
        print(f"coursekit autograde, {args.workers} workers:         {many:7.1f} s  = {many / n:6.1f} s per student"
              f"   (speed-up x{speedup:.2f} over 1 worker, efficiency {speedup / args.workers:.0%})")
        print(f"peak memory of one grading kernel: {peak_memory_mb(root, args.assignment, students):.0f} MB")

        efficiency = min(1.0, speedup / args.workers)
        projected = args.target_students * (one / n) / (args.target_cores * efficiency)
        print(f"projection: {args.target_students} students on {args.target_cores} cores "
              f"({args.target_cores} workers at {efficiency:.0%} efficiency): {projected / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
