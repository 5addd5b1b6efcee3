"""Similarity report: pairs of students whose code answers are unusually alike.

``python -m coursekit similarity <assignment>`` writes ``reports/<assignment>/similarity-report.html``.
For every code task (the answer cells under one ``### N(x)`` heading) it fingerprints each
student's answer with ``copydetect`` (winnowing over the token stream, as MOSS does: names and
literals are normalised, so renaming variables does not hide a copy), after removing the code the
release gave everyone (the template's fingerprints are *boilerplate*), compares every pair and
ranks the pairs by the share of their answers that overlap.  The instructor's solution takes part
as ``(solution)``, which catches a leaked solution.  Each listed pair gets a side-by-side view
with the overlapping code marked.  Notebooks whose answers are not code (the true/false quiz) are
left out (``c.CourseKit.similarity_skip`` in ``nbgrader_config.py``).  A high score is a reason to look, not a verdict: short tasks
have few ways to be right.
"""

from __future__ import annotations

import html
import io
import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import course

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


def find_pairs(root: str | Path, assignment: str, threshold: float = 0.5) -> list[Pair]:
    """Pairs at or above ``threshold`` (mean share of overlapping code), most similar first."""
    root = Path(root)
    pairs = []
    skip = set(course.setting(root, "similarity_skip", []))
    for nb_name in course.released_notebooks(root, assignment):
        if nb_name in skip:
            continue
        release = answer_cells(nbformat.read(root / "release" / assignment / f"{nb_name}.ipynb", as_version=4))
        solution = answer_cells(nbformat.read(root / "source" / assignment / f"{nb_name}.ipynb", as_version=4))
        students = {SOLUTION: solution}
        for path in sorted((root / "autograded").glob(f"*/{assignment}/{nb_name}.ipynb")):
            try:
                students[path.parents[1].name] = answer_cells(nbformat.read(path, as_version=4))
            except Exception:  # noqa: BLE001 - unreadable: reported by the grading report
                continue
        for task, template in release.items():
            answers = {who: "\n\n".join(cells.get(task, [])) for who, cells in students.items()}
            pairs += [p for p in compare(answers, "\n\n".join(template), nb_name, task) if p.score >= threshold]
    return sorted(pairs, key=lambda p: (-p.score, -p.tokens, p.notebook, p.task, p.a, p.b))


def similarity_report(root: str | Path, assignment: str, threshold: float = 0.5, shown: int = 100) -> Path:
    """Write ``reports/<assignment>/similarity-report.html``; return its path."""
    root = Path(root)
    pairs = find_pairs(root, assignment, threshold)
    esc = html.escape
    rows = "".join(
        f"<tr><td>{i}</td><td>{esc(p.notebook)}</td><td>{esc(p.task)}</td><td>{esc(p.a)}</td><td>{esc(p.b)}</td>"
        f"<td>{p.share_a:.0%}</td><td>{p.share_b:.0%}</td><td>{p.tokens}</td><td><a href='#p{i}'>view</a></td></tr>"
        for i, p in enumerate(pairs[:shown], 1))
    views = "".join(f"<h3 id=p{i}>{i}. {esc(p.notebook)} {esc(p.task)}: {esc(p.a)} and {esc(p.b)} "
                    f"({p.score:.0%})</h3>{p.view}" for i, p in enumerate(pairs[:shown], 1))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Similarity report: {esc(assignment)}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto}} table{{border-collapse:collapse;font-size:90%}}
td,th{{border:1px solid #ccc;padding:3px 6px}} th{{background:#eee}} .pair{{display:flex;gap:1em}}
.pair>div{{flex:1;min-width:0}} pre{{background:#f8f8f8;padding:.5em;overflow-x:auto;font-size:80%}}
mark{{background:#ffd27a}}</style></head><body>
<h1>Similarity report: {esc(assignment)}</h1>
<p>Answer code of each task compared between all students (and the solution, as <code>{SOLUTION}</code>) with
winnowing fingerprints (copydetect; names and literals normalised), ignoring the code the release gave everyone.
Listed: pairs whose answers overlap by at least {threshold:.0%} on average, most similar first
({len(pairs)} pairs{f', the first {shown} shown' if len(pairs) > shown else ''}). A high score is a reason to
look, not a verdict: short tasks have few ways to be right.</p>
<table><tr><th>#</th><th>notebook</th><th>task</th><th>student</th><th>student</th><th>share of first</th>
<th>share of second</th><th>tokens</th><th></th></tr>{rows}</table>
{views}
</body></html>
"""
    path = root / "reports" / assignment / "similarity-report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
