"""Importing a learning platform's bulk download: presets, content matching, nested zips, id mapping."""

from __future__ import annotations

import io
import json
import os
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
    from nbgrader.api import Gradebook

    with Gradebook(course.Layout(course_copy).gradebook_url) as gb:  # the names reach the exports' Student columns
        ada = gb.find_student("ada")
        assert (ada.first_name, ada.last_name) == ("Ada", "Lovelace")


def test_canvas_names_without_an_id_file(course_copy, solution, tmp_path):
    download = tmp_path / "canvas.zip"
    with zipfile.ZipFile(download, "w") as z:
        add(z, "lovelaceada_late_2001_9001_3_svhn_cnn-1.ipynb", notebook_bytes(solution))
    report = import_lms(course_copy, "exam", download, "canvas")
    assert (course_copy / "submitted" / "2001" / "exam" / "3_svhn_cnn.ipynb").exists()
    log = [json.loads(line) for line in (course_copy / "downloaded" / "exam" / "intake.jsonl").read_text().splitlines()]
    assert [d["decision"] for d in log] == ["imported"] and "Imported: 1" in report


def test_extract_keeps_every_entry_inside_the_target(tmp_path):
    """Zip slip: an entry that climbs out by a name the target's name starts with, an absolute path and a symbolic
    link are left out; the rest is unpacked."""
    from coursekit.intake import extract

    target = tmp_path / "extracted"
    target.mkdir()
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        add(z, "ok/3_svhn_cnn.ipynb", b"{}")
        add(z, "../extracted2/escaped.txt", b"x")
        add(z, "/tmp/absolute-escape.txt", b"x")
        link = zipfile.ZipInfo("link-to-root", date_time=(2026, 11, 20, 10, 0, 0))
        link.external_attr = (0o120777 << 16)  # a symbolic link entry, pointing at /
        z.writestr(link, "/")
    extract(archive, target)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "evil.zip", "extracted/ok/3_svhn_cnn.ipynb"]
    assert not (tmp_path / "extracted2").exists() and not (tmp_path / "link-to-root").exists()


def test_renamed_notebooks_in_submitted_get_their_released_names(tmp_path):
    """Whatever lands in submitted/ (zip_collect, a copy by hand) is recognised by its content: renamed when the match
    is clear, reported otherwise, never skipped without a word."""
    from coursekit.autograde import recognise_renamed

    root = course.copy_course(ROOT, tmp_path / "course")
    course.nbgrader(root, "generate_assignment", "exam", "--force")
    folder = root / "submitted" / "zoe" / "exam"
    folder.mkdir(parents=True)
    quiz = submissions.build(root, "exam", "4_true_false_quiz")
    nbformat.write(submissions.as_saved_by_colab(quiz), folder / "Copy of 4_true_false_quiz.ipynb")
    nbformat.write(submissions.build(root, "exam", "3_svhn_cnn"), folder / "3_svhn_cnn (1).ipynb")
    nbformat.write(submissions.build(root, "exam", "1_gradcam"), folder / "exam.ipynb")
    nbformat.write(quiz, folder / "4_true_false_quiz-2.ipynb")  # a second, older copy of the quiz
    os.utime(folder / "4_true_false_quiz-2.ipynb", (1e9, 1e9))
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), folder / "notes.ipynb")
    said = recognise_renamed(root, "exam", "zoe")
    assert sorted(p.name for p in folder.iterdir()) == sorted([
        "1_gradcam.ipynb", "3_svhn_cnn.ipynb", "4_true_false_quiz.ipynb", "4_true_false_quiz-2.ipynb", "notes.ipynb"])
    assert any(s.startswith("3_svhn_cnn (1).ipynb was graded as 3_svhn_cnn.ipynb: its content matches 3_svhn_cnn")
               for s in said)
    assert any("4_true_false_quiz-2.ipynb was not graded: it is a second copy of 4_true_false_quiz" in s for s in said)
    assert any(s.startswith("Copy of 4_true_false_quiz.ipynb was graded as 4_true_false_quiz.ipynb") for s in said)
    assert any(s.startswith("exam.ipynb was graded as 1_gradcam.ipynb") for s in said)
    assert any(s.startswith("notes.ipynb was not graded: its content matches no released notebook") for s in said)
    assert recognise_renamed(root, "exam", "zoe") == [s for s in said if "was not graded" in s]  # renames happen once


def test_names_from_the_platforms_paths():
    from coursekit.intake import split_name

    assert split_name("Ada King Lovelace", "moodle") == ("Ada King", "Lovelace")
    assert split_name("Lovelace_Ada", "olat") == ("Ada", "Lovelace")
    assert split_name("lovelaceada", "canvas") == ("", "lovelaceada")
