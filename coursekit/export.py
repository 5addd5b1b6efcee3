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
            if not canvas_id:
                self.log.info("%s: no Canvas assignment id in c.CourseKit.canvas_assignment_ids, so Canvas would "
                              "create a new assignment from %s-canvas.csv", name, name)
            open_ = [r["student_id"] for r in rows if r["submitted"] == "yes" and r["manual_open"] != "0"]
            absent = [r["student_id"] for r in rows if r["submitted"] == "no"]
            self.log.info("Exported %s per task to %s (%d students)", name, out / f"{name}-tasks.csv", len(rows))
            if open_:
                self.log.warning("%s: text answers not graded yet for %d students (%s): their platform grade is "
                                 "left empty", name, len(open_), ", ".join(open_[:10]) + (" ..." if len(open_) > 10 else ""))
            if absent:
                self.log.info("%s: no submission from %d students: their platform grade is left empty",
                              name, len(absent))

    @staticmethod
    def write(path: Path, columns: list[str], rows: list[dict]) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
