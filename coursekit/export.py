"""``nbgrader export`` with a column per task and files the learning platforms import.

Configured in ``nbgrader_config.py`` (``c.ExportApp.plugin_class``), so plain ``nbgrader export``
writes, besides nbgrader's own ``grades.csv`` (one row per student and assignment, unchanged),
for every assignment in ``grades/``:

* ``<assignment>-tasks.csv``: one row per student, one column per task (``3(d)``: the points of
  all its cells, automatic and manual), then ``auto``, ``manual``, ``bonus`` (the points of bonus
  tasks, already in ``auto``/``manual``), ``manual_open`` (text answers not graded yet), ``total`` and
  ``max``, the maximum *without* the bonus tasks (the lab: 30, its bonus of 3 on top).  Empty task
  cells: not submitted, or a text answer waiting for its grader.
* ``<assignment>-moodle.csv``: Moodle's *Import grades from CSV* layout (map "Email address" or
  "ID number" to the user, the assignment column to the grade item).
* ``<assignment>-peer.csv`` when the assignment is peer-reviewed (``coursekit/peer/aggregate.py``), written
  again so that a TA's grade given since counts.
* ``<assignment>-olat.csv``: OpenOlat's *bulk assessment* ("Massenbewertung") data, one line per student without
  a header: user name (the nbgrader student id), score, passed (``y``/``n`` from ``course-sheet`` when
  ``c.CourseKit.course_rules`` has a part of this assignment alone with a ``pass_at``, else blank), comment;
  comma-separated, decimal point (paste it into the wizard, "separated by comma"), and, when ``feedback/`` has
  pages, ``<assignment>-olat-returns.zip``: a folder per user name with the feedback pages, OpenOlat's return files
  of a "Task" element.
* ``<assignment>-canvas.csv``: Canvas's gradebook import layout (``Student`` as "Last, First",
  ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``, then the assignment, whose header is
  "<assignment> (<Canvas assignment id>)" when ``c.CourseKit.canvas_assignment_ids`` gives the id, so
  that Canvas fills the existing assignment instead of creating a new one; the first row is
  Canvas's "Points Possible" row with the maximum).  ``SIS User ID`` holds the nbgrader student id,
  ``ID`` is left to Canvas: map the student ids to Canvas by the SIS User ID.

A student without a submission, or with text answers still waiting for manual grading, gets an
**empty** grade in the platform files (the platform keeps what it had; nothing half-graded is
uploaded); the log names them.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

from nbgrader.plugins import CsvExportPlugin
from traitlets import Unicode

from . import course


def _number(x: float) -> str:
    return f"{x:g}"


def task_rows(root: Path, assignment: str, gradebook) -> tuple[list[str], list[dict]]:
    """The task columns of ``assignment`` and one row per student of the gradebook."""
    scores = course.cell_scores(root, assignment, gradebook)
    tasks = list(dict.fromkeys(task for labels in course.notebook_task_labels(root, assignment).values()
                               for task in labels.values()))
    rows = []
    for student in sorted(gradebook.students, key=lambda s: s.id):
        row = {"student_id": student.id, "last_name": student.last_name or "",
               "first_name": student.first_name or "", "email": student.email or ""}
        cells = scores.get(student.id)
        row["submitted"] = "yes" if cells is not None else "no"
        if cells is None:
            row.update({t: "" for t in tasks})
            row.update(auto="", manual="", bonus="", manual_open="", total="", max="")
            rows.append(row)
            continue
        for task in tasks:
            mine = [c for c in cells if c.task == task]
            row[task] = "" if not mine or any(c.score is None for c in mine) else _number(sum(c.score for c in mine))
        auto = sum(c.score or 0 for c in cells if c.auto)
        manual = sum(c.score for c in cells if not c.auto and c.score is not None)
        row.update(auto=_number(auto), manual=_number(manual),
                   bonus=_number(sum(c.score or 0 for c in cells if c.bonus)),
                   manual_open=str(sum(1 for c in cells if not c.auto and c.score is None)),
                   total=_number(auto + manual), max=_number(sum(c.max_score for c in cells if not c.bonus)))
        rows.append(row)
    return tasks, rows


def lms_grade(row: dict) -> str:
    """The grade a platform gets: the total, or empty when not submitted or not fully graded."""
    return row["total"] if row["submitted"] == "yes" and row["manual_open"] == "0" else ""


def olat_passed(root: Path, assignment: str, gradebook) -> dict[str, tuple[str, str]]:
    """``{student: (result, reason)}`` from the course sheet, for an assignment that is a part of the course rules on
    its own and has a threshold (else empty: OpenOlat's "passed" stays blank, or its cut value decides)."""
    from . import coursesheet

    rules = course.setting(root, "course_rules", None) or {}
    part = next((p for p, rule in rules.items() if list(rule.get("assignments", [])) == [assignment]
                 and "pass_at" in rule), None)
    if part is None:
        return {}
    return {row["student_id"]: (row[f"{part}: result"], row[f"{part}: reason"])
            for row in coursesheet.sheet(root, gradebook)[1]}


class TaskExportPlugin(CsvExportPlugin):
    """nbgrader's CSV export plus per-task and Moodle/Canvas files (see the module docstring)."""

    folder = Unicode("grades", help="where the per-assignment files go (relative to the course)").tag(config=True)

    def export(self, gradebook) -> None:
        super().export(gradebook)
        root = course.Layout.of(self).root
        wanted = [str(a) for a in self.assignment]
        out = root / self.folder
        out.mkdir(parents=True, exist_ok=True)
        for assignment in gradebook.assignments:
            name = assignment.name
            if (wanted and name not in wanted) or name not in course.assignments(root):
                continue
            tasks, rows = task_rows(root, name, gradebook)
            if self.student:
                rows = [r for r in rows if r["student_id"] in {str(s) for s in self.student}]
            self.write(out / f"{name}-tasks.csv",
                       ["student_id", "last_name", "first_name", "email", "submitted", *tasks,
                        "auto", "manual", "bonus", "manual_open", "total", "max"], rows)
            self.write(out / f"{name}-moodle.csv", ["First name", "Last name", "ID number", "Email address", name],
                       [{"First name": r["first_name"], "Last name": r["last_name"], "ID number": r["student_id"],
                         "Email address": r["email"], name: lms_grade(r)} for r in rows])
            canvas_id = (course.setting(root, "canvas_assignment_ids", {}) or {}).get(name)
            column = f"{name} ({canvas_id})" if canvas_id else name
            possible = next((r["max"] for r in rows if r["max"]), "")
            self.write(out / f"{name}-canvas.csv", ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column],
                       [{"Student": "    Points Possible", column: possible}]
                       + [{"Student": ", ".join(x for x in (r["last_name"], r["first_name"]) if x) or r["student_id"],
                           "ID": "", "SIS User ID": r["student_id"], "SIS Login ID": r["email"] or r["student_id"],
                           "Section": "", column: lms_grade(r)} for r in rows])
            self.write_olat(root, out, name, rows, gradebook)
            if not canvas_id:
                self.log.info("%s: no Canvas assignment id in c.CourseKit.canvas_assignment_ids, so Canvas would "
                              "create a new assignment from %s-canvas.csv", name, name)
            if (root / "peer" / name / "draw.json").exists():  # peer review: its grades, with the TA's overrides now
                from .peer import aggregate

                self.log.info("Exported the peer review of %s to %s", name,
                              aggregate.write_grades(root, aggregate.aggregate(root, name)))
            open_ = [r["student_id"] for r in rows if r["submitted"] == "yes" and r["manual_open"] != "0"]
            absent = [r["student_id"] for r in rows if r["submitted"] == "no"]
            self.log.info("Exported %s per task to %s (%d students)", name, out / f"{name}-tasks.csv", len(rows))
            if open_:
                self.log.warning("%s: text answers not graded yet for %d students (%s): their platform grade is "
                                 "left empty", name, len(open_), ", ".join(open_[:10]) + (" ..." if len(open_) > 10 else ""))
            if absent:
                self.log.info("%s: no submission from %d students: their platform grade is left empty",
                              name, len(absent))

    def write_olat(self, root: Path, out: Path, name: str, rows: list[dict], gradebook) -> None:
        """``<name>-olat.csv`` (OpenOlat bulk assessment: username, score, passed, comment; no header) and, when
        there is feedback, ``<name>-olat-returns.zip`` (a folder per username with its feedback pages)."""
        passed = olat_passed(root, name, gradebook)
        graded = [r for r in rows if lms_grade(r)]
        with open(out / f"{name}-olat.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            for r in graded:
                comment = f"{r['total']} of {r['max']} points" + (f", {r['bonus']} of them bonus" if float(r["bonus"])
                                                                 else "")
                result, reason = passed.get(r["student_id"], ("", ""))
                writer.writerow([r["student_id"], r["total"], {"passed": "y", "not passed": "n"}.get(result, ""),
                                 comment + (f"; {reason}" if reason else "")])
        returns = out / f"{name}-olat-returns.zip"
        returns.unlink(missing_ok=True)
        pages = [(r["student_id"], page) for r in graded
                 for page in sorted((root / "feedback" / r["student_id"] / name).glob("*.html"))]
        if pages:
            with zipfile.ZipFile(returns, "w", zipfile.ZIP_DEFLATED) as z:
                for student, page in pages:
                    z.write(page, f"{student}/{page.name}")
        self.log.info("Exported %s for OpenOlat's bulk assessment to %s (%d students%s)", name,
                      out / f"{name}-olat.csv", len(graded), f", return files {returns.name}" if pages else "")

    @staticmethod
    def write(path: Path, columns: list[str], rows: list[dict]) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
