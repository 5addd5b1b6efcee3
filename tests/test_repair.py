"""Cell metadata lost or duplicated by editors is restored by matching cells to the release."""

from __future__ import annotations

import copy

import nbformat
import pytest

from coursekit import submissions
from coursekit.course import ROOT
from coursekit.repair import repair

NOTEBOOK = ("exam", "3_svhn_cnn")


@pytest.fixture
def release():
    return nbformat.read(ROOT / "release" / NOTEBOOK[0] / f"{NOTEBOOK[1]}.ipynb", as_version=4)


@pytest.fixture
def solution():
    return submissions.build(ROOT, *NOTEBOOK)


def graded(nb):
    return {c.metadata["nbgrader"]["grade_id"]: (c.source, c.metadata["nbgrader"])
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")}


def index_of(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def test_colab_saved_notebook_gets_all_its_grading_information_back(release, solution):
    colab = submissions.as_saved_by_colab(solution)
    assert not graded(colab)
    repairs = repair(release, colab)
    assert graded(colab) == graded(solution)
    assert len(colab.cells) == len(solution.cells)
    assert len(repairs) == 1 and "was missing or changed" in repairs[0]


def test_a_pasted_copy_of_an_answer_keeps_the_students_answer_graded(release, solution):
    nb = copy.deepcopy(solution)
    at = index_of(nb, "svhn_b_answer")
    stub = copy.deepcopy(release.cells[index_of(release, "svhn_b_answer")])
    nb.cells[at].source, answer = stub.source, nb.cells[at].source  # answer written into the pasted copy
    pasted = copy.deepcopy(nb.cells[at])
    pasted.source = answer
    nb.cells.insert(at + 1, pasted)
    repairs = repair(release, nb)
    assert graded(nb)["svhn_b_answer"][0] == answer
    assert [c.source for c in nb.cells].count(stub.source) == 1  # the stub copy is still there, ungraded
    assert any("copy of cell `svhn_b_answer`" in r for r in repairs)


def test_a_split_answer_cell_runs_whole_and_is_graded_once(release, solution):
    nb = copy.deepcopy(solution)
    at = index_of(nb, "svhn_e_training")
    first, second = copy.deepcopy(nb.cells[at]), copy.deepcopy(nb.cells[at])
    lines = nb.cells[at].source.split("\n")
    first.source, second.source = "\n".join(lines[:10]), "\n".join(lines[10:])
    nb.cells[at:at + 1] = [first, second]
    repair(release, nb)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids.count("svhn_e_training") == 1
    assert nb.cells[at].source + "\n" + nb.cells[at + 1].source == "\n".join(lines)


def test_a_deleted_test_cell_is_put_back_in_its_place(release, solution):
    nb = copy.deepcopy(solution)
    del nb.cells[index_of(nb, "svhn_d_tests")]
    repairs = repair(release, nb)
    at = index_of(nb, "svhn_d_tests")
    assert nb.cells[at - 1].metadata["nbgrader"]["grade_id"] == "svhn_d_visible_tests"
    assert nb.cells[at + 1].metadata["nbgrader"]["grade_id"] == "svhn_e_question"
    assert any("given cell `svhn_d_tests` was missing" in r for r in repairs)


def test_a_wrong_grade_id_is_corrected(release, solution):
    nb = copy.deepcopy(solution)
    nb.cells[index_of(nb, "svhn_c_tests")].metadata["nbgrader"]["grade_id"] = "cell-12345"
    repairs = repair(release, nb)
    assert graded(nb) == graded(solution)
    assert any("said it was `cell-12345`" in r for r in repairs)


def test_nothing_to_repair_in_a_notebook_saved_by_jupyter(release, solution):
    nb = copy.deepcopy(solution)
    assert repair(release, nb) == [] and nb == solution
