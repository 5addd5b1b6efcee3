"""Trial grading of the notebooks themselves: solution, untouched release and every known mistake.

Used by the pipeline tests and by ``python -m coursekit try <assignment> [<notebook>]``
while a notebook is being written.  Everything happens in a throw-away copy of the
course, with the real nbgrader commands and the offline fixtures.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from . import course, examples, offline, submissions
from .autograde import autograde


def write(root: Path, student: str, assignment: str, notebook: str, nb) -> None:
    path = root / "submitted" / student / assignment / f"{notebook}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def grade(target: str | Path, env: dict, source_root: str | Path = course.ROOT,
          only: dict[str, list[str]] | None = None, mistakes: bool = True, workers: int | None = None,
          progress: bool = False) -> tuple[Path, dict]:
    """Autograde students ``solution``, ``solution_colab`` (the same, saved by Colab: nbgrader's
    metadata gone), ``untouched`` and one per known mistake in a course copy.

    ``only`` limits the work to ``{assignment: [notebook, ...]}`` (an empty list: all notebooks);
    ``mistakes=False`` grades only ``solution`` and ``untouched`` (the canary).
    Returns ``(root, {assignment: {student: [CellScore, ...]}})``.
    """
    root = course.copy_course(source_root, target)
    scores = {}
    for assignment in course.assignments(root):
        notebooks = course.released_notebooks(root, assignment)
        if only is not None:
            if assignment not in only:
                continue
            notebooks = [nb for nb in notebooks if not only[assignment] or nb in only[assignment]]
        if not notebooks:
            continue
        course.nbgrader(root, "generate_assignment", assignment, "--force", env=env)
        untouched = root / "submitted" / "untouched" / assignment
        untouched.mkdir(parents=True, exist_ok=True)
        for nb in notebooks:
            solution = submissions.build(root, assignment, nb)
            write(root, "solution", assignment, nb, solution)
            if mistakes:
                write(root, "solution_colab", assignment, nb, submissions.as_saved_by_colab(solution))
            shutil.copy(root / "release" / assignment / f"{nb}.ipynb", untouched)
        for mistake in examples.mistakes(source_root, assignment).values() if mistakes else ():
            if mistake.notebook in notebooks:
                write(root, mistake.id, assignment, mistake.notebook,
                      submissions.build(root, assignment, mistake.notebook, [mistake]))
        failed = [o for o in autograde(root, assignment, force=True, progress=progress, env=env, workers=workers,
                                       canary=False) if o.status != "graded"]
        if failed:
            raise RuntimeError("autograding failed: " + "; ".join(f"{o.student}: {o.message}" for o in failed))
        scores[assignment] = {student: [r for r in rows if r.notebook in notebooks]
                              for student, rows in course.cell_scores(root, assignment).items()}
    return root, scores


def problems(scores: dict, source_root: str | Path = course.ROOT) -> list[str]:
    """What is wrong with the grading: each line names a student (or mistake) and a cell."""
    found = []
    for assignment, students in scores.items():
        notebooks = {r.notebook for r in students.get("solution", [])}
        for r in students.get("solution", []):
            if r.auto and r.score != r.max_score:
                found.append(f"solution {r.notebook}/{r.grade_id}: {r.score} of {r.max_score}")
            if not r.auto and r.score is not None:
                found.append(f"solution {r.notebook}/{r.grade_id}: text answer scored without a grader")
        solution = {(r.notebook, r.grade_id): r.score for r in students.get("solution", [])}
        colab = {(r.notebook, r.grade_id): r.score for r in students.get("solution_colab", [])}
        for key, score in solution.items():
            if key in colab and colab[key] != score and score is not None:
                found.append(f"solution_colab {key[0]}/{key[1]}: {colab[key]} (Jupyter-saved: {score})")
        for r in students.get("untouched", []):
            if r.notebook in notebooks and r.score != 0:
                found.append(f"untouched {r.notebook}/{r.grade_id}: {r.score} instead of 0")
        for mistake in examples.mistakes(source_root, assignment).values():
            if mistake.id not in students:
                continue
            for r in students[mistake.id]:
                if r.auto and r.notebook == mistake.notebook:
                    wanted = mistake.expect.get(r.grade_id, r.max_score)
                    if r.score != wanted:
                        found.append(f"{mistake.id} {r.notebook}/{r.grade_id}: {r.score} instead of {wanted}")
    return found


def report(scores: dict) -> str:
    lines = []
    for assignment, students in scores.items():
        for student in sorted(students):
            cells = ", ".join(f"{r.grade_id}={'?' if r.score is None else f'{r.score:g}'}/{r.max_score:g}"
                              for r in students[student])
            lines.append(f"{assignment} {student}: {cells}")
    return "\n".join(lines)


def main(assignment: str, notebook: str | None, workdir: Path) -> int:
    env = offline.prepare(workdir / "offline-data")
    if (workdir / "course").exists():
        shutil.rmtree(workdir / "course")
    root, scores = grade(workdir / "course", env, only={assignment: [notebook] if notebook else []})
    print(report(scores))
    found = problems(scores)
    print("\n".join(["", "PROBLEMS:"] + found) if found else "\nall as expected")
    print(f"(autograded notebooks in {root / 'autograded'})")
    return 1 if found else 0
