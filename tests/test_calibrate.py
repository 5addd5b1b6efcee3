"""The calibration against human grades: reading a human's sheet, the agreement figures, and the rubric lines
that explain where the kit is harsher (the main-job tests run it on the example students' human grades)."""

from __future__ import annotations

import math

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from coursekit import calibrate
from coursekit.calibrate import Calibration, Pair
from coursekit.kernel.grading import RECORD_MIME


def test_read_human_accepts_comma_or_semicolon_sheets_and_leaves_out_empty_cells(tmp_path):
    sheet = tmp_path / "human.csv"
    sheet.write_text("student_id;last_name;1(c);1(d);total\nada;Lovelace;1,5;;4,5\nben;;3;2;5\n", encoding="utf-8")
    assert calibrate.read_human(sheet) == {"ada": {"1(c)": 1.5}, "ben": {"1(c)": 3.0, "1(d)": 2.0}}


def test_read_human_names_the_cell_that_is_no_number(tmp_path):
    sheet = tmp_path / "human.csv"
    sheet.write_text("student_id,1(c)\nada,three\n")
    with pytest.raises(ValueError, match=r"line 2, column 1\(c\): 'three'"):
        calibrate.read_human(sheet)
    sheet.write_text("name,1(c)\nada,3\n")
    with pytest.raises(ValueError, match="student_id is missing"):
        calibrate.read_human(sheet)


def pairs(*rows):
    return [Pair(student, task, kit, human, top) for student, task, kit, human, top in rows]


def test_agreement_figures():
    result = Calibration("exam", pairs(("a", "1(c)", 3, 3, 3), ("b", "1(c)", 1, 1.5, 3), ("a", "2(f)", 2, 4, 5),
                                       ("b", "2(f)", 5, 5, 5)))
    assert result.mean_abs(result.pairs) == pytest.approx((0 + 0.5 + 2 + 0) / 4)
    assert result.within(result.pairs) == 0.75
    assert result.bias(result.of_task("2(f)")) == -1.0
    # Lin's concordance: 1 for identical grades, lower for a constant offset even though the correlation is 1
    same = Calibration("exam", pairs(("a", "t", 1, 1, 4), ("b", "t", 2, 2, 4), ("c", "t", 4, 4, 4)))
    shifted = Calibration("exam", pairs(("a", "t", 0, 1, 4), ("b", "t", 1, 2, 4), ("c", "t", 3, 4, 4)))
    assert same.concordance() == pytest.approx(1.0)
    assert 0 < shifted.concordance() < 0.9
    text = result.summary()
    assert "1(c)" in text and "2(f)" in text and "a: kit 5, human 7 (-2)" in text


def graded_notebook(task: str, lines: list[dict]):
    cell = new_code_cell("# hidden tests", outputs=[new_output(
        "display_data", data={RECORD_MIME: {"task": task, "points": 5.0, "score": 3.0, "lines": lines}, "text/html": ""})])
    cell.metadata.nbgrader = {"grade": True, "grade_id": "t", "points": 5.0, "solution": False, "locked": True}
    return new_notebook(cells=[cell])


def test_the_lines_that_cost_most_where_the_kit_is_harsher(tmp_path):
    folder = tmp_path / "autograded" / "ada" / "exam"
    folder.mkdir(parents=True)
    lines = [dict(what="loss fits the outputs", points=0.5, earned=0.0, comment="x", note="", crashed=False),
             dict(what="the network learns", points=1.5, earned=0.0, comment="y", note="", crashed=False),
             dict(what="one accuracy per epoch", points=0.5, earned=0.5, comment="", note="", crashed=False)]
    nbformat.write(graded_notebook("2(f)", lines), folder / "2_elman_gender.ipynb")
    found = calibrate.harsh_lines(tmp_path, "exam", pairs(("ada", "2(f)", 3, 4, 5), ("ben", "2(f)", 5, 4, 5)))
    # the kit gave ada 1 point less: each lost line is counted with at most that difference
    assert found == [("2(f)", "the network learns", 1, 1.0), ("2(f)", "loss fits the outputs", 1, 0.5)]


def test_an_empty_comparison_says_why():
    result = Calibration("exam", [], skipped=["zoe: no graded submission in the gradebook"])
    assert "nothing to compare" in result.summary() and "zoe" in result.summary()
    assert math.isnan(result.concordance())
