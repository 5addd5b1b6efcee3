"""Build student submissions from the release: the solution, known mistakes, example students.

A submission is what a student uploads: the *release* notebook with the answer
cells filled in.  The correct answers come from the solution regions of the
source notebook; a known mistake is a list of exact text replacements applied
to one answer cell, so that it breaks loudly (instead of silently testing
nothing) when the solution it edits changes.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MARKERS = ("BEGIN SOLUTION", "END SOLUTION")


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_answer(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def solution_answers(source_nb) -> dict[str, str]:
    """``{grade_id: text}`` of every answer cell of a source notebook, solution markers removed."""
    answers = {}
    for cell in source_nb.cells:
        if is_answer(cell):
            lines = [line for line in cell.source.split("\n") if not any(m in line for m in MARKERS)]
            answers[grade_id(cell)] = "\n".join(lines).strip("\n")
    return answers


def fill(release_nb, answers: dict[str, str]):
    """A copy of the release notebook with the given answer cells filled in."""
    nb = copy.deepcopy(release_nb)
    unknown = set(answers) - {grade_id(c) for c in nb.cells if is_answer(c)}
    if unknown:
        raise KeyError(f"no answer cells named {sorted(unknown)} in the release notebook")
    for cell in nb.cells:
        if is_answer(cell) and grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return nb


@dataclass
class Mistake:
    """A known mistake: text replacements in answer cells and the scores it must get.

    ``replace`` holds ``[old, new]`` pairs (``old`` must occur exactly once) or ``[old, new, n]`` triples
    (``old`` must occur exactly ``n`` times) for the answer cell ``cell``; a mistake that spans several cells
    (a network of another interface and the code written for it) gives ``edits = {cell: [[old, new], ...]}``
    instead.  ``expect`` maps grade cells to the score they must get; every other automatically graded
    cell of the notebook must keep its full points.
    """

    id: str
    notebook: str
    what: str
    cell: str = ""
    replace: list = field(default_factory=list)
    edits: dict = field(default_factory=dict)
    expect: dict = field(default_factory=dict)

    def __post_init__(self):
        if bool(self.cell) == bool(self.edits) or (self.edits and self.replace):
            raise ValueError(f"mistake {self.id}: give either cell and replace, or edits")

    @property
    def changes(self) -> dict[str, list]:
        """``{answer cell: [[old, new(, n)], ...]}``."""
        return dict(self.edits) if self.edits else {self.cell: self.replace}

    def apply(self, answers: dict[str, str]) -> dict[str, str]:
        answers = dict(answers)
        for cell, replacements in self.changes.items():
            text = answers[cell]
            for old, new, *times in replacements:
                expected = times[0] if times else 1
                count = text.count(old)
                if count != expected:
                    raise ValueError(f"mistake {self.id}: the text to replace occurs {count} times in {cell}, "
                                     f"not {expected}:\n{old}")
                text = text.replace(old, new)
            answers[cell] = text
        return answers


def load_mistakes(path: str | Path) -> dict[str, Mistake]:
    """The mistakes of ``<assignment>/<notebook>.toml``; their notebook is the file's name."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    mistakes = {}
    for entry in data.get("mistake", []):
        mistake = Mistake(notebook=Path(path).stem, **entry)
        if mistake.id in mistakes:
            raise ValueError(f"mistake {mistake.id} is defined twice in {path}")
        mistakes[mistake.id] = mistake
    return mistakes


def read(path: str | Path):
    return nbformat.read(str(path), as_version=4)


def build(course: str | Path, assignment: str, notebook: str, mistakes=(), answers=None, model_text=True):
    """The release notebook filled with the solution, the given mistakes applied, then ``answers``.

    ``model_text=False`` leaves the text answers that ``answers`` does not give unanswered,
    as a student who skipped them would.
    """
    course = Path(course)
    release_nb = read(course / "release" / assignment / f"{notebook}.ipynb")
    source_nb = read(course / "source" / assignment / f"{notebook}.ipynb")
    filled = solution_answers(source_nb)
    if not model_text:
        text_cells = {grade_id(c) for c in source_nb.cells if is_answer(c) and c.cell_type == "markdown"}
        filled = {k: v for k, v in filled.items() if k not in text_cells}
    for mistake in mistakes:
        filled = mistake.apply(filled)
    filled.update(answers or {})
    return fill(release_nb, filled)


def as_saved_by_colab(nb):
    """The notebook as Google Colab may save it: nbgrader metadata gone, Colab's own added."""
    nb = copy.deepcopy(nb)
    nb.metadata = {"colab": {"provenance": [], "name": "submission.ipynb"},
                   "kernelspec": {"name": "python3", "display_name": "Python 3"},
                   "language_info": {"name": "python"}, "accelerator": "GPU"}
    for index, cell in enumerate(nb.cells):
        cell.metadata = {"id": f"colab{index:04d}"}
        if cell.cell_type == "code":
            cell.metadata["colab"] = {"base_uri": "https://localhost:8080/"}
            cell.metadata["outputId"] = f"out{index:04d}"
        cell.id = f"colab{index:04d}"
    return nb
