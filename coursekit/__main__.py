"""Command line of the course kit: ``python -m coursekit <command>``.

Each command is a row of :data:`COMMANDS`: its name, its help, its arguments and the function that runs it,
a thin layer over the kit's modules (imported only when the command runs).  A function returns the exit
status (None: 0); a ``ValueError``, ``OSError`` or ``CanaryFailed`` becomes "error: ..." and status 1 or 2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .course import ROOT


def arg(*names, **options) -> tuple:
    return names, options


ASSIGNMENT = arg("assignment")
WORKERS = arg("--workers", type=int, default=None, help="students graded at once (default: CPUs)")


@dataclass
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int | None]
    arguments: list = field(default_factory=list)


# -- the commands ---------------------------------------------------------------------------------------------
def check_env(args):
    print("environment OK")


def grade_examples(args):
    from .pipeline import grade_examples as run

    run(args.root, workers=args.workers)


def autograde(args):
    from .autograde import autograde as run, summary
    from .canary import CanaryFailed

    try:
        outcomes = run(args.root, args.assignment, args.students, args.workers, args.force, canary=not args.no_canary,
                       cluster=args.cluster)
    except CanaryFailed as failed:
        print(f"error: {failed}", file=sys.stderr)
        return 2
    print(summary(outcomes))
    print(f"report: {args.root / 'reports' / args.assignment / 'grading-report.md'}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def examples(args):
    from . import examples as run

    for path in run.write(args.root):
        print(path.relative_to(args.root))


def import_lms(args):
    from .intake import import_lms as run

    print(run(args.root, args.assignment, args.download, args.preset, args.ids))
    print(f"report: {args.root / 'reports' / args.assignment / 'intake-report.md'}")


def scores(args):
    from .course import score_table

    print(score_table(args.root, args.assignment))


def trial(args):
    import tempfile

    from . import trial as run

    if args.workdir:
        return run.main(args.assignment, args.notebook, args.workdir)
    with tempfile.TemporaryDirectory() as workdir:
        return run.main(args.assignment, args.notebook, Path(workdir))


def report(args):
    from .report import instructor_report

    print(instructor_report(args.root, args.assignment))


def similarity(args):
    from .similarity import pair_report, similarity_report

    if args.pair:
        print(pair_report(args.root, args.assignment, *args.pair))
    else:
        print(similarity_report(args.root, args.assignment, threshold=args.threshold))


def calibrate(args):
    from .calibrate import calibration, write_report

    result = calibration(args.root, args.assignment, args.human)
    print(result.summary())
    print(f"report: {write_report(args.root, result)}")


def audit(args):
    from .audit import audit as run, write_report
    from .course import released_notebooks

    known = released_notebooks(args.root, args.assignment)
    unknown = [nb for nb in args.notebook if nb not in known]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in {args.assignment} ({', '.join(known)})")
    result = run(args.root, args.assignment, args.notebook or None, limit=args.limit or None, seed=args.seed,
                 workers=args.workers)
    print(result.summary())
    print(f"report: {write_report(args.root, result)}")
    return 1 if result.baseline else 0


def manual_sheet(args):
    from . import manual

    path = manual.write_sheet(args.root, args.assignment, args.grade_id)
    print(f"{path}\n{path.with_name(args.grade_id + '-mark-scheme.md')}\n"
          f"Fill in the score (and comment) column, then: python -m coursekit manual-import {path}")


def manual_import(args):
    from . import manual

    print(f"{manual.import_sheet(args.root, args.sheet)}; run `nbgrader generate_feedback` to update the feedback")


def download_data(args):
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


def check_upload(args):
    from .release import check_file

    text, to_do = check_file(args.root, args.notebook)
    print(text)
    return 1 if to_do else 0


def oldest_versions(args):
    from .oldest import main

    return main()


def offline_data(args):
    from .offline import prepare

    for name, value in prepare(args.folder).items():
        print(f"export {name}={value}")


def peer_assign(args):
    from .peer.assign import assign

    draw = assign(args.root, args.assignment, args.k, args.seed, args.groups, args.ids, args.late, args.force)
    folder = args.root / "peer" / args.assignment
    print(f"{len(draw.authors)} reports, {len(draw.reviews)} reviewers, seed {draw.seed}\n"
          f"{folder / 'assignment.csv'} (per reviewer: the reports and the packet to hand out)\n"
          f"{folder / 'pairs.csv'} (who reviews whose report: for the instructor only)\n{folder / 'packets'}/")


def peer_collect(args):
    from .peer.collect import collect

    print(collect(args.root, args.assignment, args.download, args.preset, args.ids))
    print(f"report: {args.root / 'reports' / args.assignment / 'peer-collect-report.md'}")


def peer_aggregate(args):
    from .peer import aggregate

    result = aggregate.run(args.root, args.assignment)
    flagged = [r.author for r in result.reports.values() if r.flagged]
    far_off = [r.student for r in result.reviewers.values() if r.flagged]
    print(f"reports whose reviews disagree: {', '.join(sorted(flagged)) or 'none'}\n"
          f"reviewers consistently far off: {', '.join(sorted(far_off)) or 'none'}\n"
          f"{args.root / 'grades' / (args.assignment + '-peer.csv')}\n"
          f"{args.root / 'reports' / args.assignment / 'peer-report.html'}\n"
          f"{args.root / 'peer' / args.assignment / 'feedback'}/")


def course_sheet(args):
    from . import coursesheet

    for path in coursesheet.write(args.root):
        print(path)


def groups(args):
    from .groups import apply

    print(apply(args.root, args.assignment, args.groups))
    print(f"report: {args.root / 'reports' / args.assignment / 'groups-report.md'}")


def peer_participation(args):
    from .peer import participation

    for path in participation.write(args.root):
        print(path)


COMMANDS = [
    Command("check-env", "check that the pinned packages are installed", check_env),
    Command("grade-examples", "the whole pipeline on the bundled example submissions, offline", grade_examples,
            [WORKERS]),
    Command("autograde", "autograde all students in parallel, resumable, with a report (a canary first)", autograde,
            [ASSIGNMENT, arg("--students", default="*", help="only student ids matching this glob"), WORKERS,
             arg("--force", action="store_true", help="grade again students that are already graded"),
             arg("--no-canary", action="store_true",
                 help="do not grade the solution and the untouched release first (they check the environment)"),
             arg("--cluster", default=None, metavar="SPEC",
                 help="grade on a Dask cluster: local:N (N worker processes here), tcp://host:8786 (a running "
                      "scheduler), slurm:N or pbs:N (N batch jobs, c.CourseKit.jobqueue)")]),
    Command("examples", "rebuild examples/submissions from examples/*.toml", examples),
    Command("import-lms", "import a learning platform's bulk download into submitted/", import_lms,
            [ASSIGNMENT, arg("download", type=Path, help="the zip downloaded from the platform"),
             arg("--preset", required=True, choices=["moodle", "canvas", "olat"]),
             arg("--ids", type=Path, default=None, help="CSV mapping platform ids/names to student ids")]),
    Command("scores", "per-student, per-task score table from the gradebook", scores, [ASSIGNMENT]),
    Command("try", "grade solution, untouched release and known mistakes of a notebook", trial,
            [ASSIGNMENT, arg("notebook", nargs="?", help="one notebook (default: all of the assignment)"),
             arg("--workdir", type=Path, default=None, help="folder for the trial course (default: a temporary one)")]),
    Command("report", "instructor report with plots: reports/<assignment>/instructor-report.html", report,
            [ASSIGNMENT]),
    Command("similarity", "students with unusually similar answers: reports/<assignment>/similarity-report.html",
            similarity,
            [ASSIGNMENT, arg("--threshold", type=float, default=0.5, help="least mean share of overlapping code (0.5)"),
             arg("--pair", nargs=2, metavar="STUDENT", help="two students' answers side by side instead")]),
    Command("calibrate", "compare the kit's points with a human grader's: reports/<assignment>/calibration.html",
            calibrate,
            [ASSIGNMENT, arg("human", type=Path, help="CSV of hand-graded points per student and task "
                                                      "(the layout of grades/<assignment>-tasks.csv)")]),
    Command("audit", "grade mutants of the solutions: how many mistakes do the hidden tests catch? "
                     "reports/<assignment>/audit.html", audit,
            [ASSIGNMENT, arg("notebook", nargs="*", help="notebooks to audit (default: all of the assignment)"),
             arg("--limit", type=int, default=40, help="mutants per notebook, drawn reproducibly (default 40; 0: all)"),
             arg("--seed", type=int, default=0, help="which mutants are drawn"),
             arg("--workers", type=int, default=None, help="mutants graded at once (default: CPUs)")]),
    Command("manual-sheet", "a CSV of all answers to one text question, to grade in a spreadsheet", manual_sheet,
            [ASSIGNMENT, arg("grade_id", help="the answer cell, e.g. svhn_a_answer")]),
    Command("manual-import", "write the scores and comments of a filled-in sheet into the gradebook", manual_import,
            [arg("sheet", type=Path)]),
    Command("download-data", "download the datasets and weights of the notebooks into data/", download_data,
            [arg("--check", action="store_true", help="only list what is missing (exit status 1 if anything is)")]),
    Command("offline-data", "write the offline fixtures into a folder", offline_data, [arg("folder", type=Path)]),
    Command("check-upload", "check a student's notebook file as its last cell does (missing, renamed, deleted)",
            check_upload, [arg("notebook", type=Path)]),
    Command("oldest-versions", "run and grade the solutions with the oldest supported torch/torchvision "
                               "(requirements-oldest.txt, installed once into a cache folder)",
            oldest_versions),
    Command("peer-assign", "draw who peer-reviews whose report; write the anonymized packets", peer_assign,
            [ASSIGNMENT, arg("--k", type=int, default=4, help="reviews per reviewer and per report (4)"),
             arg("--seed", type=int, default=None, help="reproduce a draw (default: a random seed, recorded)"),
             arg("--groups", type=Path, default=None, help="CSV: group id, members (nobody reviews their group)"),
             arg("--ids", type=Path, default=None, help="import-lms's id file: its names and ids are removed too"),
             arg("--late", action="store_true", help="second round: add the submissions that came since"),
             arg("--force", action="store_true", help="draw again (packets handed out become invalid)")]),
    Command("peer-collect", "import the filled review forms from a learning platform's bulk download",
            peer_collect,
            [ASSIGNMENT, arg("download", type=Path, help="the zip downloaded from the platform"),
             arg("--preset", required=True, choices=["moodle", "canvas", "olat"]),
             arg("--ids", type=Path, default=None, help="CSV mapping platform ids/names to student ids")]),
    Command("peer-aggregate", "medians, agreement, flags, grades/<assignment>-peer.csv and the feedback",
            peer_aggregate, [ASSIGNMENT]),
    Command("groups", "give every member of a group the graded result of the group's submission", groups,
            [ASSIGNMENT, arg("--groups", type=Path, default=None,
                             help="CSV: group id, members (besides groups named by uploads like ex08-a-b-c.zip)")]),
    Command("course-sheet", "per student: points of every assignment, passed or not and why, transferred points "
                            "(c.CourseKit.course_rules): grades/course-sheet.csv, reports/course-sheet.html",
            course_sheet),
    Command("peer-participation", "who handed in and reviewed how many reports (c.CourseKit.peer_rule)",
            peer_participation),
]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__.split("\n\n")[0])
    top.add_argument("--root", type=Path, default=ROOT, help="course folder (default: this repository)")
    top.add_argument("--no-sandbox", action="store_true", help="accept running student code WITHOUT the bubblewrap sandbox")
    commands = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help)
        for names, options in command.arguments:
            sub.add_argument(*names, **options)
        sub.set_defaults(run=command.run)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.no_sandbox:
        import os

        os.environ["COURSEKIT_NO_SANDBOX"] = "1"  # read by nbgrader_config.py in every nbgrader process

    from . import env

    problems = env.problems()
    if problems:
        print("The environment does not match requirements.txt:\n  " + "\n  ".join(problems)
              + "\nRun the README's set-up command (it installs into .venv).", file=sys.stderr)
        return 2
    try:
        return args.run(args) or 0
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
