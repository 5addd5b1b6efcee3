"""Command line of the course kit: ``python -m coursekit <command>``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .course import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT, help="course folder (default: this repository)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-env", help="check that the pinned packages are installed")
    examples_run = commands.add_parser("grade-examples",
                                       help="the whole pipeline on the bundled example submissions, offline")
    examples_run.add_argument("--workers", type=int, default=None, help="students graded at once (default: CPUs)")
    grade = commands.add_parser("autograde", help="autograde all students in parallel, resumable, with a report")
    grade.add_argument("assignment")
    grade.add_argument("--students", default="*", help="only student ids matching this glob")
    grade.add_argument("--workers", type=int, default=None, help="students graded at once (default: CPUs)")
    grade.add_argument("--force", action="store_true", help="grade again students that are already graded")
    grade.add_argument("--no-canary", action="store_true",
                       help="do not grade the solution and the untouched release first (they check the environment)")
    commands.add_parser("examples", help="rebuild examples/submissions from examples/*.toml")
    intake = commands.add_parser("import-lms", help="import a learning platform's bulk download into submitted/")
    intake.add_argument("assignment")
    intake.add_argument("download", type=Path, help="the zip downloaded from the platform")
    intake.add_argument("--preset", required=True, choices=["moodle", "canvas", "olat"])
    intake.add_argument("--ids", type=Path, default=None, help="CSV mapping platform ids/names to student ids")
    scores = commands.add_parser("scores", help="per-student, per-task score table from the gradebook")
    scores.add_argument("assignment")
    trial = commands.add_parser("try", help="grade solution, untouched release and known mistakes of a notebook")
    trial.add_argument("assignment")
    trial.add_argument("notebook", nargs="?", help="one notebook (default: all of the assignment)")
    trial.add_argument("--workdir", type=Path, default=None, help="folder for the trial course (default: a temporary one)")
    report = commands.add_parser("report", help="instructor report with plots: reports/<assignment>/instructor-report.html")
    report.add_argument("assignment")
    similar = commands.add_parser("similarity", help="pairs of unusually similar answers: reports/<assignment>/similarity-report.html")
    similar.add_argument("assignment")
    similar.add_argument("--threshold", type=float, default=0.5, help="least mean share of overlapping code (0.5)")
    calibrate = commands.add_parser("calibrate", help="compare the kit's points with a human grader's: "
                                    "reports/<assignment>/calibration.html")
    calibrate.add_argument("assignment")
    calibrate.add_argument("human", type=Path, help="CSV of hand-graded points per student and task "
                                                    "(the layout of grades/<assignment>-tasks.csv)")
    audit = commands.add_parser("audit", help="grade mutants of the solutions: how many mistakes do the hidden tests "
                                "catch? reports/<assignment>/audit.html")
    audit.add_argument("assignment")
    audit.add_argument("notebook", nargs="*", help="notebooks to audit (default: all of the assignment)")
    audit.add_argument("--limit", type=int, default=40, help="mutants per notebook, drawn reproducibly (default 40; "
                                                            "0: all of them)")
    audit.add_argument("--seed", type=int, default=0, help="which mutants are drawn")
    audit.add_argument("--workers", type=int, default=None, help="mutants graded at once (default: CPUs)")
    sheet = commands.add_parser("manual-sheet", help="a CSV of all answers to one text question, to grade in a spreadsheet")
    sheet.add_argument("assignment")
    sheet.add_argument("grade_id", help="the answer cell, e.g. svhn_a_answer")
    sheet_in = commands.add_parser("manual-import", help="write the scores and comments of a filled-in sheet into the gradebook")
    sheet_in.add_argument("sheet", type=Path)
    fetch = commands.add_parser("download-data", help="download the datasets and weights of the notebooks into data/")
    fetch.add_argument("--check", action="store_true", help="only list what is missing (exit status 1 if anything is)")
    data = commands.add_parser("offline-data", help="write the offline fixtures into a folder")
    data.add_argument("folder", type=Path)
    parser.add_argument("--no-sandbox", action="store_true",
                        help="accept running student code WITHOUT the bubblewrap sandbox")
    args = parser.parse_args(argv)
    if args.no_sandbox:
        import os

        os.environ["COURSEKIT_NO_SANDBOX"] = "1"  # read by nbgrader_config.py in every nbgrader process

    from . import env

    problems = env.problems()
    if problems:
        print("The environment does not match requirements.txt:\n  " + "\n  ".join(problems)
              + "\nRun the README's set-up command (it installs into .venv).", file=sys.stderr)
        return 2
    if args.command == "check-env":
        print("environment OK")
    elif args.command == "grade-examples":
        from .pipeline import grade_examples

        grade_examples(args.root, workers=args.workers)
    elif args.command == "autograde":
        from .autograde import autograde, summary
        from .canary import CanaryFailed

        try:
            outcomes = autograde(args.root, args.assignment, args.students, args.workers, args.force,
                                 canary=not args.no_canary)
        except CanaryFailed as failed:
            print(f"error: {failed}", file=sys.stderr)
            return 2
        print(summary(outcomes))
        print(f"report: {args.root / 'reports' / args.assignment / 'grading-report.md'}")
        return 1 if any(o.status == "failed" for o in outcomes) else 0
    elif args.command == "report":
        from .report import instructor_report

        print(instructor_report(args.root, args.assignment))
    elif args.command == "similarity":
        from .similarity import similarity_report

        print(similarity_report(args.root, args.assignment, threshold=args.threshold))
    elif args.command == "calibrate":
        from .calibrate import calibration, write_report

        try:
            result = calibration(args.root, args.assignment, args.human)
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(result.summary())
        print(f"report: {write_report(args.root, result)}")
    elif args.command == "audit":
        from .audit import audit as run_audit, write_report as write_audit

        from .course import released_notebooks

        known = released_notebooks(args.root, args.assignment)
        unknown = [nb for nb in args.notebook if nb not in known]
        if unknown:
            print(f"error: {', '.join(unknown)} not in {args.assignment} ({', '.join(known)})", file=sys.stderr)
            return 1
        result = run_audit(args.root, args.assignment, args.notebook or None, limit=args.limit or None,
                           seed=args.seed, workers=args.workers)
        print(result.summary())
        print(f"report: {write_audit(args.root, result)}")
        return 1 if result.baseline else 0
    elif args.command in ("manual-sheet", "manual-import"):
        from . import manual

        try:
            if args.command == "manual-sheet":
                path = manual.write_sheet(args.root, args.assignment, args.grade_id)
                print(f"{path}\n{path.with_name(args.grade_id + '-mark-scheme.md')}\n"
                      f"Fill in the score (and comment) column, then: python -m coursekit manual-import {path}")
            else:
                print(f"{manual.import_sheet(args.root, args.sheet)} scores imported; "
                      "run `nbgrader generate_feedback` to update the feedback")
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    elif args.command == "download-data":
        from . import download

        data_dir, torch_home = download.folders(args.root)
        if args.check:
            gone = download.missing(args.root)
            for resource in download.RESOURCES:
                print(f"  {resource.name:9} {'MISSING' if resource in gone else 'ok':8} {resource.what}")
            return 1 if gone else 0
        print(f"Downloading into {data_dir} (weights into {torch_home})")
        failures = download.download(args.root)
        if failures:
            print("Not downloaded:\n  " + "\n  ".join(failures), file=sys.stderr)
            return 1
        print("All data is there.")
    elif args.command == "examples":
        from . import examples

        for path in examples.write(args.root):
            print(path.relative_to(args.root))
    elif args.command == "import-lms":
        from .intake import import_lms

        print(import_lms(args.root, args.assignment, args.download, args.preset, args.ids))
        print(f"report: {args.root / 'reports' / args.assignment / 'intake-report.md'}")
    elif args.command == "scores":
        from .course import score_table

        print(score_table(args.root, args.assignment))
    elif args.command == "try":
        import tempfile

        from . import trial as trial_run

        if args.workdir:
            return trial_run.main(args.assignment, args.notebook, args.workdir)
        with tempfile.TemporaryDirectory() as workdir:
            return trial_run.main(args.assignment, args.notebook, Path(workdir))
    elif args.command == "offline-data":
        from .offline import prepare

        for name, value in prepare(args.folder).items():
            print(f"export {name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
