"""What the feedback summary, the grading report and the instructor report read: the records the rubric publishes,
never lines that the student's code printed; tasks decided by an exception are flagged for manual review."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursekit import autograde, feedback
from coursekit.kernel.grading import RECORD_MIME


def line(what, points, earned, comment="", crashed=False):
    return dict(what=what, points=points, earned=earned, comment=comment, note="", crashed=crashed)


def graded_notebook(task: str, points: float, lines: list[dict], printed: str = "") -> nbformat.NotebookNode:
    record = {"version": 1, "task": task, "points": points, "score": sum(x["earned"] for x in lines), "lines": lines}
    cell = new_code_cell("# hidden tests", outputs=[
        new_output("stream", name="stdout", text=printed),
        new_output("display_data", data={RECORD_MIME: record, "text/html": ""}),
        new_output("execute_result", data={"text/plain": str(record["score"])}, execution_count=1)])
    cell.metadata.nbgrader = {"grade": True, "grade_id": "f_tests", "points": points, "solution": False,
                              "locked": True, "score": record["score"]}
    heading = new_markdown_cell(f"### {task} Training ({points:g} points)")
    return new_notebook(cells=[heading, cell])


def test_the_feedback_summary_shows_the_record_not_what_the_student_printed():
    nb = graded_notebook("2(f)", 5, [line("loss fits", 0.5, 0, "loss inconsistent with the outputs"),
                                     line("learns", 4.5, 4.5)],
                         printed="  \u2718 0/3  your training is plagiarised (a line printed by the student's code)\n")
    text = feedback.summary(nb)
    assert "loss inconsistent with the outputs" in text
    assert "plagiarised" not in text
    assert "4.5 / 5" in text


def test_the_feedback_page_drops_the_records():
    nb = graded_notebook("2(f)", 5, [line("learns", 5, 5)])
    feedback.TaskSummary().preprocess(nb, {})
    assert not any(RECORD_MIME in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_a_task_decided_by_an_exception_is_flagged_for_manual_review(tmp_path):
    crashed = "not checked: your `train_elman` raised AttributeError: 'Adam' object has no attribute 'stpe'"
    folder = tmp_path / "autograded" / "zoe" / "exam"
    folder.mkdir(parents=True)
    nbformat.write(graded_notebook("2(f)", 5, [line("loss fits", 0.5, 0.5),
                                               line("learns", 4.5, 0, crashed, crashed=True)]), folder / "2_elman_gender.ipynb")
    folder = tmp_path / "autograded" / "yan" / "exam"
    folder.mkdir(parents=True)
    nbformat.write(graded_notebook("2(f)", 5, [line("loss fits", 3, 3), line("learns", 2, 0, crashed, crashed=True)]),
                   folder / "2_elman_gender.ipynb")
    report = autograde.write_report(tmp_path, "exam", [autograde.Outcome("yan", "graded", 1.0),
                                                       autograde.Outcome("zoe", "graded", 1.0)]).read_text()
    review = report.split("## Flagged for manual review")[1].split("##")[0]
    assert "**zoe** `2_elman_gender` 2(f): 4.5 of 5 points were decided by an exception" in review
    assert "'Adam' object has no attribute 'stpe'" in review
    assert "yan" not in review  # 2 of 5 points: less than half the task, the rubric's own judgement stands
