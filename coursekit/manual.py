"""Grade one text question for all students in a spreadsheet: the fast path beside the formgrader.

``python -m coursekit manual-sheet exam svhn_a_answer`` writes
``manual/exam/svhn_a_answer.csv``: one row per student with the answer, the points possible and
empty ``score`` and ``comment`` columns, and beside it ``svhn_a_answer-mark-scheme.md`` (the
question and its mark scheme, for the grader only).  The grader fills in ``score`` (and
``comment``) in any spreadsheet program and saves it as CSV; then

``python -m coursekit manual-import manual/exam/svhn_a_answer.csv``

checks every row first (known student and question, a number between 0 and the points) and only
then writes the scores and comments into the gradebook, the way the formgrader does (manual score,
manual comment, no longer "needs manual grade"); rows with an empty score are skipped.  Run
``nbgrader generate_feedback`` afterwards.  Nothing is written when any row is wrong.

Several graders may work at once (the gradebook on PostgreSQL, README): the sheet remembers what the
gradebook held when it was written (``score_in_gradebook``, ``comment_in_gradebook``), the import
writes only the rows whose score or comment the grader changed, and it refuses a changed row that
someone else changed in the gradebook in the meantime (also while the import runs), so no grader's
score is overwritten by a stale copy of it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import course

COLUMNS = ["student_id", "assignment", "notebook", "grade_id", "max_points", "answer", "score", "comment",
           "score_in_gradebook", "comment_in_gradebook"]  # the last two: what the sheet was written from
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
            score, comment = shown(grade, gb.find_comment(grade_id, notebook, assignment, student))
            rows.append(dict(student_id=student, assignment=assignment, notebook=notebook, grade_id=grade_id,
                             max_points=f"{points:g}", answer=answer, score=score, comment=comment,
                             score_in_gradebook=score, comment_in_gradebook=comment))
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    scheme = out.with_name(f"{grade_id}-mark-scheme.md")
    scheme.write_text(f"# {assignment} / {notebook} / {grade_id} ({points:g} points)\n\n"
                      + MARK_SCHEME.sub(lambda m: m.group(1).strip(), question).strip() + "\n", encoding="utf-8")
    return out


def shown(grade, comment) -> tuple[str, str]:
    """``(score, comment)`` of a gradebook entry as a sheet shows them ("" for none)."""
    score = grade.manual_score if grade.manual_score is not None else grade.auto_score
    return ("" if score is None else f"{score:g}"), (comment.manual_comment or "").strip()


def _same(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Whether two ``(score, comment)`` read the same (a spreadsheet may rewrap a comment's lines)."""
    return a[0] == b[0] and a[1].split() == b[1].split()


def _number(text: str) -> str:
    """A score as the sheet shows it: "1,50" (a European spreadsheet) is "1.5"; "" stays ""."""
    text = (text or "").strip().replace(",", ".")
    try:
        return f"{float(text):g}" if text else ""
    except ValueError:
        return text


@dataclass
class Imported:
    """What ``import_sheet`` wrote: the number of scores, the students whose row was left blank, and those whose
    row the grader did not change (left as the gradebook has them)."""

    count: int
    blank: list[str]
    unchanged: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.count} scores imported"
        for rows, what in ((self.blank, "left blank (not graded yet)"),
                           (self.unchanged, "unchanged (left as they are in the gradebook)")):
            if rows:
                text += f"; {len(rows)} rows {what}: " + ", ".join(rows[:20]) + (" ..." if len(rows) > 20 else "")
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
    """Write the scores and comments the grader entered in ``sheet`` into the gradebook; say how many, and which rows
    were blank or unchanged.  Raises ValueError, writing nothing, when a row is wrong or was changed in the
    gradebook since the sheet was written (see the module docstring)."""
    from nbgrader.api import Comment, Grade, Gradebook, MissingEntry
    from sqlalchemy import update
    from sqlalchemy.exc import OperationalError

    root = Path(root)
    rows = read_rows(sheet)
    missing = [c for c in ("student_id", "assignment", "notebook", "grade_id", "score") if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{sheet}: the columns {', '.join(missing)} are missing")
    remembers = bool(rows) and "score_in_gradebook" in rows[0]  # a sheet written by write_sheet (not made by hand)
    problems, updates, blank, unchanged = [], [], [], []
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
            remark = (row.get("comment") or "").strip()
            entered, now = (f"{score:g}", remark), shown(grade, comment)
            before = (_number(row.get("score_in_gradebook")), (row.get("comment_in_gradebook") or "").strip())
            if _same(entered, now) or (remembers and _same(entered, before)):
                unchanged.append(row["student_id"])  # in the gradebook already, or not this grader's entry: it stays
                continue
            if remembers and not _same(now, before):
                problems.append(f"{where}: changed in the gradebook since this sheet was written (now score "
                                f"{now[0] or 'none'}, comment {now[1]!r}), by another grader or an earlier import "
                                "of this sheet; write a new sheet (manual-sheet) and enter it there")
                continue
            updates.append((where, grade, comment, score, remark))
        if problems:
            raise ValueError(f"{sheet}: nothing imported, fix these rows first:\n  " + "\n  ".join(problems))
        # as nbgrader's formgrader saves a grade, but each row only if the gradebook still holds what was read above:
        # another grader's import or the formgrader may have written it since (a conditional UPDATE is atomic)
        raced = []
        try:
            for where, grade, comment, score, remark in updates:
                wrote = gb.db.execute(
                    update(Grade).where(Grade.id == grade.id,
                                        Grade.manual_score.is_not_distinct_from(grade.manual_score),
                                        Grade.auto_score.is_not_distinct_from(grade.auto_score))
                    .values(manual_score=score, needs_manual_grade=False),
                    execution_options={"synchronize_session": False}).rowcount
                wrote += gb.db.execute(
                    update(Comment).where(Comment.id == comment.id,
                                          Comment.manual_comment.is_not_distinct_from(comment.manual_comment))
                    .values(manual_comment=remark or None),
                    execution_options={"synchronize_session": False}).rowcount
                if wrote != 2:
                    raced.append(f"{where}: changed in the gradebook by someone else during this import")
            if raced:
                raise ValueError(f"{sheet}: nothing imported, these rows were changed meanwhile (write a new sheet "
                                 "and enter them there):\n  " + "\n  ".join(raced))
            gb.db.commit()
        except OperationalError as error:  # e.g. SQLite locked by a long write, a PostgreSQL deadlock
            gb.db.rollback()
            raise ValueError(f"{sheet}: nothing imported, the gradebook refused the write "
                             f"({' '.join(str(error.orig).split())[:300]}); try again") from None
        except ValueError:
            gb.db.rollback()
            raise
    return Imported(len(updates), blank, unchanged)
