"""The bundled example submissions, the main job that grades them, and parallel, resumable grading."""

from __future__ import annotations

import csv
import shutil

import nbformat
import pytest

from coursekit import autograde, course, examples, pipeline

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
    points, full, expected = {}, {}, {}
    for assignment in course.assignments(root):
        for nb in course.released_notebooks(root, assignment):
            source = nbformat.read(root / "source" / assignment / f"{nb}.ipynb", as_version=4)
            cells = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")]
            points.update({c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points for c in cells})
            full[(assignment, nb)] = sum(c.metadata.nbgrader.points for c in cells if c.cell_type == "code")
    for student in examples.students(root):
        for assignment, entries in student.get("assignments", {}).items():
            known = examples.mistakes(root, assignment)
            total = 0.0
            for nb, spec in entries.items():
                if spec.get("untouched"):
                    continue
                total += full[(assignment, nb)]
                for name in spec.get("mistakes", []):
                    total -= sum(points[cell] - score for cell, score in known[name].expect.items())
            expected[(student["id"], assignment)] = total
    return expected


def course_with_examples(target):
    root = course.copy_course(ROOT, target)
    shutil.copytree(ROOT / "examples", root / "examples")
    return root


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    root = course_with_examples(tmp_path_factory.mktemp("main-job"))
    lines = []
    table = pipeline.grade_examples(root, say=lines.append)
    return root, table, "\n".join(lines)


def test_main_job_grades_every_example_student(main_job):
    root, table, out = main_job
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
    assert (root / "reports" / "exam" / "grading-report.md").exists()


def test_parallel_grading_gives_the_scores_of_a_sequential_run(main_job, tmp_path):
    parallel_root = main_job[0]
    root = course_with_examples(tmp_path / "sequential")
    course.nbgrader(root, "generate_assignment", "exam", "--force")
    pipeline.collect_examples(root)
    outcomes = autograde.autograde(root, "exam", workers=1, progress=False)
    assert {o.status for o in outcomes} == {"graded"}
    def by_cell(scores):
        return {student: {(r.notebook, r.grade_id): r.score for r in rows} for student, rows in scores.items()}

    assert by_cell(course.cell_scores(root, "exam")) == by_cell(course.cell_scores(parallel_root, "exam"))


def test_a_second_run_resumes_and_regrades_only_what_changed(main_job):
    root = main_job[0]
    again = autograde.autograde(root, "exam", students="example_*", workers=2, progress=False)
    assert {o.status for o in again} == {"skipped"}
    changed = root / "submitted" / "example_ben" / "exam" / "3_svhn_cnn.ipynb"
    nb = nbformat.read(changed, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("a late afterthought"))
    nbformat.write(nb, changed)
    again = autograde.autograde(root, "exam", students="example_*", workers=2, progress=False)
    assert {o.student for o in again if o.status == "graded"} == {"example_ben"}


def test_an_unreadable_upload_is_reported_and_the_rest_is_graded(main_job):
    root = main_job[0]
    folder = root / "submitted" / "example_zoe" / "exam"
    folder.mkdir(parents=True)
    (folder / "3_svhn_cnn.ipynb").write_text('{"cells": [')
    (folder / "4_true_false_quiz.ipynb").write_bytes(b"%PDF-1.4 not a notebook")
    outcomes = {o.student: o for o in autograde.autograde(root, "exam", workers=2, progress=False)}
    zoe = outcomes["example_zoe"]
    assert any("3_svhn_cnn.ipynb is not a readable notebook" in p for p in zoe.problems)
    assert (folder / "3_svhn_cnn.ipynb.unreadable").exists()
    assert all(o.status in ("graded", "skipped") for name, o in outcomes.items() if name != "example_zoe")
    report = (root / "reports" / "exam" / "grading-report.md").read_text()
    assert "example_zoe" in report and "not a readable notebook" in report
