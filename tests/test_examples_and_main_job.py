"""The bundled example submissions and the main job that grades them."""

from __future__ import annotations

import csv
import shutil

import nbformat

from coursekit import course, examples, pipeline

ROOT = course.ROOT


def test_example_submissions_are_up_to_date():
    built = examples.notebooks(ROOT)
    on_disk = {p.relative_to(ROOT / "examples" / "submissions")
               for p in (ROOT / "examples" / "submissions").rglob("*.ipynb")}
    assert on_disk == set(built), "run `python -m coursekit examples`"
    for path, nb in built.items():
        committed = nbformat.read(ROOT / "examples" / "submissions" / path, as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in nb.cells], (
            f"examples/submissions/{path} is stale: run `python -m coursekit examples`")


def expected_auto_scores(root):
    """Each example student's automatic points, derived from the mistakes they made."""
    expected = {}
    full = {}
    for assignment in course.assignments(root):
        for nb in course.released_notebooks(root, assignment):
            source = nbformat.read(root / "source" / assignment / f"{nb}.ipynb", as_version=4)
            full[(assignment, nb)] = sum(c.metadata.nbgrader.points for c in source.cells
                                         if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"))
    for student in examples.students(root):
        for assignment, entries in student.get("assignments", {}).items():
            known = examples.mistakes(root, assignment)
            total = 0.0
            for nb, spec in entries.items():
                if spec.get("untouched"):
                    continue
                total += full[(assignment, nb)]
                for name in spec.get("mistakes", []):
                    mistake = known[name]
                    for cell, score in mistake.expect.items():
                        points = next(c.metadata.nbgrader.points for c in nbformat.read(
                            root / "source" / assignment / f"{nb}.ipynb", as_version=4).cells
                            if c.metadata.get("nbgrader", {}).get("grade_id") == cell)
                        total -= points - score
            expected[(student["id"], assignment)] = total
    return expected


def test_main_job_grades_every_example_student(tmp_path, capsys):
    root = course.copy_course(ROOT, tmp_path / "course")
    shutil.copytree(ROOT / "examples", root / "examples")
    table = pipeline.grade_examples(root, say=print)
    out = capsys.readouterr().out
    for command in ("nbgrader generate_assignment", "nbgrader autograde", "nbgrader generate_feedback",
                    "nbgrader export"):
        assert command in out

    for (student, assignment), auto in expected_auto_scores(root).items():
        rows = course.cell_scores(root, assignment)[student]
        got = sum(r.score for r in rows if r.auto)
        assert got == auto, f"{student}/{assignment}: {got} automatic points, expected {auto}"
        assert student in table
        for path in (root / "submitted" / student / assignment).glob("*.ipynb"):
            assert (root / "feedback" / student / assignment / f"{path.stem}.html").exists()

    with open(root / "grades.csv") as f:
        exported = {(row["student_id"], row["assignment"]) for row in csv.DictReader(f)}
    assert set(expected_auto_scores(root)) <= exported
