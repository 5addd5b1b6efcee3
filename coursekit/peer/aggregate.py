"""The reviews put together: ``python -m coursekit peer-aggregate <assignment>``.

* **Per report and criterion** the median of the reviewers' points (robust: one reviewer far off does not move it
  much).  **The teacher's grade overrides**: where a TA gave a manual score in nbgrader's gradebook (formgrader or
  ``manual-import``) to any cell of a task, the gradebook's points of that task count for the report instead.
* **Disagreement of a report**: the reviewers' mean distance from the median, as a share of each criterion's points;
  above ``c.CourseKit.peer_disagreement`` (default 0.2) the report is flagged, for a teacher to read.
* **Each reviewer**: the mean distance of their points from the *other* reviewers' median of the same report (as a
  share of the points; compared where at least two others reviewed it) and its sign (harsh or kind), and, where a
  TA graded the same report, the distance from the TA's points.  A review is far off when its distance is above
  ``c.CourseKit.peer_far_off`` (default 0.25); a reviewer is flagged as **consistently far off** when more than half
  of at least two compared reviews are (from the others, or from the TA): one report on which the reviewers split
  does not flag everybody who reviewed it.

Written:

* ``grades/<assignment>-peer.csv``, next to ``<assignment>-tasks.csv``: per author the final points per criterion,
  the peer total, how many criteria the teacher graded, the total, the maximum (without bonus tasks), the number of
  reviews, the disagreement and the flag.  ``nbgrader export`` writes it again (``coursekit/export.py``), so a TA's
  later grade shows.  Nothing is written into the gradebook: it holds one score per cell, manual or automatic, and a
  median of peers is neither; a TA's manual grades stay exactly as they are.
* ``reports/<assignment>/peer-report.html`` (reports, reviewers, flags) and ``peer-reviewers.csv``;
* ``peer/<assignment>/feedback/<student>.html``: to each author the final points per criterion and the reviews, each
  reviewer anonymous ("Reviewer 1") with their comments; to each reviewer how their points compared with the others'
  and the TA's.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .. import course
from ..pages import render
from . import store
from .assign import scrubber


@dataclass
class Report:
    code: str
    author: str
    reviews: list[store.Review]
    median: dict[str, float]  # task -> median of the reviewers' points
    teacher: dict[str, float]  # task -> the TA's points, where a TA graded the task
    disagreement: float | None  # mean |points - median| / criterion points; None with fewer than 2 reviews
    flagged: bool = False

    def final(self, task: str) -> float | None:
        return self.teacher.get(task, self.median.get(task))


@dataclass
class Reviewer:
    student: str
    reviews: int = 0  # reviews stored
    assigned: int = 0
    compared: int = 0  # reviews of reports with at least two other reviews
    distance: float | None = None  # mean |points - others' median| / points
    bias: float | None = None  # mean (points - others' median) / points: below 0 harsher than the others
    teacher_distance: float | None = None  # mean |points - TA's points| / points, where a TA graded
    teacher_compared: int = 0  # reviews of reports a TA graded
    far: int = 0  # compared reviews far off from the others
    teacher_far: int = 0  # reviews far off from the TA
    flagged: bool = False
    lines: list[dict] = field(default_factory=list)  # per report and criterion: mine, others' median, the TA's


@dataclass
class Aggregate:
    draw: store.Draw
    reports: dict[str, Report]  # code -> report
    reviewers: dict[str, Reviewer]
    disagreement_limit: float
    far_off_limit: float

    def total(self, report: Report, peer_only: bool = False) -> float | None:
        values = [report.median.get(c.task) if peer_only else report.final(c.task) for c in self.draw.criteria]
        return None if any(v is None for v in values) else sum(values)


def teacher_scores(root: Path, assignment: str) -> dict[str, dict[str, float]]:
    """``{student: {task: points}}`` for the tasks in which a grader gave any cell a manual score."""
    from nbgrader.api import Gradebook

    url = course.Layout(root).gradebook_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return {}
    labels = course.notebook_task_labels(root, assignment)
    result = {}
    with Gradebook(url) as gb:
        for submission in gb.assignment_submissions(assignment):  # none when the gradebook has no such assignment
            tasks: dict[str, list] = {}
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    task = labels.get(notebook.name, {}).get(grade.name)
                    if task:
                        entry = tasks.setdefault(task, [0.0, False])
                        entry[0] += float(grade.score or 0)
                        entry[1] = entry[1] or grade.manual_score is not None
            result[submission.student.id] = {task: points for task, (points, manual) in tasks.items() if manual}
    return result


def _mean(values):
    return statistics.fmean(values) if values else None


def aggregate(root: str | Path, assignment: str) -> Aggregate:
    root = Path(root)
    draw = store.load(root, assignment)
    points = {c.task: c.points for c in draw.criteria}
    teacher = teacher_scores(root, assignment)
    by_report: dict[str, list[store.Review]] = {code: [] for code in draw.authors}
    for review in store.reviews(root, assignment):
        if review.report in by_report:
            by_report[review.report].append(review)
    reports = {}
    for code, reviews in by_report.items():
        median = {task: statistics.median(r.scores[task] for r in reviews) for task in points if reviews}
        distances = [abs(r.scores[t] - median[t]) / points[t] for r in reviews for t in points]
        reports[code] = Report(code, draw.authors[code], sorted(reviews, key=lambda r: draw.tokens.get(r.reviewer, "")),
                               median, teacher.get(draw.authors[code], {}),
                               _mean(distances) if len(reviews) >= 2 else None)
    disagreement_limit = float(course.setting(root, "peer_disagreement", 0.2))
    far_off_limit = float(course.setting(root, "peer_far_off", 0.25))
    for report in reports.values():
        report.flagged = report.disagreement is not None and report.disagreement > disagreement_limit
    reviewers = {r: Reviewer(r, assigned=len(codes)) for r, codes in draw.reviews.items()}
    for report in reports.values():
        for review in report.reviews:
            me = reviewers.setdefault(review.reviewer, Reviewer(review.reviewer))
            me.reviews += 1
            others = [r for r in report.reviews if r is not review]
            if len(others) >= 2:
                me.compared += 1
            if report.teacher:
                me.teacher_compared += 1
            for task in points:
                me.lines.append({"report": report.code, "task": task, "points": points[task],
                                 "mine": review.scores[task],
                                 "others": statistics.median(r.scores[task] for r in others) if len(others) >= 2 else None,
                                 "teacher": report.teacher.get(task)})
    for me in reviewers.values():
        compared = [(x["mine"] - x["others"]) / x["points"] for x in me.lines if x["others"] is not None]
        graded = [abs(x["mine"] - x["teacher"]) / x["points"] for x in me.lines if x["teacher"] is not None]
        me.distance, me.bias = _mean([abs(d) for d in compared]), _mean(compared)
        me.teacher_distance = _mean(graded)
        for code in dict.fromkeys(x["report"] for x in me.lines):
            mine = [x for x in me.lines if x["report"] == code]
            if mine[0]["others"] is not None:
                me.far += _mean([abs(x["mine"] - x["others"]) / x["points"] for x in mine]) > far_off_limit
            if any(x["teacher"] is not None for x in mine):
                me.teacher_far += _mean([abs(x["mine"] - x["teacher"]) / x["points"] for x in mine
                                         if x["teacher"] is not None]) > far_off_limit
        me.flagged = ((me.compared >= 2 and me.far > me.compared / 2)
                      or (me.teacher_compared >= 2 and me.teacher_far > me.teacher_compared / 2))
    return Aggregate(draw, reports, reviewers, disagreement_limit, far_off_limit)


def _number(x: float | None) -> str:
    return "" if x is None else f"{round(x, 2) + 0.0:g}"  # + 0.0: no "-0"


def write_grades(root: str | Path, result: Aggregate) -> Path:
    """``grades/<assignment>-peer.csv``: one row per report (see the module docstring)."""
    draw, names = result.draw, store.people(root)
    tasks = [c.task for c in draw.criteria]
    rows = []
    for report in sorted(result.reports.values(), key=lambda r: r.author):
        rows.append({"student_id": report.author, **names.get(report.author, {}), "report": report.code,
                     **{t: _number(report.final(t)) for t in tasks},
                     "peer_total": _number(result.total(report, peer_only=True)),
                     "teacher_graded": str(len(report.teacher)), "total": _number(result.total(report)),
                     "max": _number(draw.max_total), "reviews": str(len(report.reviews)),
                     "disagreement": _number(report.disagreement), "flagged": "yes" if report.flagged else ""})
    return store.write_csv(Path(root) / "grades" / f"{draw.assignment}-peer.csv",
                           ["student_id", "last_name", "first_name", "email", "report", *tasks, "peer_total",
                            "teacher_graded", "total", "max", "reviews", "disagreement", "flagged"], rows)


def write_report(root: str | Path, result: Aggregate) -> Path:
    """``reports/<assignment>/peer-report.html`` and ``peer-reviewers.csv``."""
    folder = course.Layout(root).reports(result.draw.assignment)
    reviewers = sorted(result.reviewers.values(), key=lambda r: (not r.flagged, r.student))
    store.write_csv(folder / "peer-reviewers.csv",
                    ["reviewer", "assigned", "reviews", "compared", "far", "distance", "bias", "teacher_compared",
                     "teacher_far", "teacher_distance", "flagged"],
                    [{"reviewer": r.student, "assigned": r.assigned, "reviews": r.reviews, "compared": r.compared,
                      "far": r.far, "distance": _number(r.distance), "bias": _number(r.bias),
                      "teacher_compared": r.teacher_compared, "teacher_far": r.teacher_far,
                      "teacher_distance": _number(r.teacher_distance), "flagged": "yes" if r.flagged else ""}
                     for r in reviewers])
    path = folder / "peer-report.html"
    path.write_text(render("peer-report.html.j2", result=result, number=_number,
                           reports=sorted(result.reports.values(), key=lambda r: (not r.flagged, r.author)),
                           reviewers=reviewers), encoding="utf-8")
    return path


def write_feedback(root: str | Path, result: Aggregate) -> list[Path]:
    """``peer/<assignment>/feedback/<student>.html`` for every author and reviewer; comments go through the
    scrubber, so that a reviewer who signs a comment stays anonymous."""
    draw = result.draw
    scrub = scrubber(Path(root), draw.groups, draw.ids or None)
    folder = store.folder(root, draw.assignment) / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for student in sorted(set(draw.authors.values()) | set(draw.reviews)):
        code = draw.code_of.get(student)
        report = result.reports.get(code) if code else None
        comments = None
        if report:
            comments = [{task: scrub.text(text) for task, text in review.comments.items()} for review in report.reviews]
        path = folder / f"{student}.html"
        path.write_text(render("peer-feedback.html.j2", result=result, draw=draw, report=report, comments=comments,
                               reviewer=result.reviewers.get(student), number=_number, overall=store.OVERALL),
                        encoding="utf-8")
        written.append(path)
    return written


def run(root: str | Path, assignment: str) -> Aggregate:
    result = aggregate(root, assignment)
    write_grades(root, result)
    write_report(root, result)
    write_feedback(root, result)
    return result
