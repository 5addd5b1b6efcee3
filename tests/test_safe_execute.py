"""SafeExecute grades misbehaving notebooks as far as they got, and keeps the scores honest."""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_notebook
from nbgrader.utils import determine_grade

from coursekit.execute import SafeExecute

RUBRIC = ("from coursekit.kernel.grading import Rubric\n"
          "rubric = Rubric('9(z)', points=2)\n"
          "with rubric.check(2, 'the function is right'):\n"
          "    {check}\n"
          "rubric.total()")


def grade_cell(source, grade_id, points=2.0):
    cell = new_code_cell(source)
    cell.metadata.nbgrader = {"grade": True, "solution": False, "locked": True, "points": points,
                              "grade_id": grade_id, "schema_version": 3}
    return cell


def run(cells, tmp_path, **config):
    nb = new_notebook(cells=cells)
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    executor = SafeExecute(**{"timeout": 30, **config})
    nb, _ = executor.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    scores = {c.metadata.nbgrader.grade_id: determine_grade(c)[0]
              for c in nb.cells if c.get("metadata", {}).get("nbgrader")}
    return nb, scores


def note(nb):
    return nb.cells[0].source if nb.cells[0].metadata.get("coursekit_note") else ""


def test_a_kernel_crash_keeps_earlier_points_and_zeroes_later_tests(tmp_path):
    nb, scores = run([
        new_code_cell("def f(x):\n    return 2 * x"),
        grade_cell(RUBRIC.format(check="assert f(2) == 4"), "before"),
        new_code_cell("import os\nos._exit(1)"),
        grade_cell(RUBRIC.format(check="assert f(2) == 4"), "after"),
    ], tmp_path)
    assert scores == {"before": 2.0, "after": 0}
    assert "kernel died" in note(nb) and "Later cells were not run" in note(nb)
    after = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "after")
    assert after.outputs[0].ename == "NotRun"


def test_memory_limit_stops_the_kernel_with_a_clear_reason(tmp_path):
    nb, scores = run([
        new_code_cell("import numpy as np\nblocks = [np.ones(50_000_000) for _ in range(40)]"),  # 16 GB
        grade_cell(RUBRIC.format(check="pass"), "after"),
    ], tmp_path, memory_limit=1_000_000_000)
    assert scores == {"after": 0}
    assert "memory limit of 0.9 GB" in note(nb)


def test_a_kernel_that_ignores_interrupts_is_stopped(tmp_path):
    stubborn = ("import time\nwhile True:\n    try:\n        time.sleep(0.2)\n"
                "    except KeyboardInterrupt:\n        pass")
    nb, scores = run([new_code_cell(stubborn), grade_cell(RUBRIC.format(check="pass"), "after")],
                     tmp_path, timeout=3)
    assert scores == {"after": 0}
    assert "did not respond" in note(nb)


def test_time_budget_of_the_whole_notebook(tmp_path):
    nb, scores = run([new_code_cell("import time\ntime.sleep(2)"), grade_cell(RUBRIC.format(check="pass"), "t")],
                     tmp_path, budget=1)
    assert scores == {"t": 0} and "time budget of 1 s" in note(nb)


def test_huge_outputs_are_capped(tmp_path):
    nb, _ = run([new_code_cell("for i in range(200_000):\n    print('spam', i)")], tmp_path, max_stream_chars=5000)
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert len(text) < 6000 and "printed text cut at 5,000 characters" in text


def test_forged_display_of_floats_is_undone_and_reported(tmp_path):
    forge = ("ip = get_ipython()\n"
             "ip.display_formatter.formatters['text/plain'].for_type(float, lambda x, p, c: p.text('2.0'))")
    nb, scores = run([new_code_cell(forge), grade_cell(RUBRIC.format(check="assert 1 == 2"), "t")], tmp_path)
    assert scores == {"t": 0.0}
    assert any("text/plain display" in t["what"] for t in nb.metadata.coursekit["tampering"])


def test_monkeypatched_torch_and_grading_helper_are_restored(tmp_path):
    patch = ("import torch, coursekit.kernel.grading, sys\n"
             "torch.allclose = lambda *a, **k: True\n"
             "coursekit.kernel.grading.Rubric.total = lambda self: 2.0\n"
             "sys.stderr = sys.stdout")
    check = "assert torch.allclose(torch.zeros(2), torch.ones(2))"
    nb, scores = run([new_code_cell(patch), grade_cell("import torch\n" + RUBRIC.format(check=check), "t")],
                     tmp_path)
    assert scores == {"t": 0.0}
    restored = {t["what"] for t in nb.metadata.coursekit["tampering"]}
    assert {"torch.allclose", "coursekit.kernel.grading.Rubric.total", "sys.stderr"} <= restored


def test_hidden_tracebacks_still_count_as_errors(tmp_path):
    hide = "get_ipython().showtraceback = lambda *a, **k: None"
    nb, scores = run([new_code_cell(hide), grade_cell("assert False, 'wrong'", "t")], tmp_path)
    assert scores == {"t": 0}


def test_an_honest_notebook_is_not_flagged(tmp_path):
    nb, scores = run([
        new_code_cell("import matplotlib.pyplot as plt, numpy as np, torch, tempfile\n"
                      "plt.plot([1, 2]); plt.show()\nimport warnings; warnings.simplefilter('ignore')"),
        grade_cell(RUBRIC.format(check="assert torch.allclose(torch.ones(2), torch.ones(2))"), "t"),
        grade_cell(RUBRIC.format(check="assert np.isclose(1.0, 1.0)"), "u"),
    ], tmp_path)
    assert scores == {"t": 2.0, "u": 2.0}
    assert not nb.metadata.get("coursekit", {}).get("tampering"), nb.metadata.coursekit
    assert not nb.cells[0].metadata.get("coursekit_note")
