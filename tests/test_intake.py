"""Importing a learning platform's bulk download: presets, content matching, nested zips, id mapping."""

from __future__ import annotations

import io
import json
import zipfile

import nbformat
import pytest

from coursekit import course, submissions
from coursekit.intake import ReleaseIndex, import_lms, name_guess

ROOT = course.ROOT


def notebook_bytes(nb) -> bytes:
    return nbformat.writes(nb).encode()


def add(z: zipfile.ZipFile, name: str, data: bytes, when=(2026, 11, 20, 10, 0, 0)):
    info = zipfile.ZipInfo(name, date_time=when)
    z.writestr(info, data)


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    root = course.copy_course(ROOT, tmp_path_factory.mktemp("intake"))
    course.nbgrader(root, "generate_assignment", "exam", "--force")
    return root


@pytest.fixture(scope="module")
def solution():
    return submissions.build(ROOT, "exam", "3_svhn_cnn")


def test_content_matching_finds_renamed_and_colab_saved_copies(solution):
    index = ReleaseIndex(ROOT / "release" / "exam")
    assert index.match(solution)[0] == "3_svhn_cnn"
    assert index.match(submissions.as_saved_by_colab(solution))[0] == "3_svhn_cnn"
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('another course')")])
    notebook, reason = index.match(other)
    assert notebook is None and "matches no released notebook" in reason
    assert name_guess("Copy of 3_svhn_cnn (2).ipynb", index.notebooks) == "3_svhn_cnn"


def test_moodle_download_lands_in_nbgraders_layout_with_a_report(course_copy, solution, tmp_path):
    colab = notebook_bytes(submissions.as_saved_by_colab(solution))
    old = notebook_bytes(submissions.build(ROOT, "exam", "3_svhn_cnn", model_text=False))
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as inner:
        add(inner, "exam.ipynb", notebook_bytes(solution))
    download = tmp_path / "moodle.zip"
    with zipfile.ZipFile(download, "w") as z:
        add(z, "Ada Lovelace_1001_assignsubmission_file/Copy of 3_svhn_cnn.ipynb", colab)
        add(z, "Ben Bit_1002_assignsubmission_file/3_svhn_cnn.ipynb", old, when=(2026, 11, 19, 9, 0, 0))
        add(z, "Ben Bit_1002_assignsubmission_file/3_svhn_cnn (2).ipynb", colab, when=(2026, 11, 20, 9, 0, 0))
        add(z, "Cy Young_1003_assignsubmission_file/my_work.zip", nested.getvalue())
        add(z, "Dee Dee_1004_assignsubmission_file/answers.pdf", b"%PDF-1.4")
        add(z, "Dee Dee_1004_assignsubmission_file/3_svhn_cnn.ipynb", b'{"cells": [')
        add(z, "Eve Else_1005_assignsubmission_file/other.ipynb",
            notebook_bytes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])))
    ids = tmp_path / "ids.csv"
    ids.write_text("lms_id,student_id\n1001,ada\n1002,ben\n1003,cy\n1004,dee\n1005,eve\n")

    report = import_lms(course_copy, "exam", download, "moodle", ids)

    submitted = course_copy / "submitted"
    assert (submitted / "ada" / "exam" / "3_svhn_cnn.ipynb").read_bytes() == colab
    assert (submitted / "ben" / "exam" / "3_svhn_cnn.ipynb").read_bytes() == colab  # the newer upload
    assert (submitted / "cy" / "exam" / "3_svhn_cnn.ipynb").exists()  # from the nested zip, named exam.ipynb
    assert (submitted / "dee" / "exam" / "3_svhn_cnn.ipynb").exists()  # unreadable: by name, grading reports it
    assert not (submitted / "eve").exists()
    assert "an older upload of 3_svhn_cnn: the newest one counts" in report
    assert "answers.pdf`: not a notebook" in report
    assert "unreadable notebook" in report
    assert "other.ipynb`: its content matches no released notebook" in report
    assert (course_copy / "downloaded" / "exam" / "moodle.zip").exists()  # the original is kept
    assert (course_copy / "reports" / "exam" / "intake-report.md").read_text() == report


def test_canvas_names_without_an_id_file(course_copy, solution, tmp_path):
    download = tmp_path / "canvas.zip"
    with zipfile.ZipFile(download, "w") as z:
        add(z, "lovelaceada_late_2001_9001_3_svhn_cnn-1.ipynb", notebook_bytes(solution))
    report = import_lms(course_copy, "exam", download, "canvas")
    assert (course_copy / "submitted" / "2001" / "exam" / "3_svhn_cnn.ipynb").exists()
    log = [json.loads(line) for line in (course_copy / "downloaded" / "exam" / "intake.jsonl").read_text().splitlines()]
    assert [d["decision"] for d in log] == ["imported"] and "Imported: 1" in report
