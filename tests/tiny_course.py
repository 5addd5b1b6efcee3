"""A tiny course for the tests of the course sheet and the exports: two lab sheets and an exam, one small notebook
each in ``source/``, and a gradebook filled through nbgrader's API as autograding and the formgrader would fill it
(automatic scores on code cells, manual scores on text answers, one text answer left ungraded)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CONFIG = '''
import os
c = get_config()  # noqa: F821
HERE = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "tiny"
c.CourseDirectory.root = HERE
c.CourseKit.assignments = {"lab1": ["sheet1"], "lab2": ["sheet2"], "exam": ["paper"]}
c.CourseKit.course_rules = {
    "practicals": {"assignments": ["lab1", "lab2"], "pass_at": 80,
                   "transfer": {"to": "exam", "above": 80, "at_most": 40}},
    "exam": {"assignments": ["exam"], "pass_at": 25, "bonus_counts": True},
}
c.ExportApp.plugin_class = "coursekit.export.TaskExportPlugin"
'''

# (grade_id, heading, kind, points): kind "code" is graded by tests, "text" by hand
SHEET = [("a_code", "### 1(a) Forward pass (30 points)", "code", 30),
         ("b_text", "### 1(b) Why ReLU? (30 points)", "text", 30),
         ("c_bonus", "### 2(a) Bonus: a second network (5 points)", "text", 5)]
PAPER = [("exam_code", "### 1(a) Backpropagation (50 points)", "code", 50)]
NOTEBOOKS = {"lab1": ("sheet1", SHEET), "lab2": ("sheet2", SHEET), "exam": ("paper", PAPER)}

# points per student and assignment, in the order of the cells; None: a text answer not graded yet
GRADES = {
    "ada": {"lab1": [30, 20, 1], "lab2": [25, 10, 2], "exam": [20]},    # 85 + 3 bonus: passed, 8 to the exam
    "ben": {"lab1": [30, 19, 5], "lab2": [30, 0, 0], "exam": [30]},     # 79 + 5 bonus: not passed
    "cy": {"lab1": [30, 30, 5], "lab2": [30, 30, 5], "exam": [10]},     # 120 + 10 bonus: 50 above 80, 40 transfer
    "dee": {"lab1": [30, None, 0], "lab2": [30, 30, 0], "exam": [40]},  # a text answer not graded: open
    "eve": {"lab1": [30, 30, 5]},                                        # lab2 and exam not submitted
}
NAMES = {"ada": ("Ada", "Lovelace"), "ben": ("Ben", "Bit"), "cy": ("Cy", "Young"), "dee": ("Dee", "Dee"),
         "eve": ("Eve", "Else")}


def notebook(cells) -> nbformat.NotebookNode:
    nb = new_notebook()
    for grade_id, heading, kind, points in cells:
        nb.cells.append(new_markdown_cell(heading))
        meta = {"nbgrader": {"grade": True, "solution": True, "locked": False, "grade_id": grade_id,
                             "points": points, "schema_version": 3}}
        nb.cells.append(new_code_cell("x = 1", metadata=meta) if kind == "code"
                        else new_markdown_cell("An answer.", metadata=meta))
    return nb


def build(root: Path, grades: dict = GRADES) -> Path:
    """The course in ``root`` with ``grades`` in its SQLite gradebook."""
    from nbgrader.api import Gradebook

    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG)
    for assignment, (name, cells) in NOTEBOOKS.items():
        (root / "source" / assignment).mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook(cells), root / "source" / assignment / f"{name}.ipynb")
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for assignment, (name, cells) in NOTEBOOKS.items():
            gb.add_assignment(assignment)
            gb.add_notebook(name, assignment)
            for grade_id, _, kind, points in cells:
                gb.add_grade_cell(grade_id, name, assignment, max_score=points,
                                  cell_type="code" if kind == "code" else "markdown")
                gb.add_solution_cell(grade_id, name, assignment)
        for student, (first, last) in NAMES.items():
            gb.update_or_create_student(student, first_name=first, last_name=last, email=f"{student}@uni.example")
        for student, by_assignment in grades.items():
            for assignment, points in by_assignment.items():
                name, cells = NOTEBOOKS[assignment]
                gb.add_submission(assignment, student)
                for (grade_id, _, kind, _), score in zip(cells, points):
                    grade = gb.find_grade(grade_id, name, assignment, student)
                    if kind == "code":
                        grade.auto_score = score
                    else:
                        grade.manual_score = score
                gb.db.commit()
    return root
