"""The Rubric helper, and the nbgrader rules it exists for (nbgrader.utils.determine_grade)."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader.utils import determine_grade

from coursekit.grading import Rubric


def grade_cell(outputs, points=2.0):
    cell = new_code_cell("pass", outputs=outputs)
    cell.metadata.nbgrader = {"grade": True, "solution": False, "locked": True, "points": points,
                              "grade_id": "t", "schema_version": 3}
    return cell


def result(text):
    return new_output("execute_result", data={"text/plain": text}, execution_count=1)


# -- what nbgrader does with a grade cell's outputs --------------------------------------------
def test_nbgrader_reads_a_float_as_partial_credit():
    assert determine_grade(grade_cell([result("1.5")])) == (1.5, 2.0)


@pytest.mark.parametrize("text", ["np.float64(1.5)", "tensor(1.)", "True", "-1.0"])
def test_nbgrader_gives_full_points_for_values_that_are_no_plain_nonnegative_float(text):
    assert determine_grade(grade_cell([result(text)])) == (2.0, 2.0)


def test_nbgrader_aborts_on_a_value_above_the_points():
    with pytest.raises(ValueError):
        determine_grade(grade_cell([result("3.0")]))


def test_nbgrader_scores_zero_for_any_stderr_output():
    stderr = new_output("stream", name="stderr", text="UserWarning: something\n")
    assert determine_grade(grade_cell([stderr, result("2.0")])) == (0, 2.0)


# -- the Rubric itself ------------------------------------------------------------------------------
def test_rubric_gives_points_per_check_and_explains_each_deduction(capsys):
    rubric = Rubric("9(z)", points=3)
    with rubric.check(1, "adds"):
        assert 1 + 1 == 2
    with rubric.check(1, "divides", fail="division wrong"):
        raise AssertionError("expected 1, got 0.5")  # what a failing assert in a hidden test raises
    with rubric.check(1, "calls the function"):
        raise ValueError("boom")
    total = rubric.total()
    assert type(total) is float and total == 1.0
    out = capsys.readouterr().out
    assert "division wrong (expected 1, got 0.5)" in out
    assert "calls the function (your code raised ValueError: boom)" in out
    assert "9(z): 1 / 3 points" in out
    assert [d["what"] for d in rubric.deductions] == ["divides", "calls the function"]


def test_rubric_swallows_stderr_and_warnings_at_python_and_fd_level(capfd):
    import os
    import sys
    import warnings

    rubric = Rubric("9(z)", points=1)
    with rubric.check(1, "noisy but right"):
        warnings.warn("careful")
        print("python stderr", file=sys.stderr)
        os.write(2, b"C-level stderr\n")
    assert rubric.total() == 1.0
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "C-level stderr" in captured.out and "careful" in captured.out


def test_rubric_stops_an_endless_loop_and_goes_on():
    rubric = Rubric("9(z)", points=2)
    with rubric.check(1, "terminates", timeout=0.3):
        while True:
            pass
    with rubric.check(1, "next check still runs"):
        pass
    assert rubric.total() == 1.0
    assert "did not finish within 0.3 s" in rubric.deductions[0]["comment"]


def test_rubric_never_returns_more_than_its_points_nor_less_than_zero():
    rubric = Rubric("9(z)", points=1)
    rubric.award(5, 5, "too generous a check")
    assert rubric.total() == 1.0
    rubric = Rubric("9(z)", points=1)
    rubric.award(-3, 1, "negative marking")
    assert rubric.total() == 0.0


def test_attempt_reports_the_failure_to_every_check_that_needs_the_result():
    rubric = Rubric("9(z)", points=2)

    def broken():
        raise NotImplementedError()

    made = rubric.attempt(broken)
    for what in ("first", "second"):
        with rubric.check(1, what):
            made.get()
    assert rubric.total() == 0.0
    assert all("broken() failed: your code raised NotImplementedError" in d["comment"] for d in rubric.deductions)


def test_rubric_in_a_real_kernel_gives_nbgrader_the_partial_score():
    """End to end in an IPython kernel: C-level stderr and exceptions do not zero the cell."""
    code = (
        "import os, warnings\n"
        "from coursekit.grading import Rubric\n"
        "rubric = Rubric('9(z)', points=3)\n"
        "with rubric.check(1, 'loud but right'):\n"
        "    os.write(2, b'warning from C++\\n'); warnings.warn('deprecated')\n"
        "with rubric.check(1, 'raises'):\n"
        "    1 / 0\n"
        "with rubric.check(1, 'right'):\n"
        "    pass\n"
        "rubric.total()"
    )
    cell = grade_cell([], points=3.0)
    cell.source = code
    nb = new_notebook(cells=[cell])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
    kinds = [(o.output_type, o.get("name")) for o in nb.cells[0].outputs]
    assert ("stream", "stderr") not in kinds, nb.cells[0].outputs
    assert determine_grade(nb.cells[0]) == (2.0, 3.0)
