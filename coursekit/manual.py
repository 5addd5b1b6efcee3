"""Grade one text question for all students in a spreadsheet: the fast path beside the formgrader.

``python -m coursekit manual-sheet exam svhn_a_answer`` writes
``manual/exam/svhn_a_answer.csv``: one row per student with the answer, the points possible and
empty ``score`` and ``comment`` columns, and beside it ``svhn_a_answer-mark-scheme.md`` (the
question and its mark scheme, for the grader only).  The grader fills in ``score`` (and
``comment``) in any spreadsheet program and saves it as CSV; then

``python -m coursekit manual-import manual/exam/svhn_a_answer.csv``

checks every row first (known student and question, a number between 0 and the points) and only
then writes all scores and comments into the gradebook, the way the formgrader does (manual score,
manual comment, no longer "needs manual grade"); rows with an empty score are skipped.  Run
``nbgrader generate_feedback`` afterwards.  Nothing is written when any row is wrong.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import course

COLUMNS = ["student_id", "assignment", "notebook", "grade_id", "max_points", "answer", "score", "comment"]
MARK_SCHEME = re.compile(r"BEGIN MARK SCHEME(.*?)END MARK SCHEME", re.S)


def find_question(root: Path, assignment: str, grade_id: str) -> tuple[str, float, str]:
    """``(notebook, points, question text with mark scheme)`` of the text answer ``grade_id``."""
    for nb_name in course.released_notebooks(root, assignment):
        nb = nbformat.read(root / "source" / assignment / f"{nb_name}.ipynb", as_version=4)
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade_id") == grade_id:
                if cell.cell_type != "markdown" or not meta.get("grade"):
                    raise ValueError(f"{grade_id} in {nb_name} is not a manually graded text answer")
                question = nb.cells[index - 1].source if index else ""
                return nb_name, float(meta["points"]), question
    known = manual_questions(root, assignment)
    raise ValueError(f"no text answer {grade_id!r} in {assignment}; the text answers are: {', '.join(known)}")


def manual_questions(root: Path, assignment: str) -> list[str]:
    found = []
    for nb_name in course.released_notebooks(root, assignment):
        nb = nbformat.read(root / "source" / assignment / f"{nb_name}.ipynb", as_version=4)
        found += [c.metadata.nbgrader.grade_id for c in nb.cells if c.cell_type == "markdown"
                  and c.metadata.get("nbgrader", {}).get("grade")]
    return found


def write_sheet(root: str | Path, assignment: str, grade_id: str, out: Path | None = None) -> Path:
    """The sheet of one text question (answers from the gradebook's submissions in ``autograded/``)."""
    from nbgrader.api import Gradebook

    root = Path(root)
    notebook, points, question = find_question(root, assignment, grade_id)
    out = out or root / "manual" / assignment / f"{grade_id}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with Gradebook(course.Layout(root).gradebook_url) as gb:
        for submission in sorted(gb.assignment_submissions(assignment), key=lambda s: s.student.id):
            student = submission.student.id
            grade = gb.find_grade(grade_id, notebook, assignment, student)
            path = root / "autograded" / student / assignment / f"{notebook}.ipynb"
            answer = ""
            if path.exists():
                cells = [c for c in nbformat.read(path, as_version=4).cells
                         if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
                answer = cells[0].source if cells else ""
            score = grade.manual_score if grade.manual_score is not None else (
                grade.auto_score if grade.auto_score is not None else "")
            comment = gb.find_comment(grade_id, notebook, assignment, student).manual_comment or ""
            rows.append(dict(student_id=student, assignment=assignment, notebook=notebook, grade_id=grade_id,
                             max_points=f"{points:g}", answer=answer,
                             score="" if score == "" else f"{score:g}", comment=comment))
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    scheme = out.with_name(f"{grade_id}-mark-scheme.md")
    scheme.write_text(f"# {assignment} / {notebook} / {grade_id} ({points:g} points)\n\n"
                      + MARK_SCHEME.sub(lambda m: m.group(1).strip(), question).strip() + "\n", encoding="utf-8")
    return out


@dataclass
class Imported:
    """What ``import_sheet`` wrote: the number of scores, and the students whose row was left blank."""

    count: int
    blank: list[str]

    def __str__(self) -> str:
        text = f"{self.count} scores imported"
        if self.blank:
            text += (f"; {len(self.blank)} rows left blank (not graded yet): " + ", ".join(self.blank[:20])
                     + (" ..." if len(self.blank) > 20 else ""))
        return text


def read_rows(sheet: Path) -> list[dict]:
    """The rows of a sheet saved by any spreadsheet program: ``,``, ``;`` (German or French Excel) or tab separated."""
    text = Path(sheet).read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return list(csv.DictReader(io.StringIO(text, newline=""), dialect=dialect))


def import_sheet(root: str | Path, sheet: Path) -> Imported:
    """Write the filled-in scores and comments of ``sheet`` into the gradebook; say how many and which rows were blank."""
    from nbgrader.api import Gradebook, MissingEntry

    root = Path(root)
    rows = read_rows(sheet)
    missing = [c for c in ("student_id", "assignment", "notebook", "grade_id", "score") if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{sheet}: the columns {', '.join(missing)} are missing")
    problems, updates, blank = [], [], []
    with Gradebook(course.Layout(root).gradebook_url) as gb:
        for line, row in enumerate(rows, 2):
            text = (row.get("score") or "").strip().replace(",", ".")
            if not text:
                blank.append(row.get("student_id") or f"line {line}")
                continue
            where = f"line {line} ({row['student_id']})"
            try:
                grade = gb.find_grade(row["grade_id"], row["notebook"], row["assignment"], row["student_id"])
                comment = gb.find_comment(row["grade_id"], row["notebook"], row["assignment"], row["student_id"])
            except MissingEntry:
                problems.append(f"{where}: no such student, notebook or question in the gradebook")
                continue
            try:
                score = float(text)
            except ValueError:
                problems.append(f"{where}: score {text!r} is not a number")
                continue
            if not 0 <= score <= grade.max_score:
                problems.append(f"{where}: score {score:g} is not between 0 and {grade.max_score:g}")
                continue
            updates.append((grade, comment, score, (row.get("comment") or "").strip()))
        if problems:
            raise ValueError(f"{sheet}: nothing imported, fix these rows first:\n  " + "\n  ".join(problems))
        for grade, comment, score, text in updates:  # as nbgrader's formgrader saves a grade
            grade.manual_score = score
            grade.needs_manual_grade = False
            comment.manual_comment = text or None
        gb.db.commit()
    return Imported(len(updates), blank)
