"""OpenOlat: the bulk-assessment file that ``nbgrader export`` writes, and ``import-lms --preset olat`` on a download
in the layout of OpenOlat's "Task" element.

The formats (README, "Instructor workflow", steps 3 and 8): the bulk assessment takes one line per user, "user name,
score, passed, comment", comma-separated (passed: y/n, a blank field keeps its place), and for a "Task" element a zip
with a folder per user of return files (OpenOlat manual, "How and where can I do a bulk assessment?").  The download
of a Task element's submissions holds a folder ``<course>_<task>_<node id>/``, in it the assessment table (.xlsx) and a
folder ``<Lastname>_<Firstname>_<username>/`` per participant, in that one folder per workflow step: ``1_task``,
``2_submissions``, ``3_corrections`` (as the public scripts that process real downloads expect,
ssiccha/olat-homework-scripts).
"""

from __future__ import annotations

import csv
import io
import zipfile

import nbformat
import pytest

from coursekit import course, submissions
from coursekit.intake import import_lms
from tests import tiny_course

ROOT = course.ROOT


def test_export_writes_olat_bulk_assessment_data_and_return_files(tmp_path):
    root = tiny_course.build(tmp_path / "course")
    (root / "feedback" / "ada" / "exam").mkdir(parents=True)
    (root / "feedback" / "ada" / "exam" / "paper.html").write_text("<html>ada's feedback</html>")
    course.nbgrader(root, "export")

    with open(root / "grades" / "exam-olat.csv", newline="", encoding="utf-8") as f:
        exam = list(csv.reader(f))
    # no header line: every line is a user; eve submitted no exam and is left out (OpenOlat keeps what it has)
    assert [line[0] for line in exam] == ["ada", "ben", "cy", "dee"]
    assert all(len(line) == 4 and line[2] in ("y", "n") for line in exam)
    ada = exam[0]
    # the exam alone is a part of the course rules, passed with 25 points bonus included: ada's 20 points and the
    # 8 transferred from the practicals (85 + 3 - 80) pass it
    assert ada[:3] == ["ada", "20", "y"]
    assert ada[3] == "20 of 50 points; 28 points (with bonus), 25 needed; 8 transferred in (in bonus)"
    assert exam[1][:3] == ["ben", "30", "y"]

    with open(root / "grades" / "lab1-olat.csv", newline="", encoding="utf-8") as f:
        lab1 = {line[0]: line for line in csv.reader(f)}
    # lab1 is part of the practicals with lab2: no pass mark of its own, "passed" stays blank; dee's text answer is
    # not graded yet: no line for dee
    assert lab1["ada"] == ["ada", "51", "", "51 of 60 points, 1 of them bonus"]
    assert sorted(lab1) == ["ada", "ben", "cy", "eve"]

    with zipfile.ZipFile(root / "grades" / "exam-olat-returns.zip") as z:
        assert z.namelist() == ["ada/paper.html"]
        assert z.read("ada/paper.html") == b"<html>ada's feedback</html>"
    assert not (root / "grades" / "lab1-olat-returns.zip").exists()


def notebook_bytes(nb) -> bytes:
    return nbformat.writes(nb).encode()


def add(z: zipfile.ZipFile, name: str, data: bytes, when=(2026, 11, 20, 10, 0, 0)):
    z.writestr(zipfile.ZipInfo(name, date_time=when), data)


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    root = course.copy_course(ROOT, tmp_path_factory.mktemp("olat"))
    course.nbgrader(root, "generate_assignment", "exam", "--force")
    return root


def test_import_of_an_olat_task_download(course_copy, tmp_path):
    quiz = submissions.build(ROOT, "exam", "4_true_false_quiz")
    gradcam = submissions.build(ROOT, "exam", "1_gradcam")
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as inner:
        add(inner, "exam/exam.ipynb", notebook_bytes(gradcam))
    top = "dl_Exam_upload_110863245"
    download = tmp_path / "Exam_upload.zip"
    with zipfile.ZipFile(download, "w") as z:
        add(z, f"{top}/TUK_Exam_upload.xlsx", b"PK\x03\x04 assessment table")
        add(z, f"{top}/Lovelace_Ada_alovelace/1_task/exam-instructions.pdf", b"%PDF-1.4")
        add(z, f"{top}/Lovelace_Ada_alovelace/2_submissions/4_true_false_quiz.ipynb", notebook_bytes(quiz))
        add(z, f"{top}/Lovelace_Ada_alovelace/3_corrections/4_true_false_quiz.ipynb", notebook_bytes(quiz),
            when=(2026, 11, 25, 10, 0, 0))  # a tutor's corrected copy, newer: never the submission
        add(z, f"{top}/Bit_Ben_bbit/2_submissions/Copy of 4_true_false_quiz.ipynb",
            notebook_bytes(submissions.as_saved_by_colab(quiz)))
        add(z, f"{top}/Young_Cy_cyoung/2_submissions/solutions.zip", nested.getvalue())
    report = import_lms(course_copy, "exam", download, "olat")

    submitted = course_copy / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["alovelace", "bbit", "cyoung"]
    assert (submitted / "alovelace" / "exam" / "4_true_false_quiz.ipynb").read_bytes() == notebook_bytes(quiz)
    assert (submitted / "bbit" / "exam" / "4_true_false_quiz.ipynb").exists()
    assert (submitted / "cyoung" / "exam" / "1_gradcam.ipynb").exists()  # from the nested zip, named exam.ipynb
    assert "3_corrections/4_true_false_quiz.ipynb`: in OpenOlat's 3_corrections folder, not a submission" in report
    assert "1_task/exam-instructions.pdf`: in OpenOlat's 1_task folder" in report
    assert "TUK_Exam_upload.xlsx`: not a notebook" in report
    from nbgrader.api import Gradebook

    with Gradebook(course.Layout(course_copy).gradebook_url) as gb:  # names from the folders, for the exports
        ada = gb.find_student("alovelace")
        assert (ada.first_name, ada.last_name) == ("Ada", "Lovelace")
