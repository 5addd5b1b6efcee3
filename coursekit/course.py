"""The course folder: its layout and configuration, nbgrader commands run in it, scores from its gradebook."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent  # the course repository this package lives in

TASK_HEADING = re.compile(r"^#{1,6}\s*(\d+\([a-z]\))", re.M)
BONUS_HEADING = re.compile(r"^#{1,6}\s*(\d+\([a-z]\))\s*Bonus\b", re.M | re.I)  # "### 3(e) Bonus: ... (3 points)"


def _config(root: Path):
    """``nbgrader_config.py`` of a course, loaded once per version of the file (and of ``COURSEKIT_DB_URL``, which
    it reads)."""
    path = root / "nbgrader_config.py"
    return _load_config(str(root), path.stat().st_mtime_ns if path.exists() else 0,
                        os.environ.get("COURSEKIT_DB_URL", ""))


@functools.lru_cache(maxsize=16)
def _load_config(root: str, stamp: int, db_url: str):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=root).load_config()


class Layout:
    """The course folder: its configuration (``nbgrader_config.py``, loaded once) and every path the kit uses.

    nbgrader's own commands find the course through their ``CourseDirectory``; the kit's plugins get it with
    :meth:`of` (from the nbgrader app they run in), everything else with ``Layout(root)``."""

    def __init__(self, root: str | Path = ROOT):
        self.root = Path(root).resolve()

    @property
    def config(self):
        return _config(self.root)

    @classmethod
    def of(cls, configurable) -> "Layout":
        """The course of an nbgrader plugin or preprocessor: its app's ``coursedir``, else the configured root."""
        node = configurable
        while node is not None:
            coursedir = getattr(node, "coursedir", None)
            if coursedir is not None and getattr(coursedir, "root", None):
                return cls(coursedir.root)
            node = getattr(node, "parent", None)
        root = configurable.config.get("CourseDirectory", {}).get("root") if hasattr(configurable, "config") else None
        return cls(root or os.getcwd())

    # -- configuration --------------------------------------------------------------------------
    @property
    def assignments(self) -> dict[str, list[str]]:
        """``{assignment: [notebook, ...]}`` as ``c.CourseKit.assignments`` lists them."""
        return {name: list(notebooks) for name, notebooks in self.config.CourseKit.assignments.items()}

    def setting(self, name: str, default=None):
        """``c.CourseKit.<name>``, or ``default``."""
        return self.config.CourseKit.get(name, default)

    def notebooks(self, assignment: str) -> list[str]:
        """The notebooks of ``assignment`` that exist in ``source/``, in the configured order."""
        return [nb for nb in self.assignments[assignment] if self.source(assignment, nb).exists()]

    # -- folders -----------------------------------------------------------------------------------
    def _path(self, folder: str, *parts) -> Path:
        return self.root.joinpath(folder, *[p for p in parts if p])

    def source(self, assignment: str = "", notebook: str = "") -> Path:
        return self._path("source", assignment, f"{notebook}.ipynb" if notebook else "")

    def release(self, assignment: str = "", notebook: str = "") -> Path:
        return self._path("release", assignment, f"{notebook}.ipynb" if notebook else "")

    def reports(self, assignment: str) -> Path:
        """``reports/<assignment>/``, created."""
        path = self._path("reports", assignment)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def gradebook_url(self) -> str:
        """``c.CourseDirectory.db_url`` (the PostgreSQL database of ``COURSEKIT_DB_URL`` when that is set, see
        ``nbgrader_config.py``), else the SQLite file ``gradebook.db`` in the course folder."""
        configured = self.config.get("CourseDirectory", {}).get("db_url") if (self.root / "nbgrader_config.py").exists() \
            else None
        return configured or f"sqlite:///{self.root / 'gradebook.db'}"


def assignments(root: str | Path = ROOT) -> dict[str, list[str]]:
    """``{assignment: [notebook, ...]}`` as ``nbgrader_config.py`` lists them."""
    return Layout(root).assignments


def setting(root: str | Path, name: str, default=None):
    """``c.CourseKit.<name>`` from ``nbgrader_config.py``, or ``default``."""
    return Layout(root).setting(name, default)


def released_notebooks(root: str | Path, assignment: str) -> list[str]:
    """The notebooks of ``assignment`` that exist in ``source/``, in the configured order."""
    return Layout(root).notebooks(assignment)


def command_env(extra: dict | None = None) -> dict[str, str]:
    """This process's environment, with this Python's scripts first on PATH (nbgrader runs ``alembic``)."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", ""), **(extra or {})}


def _die_with_parent() -> None:
    """In a child process: die when the process that started it dies (a killed cluster worker, Ctrl-C)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def nbgrader(root: str | Path, *args: str, env: dict | None = None, check: bool = True, capture: bool = True,
             timeout: float | None = None, on_line=None) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` in the course folder with this Python: the one way the kit starts nbgrader.

    ``on_line`` gets every line of its output as it comes (stdout and stderr together); ``timeout`` stops it
    (``subprocess.TimeoutExpired``); ``check`` raises RuntimeError with the end of the output when it fails."""
    command = [sys.executable, "-m", "nbgrader", *args]
    if on_line is None:
        result = subprocess.run(command, cwd=root, env=command_env(env), capture_output=capture, text=True,
                                timeout=timeout, preexec_fn=_die_with_parent)
    else:
        process = subprocess.Popen(command, cwd=root, env=command_env(env), text=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        lines = []
        for line in process.stdout:
            lines.append(line)
            on_line(line)
        result = subprocess.CompletedProcess(command, process.wait(timeout=timeout), "".join(lines), "")
    if check and result.returncode != 0:
        tail = (result.stdout or "")[-3000:] + (result.stderr or "")[-3000:]
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed with exit code {result.returncode}:\n{tail}")
    return result


# Appended to the configuration of a throw-away copy: even when COURSEKIT_DB_URL names the course team's
# PostgreSQL gradebook, the copy's students (the canary's "solution", the audit's mutants) stay out of it.
OWN_GRADEBOOK = """
# A throw-away copy (coursekit.course.copy_course): a gradebook of its own, whatever COURSEKIT_DB_URL says.
import os as _os
c.CourseDirectory.db_url = "sqlite:///" + _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "gradebook.db")
"""


def copy_course(root: str | Path, target: str | Path) -> Path:
    """A throw-away copy of the course (configuration and sources only), with its own SQLite ``gradebook.db``."""
    root, target = Path(root), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    (target / "nbgrader_config.py").write_text((root / "nbgrader_config.py").read_text() + OWN_GRADEBOOK)
    shutil.copytree(root / "source", target / "source", dirs_exist_ok=True)
    return target


def cells_with_tasks(notebook):
    """``(task, cell)`` for every cell of a notebook, ``task`` from the task heading above it ("3(c)", or None)."""
    current = None
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = TASK_HEADING.search(cell.source)
            if match:
                current = match.group(1)
        yield current, cell


def bonus_tasks(notebook) -> set[str]:
    """The tasks whose heading says "Bonus": their points come on top of the notebook's maximum."""
    return {m.group(1) for cell in notebook.cells if cell.cell_type == "markdown"
            for m in BONUS_HEADING.finditer(cell.source)}


def task_labels(notebook) -> dict[str, str]:
    """``{grade_id: "3(c)"}`` for the grade cells of a notebook, from the task headings above them."""
    labels = {}
    for task, cell in cells_with_tasks(notebook):
        meta = cell.metadata.get("nbgrader", {})
        if (meta.get("grade") or meta.get("task")) and task:
            labels[meta["grade_id"]] = task
    return labels


def source_notebooks(root: str | Path, assignment: str) -> dict:
    """``{notebook: its source notebook}`` for the released notebooks of ``assignment``, in order."""
    return {nb: nbformat.read(Path(root) / "source" / assignment / f"{nb}.ipynb", as_version=4)
            for nb in released_notebooks(root, assignment)}


def notebook_task_labels(root: str | Path, assignment: str) -> dict[str, dict[str, str]]:
    """``{notebook: {grade_id: "3(c)"}}`` for the released notebooks of ``assignment``, in order."""
    return {nb: task_labels(source) for nb, source in source_notebooks(root, assignment).items()}


@dataclass
class CellScore:
    notebook: str
    grade_id: str
    task: str
    score: float | None  # None: waiting for manual grading
    max_score: float
    auto: bool  # graded by tests (True) or by hand (False)
    bonus: bool = False  # a bonus task: its points come on top of the maximum


def cell_scores(root: str | Path, assignment: str, gradebook=None) -> dict[str, list[CellScore]]:
    """``{student: [CellScore, ...]}`` for everyone with a submission of ``assignment``
    (from ``gradebook``, an open nbgrader Gradebook, or the course's ``gradebook.db``)."""
    from nbgrader.api import Gradebook

    root = Path(root)
    sources = source_notebooks(root, assignment)
    labels = {nb: task_labels(source) for nb, source in sources.items()}
    bonus = {nb: bonus_tasks(source) for nb, source in sources.items()}
    order = {(nb, grade_id): i for i, (nb, ids) in enumerate(labels.items()) for grade_id in ids}  # notebook order
    result = {}
    with contextlib.nullcontext(gradebook) if gradebook is not None else \
            Gradebook(Layout(root).gradebook_url) as gb:
        for submission in gb.assignment_submissions(assignment):
            rows = []
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    auto = grade.cell_type == "code"
                    waiting = not auto and grade.manual_score is None and grade.auto_score is None
                    score = None if waiting else float(grade.score)
                    task = labels.get(notebook.name, {}).get(grade.name, grade.name)
                    rows.append(CellScore(notebook.name, grade.name, task, score, grade.max_score, auto,
                                          task in bonus.get(notebook.name, set())))
            result[submission.student.id] = sorted(rows, key=lambda r: order.get((r.notebook, r.grade_id), len(order)))
    return result


def score_table(root: str | Path, assignment: str, students: list[str] | None = None) -> str:
    """A plain-text table: one row per student, one column per task, then the totals."""
    scores = cell_scores(root, assignment)
    order = released_notebooks(root, assignment)
    columns: list[tuple[str, str]] = []
    for rows in scores.values():
        for row in rows:
            if (row.notebook, row.task) not in columns:
                columns.append((row.notebook, row.task))
    columns.sort(key=lambda c: (order.index(c[0]) if c[0] in order else len(order), c[1]))
    names = [s for s in sorted(scores) if students is None or s in students]
    header = ["student"] + [task for _, task in columns] + ["auto", "manual", "total"]
    lines = []
    for student in names:
        by_task: dict[tuple[str, str], list[CellScore]] = {}
        for row in scores[student]:
            by_task.setdefault((row.notebook, row.task), []).append(row)
        cells = []
        for column in columns:
            rows = by_task.get(column, [])
            if not rows:
                cells.append("")
            elif any(r.score is None for r in rows):
                cells.append("?")  # waiting for manual grading
            else:
                cells.append(f"{sum(r.score for r in rows):g}")
        auto = sum(r.score or 0 for r in scores[student] if r.auto)
        manual = [r for r in scores[student] if not r.auto]
        graded = sum(r.score for r in manual if r.score is not None)
        waiting = sum(1 for r in manual if r.score is None)
        possible = sum(r.max_score for r in scores[student] if not r.bonus)
        extra = sum(r.max_score for r in scores[student] if r.bonus)
        lines.append([student] + cells + [f"{auto:g}", f"{graded:g}" + (f" ({waiting} open)" if waiting else ""),
                      f"{auto + graded:g}/{possible:g}" + (f" (+{extra:g} bonus)" if extra else "")])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)] if lines else [len(h) for h in header]
    render = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [header] + lines]
    legend = "? = text answer waiting for manual grading" + (
        "; bonus points count in the total, on top of the maximum" if any(r.bonus for rows in scores.values()
                                                                         for r in rows) else "")
    return "\n".join(render + [legend])
