"""Group work (``python -m coursekit groups``): a group's notebook is graded once and every member gets its scores,
comments and feedback; conflicts are reported and their groups left alone."""

from __future__ import annotations

import csv
import json
import shutil

import nbformat

from coursekit import course, groups
from coursekit.export import task_rows
from tests import tiny_course


def hand_in(root, student, assignment="lab1", notebook="sheet1"):
    """The student's notebook in submitted/ and, as autograding leaves it, in autograded/."""
    nb = tiny_course.notebook(tiny_course.SHEET)
    for folder in ("submitted", "autograded"):
        (root / folder / student / assignment).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, root / folder / student / assignment / f"{notebook}.ipynb")


def test_a_group_is_graded_once_and_every_member_gets_its_result(tmp_path):
    root = tiny_course.build(tmp_path / "course", grades={
        "ada": {"lab1": [25, 20, 3]},    # the group's submission, graded
        "dee": {"lab1": [10, 10, 0]},    # dee and eve each handed in: a conflict in their group
        "eve": {"lab1": [30, 30, 5]},
    })
    for student in ("ada", "dee", "eve"):
        hand_in(root, student)
    from nbgrader.api import Gradebook

    with Gradebook(course.Layout(root).gradebook_url) as gb:
        gb.find_comment("b_text", "sheet1", "lab1", "ada").manual_comment = "Good argument, but no example."
        gb.db.commit()
    (root / "groups.csv").write_text("group,members\ng1,ada ben cy\ng2,dee;eve;zed\n")

    report = groups.apply(root, "lab1", root / "groups.csv")

    with Gradebook(course.Layout(root).gradebook_url) as gb:
        tasks = {r["student_id"]: r for r in task_rows(root, "lab1", gb)[1]}
        comments = {s: gb.find_comment("b_text", "sheet1", "lab1", s).manual_comment for s in ("ada", "ben", "cy")}
    per_task = ["1(a)", "1(b)", "2(a)", "auto", "manual", "bonus", "total"]
    assert [tasks["ada"][c] for c in per_task] == ["25", "20", "3", "25", "23", "3", "48"]
    assert [tasks["ben"][c] for c in per_task] == [tasks["ada"][c] for c in per_task]
    assert [tasks["cy"][c] for c in per_task] == [tasks["ada"][c] for c in per_task]
    assert set(comments.values()) == {"Good argument, but no example."}
    assert not (root / "submitted" / "ben").exists()  # autograding still grades the group once
    # the conflicts: reported, that group untouched
    assert "g2: zed matches no student" in report and "g2: dee and eve each handed in" in report
    assert tasks["dee"]["total"] == "20" and tasks["eve"]["total"] == "65"
    with open(root / "grades" / "lab1-groups.csv", newline="") as f:
        assert {r["student_id"]: r["result"] for r in csv.DictReader(f)} == {
            "ada": "own submission", "ben": "copy of ada's", "cy": "copy of ada's"}

    # the feedback: nbgrader's generate_feedback gives ben and cy ada's page
    course.nbgrader(root, "generate_feedback", "lab1")
    pages = {s: (root / "feedback" / s / "lab1" / "sheet1.html").read_text() for s in ("ada", "ben", "cy")}
    assert "Good argument, but no example." in pages["ada"] and "48" in pages["ada"]
    assert pages["ben"] == pages["ada"] and pages["cy"] == pages["ada"]

    # a grader changes ada's score: run again and the members follow
    with Gradebook(course.Layout(root).gradebook_url) as gb:
        gb.find_grade("b_text", "sheet1", "lab1", "ada").manual_score = 15
        gb.db.commit()
    groups.apply(root, "lab1", root / "groups.csv")
    with Gradebook(course.Layout(root).gradebook_url) as gb:
        assert {r["student_id"]: r["1(b)"] for r in task_rows(root, "lab1", gb)[1]
                if r["student_id"] in ("ada", "ben", "cy")} == {"ada": "15", "ben": "15", "cy": "15"}


def test_groups_from_zip_names_and_a_student_in_two_groups(tmp_path):
    root = tiny_course.build(tmp_path / "course", grades={"ada": {"lab1": [25, 20, 3]}})
    hand_in(root, "ada")
    # import-lms's log of a Moodle download in which Ada uploaded the group's zip (unpacked into a folder of its name)
    log = root / "downloaded" / "lab1" / "intake.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("\n".join(json.dumps(d) for d in [
        {"file": "Ada Lovelace_1001_assignsubmission_file/ex08-lovelace-bit-young/sheet1.ipynb", "student": "ada",
         "decision": "imported", "notebook": "sheet1"},
        {"file": "Ada Lovelace_1001_assignsubmission_file/ex08-lovelace-hinton/notes.ipynb", "student": "ada",
         "decision": "imported", "notebook": "sheet1"},
    ]) + "\n")
    report = groups.apply(root, "lab1")
    assert "ex08-lovelace-hinton: the name 'hinton' matches no student" in report
    with open(root / "grades" / "lab1-groups.csv", newline="") as f:
        assert sorted(r["student_id"] for r in csv.DictReader(f)) == ["ada", "ben", "cy"]

    (root / "groups.csv").write_text("g1,ada ben\ng2,ben,cy\n")
    shutil.rmtree(root / "downloaded")
    report = groups.apply(root, "lab1", root / "groups.csv")
    assert "ben is in 2 groups: g1, g2" in report
    with open(root / "grades" / "lab1-groups.csv", newline="") as f:
        assert list(csv.DictReader(f)) == []
    # the copies of the first run, whose groups now conflict, are gone: only ada's own submission is left
    from nbgrader.api import Gradebook

    with Gradebook(course.Layout(root).gradebook_url) as gb:
        assert sorted(s.student.id for s in gb.assignment_submissions("lab1")) == ["ada"]
    assert not (root / "autograded" / "ben").exists() or not any((root / "autograded" / "ben").iterdir())
