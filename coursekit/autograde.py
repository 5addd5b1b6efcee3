"""Autograde a whole course: many students in parallel, resumable, with a report.

Each student is graded by its own ``nbgrader autograde <assignment> --student=<id> --force``
process (the same command an instructor would type), ``workers`` of them at a time, so one
student's notebook can never take another's down.  A student counts as done when nbgrader
succeeded and a marker with the fingerprint of the submission and of the source notebooks
was written; an interrupted run therefore resumes with the students that are not done, and a
repeated run changes nothing.  Unreadable files are set aside with a clear message before
grading, so the student's other notebooks are still graded.

At the end ``reports/<assignment>/grading-report.md`` lists, per student, what went wrong
while grading (crashes, timeouts, repairs, restored tampering) and the notebooks flagged for
manual review, among them every task of which an exception of the student's code decided at
least half the points (the rubric's "not checked" lines): a TA looks at exactly those.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import nbformat

from . import course, download
from .kernel.grading import cell_records, decided_by_exception

MARKER = ".coursekit-graded"
UNREADABLE = ".unreadable"


@dataclass
class Outcome:
    student: str
    status: str  # "graded", "skipped" (already done), "failed"
    seconds: float = 0.0
    message: str = ""
    problems: list = field(default_factory=list)  # files set aside, with the reason
    worker: str = ""  # the cluster worker that graded it (empty: this machine)


def fingerprint(root: Path, assignment: str, student: str) -> str:
    """Hash of the student's submitted files and of the assignment's source notebooks."""
    digest = hashlib.sha256()
    for folder in (root / "submitted" / student / assignment, root / "source" / assignment):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def students_of(root: Path, assignment: str, pattern: str = "*") -> list[str]:
    folder = root / "submitted"
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if (p / assignment).is_dir() and fnmatch(p.name, pattern))


def set_aside_unreadable(root: Path, assignment: str, student: str) -> list[str]:
    """Rename submitted files that are no readable notebook to ``*.unreadable``; say why."""
    problems = []
    for path in sorted((root / "submitted" / student / assignment).glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
        except Exception as exc:  # noqa: BLE001 - JSON errors, validation errors, binary files
            reason = " ".join(str(exc).split())[:200]
            path.rename(path.with_name(path.name + UNREADABLE))
            problems.append(f"{path.name} is not a readable notebook ({reason}); it was not graded "
                            f"and was kept as {path.name}{UNREADABLE}")
    return problems


def recognise_renamed(root: Path, assignment: str, student: str, index=None) -> list[str]:
    """Give every submitted notebook its released name, recognising it by its content as ``import-lms`` does.

    nbgrader grades only ``<released name>.ipynb``; a "Copy of 4_true_false_quiz.ipynb" or "exam (1).ipynb" that
    lands in ``submitted/`` (by ``zip_collect``, by hand) would be skipped without a word.  A file whose content
    clearly matches one released notebook that has no file of its own yet is renamed to it; anything else
    (no match, an ambiguous match, an older second copy) is kept under its name, which nbgrader ignores, and said.
    Returns one line per file, for the grading report."""
    from .intake import ReleaseIndex

    folder = root / "submitted" / student / assignment
    released = set(course.released_notebooks(root, assignment))
    # the newest first: of two copies of one notebook the newest gets its name, as import-lms keeps the newest upload
    strays = sorted((p for p in folder.glob("*.ipynb") if p.stem not in released),
                    key=lambda p: (-p.stat().st_mtime, p.name))
    if not strays:
        return []
    index = index or ReleaseIndex(root / "release" / assignment)
    said = []
    for path in strays:
        try:
            notebook, reason = index.match(nbformat.read(path, as_version=4))
        except Exception as exc:  # noqa: BLE001 - unreadable files were set aside before
            notebook, reason = None, f"it could not be read ({' '.join(str(exc).split())[:120]})"
        target = folder / f"{notebook}.ipynb" if notebook else None
        if target is not None and not target.exists():
            path.rename(target)
            said.append(f"{path.name} was graded as {target.name}: its {reason}")
        elif target is not None:
            said.append(f"{path.name} was not graded: it is a second copy of {notebook} ({reason}); "
                        f"{target.name} was graded")
        else:
            said.append(f"{path.name} was not graded: {reason}")
    return said


def _error_summary(output: str) -> str:
    lines = [line for line in output.splitlines() if "Error" in line or "ERROR" in line]
    useful = [line for line in lines if "Please see the" not in line and "Traceback" not in line]
    return " | ".join(useful[-3:])[-600:] or output[-600:]


def prepare(root: Path, assignment: str, student: str) -> tuple[list[str], str]:
    """Set unreadable files aside and give renamed notebooks their names; the problems and the fingerprint."""
    problems = set_aside_unreadable(root, assignment, student)
    problems += recognise_renamed(root, assignment, student)
    return problems, fingerprint(root, assignment, student)


def already_graded(root: Path, assignment: str, student: str, stamp: str) -> bool:
    marker = root / "autograded" / student / assignment / MARKER
    return marker.exists() and marker.read_text() == stamp


def mark_graded(root: Path, assignment: str, student: str, stamp: str) -> None:
    marker = root / "autograded" / student / assignment / MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(stamp)


def grade_student(root: Path, assignment: str, student: str, force: bool, timeout: float,
                  env: dict | None = None) -> Outcome:
    started = time.perf_counter()
    problems, stamp = prepare(root, assignment, student)
    if not force and already_graded(root, assignment, student, stamp):
        return Outcome(student, "skipped")
    for attempt in range(3):  # the shared SQLite gradebook may be locked for a moment
        try:
            result = course.nbgrader(root, "autograde", assignment, f"--student={student}", "--force", env=env,
                                     check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome(student, "failed", time.perf_counter() - started,
                           f"grading took longer than {timeout:.0f} s and was stopped", problems)
        output = result.stdout + result.stderr
        failed = result.returncode != 0 or "There was an error processing assignment" in output
        if not (failed and "database is locked" in output):
            break
        time.sleep(1 + attempt)
    seconds = time.perf_counter() - started
    if failed:
        return Outcome(student, "failed", seconds, _error_summary(output), problems)
    mark_graded(root, assignment, student, stamp)
    return Outcome(student, "graded", seconds, "", problems)


def autograde(root: str | Path, assignment: str, students: str = "*", workers: int | None = None,
              force: bool = False, progress: bool = True, timeout: float | None = None,
              env: dict | None = None, canary: bool = True, say=None, cluster: str | None = None,
              client=None) -> list[Outcome]:
    """Grade every student of ``assignment`` whose id matches ``students``; see the module docstring.

    ``env``: extra environment variables for the nbgrader processes (e.g. the offline data); ``canary``: grade the
    solution and the untouched release first and stop (``CanaryFailed``) when they do not get what they must;
    ``cluster`` (``local:N``, ``tcp://host:port``, ``slurm:N``) or a ``distributed.Client``: grade on a Dask cluster
    (``coursekit.cluster``) instead of this machine's thread pool."""
    root = Path(root).resolve()
    names = students_of(root, assignment, students)
    here = not (cluster or client)  # on a cluster, every worker checks its own data and runs the canary itself
    if canary and names and here:
        from . import canary as canaries

        say = say or (lambda text: print(text, file=sys.stderr))
        say(canaries.check(root, assignment, env, workers, say=say))
    data_warning = here and download.warning(root, course.released_notebooks(root, assignment),
                                             {**os.environ, **(env or {})})
    if data_warning and names:
        print(f"WARNING: {data_warning}", file=sys.stderr)
    workers = max(1, workers or os.cpu_count() or 1)
    timeout = timeout or 1200 * max(1, len(course.released_notebooks(root, assignment)))
    outcomes = []
    bar = None
    if progress and names:
        from tqdm import tqdm

        bar = tqdm(total=len(names), unit="student", desc=f"autograde {assignment}", file=sys.stderr)
    if not here and names:
        from . import cluster as dask_cluster

        own = client is None
        client = client or dask_cluster.connect(cluster, root)
        try:
            outcomes = dask_cluster.grade_all(root, assignment, names, force, timeout, env, client, bar, canary)
        finally:
            if own:
                client.close()
                if client.cluster is not None:
                    client.cluster.close()
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(grade_student, root, assignment, name, force, timeout, env) for name in names]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                if bar is not None:
                    bar.set_postfix_str(f"{outcome.student}: {outcome.status}")
                    bar.update()
    if bar is not None:
        bar.close()
    outcomes.sort(key=lambda o: o.student)
    write_report(root, assignment, outcomes, [data_warning] if data_warning else [])
    return outcomes


# ---------------------------------------------------------------------------- the report
def notebook_findings(root: Path, assignment: str, student: str) -> dict[str, dict]:
    """What SafeExecute and the repair step recorded in each autograded notebook, and (under ``"decided"``) the
    tasks of which an exception of the student's code decided at least half the points."""
    found = {}
    for path in sorted((root / "autograded" / student / assignment).glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001
            continue
        meta = dict(nb.metadata.get("coursekit", {}))
        meta["decided"] = []
        for record in cell_records(nb).values():
            points, comment = decided_by_exception(record)
            if points and points >= record.get("points", 0) / 2:
                meta["decided"].append({"task": record.get("task", "?"), "points": points,
                                        "of": record.get("points", 0), "comment": comment})
        found[path.stem] = meta
    return found


def write_report(root: Path, assignment: str, outcomes: list[Outcome], warnings: list[str] = ()) -> Path:
    lines = [f"# Grading report: {assignment}", ""] + [f"**Warning**: {w}\n" for w in warnings]
    graded = [o for o in outcomes if o.status == "graded"]
    if graded:
        mean = sum(o.seconds for o in graded) / len(graded)
        lines.append(f"{len(graded)} graded in this run ({mean:.1f} s per student), "
                     f"{sum(o.status == 'skipped' for o in outcomes)} already graded, "
                     f"{sum(o.status == 'failed' for o in outcomes)} failed.")
    review, events = [], []
    for outcome in outcomes:
        if outcome.status == "failed":
            events.append(f"- **{outcome.student}**: grading failed: {outcome.message}")
        for problem in outcome.problems:
            events.append(f"- **{outcome.student}**: {problem}")
        for notebook, meta in notebook_findings(root, assignment, outcome.student).items():
            for event in meta.get("events", []):
                events.append(f"- **{outcome.student}** `{notebook}`: {event['text']}")
            if meta.get("tampering"):
                what = sorted({t["what"] for t in meta["tampering"]})
                review.append(f"- **{outcome.student}** `{notebook}`: the notebook changed {', '.join(what)} "
                              "(restored before the tests; check whether it tried to fake its score)")
            for decided in meta.get("decided", []):
                review.append(f"- **{outcome.student}** `{notebook}` {decided['task']}: {decided['points']:g} of "
                              f"{decided['of']:g} points were decided by an exception, not by what the lines check "
                              f"({decided['comment']}): read the code and grade by hand if the rest is right")
            for flag in meta.get("flags", []):
                review.append(f"- **{outcome.student}** `{notebook}` {flag['cell']}, line {flag['line']}: "
                              f"{flag['reason']}: `{flag['code']}`")
    lines += ["", "## Flagged for manual review", ""] + (review or ["Nothing."])
    if any(o.worker for o in outcomes):
        lines += ["", "## Who graded whom", "", "| student | worker | seconds |", "|---|---|---|"]
        lines += [f"| {o.student} | {o.worker or '-'} | {o.seconds:.1f} |" for o in outcomes if o.status != "skipped"]
    lines += ["", "## What happened while grading", ""] + (events or ["Nothing unusual."])
    path = course.Layout(root).reports(assignment) / "grading-report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def summary(outcomes: list[Outcome]) -> str:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("graded", "skipped", "failed")}
    text = f"{counts['graded']} graded, {counts['skipped']} already graded, {counts['failed']} failed"
    for outcome in outcomes:
        if outcome.status == "failed":
            text += f"\n  {outcome.student}: {outcome.message}"
        for problem in outcome.problems:
            text += f"\n  {outcome.student}: {problem}"
    return text

