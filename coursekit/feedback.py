"""A summary table at the top of every feedback file: points and deductions per task.

``TaskSummary`` runs in ``nbgrader generate_feedback`` right after nbgrader's ``GetGrades``
(``nbgrader_config.py``), which has put each graded cell's score, points and grader comment into
its metadata.  It adds a first cell with the notebook's score and one row per task (``3(d)``):
points earned of possible, and every deduction (the lines of the record each hidden test's rubric
published, never text the student's code printed, and the grader's comment on a text answer).
It reads only scores, records and comments, never the hidden test code or a mark scheme, and
removes the records from the page.
"""

from __future__ import annotations

import html

from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_markdown_cell
from nbgrader import preprocessors as nbgrader_preprocessors
from traitlets import Bool, List

from .course import bonus_tasks, task_labels
from .kernel.grading import lost_lines, rubric_record, strip_records
from .notes import add_table_style
from .release import is_added


def _cell_text(text: str) -> str:
    return html.escape(" ".join(text.split())).replace("|", "&#124;")


def summary(nb, waiting: set[str] = frozenset()) -> str:
    """The summary's markdown; ``waiting``: grade ids of text answers not graded yet."""
    labels = task_labels(nb)
    bonus = bonus_tasks(nb)
    tasks: dict[str, dict] = {}
    earned = possible = extra = 0.0
    open_answers = 0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade") or "points" not in meta:
            continue
        task_label = labels.get(meta.get("grade_id"), meta.get("grade_id"))
        task = tasks.setdefault(task_label, {"earned": 0.0, "possible": 0.0, "open": False, "lost": []})
        score, points = meta.get("score"), float(meta.get("points") or 0)
        task["possible"] += points
        if task_label in bonus:
            extra += points
        else:
            possible += points
        if score is None or meta.get("grade_id") in waiting:
            task["open"] = True
            open_answers += 1
        else:
            task["earned"] += float(score)
            earned += float(score)
        record = rubric_record(cell)
        if record is not None:
            task["lost"] += [f"{line['earned']:g}/{line['points']:g} {line['comment']}" for line in lost_lines(record)]
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                task["lost"].append(f"the test cell stopped with {output.get('ename', 'an error')}")
        if meta.get("comment"):
            task["lost"].append(f"grader: {meta['comment']}")
    style = 'style="border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top"'
    rows = []
    for label, task in tasks.items():
        points = (f"{'?' if task['open'] else format(task['earned'], 'g')} / {task['possible']:g}"
                  + (" bonus" if label in bonus else ""))
        lost = "<br>".join(_cell_text(x) for x in task["lost"]) or ("not graded yet" if task["open"] else "&ndash;")
        rows.append(f"<tr><td {style}>{_cell_text(label)}</td><td {style}>{points}</td><td {style}>{lost}</td></tr>")
    heading = (f"### Your score: {earned:g} / {possible:g} points"
               + (f" (bonus included; up to {extra:g} bonus points on top of the {possible:g})" if extra else "")
               + (f" ({open_answers} text answer{'s' if open_answers != 1 else ''} not graded yet)" if open_answers else ""))
    return (heading + "\n\n<table style=\"border-collapse:collapse\">"
            f"<tr><th {style}>task</th><th {style}>points</th><th {style}>what cost points, and comments</th></tr>"
            + "".join(rows) + "</table>\n")


class TaskSummary(Preprocessor):
    """Insert the per-task summary as the first cell of the feedback notebook."""

    enabled = Bool(True, help="nbconvert runs only enabled preprocessors").tag(config=True)

    def preprocess(self, nb, resources):
        waiting = self.waiting(resources)
        cell = new_markdown_cell(summary(nb, waiting))
        strip_records(nb)
        for other in nb.cells:  # nbgrader would show "Score: 0.0 / 4.0" for an answer no grader has seen yet
            meta = other.metadata.get("nbgrader", {})
            if meta.get("grade_id") in waiting and meta.get("solution"):
                meta["grade"] = False
                other.source += "\n\n*(not graded yet)*" if other.cell_type == "markdown" else ""
        for other in nb.cells:  # the check before upload: what it is for, not its code
            if other.cell_type == "code" and is_added(other):
                other.source = "\n".join(other.source.splitlines()[:4]) + "\n# (its code is not shown in the feedback)"
        cell.metadata["coursekit_summary"] = True
        nb.cells.insert(0, cell)
        add_table_style(nb)  # once: a notebook graded by the kit has it already
        return nb, resources

    @staticmethod
    def waiting(resources) -> set[str]:
        """The text answers of this submission that no grader has scored yet (nbgrader reports them as 0)."""
        info = resources.get("nbgrader", {})
        if not info.get("db_url"):
            return set()
        from nbgrader.api import Gradebook

        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            return {g.name for g in notebook.grades if g.manual_score is None and g.auto_score is None}


class ClearHiddenTests(nbgrader_preprocessors.ClearHiddenTests):
    """nbgrader's ClearHiddenTests, with the ``display_data_priority`` that nbconvert sets for every preprocessor
    made configurable, so that ``generate_feedback`` does not warn about it for every notebook."""

    display_data_priority = List().tag(config=True)


class ClearMarkScheme(nbgrader_preprocessors.ClearMarkScheme):
    """nbgrader's ClearMarkScheme, without the same warning."""

    display_data_priority = List().tag(config=True)
