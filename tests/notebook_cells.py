"""Run an instructor notebook's cells in-process: the notebook tests check hidden tests on their own,
without nbgrader (the pipeline tests grade the same notebooks with the real nbgrader commands)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nbformat

from coursekit import submissions


def lost(output: str) -> list[str]:
    """The rubric lines of a hidden test that lost points."""
    return [line.strip() for line in output.splitlines() if "\u2718" in line]


class SourceNotebook:
    """A notebook of ``source/``: ``setup`` cells run as written, ``answers`` cells from the solution."""

    def __init__(self, path: Path, setup: tuple[str, ...], answers: tuple[str, ...]):
        self.path, self.setup, self.answers = path, setup, answers

    def cells(self) -> dict:
        """``{grade_id: cell}`` of the cells nbgrader knows."""
        nb = nbformat.read(self.path, as_version=4)
        return {submissions.grade_id(c): c for c in nb.cells if submissions.grade_id(c)}

    def solved(self) -> dict:
        """``{grade_id: solution code}`` of the answer cells."""
        return submissions.solution_answers(nbformat.read(self.path, as_version=4))

    def solution(self, allow_errors: bool = False, **replaced) -> dict:
        """The namespace after the setup cells and the answer cells (the solution, or the code given).

        As in a kernel, ``In`` lists the code of the cells run; with ``allow_errors`` an answer cell that raises
        stops only itself (as in nbgrader, which runs every cell), and ``_errors`` lists what was raised."""
        source, solved = self.cells(), self.solved()
        namespace = {"__name__": "__main__", "In": [""], "_errors": []}
        with contextlib.redirect_stdout(io.StringIO()):
            for grade_id in self.setup:
                code = replaced.get(grade_id, source[grade_id].source)
                namespace["In"].append(code)
                exec(compile(code, grade_id, "exec"), namespace)
            for grade_id in self.answers:
                code = replaced.get(grade_id, solved[grade_id])
                namespace["In"].append(code)
                try:
                    exec(compile(code, grade_id, "exec"), namespace)
                except Exception as error:  # noqa: BLE001 - a student's cell may raise anything
                    if not allow_errors:
                        raise
                    namespace["_errors"].append((grade_id, error))
        return namespace

    def run_hidden_test(self, grade_id: str, namespace: dict) -> tuple[float, str]:
        """Run a hidden test cell in ``namespace``; return its score and the lines it printed."""
        code = self.cells()[grade_id].source
        assert code.count("\nrubric.total()") == 1, f"{grade_id} does not end with rubric.total()"
        code = code.replace("\nrubric.total()", "\n_score = rubric.total()")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, grade_id, "exec"), namespace)
        return namespace["_score"], out.getvalue()

    def edited(self, grade_id: str, *pairs, once: bool = True) -> str:
        """The solution of ``grade_id`` with text replacements (each must occur once; with
        ``once=False`` at least once, and every occurrence is replaced)."""
        text = self.solved()[grade_id]
        for old, new in pairs:
            assert (text.count(old) == 1) if once else (old in text), old
            text = text.replace(old, new)
        return text
