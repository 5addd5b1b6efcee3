"""The notebooks on the oldest versions they support (``requirements-oldest.txt``), in a second environment.

Students run the notebooks with whatever torch and torchvision Colab or their own Jupyter has; the grader runs them
with the pinned versions (``requirements.txt``).  :func:`ensure` builds a second virtual environment from
``requirements-oldest.txt`` once, in a cache folder (``COURSEKIT_CACHE``, default ``~/.cache/coursekit``), and reuses
it while that file is unchanged (PyPI's torch for x86_64 is a CUDA build: about 3 GB with its nvidia-* packages,
about a minute to install here; it runs on the CPU).  :func:`check` then

1. grades every source notebook with that environment's kernel: the solution and its hidden tests, in grading mode
   on the offline fixtures (the kernel imports the kit's kernel package from this checkout): every test cell must
   earn its points, with no error and nothing on stderr;
2. runs the released notebooks that need no data (the quiz, the autodiff lab), filled with the solution, as a
   student does (not in grading mode): "Run all", save, and the check before upload once more, which must find
   nothing to do; then grades those saved files with the pinned environment's real ``nbgrader autograde``: the
   student's and the grader's versions differ, and the grades must not.

``python -m coursekit oldest-versions`` prints the outcome; ``tests/test_oldest_versions.py`` asserts it.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import course, submissions

REQUIREMENTS = course.ROOT / "requirements-oldest.txt"
STUDENT_RUNS = {"exam": ["4_true_false_quiz"], "lab": ["1_autodiff"]}  # need no data: run as a student runs them


def pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """``{package: version}`` of a requirements file of ``name==version`` lines."""
    found = {}
    for line in Path(path).read_text().splitlines():
        name, _, version = line.split("#", 1)[0].strip().partition("==")
        if name:
            found[name.strip().lower()] = version.strip()
    return found


def cache_folder() -> Path:
    return Path(os.environ.get("COURSEKIT_CACHE") or Path.home() / ".cache" / "coursekit")


def ensure(requirements: Path = REQUIREMENTS, say=print) -> Path:
    """The Python of the second environment, built first when needed (one process at a time)."""
    text = Path(requirements).read_text()
    key = hashlib.sha256(f"{text}\n{sys.version}".encode()).hexdigest()[:12]
    folder = cache_folder() / f"oldest-{key}"
    python = folder / "bin" / "python"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"oldest-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / ".installed").exists():
            return python
        shutil.rmtree(folder, ignore_errors=True)
        say(f"Installing {requirements.name} into {folder} (once; about 3 GB)")
        started = time.monotonic()
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-cache-dir"]
        for command in ([sys.executable, "-m", "venv", str(folder)], [*pip, "-r", str(requirements)]):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                raise RuntimeError(f"`{' '.join(command)}` failed:\n{(result.stdout + result.stderr)[-3000:]}")
        (folder / ".installed").write_text(text)
        say(f"installed in {time.monotonic() - started:.0f} s")
    return python


@contextlib.contextmanager
def kernel(python: Path, env: dict[str, str]):
    """A kernel manager for ``python``'s ipykernel, with ``env`` added to the kernel's environment."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "oldest"
        spec.mkdir()
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python (oldest supported versions)", "language": "python", "env": env}))
        km = KernelManager(kernel_name="oldest", kernel_spec_manager=KernelSpecManager(kernel_dirs=[folder]))
        try:
            yield km
        finally:  # nbclient leaves a kernel manager it was given running
            if km.has_kernel:
                km.shutdown_kernel(now=True)


def _client(nb, km, cwd: Path, timeout: int):
    from nbclient import NotebookClient

    return NotebookClient(nb, km=km, timeout=timeout, allow_errors=True, resources={"metadata": {"path": str(cwd)}})


def _problems(nb) -> list[str]:
    """Errors and stderr output of a notebook's code cells."""
    found = []
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "?")
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.output_type == "error":
                found.append(f"{grade_id}: {output.ename}: {output.evalue}"[:300])
            elif output.output_type == "stream" and output.name == "stderr":
                found.append(f"{grade_id} wrote to stderr: {output.text.strip()}"[:300])
    return found


@dataclass
class Outcome:
    """What :func:`check` found for one notebook."""

    assignment: str
    notebook: str
    versions: str = ""
    scores: dict = field(default_factory=dict)  # {grade_id: (score, points)} of the hidden tests run there
    problems: list = field(default_factory=list)
    checklist: str = ""  # the check before upload after a student's run (STUDENT_RUNS only)
    graded: dict = field(default_factory=dict)  # {grade_id: (score, points)}: that run graded by the pinned nbgrader
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        full = all(score == points for score, points in [*self.scores.values(), *self.graded.values()])
        student = self.notebook not in STUDENT_RUNS.get(self.assignment, []) or (
            "all clear" in self.checklist and "[!!]" not in self.checklist and "[??]" not in self.checklist
            and bool(self.graded))
        return bool(self.scores) and full and student and not self.problems


def grade_source(python: Path, assignment: str, notebook: str, offline_env: dict, workdir: Path,
                 root: Path = course.ROOT, timeout: int = 600) -> Outcome:
    """Step 1 of :func:`check` for one notebook."""
    from nbgrader.utils import determine_grade

    outcome = Outcome(assignment, notebook)
    started = time.monotonic()
    nb = nbformat.read(root / "source" / assignment / f"{notebook}.ipynb", as_version=4)
    cwd = workdir / "graded" / assignment / notebook
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**offline_env, "NBGRADER_EXECUTION": "autograde", "PYTHONPATH": str(root)}
    with kernel(python, env) as km:
        _client(nb, km, cwd, timeout).execute()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            outcome.scores[meta["grade_id"]] = determine_grade(cell)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    outcome.versions = " ".join(o.get("text", "") for o in setup.outputs if o.output_type == "stream").strip()
    outcome.problems = _problems(nb)
    outcome.seconds = time.monotonic() - started
    return outcome


def run_as_student(python: Path, assignment: str, notebook: str, folder: Path, root: Path = course.ROOT,
                   name: str | None = None, nb=None, timeout: int = 600):
    """``nb`` (default: the release filled with the solution) run in ``folder`` as a student runs it: "Run all", save
    as ``name`` (default: the released name), then its last cell (the check) once more.  Returns the saved notebook
    and what the check printed the second time."""
    nb = copy.deepcopy(nb) if nb is not None else submissions.build(root, assignment, notebook)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{notebook}.ipynb")
    nbformat.write(nb, path)
    env = {"JPY_SESSION_NAME": str(path)}  # as Jupyter's server sets it
    with kernel(python, env) as km:
        client = _client(nb, km, folder, timeout)
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            nbformat.write(nb, path)
            client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
    checklist = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    return nbformat.read(path, as_version=4), checklist


def grade_with_nbgrader(saved: dict, offline_env: dict, workdir: Path, root: Path = course.ROOT) -> dict:
    """``{(assignment, notebook): {grade_id: (score, points)}}``: notebooks ``saved[(assignment, notebook)]``
    graded as student ``oldest`` by this environment's real ``nbgrader autograde`` in a throw-away course."""
    from .autograde import autograde

    target = course.copy_course(root, workdir / "course")
    result = {}
    for assignment in sorted({a for a, _ in saved}):
        course.nbgrader(target, "generate_assignment", assignment, "--force", env=offline_env)
        for (a, notebook), nb in saved.items():
            if a == assignment:
                path = target / "submitted" / "oldest" / assignment / f"{notebook}.ipynb"
                path.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, path)
        failed = [o for o in autograde(target, assignment, "oldest", workers=1, force=True, progress=False,
                                       env=offline_env, canary=False) if o.status != "graded"]
        if failed:
            raise RuntimeError("; ".join(f"{o.student}: {o.message}" for o in failed))
        for row in course.cell_scores(target, assignment)["oldest"]:
            if row.auto and (assignment, row.notebook) in saved:
                result.setdefault((assignment, row.notebook), {})[row.grade_id] = (row.score, row.max_score)
    return result


def check(workdir: Path, offline_env: dict, root: Path = course.ROOT, say=print) -> list[Outcome]:
    """Steps 1 and 2 of the module docstring for every notebook; see :attr:`Outcome.ok`."""
    python = ensure(say=say)
    outcomes = {}
    for assignment, notebooks in course.assignments(root).items():
        for notebook in course.released_notebooks(root, assignment):
            outcome = grade_source(python, assignment, notebook, offline_env, workdir, root)
            outcomes[(assignment, notebook)] = outcome
            say(f"{assignment}/{notebook}: hidden tests {sum(s for s, _ in outcome.scores.values()):g} of "
                f"{sum(p for _, p in outcome.scores.values()):g} points ({outcome.seconds:.0f} s)"
                + (f"; problems: {outcome.problems}" if outcome.problems else ""))
    saved = {}
    for assignment, notebooks in STUDENT_RUNS.items():
        for notebook in notebooks:
            started = time.monotonic()
            saved[(assignment, notebook)], checklist = run_as_student(python, assignment, notebook,
                                                                      workdir / "student" / assignment, root)
            outcomes[(assignment, notebook)].checklist = checklist
            outcomes[(assignment, notebook)].problems += _problems(copy.deepcopy(saved[(assignment, notebook)]))
            outcomes[(assignment, notebook)].seconds += time.monotonic() - started
            say(f"{assignment}/{notebook} run as a student: {checklist.splitlines()[0] if checklist else 'no check'}")
    started = time.monotonic()
    for key, scores in grade_with_nbgrader(saved, offline_env, workdir, root).items():
        outcomes[key].graded = scores
        say(f"{key[0]}/{key[1]} saved there, graded here: {sum(s for s, _ in scores.values()):g} of "
            f"{sum(p for _, p in scores.values()):g} points")
    say(f"graded with the pinned nbgrader in {time.monotonic() - started:.0f} s")
    return list(outcomes.values())


def main() -> int:
    """``python -m coursekit oldest-versions``: :func:`check` in a temporary folder, with the time it took."""
    from . import offline

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        outcomes = check(Path(workdir), offline.prepare(Path(workdir) / "offline-data"))
    bad = [o for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(bad)} of {len(outcomes)} notebooks as expected with {REQUIREMENTS.name} "
          f"({pins()['torch']} / {pins()['torchvision']}) in {time.monotonic() - started:.0f} s")
    for o in bad:
        print(f"  NOT as expected: {o.assignment}/{o.notebook}: scores {o.scores}, graded {o.graded}, "
              f"problems {o.problems}\n{o.checklist}")
    return 1 if bad else 0
