"""Similarity report: students whose code answers are unusually alike, across the whole assignment.

``python -m coursekit similarity <assignment>`` writes ``reports/<assignment>/similarity-report.html``.
For every code task (the answer cells under one ``### N(x)`` heading) it fingerprints each
student's answer with ``copydetect`` (winnowing over the token stream, as MOSS does: names and
literals are normalised, so renaming variables does not hide a copy), after removing the code the
release gave everyone (the template's fingerprints are *boilerplate*), and compares every pair.

What a TA needs first comes first, and the page stays short for any class size:

* **pairs of students ranked across all tasks together**: for each task in which two students'
  answers overlap by at least the threshold, the pair gets the weight ``log(pairs / similar pairs)``
  of that task (an overlap that few pairs share weighs much, one that many share little), summed over
  the tasks; at most 25 pairs are listed, each with its tasks;
* **clusters** of three or more students linked by such pairs;
* **overlaps explained by the solution** are set apart: when both answers also match the instructor's
  solution (which takes part as ``(solution)``), everyone who solved the task right looks alike; such
  tasks do not count for the pair, and the report says per task how many answers match the solution;
* the side-by-side view of the listed pairs (folded), and of any chosen pair with
  ``--pair <student> <student>`` (``reports/<assignment>/similarity-<a>-<b>.html``).

Notebooks whose answers are not code (the true/false quiz) are left out (``c.CourseKit.similarity_skip``
in ``nbgrader_config.py``).  A high score is a reason to look, not a verdict: short tasks have few ways
to be right.
"""

from __future__ import annotations

import html
import io
import itertools
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import course
from .pages import render

SOLUTION = "(solution)"


def answer_cells(nb) -> dict[str, list[str]]:
    """``{task label: [source of each answer code cell]}`` (cells nbgrader marks as solution)."""
    tasks: dict[str, list[str]] = {}
    for task, cell in course.cells_with_tasks(nb):
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution") and task:
            tasks.setdefault(task, []).append(cell.source)
    return tasks


@dataclass
class Pair:
    notebook: str
    task: str
    a: str
    b: str
    share_a: float  # share of a's answer (tokens) that overlaps b's
    share_b: float
    tokens: int
    view: str  # HTML side by side

    @property
    def score(self) -> float:
        return (self.share_a + self.share_b) / 2


def _fingerprint(code: str, boilerplate, k: int, window: int):
    from copydetect import CodeFingerprint

    return CodeFingerprint("answer.py", k, window, boilerplate=boilerplate, fp=io.StringIO(code))


def _side_by_side(fa, fb, slices, a: str, b: str) -> str:
    from copydetect.utils import highlight_overlap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        left, _ = highlight_overlap(fa.raw_code, slices[0], "\x00", "\x01", escape_html=False)
        right, _ = highlight_overlap(fb.raw_code, slices[1], "\x00", "\x01", escape_html=False)

    def mark(text):
        return html.escape(text).replace("\x00", "<mark>").replace("\x01", "</mark>")

    return (f'<div class=pair><div><b>{html.escape(a)}</b><pre>{mark(left)}</pre></div>'
            f'<div><b>{html.escape(b)}</b><pre>{mark(right)}</pre></div></div>')


def compare(answers: dict[str, str], template: str, notebook: str, task: str, *, k: int = 25,
            window: int = 6, min_tokens: int = 25) -> list[Pair]:
    """Every pair of ``answers`` (``{who: code}``) with overlapping code beyond the template."""
    from copydetect import compare_files

    import numpy as np

    base = np.array(sorted(_fingerprint(template, None, k, window).hashes), dtype=np.int64) if template.strip() else None
    prints = {who: _fingerprint(code, base, k, window) for who, code in answers.items() if code.strip()}
    pairs = []
    for a, b in itertools.combinations(sorted(prints), 2):
        tokens, (share_a, share_b), slices = compare_files(prints[a], prints[b])
        if tokens < min_tokens:
            continue
        pairs.append(Pair(notebook, task, a, b, float(share_a), float(share_b), int(tokens),
                          _side_by_side(prints[a], prints[b], slices, a, b)))
    return pairs


def task_pairs(root: str | Path, assignment: str, threshold: float = 0.5,
               only: set[str] | None = None) -> tuple[list[Pair], dict[tuple[str, str], int]]:
    """Every pair of answers of a task at or above ``threshold`` (mean share of overlapping code), and
    ``{(notebook, task): number of answers}``; ``only``: compare only these students (and the solution)."""
    root = Path(root)
    pairs, counts = [], {}
    skip = set(course.setting(root, "similarity_skip", []))
    for nb_name in course.released_notebooks(root, assignment):
        if nb_name in skip:
            continue
        release = answer_cells(nbformat.read(root / "release" / assignment / f"{nb_name}.ipynb", as_version=4))
        solution = answer_cells(nbformat.read(root / "source" / assignment / f"{nb_name}.ipynb", as_version=4))
        students = {SOLUTION: solution}
        for path in sorted((root / "autograded").glob(f"*/{assignment}/{nb_name}.ipynb")):
            if only is not None and path.parents[1].name not in only:
                continue
            try:
                students[path.parents[1].name] = answer_cells(nbformat.read(path, as_version=4))
            except Exception:  # noqa: BLE001 - unreadable: reported by the grading report
                continue
        for task, template in release.items():
            answers = {who: "\n\n".join(cells.get(task, [])) for who, cells in students.items()}
            counts[(nb_name, task)] = sum(1 for who, code in answers.items() if who != SOLUTION and code.strip())
            pairs += [p for p in compare(answers, "\n\n".join(template), nb_name, task) if p.score >= threshold]
    return sorted(pairs, key=lambda p: (-p.score, -p.tokens, p.notebook, p.task, p.a, p.b)), counts


def find_pairs(root: str | Path, assignment: str, threshold: float = 0.5) -> list[Pair]:
    """Pairs of answers of one task at or above ``threshold``, most similar first (the solution included)."""
    return task_pairs(root, assignment, threshold)[0]


@dataclass
class Students:
    """Two students whose answers overlap unusually in one or more tasks."""

    a: str
    b: str
    weight: float = 0.0
    pairs: list[Pair] = field(default_factory=list)      # the tasks that count
    explained: list[Pair] = field(default_factory=list)  # tasks in which both answers match the solution


@dataclass
class Ranking:
    students: list[Students]                   # ranked, the most unusual first
    clusters: list[list[str]]                  # three or more students linked by ranked pairs
    solution_matches: dict[tuple[str, str], int]  # (notebook, task): answers that match the solution
    answers: dict[tuple[str, str], int]        # (notebook, task): answers compared
    pairs: int                                 # task pairs at or above the threshold


def rank(pairs: list[Pair], answers: dict[tuple[str, str], int]) -> Ranking:
    """Rank pairs of students across the tasks, set apart what the solution explains, find clusters."""
    by_task: dict[tuple[str, str], list[Pair]] = defaultdict(list)
    for p in pairs:
        by_task[(p.notebook, p.task)].append(p)
    solution_matches = {key: len({p.b if p.a == SOLUTION else p.a for p in found if SOLUTION in (p.a, p.b)})
                        for key, found in by_task.items()}
    students: dict[tuple[str, str], Students] = {}
    for key, found in by_task.items():
        like_solution = {p.b if p.a == SOLUTION else p.a for p in found if SOLUTION in (p.a, p.b)}
        between = [p for p in found if SOLUTION not in (p.a, p.b)]
        n = answers.get(key, 2)
        possible = max(1, n * (n - 1) // 2)
        weight = math.log((possible + 1) / (len(between) + 1)) + 1e-9  # rare overlaps weigh much
        for p in between:
            pair = students.setdefault((p.a, p.b), Students(p.a, p.b))
            if p.a in like_solution and p.b in like_solution:
                pair.explained.append(p)
            else:
                pair.weight += weight * p.score
                pair.pairs.append(p)
    ranked = sorted((s for s in students.values() if s.pairs), key=lambda s: (-s.weight, -len(s.pairs), s.a, s.b))
    shown = ranked[:25]
    # clusters: connected groups of three or more among pairs that share at least two tasks unusually
    links = defaultdict(set)
    for s in ranked:
        if len(s.pairs) >= 2:
            links[s.a].add(s.b)
            links[s.b].add(s.a)
    clusters, seen = [], set()
    for start in sorted(links):
        if start in seen:
            continue
        group, todo = set(), [start]
        while todo:
            who = todo.pop()
            if who not in group:
                group.add(who)
                todo += sorted(links[who] - group)
        seen |= group
        if len(group) >= 3:
            clusters.append(sorted(group))
    return Ranking(shown, clusters, solution_matches, answers, len(pairs))


def similarity_report(root: str | Path, assignment: str, threshold: float = 0.5) -> Path:
    """Write ``reports/<assignment>/similarity-report.html``; return its path."""
    root = Path(root)
    pairs, answers = task_pairs(root, assignment, threshold)
    ranking = rank(pairs, answers)
    path = course.Layout(root).reports(assignment) / "similarity-report.html"
    path.write_text(render("similarity-report.html.j2", assignment=assignment, ranking=ranking, threshold=threshold,
                          solution=SOLUTION), encoding="utf-8")
    return path


def pair_report(root: str | Path, assignment: str, a: str, b: str) -> Path:
    """The side-by-side view of every task of two chosen students: ``reports/<assignment>/similarity-<a>-<b>.html``."""
    root = Path(root)
    pairs, _ = task_pairs(root, assignment, threshold=0.0, only={a, b})
    chosen = [p for p in pairs if {p.a, p.b} == {a, b}]
    path = course.Layout(root).reports(assignment) / f"similarity-{a}-{b}.html"
    path.write_text(render("similarity-pair.html.j2", assignment=assignment, a=a, b=b, pairs=chosen), encoding="utf-8")
    return path
