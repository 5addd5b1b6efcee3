"""Restore nbgrader's cell metadata that editors dropped, changed or duplicated.

Colab, JupyterLab's copy/paste and cell splitting lose or copy the ``nbgrader`` metadata
that says which cell is which answer or test.  nbgrader then grades such a notebook wrongly
(an answer nobody grades, a test cell that does not run, duplicate ids).  ``RepairSubmission``
runs first when nbgrader autogrades (``nbgrader_config.py``): it matches the submission's cells
to the released notebook by content and position and gives the matched cells their release
metadata back, so that a Colab-saved notebook earns exactly the score of the same answers
saved by Jupyter.

Matching, in order: cells whose grade id and type still fit; read-only cells by their text;
answer cells by their place between the matched read-only cells (and their signature line).
A student's own text is never dropped or overwritten: cells that lose a duplicated grade id
stay in the notebook as ordinary cells, and a missing given cell is put back as it was
released.  Every repair is recorded in the notebook's metadata and shown to the student.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell
from traitlets import Float, Unicode

from nbgrader.preprocessors import NbGraderPreprocessor

from .course import Layout
from .notes import record


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _norm(text: str) -> str:
    return " ".join(text.split())


def _similarity(a: str, b: str) -> float:
    a, b = _norm(a), _norm(b)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _signature(text: str) -> str | None:
    match = re.search(r"^\s*(def|class)\s+(\w+)", text, re.M)
    return match.group(2) if match else None


def align(release_cells: list, cells: list, threshold: float = 0.8) -> dict[int, int]:
    """``{release index: submission index}`` for the release's nbgrader cells (see the module docstring)."""
    graded = [i for i, c in enumerate(release_cells) if _meta(c).get("grade_id")]
    match: dict[int, int] = {}
    used: set[int] = set()

    # 1. grade id and cell type still fit (the best of several copies for duplicates)
    for r in graded:
        ref = release_cells[r]
        gid = _meta(ref)["grade_id"]
        candidates = [j for j, c in enumerate(cells)
                      if j not in used and _meta(c).get("grade_id") == gid and c.cell_type == ref.cell_type]
        if not candidates:
            continue
        if _meta(ref).get("locked"):
            best = max(candidates, key=lambda j: _similarity(cells[j].source, ref.source))
            if _similarity(cells[best].source, ref.source) < 0.3:
                continue
        else:  # the copy the student worked in: the one that differs most from the stub
            best = min(candidates, key=lambda j: (_similarity(cells[j].source, ref.source), -j))
        match[r] = best
        used.add(best)

    # 2. read-only cells by their text
    for r in graded:
        ref = release_cells[r]
        if r in match or not _meta(ref).get("locked"):
            continue
        scored = [(_similarity(c.source, ref.source), j) for j, c in enumerate(cells)
                  if j not in used and c.cell_type == ref.cell_type]
        if scored:
            score, j = max(scored)
            if score >= threshold:
                match[r] = j
                used.add(j)

    # 3. answer cells by their place between matched neighbours, then their signature
    for r in graded:
        ref = release_cells[r]
        if r in match:
            continue
        before = [match[k] for k in graded if k < r and k in match]
        after = [match[k] for k in graded if k > r and k in match]
        low = max(before) if before else -1
        high = min(after) if after else len(cells)
        window = [j for j in range(low + 1, high) if j not in used and cells[j].cell_type == ref.cell_type]
        if not window:
            continue
        name = _signature(ref.source)
        named = [j for j in window if name and _signature(cells[j].source) == name]
        if named:
            pick = named[0]
        elif len(window) == 1:
            pick = window[0]
        else:
            pick = max(window, key=lambda j: (_similarity(cells[j].source, ref.source), j))
        match[r] = pick
        used.add(pick)
    return match


def repair(release_nb, nb) -> list[str]:
    """Repair ``nb`` in place against ``release_nb``; return what was repaired, in words."""
    release_cells = release_nb.cells
    match = align(release_cells, nb.cells)
    repairs = []
    chosen = {j: r for r, j in match.items()}

    # cells that carry nbgrader metadata they should not: keep the content, drop the metadata
    for j, cell in enumerate(nb.cells):
        gid = _meta(cell).get("grade_id")
        if gid and j not in chosen:
            del cell.metadata["nbgrader"]
            repairs.append(f"a copy of cell `{gid}` (cell {j + 1}) is kept as an ordinary cell; "
                           "only the original is graded")
    # matched cells get their release metadata back
    restored = []
    for r, j in sorted(match.items(), key=lambda item: item[1]):
        ref, cell = release_cells[r], nb.cells[j]
        wanted = copy.deepcopy(ref.metadata["nbgrader"])
        if _meta(cell) != wanted:
            had = _meta(cell).get("grade_id")
            if had and had != wanted["grade_id"]:
                repairs.append(f"cell {j + 1} said it was `{had}` but is `{wanted['grade_id']}`; corrected")
            else:
                restored.append(wanted["grade_id"])
            cell.metadata["nbgrader"] = wanted
    if restored:
        names = ", ".join(f"`{gid}`" for gid in restored[:6]) + (" and more" if len(restored) > 6 else "")
        repairs.append(f"the grading information of {len(restored)} cell(s) ({names}) was missing or changed, "
                       "as some editors (Colab, copy and paste) do, and was restored")
    # cells missing from the submission: put the released cell back where it belongs
    for r, ref in enumerate(release_cells):
        if not _meta(ref).get("grade_id") or r in match:
            continue
        position = 1 + max([match[k] for k in match if k < r] or [-1])
        new = (new_code_cell if ref.cell_type == "code" else new_markdown_cell)(ref.source)
        new.metadata["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
        nb.cells.insert(position, new)
        match = {k: (v + 1 if v >= position else v) for k, v in match.items()}
        match[r] = position
        gid = ref.metadata["nbgrader"]["grade_id"]
        kind = "answer" if _meta(ref).get("solution") else "given"
        repairs.append(f"the {kind} cell `{gid}` was missing and was put back as released"
                       + (" (empty: if you answered elsewhere, a grader will look)" if kind == "answer" else ""))
    return repairs


class RepairSubmission(NbGraderPreprocessor):
    """Sanitize step: match cells to the release and restore their metadata (module docstring)."""

    release_directory = Unicode("", help="the course's release folder (default: <course root>/release)").tag(config=True)
    threshold = Float(0.8, help="text similarity above which a read-only cell is recognised").tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        notebook = resources["nbgrader"]["notebook"]
        if self.release_directory:
            path = Path(self.release_directory) / assignment / f"{notebook}.ipynb"
        else:
            path = Layout.of(self).release(assignment, notebook)
        if not path.exists():
            return nb, resources
        release_nb = nbformat.read(path, as_version=4)
        for text in repair(release_nb, nb):
            record(nb, "repair", f"Repaired: {text}.")
        return nb, resources
