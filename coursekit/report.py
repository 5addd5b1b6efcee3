"""The instructor report of an assignment: how the exam worked, as one HTML file with plots.

``python -m coursekit report <assignment>`` writes ``reports/<assignment>/instructor-report.html``
from the gradebook and the autograded notebooks:

* the distribution of the scores per notebook (histograms);
* per task: difficulty (mean share of the points) and discrimination (correlation of the task's
  points with the rest of the assignment), as a table and a plot;
* the most frequent deduction comments of every task (the lines of the rubric records the hidden
  tests publish, without the student-specific detail in the last parentheses);
* for the true/false quiz: per statement, the share of right, wrong and unanswered answers (read
  from the answer cells without running them: ``ast.literal_eval``);
* warnings for tasks that look broken: nobody scored, everybody got full points, or the test cell
  ended in an error for most students.
"""

from __future__ import annotations

import ast
import base64
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import course
from .pages import render
from .kernel.grading import lost_lines, rubric_record

QUIZ_KEY = re.compile(r"^(_key_\w+)\s*=\s*(\{[^}]*\})", re.M)
QUIZ_ANSWERS = re.compile(r"""find_answers\(globals\(\), ["'](\w+)["']""")


@dataclass
class Task:
    notebook: str
    label: str
    manual: bool
    max_score: float = 0.0
    scores: dict[str, float | None] = field(default_factory=dict)  # student: points (None: not graded yet)
    deductions: Counter = field(default_factory=Counter)
    errors: int = 0
    discrimination: float | None = None

    @property
    def graded(self) -> dict[str, float]:
        return {s: v for s, v in self.scores.items() if v is not None}

    @property
    def difficulty(self) -> float | None:
        """Mean share of the points (1: everybody got everything); None for a text answer some of whose answers
        still wait for their grader (the blank answers nbgrader scores 0 by itself would make it look hard)."""
        if self.manual and any(v is None for v in self.scores.values()):
            return None
        graded = self.graded
        return sum(graded.values()) / (len(graded) * self.max_score) if graded and self.max_score else None


def pearson(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


def _comment(text: str) -> str:
    """A deduction line without its student-specific detail (the last parentheses) and notes."""
    text = text.split("; your code wrote to stderr", 1)[0]
    return re.sub(r"\s*\([^()]*\)\s*$", "", text).strip()


def gather(root: Path, assignment: str) -> tuple[list[Task], dict[str, float]]:
    """The tasks with every student's points and deductions, and every student's total."""
    scores = course.cell_scores(root, assignment)
    tasks: dict[tuple[str, str], Task] = {}
    grade_task: dict[tuple[str, str], Task] = {}
    first = next(iter(scores), None)
    for student, rows in scores.items():
        for row in rows:
            task = tasks.setdefault((row.notebook, row.task), Task(row.notebook, row.task, not row.auto))
            grade_task[(row.notebook, row.grade_id)] = task
            if student == first:  # a task's maximum: its cells' maxima (the same for every student)
                task.max_score += row.max_score
            previous = task.scores.get(student, 0.0)
            task.scores[student] = None if row.score is None or previous is None else previous + row.score
    for student in scores:
        for path in (root / "autograded" / student / assignment).glob("*.ipynb"):
            try:
                nb = nbformat.read(path, as_version=4)
            except Exception:  # noqa: BLE001 - unreadable: nothing to count
                continue
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                task = grade_task.get((path.stem, meta.get("grade_id")))
                if cell.cell_type != "code" or not meta.get("grade") or task is None:
                    continue
                task.errors += sum(output.get("output_type") == "error" for output in cell.get("outputs", []))
                for line in lost_lines(rubric_record(cell) or {}):
                    text = f"not checked (an exception): {line['what']}" if line.get("crashed") else line["comment"]
                    task.deductions[_comment(text)] += 1
    totals = {s: sum(r.score or 0 for r in rows) for s, rows in scores.items()}
    order = course.released_notebooks(root, assignment)
    ordered = sorted(tasks.values(), key=lambda t: (order.index(t.notebook) if t.notebook in order else 99, t.label))
    return ordered, totals


def quiz_outcomes(root: Path, assignment: str) -> dict[str, dict[str, Counter]]:
    """``{question variable: {statement: Counter(right=, wrong=, unanswered=)}}`` over all students."""
    from .kernel.quiz import MISSING, tally

    result: dict[str, dict[str, Counter]] = {}
    for nb_name in course.released_notebooks(root, assignment):
        source = nbformat.read(root / "source" / assignment / f"{nb_name}.ipynb", as_version=4)
        keys = {}
        for cell in source.cells:
            key, name = QUIZ_KEY.search(cell.source), QUIZ_ANSWERS.search(cell.source)
            if key and name:
                keys[name.group(1)] = ast.literal_eval(key.group(2))
        if not keys:
            continue
        for path in sorted((root / "autograded").glob(f"*/{assignment}/{nb_name}.ipynb")):
            try:
                answers = _literal_answers(nbformat.read(path, as_version=4), set(keys))
            except Exception:  # noqa: BLE001
                answers = {}
            for name, key in keys.items():
                outcome = tally(key, answers.get(name, MISSING), name).outcomes
                per = result.setdefault(name, {label: Counter() for label in key})
                for label in key:
                    per[label][outcome.get(label, "unanswered")] += 1
    return result


def _literal_answers(nb, names: set[str]) -> dict[str, object]:
    """The last literal assigned to each of ``names`` in the notebook's code cells (never executed)."""
    found: dict[str, object] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and node.targets[0].id in names:
                try:
                    found[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    found[node.targets[0].id] = None  # not a literal: read as unanswered
    return found


def warnings(tasks: list[Task]) -> list[str]:
    """Tasks that look broken."""
    out = []
    for task in tasks:
        graded = task.graded
        if len(graded) < 3:
            continue
        name = f"{task.notebook} {task.label}"
        if not task.manual and all(v == 0 for v in graded.values()):
            out.append(f"{name}: nobody scored (check the test and the reference)")
        elif all(v == task.max_score for v in graded.values()):
            out.append(f"{name}: every student got full points (does the test check anything?)")
        if not task.manual and task.errors > len(task.scores) / 2:
            out.append(f"{name}: the test cell ended in an error for {task.errors} of {len(task.scores)} students")
    return out


# ------------------------------------------------------------------------------- the HTML
def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _plots(tasks: list[Task], quiz: dict[str, dict[str, Counter]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figures = []
    notebooks = list(dict.fromkeys(t.notebook for t in tasks))
    fig, axes = plt.subplots(1, len(notebooks), figsize=(3.2 * len(notebooks), 2.9), squeeze=False,
                             constrained_layout=True)
    for ax, nb in zip(axes[0], notebooks):
        mine = [t for t in tasks if t.notebook == nb]
        students = sorted({s for t in mine for s in t.scores})
        totals = [sum(t.scores.get(s) or 0 for t in mine) for s in students]
        possible = sum(t.max_score for t in mine)
        ax.hist(totals, bins=min(10, max(3, len(set(totals)))), range=(0, possible), color="#4c72b0", edgecolor="white")
        ax.set_title(nb, fontsize=9)
        ax.set_xlabel(f"points (of {possible:g})", fontsize=8)
        ax.set_ylabel("students", fontsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # students come whole
    fig.suptitle("Score distribution per notebook (text answers not yet graded count 0)", fontsize=10)
    figures.append(_png(fig))

    shown = [t for t in tasks if t.difficulty is not None]
    if shown:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.28 * len(shown) + 1.2), sharey=True,
                                          constrained_layout=True)
        labels = [f"{t.notebook.split('_', 1)[0]}:{t.label}{' (text)' if t.manual else ''}" for t in shown]
        y = range(len(shown))
        left.barh(y, [t.difficulty for t in shown], color="#55a868")
        left.set_yticks(list(y), labels, fontsize=7)
        left.invert_yaxis()
        left.set_xlim(0, 1)
        left.set_title("difficulty: mean share of the points", fontsize=9)
        right.barh(y, [t.discrimination or 0 for t in shown], color="#c44e52")
        right.set_xlim(-1, 1)
        right.axvline(0, color="grey", lw=0.5)
        right.set_title("discrimination: correlation with the rest", fontsize=9)
        figures.append(_png(fig))

    for name, statements in quiz.items():
        fig, ax = plt.subplots(figsize=(5, 0.35 * len(statements) + 1.4), constrained_layout=True)
        labels = list(statements)
        n = [sum(statements[s].values()) or 1 for s in labels]
        left = [0.0] * len(labels)
        for outcome, colour in (("right", "#55a868"), ("wrong", "#c44e52"), ("unanswered", "#bbbbbb")):
            share = [statements[s][outcome] / k for s, k in zip(labels, n)]
            ax.barh(labels, share, left=left, color=colour, label=outcome)
            left = [a + b for a, b in zip(left, share)]
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(f"{name}: answers per statement", fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)  # off the bars
        figures.append(_png(fig))
    return figures


def instructor_report(root: str | Path, assignment: str, top: int = 3) -> Path:
    """Write ``reports/<assignment>/instructor-report.html`` and return its path."""
    root = Path(root)
    tasks, totals = gather(root, assignment)
    for task in tasks:
        rest = {s: totals[s] - (task.scores.get(s) or 0) for s in task.graded}
        students = sorted(task.graded)
        task.discrimination = pearson([task.graded[s] for s in students], [rest[s] for s in students])
        if task.difficulty is None:
            task.discrimination = None  # a text answer not graded for everybody yet
    quiz = quiz_outcomes(root, assignment)
    page = render(
        "instructor-report.html.j2", assignment=assignment, tasks=tasks, top=top, totals=totals, quiz=quiz, alerts=warnings(tasks),
        plots=_plots(tasks, quiz), mean=sum(totals.values()) / max(1, len(totals)))
    path = course.Layout(root).reports(assignment) / "instructor-report.html"
    path.write_text(page, encoding="utf-8")
    return path
