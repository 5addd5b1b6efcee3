"""The main job: the whole grading pipeline on the bundled example submissions, offline.

Each step is the nbgrader command an instructor runs by hand (printed before it
runs): generate the release, collect the submissions, autograde, generate the
feedback, export the grades; then a per-student, per-task score table, the reports, and the
calibration of the kit's points against the human grades of ``examples/human-grades/``.  Only the
example students (ids ``example_*``) are touched, so real submissions in the
same course folder are left alone.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from . import course, offline
from .autograde import autograde, summary
from .calibrate import calibration, write_report
from .course import ROOT
from .report import instructor_report
from .similarity import similarity_report

EXAMPLE_STUDENTS = "example_*"
_PROGRESS = re.compile(r"Autograding |Writing \d+ bytes to .*feedback|ERROR|WARNING")
_NOISE = re.compile(r"Alternative text is missing|Removing existing assignment")  # warnings about nothing to act on


def _step(title: str, say) -> float:
    say(f"\n== {title}")
    return time.perf_counter()


def run_nbgrader(root: Path, *args: str, say=print) -> None:
    """Run an nbgrader command, echoing the lines that show its progress."""
    say(f"$ nbgrader {' '.join(args)}")
    started = time.perf_counter()

    def progress(line: str) -> None:
        if _PROGRESS.search(line) and not _NOISE.search(line):
            say(f"  [{time.perf_counter() - started:5.0f} s] {line.strip()}")

    course.nbgrader(root, *args, on_line=progress)


def collect_examples(root: Path) -> list[str]:
    """Copy ``examples/submissions/*`` into ``submitted/``, as ``nbgrader zip_collect`` would."""
    source = root / "examples" / "submissions"
    students = sorted(p.name for p in source.iterdir() if p.is_dir())
    for student in students:
        target = root / "submitted" / student
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source / student, target)
    return students


def grade_examples(root: str | Path = ROOT, say=print, workers: int | None = None) -> str:
    """Run the whole pipeline on the example submissions; return the score table."""
    root = Path(root).resolve()
    started = time.perf_counter()
    t = _step("Offline data: small fixtures in the real formats (no downloads)", say)
    env = offline.apply(root / "data" / "offline")
    say(f"COURSE_DATA_DIR={env['COURSE_DATA_DIR']} ({time.perf_counter() - t:.0f} s)")

    assignments = [a for a in course.assignments(root) if course.released_notebooks(root, a)]
    for assignment in assignments:
        _step(f"Release '{assignment}' from source/ (solutions and hidden tests stripped)", say)
        run_nbgrader(root, "generate_assignment", assignment, "--force", say=say)

    _step("Collect the example submissions into submitted/", say)
    say("students: " + ", ".join(collect_examples(root)))

    tables = []
    for assignment in assignments:
        t = _step(f"Autograde '{assignment}' in parallel (grading mode: tiny data, one epoch; "
                  f"each student: nbgrader autograde {assignment} --student=<id>)", say)
        outcomes = autograde(root, assignment, students=EXAMPLE_STUDENTS, workers=workers, force=True, say=say)
        say(summary(outcomes) + f" in {time.perf_counter() - t:.0f} s; "
            f"report: reports/{assignment}/grading-report.md")
        _step(f"Feedback for '{assignment}' (feedback/<student>/{assignment}/*.html)", say)
        run_nbgrader(root, "generate_feedback", assignment, f"--student={EXAMPLE_STUDENTS}", "--force", say=say)
        tables.append(f"Scores of '{assignment}' by task\n" + course.score_table(root, assignment))

    _step("Export the grades (grades.csv; grades/<assignment>-tasks.csv, -moodle.csv, -canvas.csv)", say)
    run_nbgrader(root, "export", "--to=grades.csv", say=say)

    _step("Instructor and similarity reports", say)
    for assignment in assignments:
        for path in (instructor_report(root, assignment), similarity_report(root, assignment)):
            say(f"  {path.relative_to(root)}")

    for assignment in assignments:
        human = root / "examples" / "human-grades" / f"{assignment}.csv"
        if human.exists():
            _step(f"Calibration of '{assignment}' against human grades "
                  f"(python -m coursekit calibrate {assignment} {human.relative_to(root)})", say)
            result = calibration(root, assignment, human)
            say(result.summary())
            say(f"  {write_report(root, result).relative_to(root)}")

    report = "\n\n".join(tables)
    say("\n" + report)
    say(f"\nDone in {time.perf_counter() - started:.0f} s.  Text answers wait for manual grading: `jupyter lab`, "
        "menu Nbgrader > Formgrader (README, step 6), then `nbgrader generate_feedback` again.")
    return report
