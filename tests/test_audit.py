"""The mutation audit of the hidden tests: which mutants are made, and that a hidden test that checks nothing lets
the mutants of its task survive (graded with the real pipeline, a few mutants only)."""

from __future__ import annotations

import nbformat
from markupsafe import escape
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from coursekit import audit, course

ROOT = course.ROOT

ANSWER = '''def scale(x):
    """Twice x, plus one."""
    ### BEGIN SOLUTION
    print(f"scaling {x}")
    y = 2 * x + 1
    return y
    ### END SOLUTION


GIVEN = 3 * 4  # code the release gives: never mutated
'''


def answer_notebook():
    cell = new_code_cell(ANSWER)
    cell.metadata.nbgrader = {"solution": True, "grade": False, "locked": False, "grade_id": "scale_answer"}
    return new_notebook(cells=[new_markdown_cell("### 1(a) Scaling (1 point)"), cell])


def test_mutants_change_only_the_solution_and_leave_prints_and_docstrings_alone():
    made = audit.mutants(answer_notebook(), "toy")
    changes = {(m.operator, m.after.strip()) for m in made}
    assert ("delete statement", "pass") in changes
    assert ("swap operator", "y = 2 * x - 1") in changes and ("swap operator", "y = 2 / x + 1") in changes
    assert ("change constant", "y = 3 * x + 1") in changes and ("change constant", "y = 2 * x + 2") in changes
    assert all(m.task == "1(a)" and m.cell == "scale_answer" for m in made)
    assert not any("scaling" in m.before or "GIVEN" in m.before or "Twice" in m.before for m in made)
    assert all("BEGIN SOLUTION" not in m.answer for m in made)
    assert len({m.answer for m in made}) == len(made)  # every mutant differs from the others


def test_sampling_is_reproducible_and_spread_over_the_operators():
    made = audit.mutants(nbformat.read(ROOT / "source" / "lab" / "1_autodiff.ipynb", as_version=4), "1_autodiff")
    first, again = audit.sample(made, 12, seed=1), audit.sample(made, 12, seed=1)
    assert [m.id for m in first] == [m.id for m in again] and len(first) == 12
    assert len({m.operator for m in first}) >= 4 and len({m.cell for m in first}) >= 3
    assert [m.id for m in audit.sample(made, 12, seed=2)] != [m.id for m in first]


def test_a_hidden_test_that_checks_nothing_lets_its_mutants_survive(tmp_path):
    root = course.copy_course(ROOT, tmp_path / "course")
    path = root / "source" / "lab" / "1_autodiff.ipynb"
    nb = nbformat.read(path, as_version=4)
    weak = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "autodiff_b_tests")
    weak.source = ('# Hidden tests for 1(b): none really.\n### BEGIN HIDDEN TESTS\nfrom coursekit.kernel.grading import Rubric\n'
                   'rubric = Rubric("1(b)", points=1)\nrubric.award(1, 1, "anything")\nrubric.total()\n'
                   '### END HIDDEN TESTS')
    nbformat.write(nb, path)
    made = audit.mutants(nb, "1_autodiff")
    chosen = [m for m in made if m.task == "1(b)" and m.operator == "swap operator"][:1] + \
             [m for m in made if m.task == "1(a)" and m.operator == "delete statement"][:1]
    assert [m.task for m in chosen] == ["1(b)", "1(a)"]
    result = audit.audit(root, "lab", ["1_autodiff"], limit=None, workdir=tmp_path / "work", progress=False,
                         chosen=chosen)
    assert not result.baseline, result.baseline
    by_task = {o.mutant.task: o for o in result.outcomes}
    assert not by_task["1(b)"].caught  # the forward trace changed, and the empty test did not notice
    assert by_task["1(a)"].caught and by_task["1(a)"].own > 0
    page = audit.write_report(root, result).read_text()
    assert "1 (50 %)" in page and str(escape(by_task["1(b)"].mutant.after.strip())) in page  # the survivor is listed
