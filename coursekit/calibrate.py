"""How well the kit's automatic points agree with a human grader's: ``python -m coursekit calibrate``.

A TA grades a sample of submissions by hand, per task, and writes the points into a CSV in the layout
of the per-task export (``grades/<assignment>-tasks.csv``: a ``student_id`` column and one column per
task such as ``3(d)``; other columns are ignored, an empty cell means "not graded by hand").  This module
compares those points with the kit's, for every task the kit grades automatically:

* per task: the kit's and the human's mean, the mean absolute difference, the share of students within
  +-0.5 points, and the mean signed difference (negative: the kit is harsher);
* per student: the totals over the compared tasks and their difference;
* for the assignment: the mean absolute difference, the share within +-0.5, and Lin's concordance
  correlation coefficient of the points as shares of each task's maximum (1: perfect agreement; unlike a
  correlation it drops when the kit is systematically harsher or kinder);
* the rubric lines that cost the most points where the kit gave less than the human (read from the
  records the hidden tests publish in the autograded notebooks): the first places to look for an unfair
  test.

``calibration(root, assignment, human_csv)`` returns all of it; ``write_report`` writes
``reports/<assignment>/calibration.html`` with the tables and two plots.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import course
from .manual import read_rows
from .pages import render
from .kernel.grading import cell_records, lost_lines

TASK = re.compile(r"^\d+\([a-z]\)$")
WITHIN = 0.5


@dataclass
class Pair:
    student: str
    task: str
    kit: float
    human: float
    max_score: float

    @property
    def difference(self) -> float:
        return self.kit - self.human


@dataclass
class Calibration:
    assignment: str
    pairs: list[Pair]
    skipped: list[str] = field(default_factory=list)  # what the human file has that could not be compared
    lines: list[tuple[str, str, int, float]] = field(default_factory=list)  # (task, line, times, points)

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(p.task for p in self.pairs))

    def students(self) -> list[str]:
        return list(dict.fromkeys(p.student for p in self.pairs))

    def of_task(self, task: str) -> list[Pair]:
        return [p for p in self.pairs if p.task == task]

    def of_student(self, student: str) -> list[Pair]:
        return [p for p in self.pairs if p.student == student]

    @staticmethod
    def mean_abs(pairs: list[Pair]) -> float:
        return sum(abs(p.difference) for p in pairs) / len(pairs) if pairs else math.nan

    @staticmethod
    def within(pairs: list[Pair]) -> float:
        return sum(abs(p.difference) <= WITHIN + 1e-9 for p in pairs) / len(pairs) if pairs else math.nan

    @staticmethod
    def bias(pairs: list[Pair]) -> float:
        return sum(p.difference for p in pairs) / len(pairs) if pairs else math.nan

    def concordance(self) -> float:
        """Lin's concordance correlation coefficient of kit and human, points as shares of the task's maximum."""
        xs = [p.kit / p.max_score for p in self.pairs if p.max_score]
        ys = [p.human / p.max_score for p in self.pairs if p.max_score]
        n = len(xs)
        if n < 2:
            return math.nan
        mx, my = sum(xs) / n, sum(ys) / n
        vx = sum((x - mx) ** 2 for x in xs) / n
        vy = sum((y - my) ** 2 for y in ys) / n
        cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / n
        denominator = vx + vy + (mx - my) ** 2
        return 2 * cov / denominator if denominator else 1.0

    def summary(self) -> str:
        """The figures as plain text, for the console."""
        if not self.pairs:
            return "nothing to compare: " + ("; ".join(self.skipped) or "the human file has no points")
        lines = [f"Calibration of '{self.assignment}': {len(self.students())} students graded by hand, "
                 f"{len(self.pairs)} task scores compared",
                 f"{'task':6} {'n':>3} {'kit':>6} {'human':>6} {'|diff|':>7} {'within 0.5':>10} {'kit-human':>9}"]
        for task in self.tasks():
            pairs = self.of_task(task)
            lines.append(f"{task:6} {len(pairs):3d} {sum(p.kit for p in pairs) / len(pairs):6.2f} "
                         f"{sum(p.human for p in pairs) / len(pairs):6.2f} {self.mean_abs(pairs):7.2f} "
                         f"{self.within(pairs):10.0%} {self.bias(pairs):+9.2f}")
        lines.append(f"all    {len(self.pairs):3d} mean |difference| {self.mean_abs(self.pairs):.2f} points, "
                     f"{self.within(self.pairs):.0%} within +-{WITHIN:g}, Lin's concordance {self.concordance():.3f}")
        for student in self.students():
            pairs = self.of_student(student)
            kit, human = sum(p.kit for p in pairs), sum(p.human for p in pairs)
            lines.append(f"  {student}: kit {kit:g}, human {human:g} ({kit - human:+g})")
        for task, text, times, points in self.lines[:5]:
            lines.append(f"  harsher than the human: {task} \"{text}\" ({times}x, {points:g} points)")
        lines += [f"  not compared: {s}" for s in self.skipped]
        return "\n".join(lines)


def read_human(path: str | Path) -> dict[str, dict[str, float]]:
    """``{student: {task: points}}`` from a CSV in the per-task export's layout; empty cells are left out.

    Accepts ``,`` or ``;`` as the separator and a decimal comma; raises ValueError naming the row and column
    of anything that is not a number."""
    rows = read_rows(Path(path))
    if not rows or "student_id" not in rows[0]:
        raise ValueError(f"{path}: the column student_id is missing (write the file in the layout of "
                         "grades/<assignment>-tasks.csv)")
    grades: dict[str, dict[str, float]] = {}
    for number, row in enumerate(rows, start=2):
        student = (row.get("student_id") or "").strip()
        if not student:
            continue
        for column, value in row.items():
            if column is None or not TASK.match(column.strip()) or value is None or not value.strip():
                continue
            try:
                grades.setdefault(student, {})[column.strip()] = float(value.strip().replace(",", "."))
            except ValueError:
                raise ValueError(f"{path}, line {number}, column {column}: {value!r} is not a number of points") from None
    return grades


def kit_points(root: Path, assignment: str) -> tuple[dict[str, dict[str, float]], dict[str, float], set[str]]:
    """``({student: {task: points}}, {task: maximum}, automatic tasks)`` from the gradebook."""
    points: dict[str, dict[str, float]] = {}
    maxima: dict[str, float] = {}
    automatic: set[str] = set()
    for student, rows in course.cell_scores(root, assignment).items():
        for row in rows:
            if row.auto:
                automatic.add(row.task)
            if row.score is not None:
                points.setdefault(student, {})[row.task] = points.get(student, {}).get(row.task, 0.0) + row.score
    for rows in course.cell_scores(root, assignment).values():
        for row in rows:
            maxima[row.task] = maxima.get(row.task, 0.0) + row.max_score
        break
    return points, maxima, automatic


def harsh_lines(root: Path, assignment: str, pairs: list[Pair]) -> list[tuple[str, str, int, float]]:
    """The rubric lines that lost points where the kit gave less than the human: ``(task, line, times, points)``,
    the most points first (each line is counted with the points it took, at most the difference of its task)."""
    harsher = {(p.student, p.task): -p.difference for p in pairs if p.difference < -1e-9}
    found: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    for student in {s for s, _ in harsher}:
        for path in (root / "autograded" / student / assignment).glob("*.ipynb"):
            try:
                records = cell_records(nbformat.read(path, as_version=4))
            except Exception:  # noqa: BLE001 - unreadable: nothing to count
                continue
            for record in records.values():
                gap = harsher.get((student, record.get("task")))
                if not gap:
                    continue
                for line in lost_lines(record):
                    taken = min(line["points"] - line["earned"], gap)
                    entry = found[(record["task"], line["what"])]
                    entry[0] += 1
                    entry[1] += taken
    ranked = [(task, what, int(n), round(points, 2)) for (task, what), (n, points) in found.items()]
    return sorted(ranked, key=lambda item: (-item[3], -item[2], item[0]))


def calibration(root: str | Path, assignment: str, human_csv: str | Path) -> Calibration:
    """Compare the human points in ``human_csv`` with the kit's; see the module docstring."""
    root = Path(root)
    human = read_human(human_csv)
    kit, maxima, automatic = kit_points(root, assignment)
    result = Calibration(assignment, [])
    for student, tasks in human.items():
        if student not in kit:
            result.skipped.append(f"{student}: no graded submission in the gradebook")
            continue
        for task, points in tasks.items():
            if task not in maxima:
                result.skipped.append(f"{student} {task}: no such task in {assignment}")
            elif task not in automatic:
                continue  # a text answer: graded by humans in the kit as well
            elif task not in kit[student]:
                result.skipped.append(f"{student} {task}: not graded by the kit")
            elif not 0 <= points <= maxima[task]:
                raise ValueError(f"{human_csv}: {student} {task} has {points:g} points, the task has {maxima[task]:g}")
            else:
                result.pairs.append(Pair(student, task, kit[student][task], points, maxima[task]))
    order = {task: i for i, task in enumerate(maxima)}
    result.pairs.sort(key=lambda p: (order.get(p.task, 99), p.student))
    result.lines = harsh_lines(root, assignment, result.pairs)
    return result


# ---------------------------------------------------------------------------------------------- the report
def _plots(result: Calibration) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import _png

    images = []
    tasks = result.tasks()
    students = result.students()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 + max(3.5, 0.28 * len(students))),
                                      gridspec_kw={"width_ratios": [3, 2]}, constrained_layout=True)
    left.axhspan(-WITHIN, WITHIN, color="tab:green", alpha=0.12, label=f"within \u00b1{WITHIN:g} points")
    left.axhline(0, color="black", linewidth=0.8)
    for k, task in enumerate(tasks):
        differences = [p.difference for p in result.of_task(task)]
        offsets = [(i - (len(differences) - 1) / 2) * min(0.5 / max(len(differences), 1), 0.08)
                   for i in range(len(differences))]
        left.scatter([k + o for o in offsets], differences, s=14, alpha=0.7,
                     c=["tab:red" if d < -WITHIN else "tab:blue" if d > WITHIN else "grey" for d in differences])
        left.plot([k - 0.3, k + 0.3], [result.bias(result.of_task(task))] * 2, color="black", linewidth=2)
    left.set_xticks(range(len(tasks)), tasks, rotation=45)
    left.set(ylabel="kit \u2212 human (points)",
             title="Per task: every student (dot) and the mean (bar); red: the kit is harsher")
    left.legend(loc="lower left", fontsize=8)
    totals = sorted(((sum(p.difference for p in result.of_student(s)), s) for s in students), reverse=True)
    right.barh(range(len(totals)), [d for d, _ in totals],
               color=["tab:red" if d < -WITHIN else "tab:blue" if d > WITHIN else "grey" for d, _ in totals])
    right.set_yticks(range(len(totals)), [s for _, s in totals], fontsize=8)
    right.axvline(0, color="black", linewidth=0.8)
    right.set(xlabel="kit \u2212 human, total of the compared tasks (points)", title="Per student")
    images.append(_png(fig))
    plt.close(fig)
    return images


def write_report(root: str | Path, result: Calibration) -> Path:
    """``reports/<assignment>/calibration.html``."""
    rows = []
    for task in result.tasks():
        pairs = result.of_task(task)
        rows.append(dict(task=task, n=len(pairs), kit=sum(p.kit for p in pairs) / len(pairs),
                         human=sum(p.human for p in pairs) / len(pairs), mad=result.mean_abs(pairs),
                         within=result.within(pairs), bias=result.bias(pairs), max=pairs[0].max_score))
    students = [dict(student=s, kit=sum(p.kit for p in result.of_student(s)),
                     human=sum(p.human for p in result.of_student(s))) for s in result.students()]
    page = render(
        "calibration.html.j2", result=result, rows=rows, students=students, within=WITHIN,
        mad=result.mean_abs(result.pairs), share=result.within(result.pairs), ccc=result.concordance(),
        far=[p for p in result.pairs if abs(p.difference) > WITHIN + 1e-9],
        plots=_plots(result) if result.pairs else [])
    path = course.Layout(root).reports(result.assignment) / "calibration.html"
    path.write_text(page, encoding="utf-8")
    return path
