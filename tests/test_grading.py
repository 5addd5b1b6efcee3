"""The Rubric helper, and the nbgrader rules it exists for (nbgrader.utils.determine_grade)."""

from __future__ import annotations

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader.utils import determine_grade

from coursekit.kernel.grading import RECORD_MIME, Rubric, rubric_record


def student_code(source: str) -> dict:
    """Functions defined as in a notebook cell (code that is not a file on disk, like a kernel's cells)."""
    namespace = {}
    exec(compile(source, "<student cell>", "exec"), namespace)
    return namespace


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
        student_code("def f():\n    raise ValueError('boom')\n")["f"]()
    total = rubric.total()
    assert type(total) is float and total == 1.0
    out = capsys.readouterr().out
    assert "division wrong (expected 1, got 0.5)" in out
    assert "not checked: your `f` raised ValueError: boom (this line checks: calls the function)" in out
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


def test_an_awarded_amount_explains_itself_in_the_record():
    rubric = Rubric("4(a)", points=5)
    rubric.award(2.5, 5, "3 right, 1 wrong, 1 unanswered: 3 - 0.5 x 1 = 2.5", "read 'T' as True")
    line = rubric.record()["lines"][0]
    assert line["comment"] == "3 right, 1 wrong, 1 unanswered: 3 - 0.5 x 1 = 2.5: read 'T' as True"


def test_rubric_never_returns_more_than_its_points_nor_less_than_zero():
    rubric = Rubric("9(z)", points=1)
    rubric.award(5, 5, "too generous a check")
    assert rubric.total() == 1.0
    rubric = Rubric("9(z)", points=1)
    rubric.award(-3, 1, "negative marking")
    assert rubric.total() == 0.0


def test_attempt_reports_the_failure_to_every_check_that_needs_the_result():
    rubric = Rubric("9(z)", points=2)
    broken = student_code("def broken():\n    return 1 / 0\n")["broken"]
    made = rubric.attempt(broken)
    for what in ("first", "second"):
        with rubric.check(1, what):
            made.get()
    assert rubric.total() == 0.0
    assert all(d["comment"].startswith("not checked: your `broken` raised ZeroDivisionError") and d["crashed"]
               for d in rubric.deductions)


def test_a_stub_is_not_done_rather_than_crashed():
    rubric = Rubric("9(z)", points=1)
    stub = student_code("def f():\n    raise NotImplementedError()\n")["f"]
    with rubric.check(1, "f works"):
        rubric.attempt(stub).get()
    assert rubric.deductions[0]["comment"].startswith("not done: your `f` is not implemented yet")
    assert not rubric.deductions[0]["crashed"]  # the untouched release is not flagged for manual review


def test_an_undefined_name_is_retried_and_charged_only_where_it_is_checked():
    rubric = Rubric("9(z)", points=2)
    train = student_code("def train(n):\n    return [n] * K\n")["train"]
    made = rubric.attempt(train, 3, undefined=2)
    with rubric.check(1, "K is defined", fail="no K"):
        assert not made.undefined, f"{made.undefined} not defined"
    with rubric.check(1, "the rest"):
        assert made.get() == [3, 3]
    assert rubric.total() == 1.0
    assert "K = 2 (your `train` uses K, which is not defined)" in rubric.items[1]["note"]
    assert "K" not in rubric.namespace  # the stand-in is gone after the attempt


def test_stand_ins_fallbacks_and_alternatives():
    namespace = student_code("def encode(s):\n    return len(s) * SCALE\n\n"
                             "def dataset(names):\n    return [encode(n) for n in names]\n\n"
                             "def grad(model):\n    return model.resnet\n")
    rubric = Rubric("9(z)", points=3, namespace=namespace)
    own = namespace["encode"]
    # stand-ins are always in place, and only for the call
    assert rubric.attempt(namespace["dataset"], ["ab"], stand_ins={"encode": lambda s: 7}).get() == [7]
    assert namespace["encode"] is own
    # fallbacks: only after the student's own encode raised (SCALE is not defined)
    made = rubric.attempt(namespace["dataset"], ["ab"], fallbacks={"encode": lambda s: 5})
    assert made.get() == [5] and "reference `encode` in place of yours" in made.notes[0]
    # alternatives: the student's own interface when the prescribed one raises
    made = rubric.attempt(namespace["grad"], object(), alternatives=[("your own model", lambda: "own")])
    assert made.get() == "own" and made.via == "your own model"
    assert "with the prescribed interface your `grad` raised AttributeError" in made.notes[0]


def test_keep_locals_reads_past_a_missing_return():
    rubric = Rubric("9(z)", points=1)
    encode = student_code("def encode(name):\n    x = [1] * len(name)\n")["encode"]
    made = rubric.attempt(encode, "anna", keep_locals=True)
    assert made.get() is None and made.locals["x"] == [1, 1, 1, 1]


def test_the_record_is_what_readers_trust():
    rubric = Rubric("9(z)", points=2)
    with rubric.check(1, "right"):
        pass
    with rubric.check(1, "wrong", fail="wrong answer"):
        raise AssertionError("got 3")
    record = rubric.record()
    assert record["task"] == "9(z)" and record["score"] == 1.0
    assert [(line["earned"], line["comment"]) for line in record["lines"]] == [(1.0, ""), (0.0, "wrong answer (got 3)")]
    fake = {RECORD_MIME: {"task": "9(z)", "score": 2.0, "lines": []}}
    cell = new_code_cell("", outputs=[new_output("display_data", data=fake),
                                      new_output("stream", name="stdout", text="  \u2718 0/1  fake deduction\n"),
                                      new_output("display_data", data={RECORD_MIME: record, "text/html": ""})])
    assert rubric_record(cell) == record  # the last record: the one total() published after every student call


def test_rubric_in_a_real_kernel_gives_nbgrader_the_partial_score():
    """End to end in an IPython kernel: C-level stderr and exceptions do not zero the cell."""
    code = (
        "import os, warnings\n"
        "from coursekit.kernel.grading import Rubric\n"
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
    record = rubric_record(nb.cells[0])  # published by total() as data, next to the printed lines
    assert record["score"] == 2.0 and [line["earned"] for line in record["lines"]] == [1.0, 0.0, 1.0]
