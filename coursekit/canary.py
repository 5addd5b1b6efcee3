"""Before grading a batch: grade the instructor's solution and the untouched release, as a canary.

A grading environment can break without anybody noticing: the kernels in the sandbox cannot import the
grading helper (the kit installed from another folder, a course copied elsewhere, a second course sharing one
environment), a dataset or the weights are missing, a package has the wrong version.  Then every hidden test
raises and every student scores 0, and that looks like a hard exam.  So before the students, the solution and
the untouched release of every notebook of the assignment are graded in a throw-away copy of the course, in
exactly the same environment (configuration, sandbox, data, limits): the solution must earn every automatic
point and the release none.  If not, grading stops with a message that says what broke.

The result is remembered (``autograded/.canary-<assignment>``) with a fingerprint of the source notebooks, the
configuration, the kit and the data folders, so the canary runs again only when one of them changed.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import nbformat

from . import download


class CanaryFailed(RuntimeError):
    """The solution or the untouched release did not get the points they must get: nothing was graded."""


def fingerprint(root: Path, assignment: str, env: dict) -> str:
    """What the canary's verdict depends on."""
    digest = hashlib.sha256()
    data_dir, torch_home = download.folders(root, {**os.environ, **env})
    files = [root / "nbgrader_config.py", *sorted((root / "source" / assignment).glob("*.ipynb")),
             *sorted(Path(__file__).parent.rglob("*.py"))]
    for path in files:
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes())
    for value in (str(data_dir), str(torch_home), sys.executable, os.environ.get("COURSEKIT_NO_SANDBOX", "")):
        digest.update(value.encode())
    return digest.hexdigest()


def _test_errors(root: Path, student: str, assignment: str) -> list[str]:
    """The errors the hidden test cells of a graded notebook ended in, e.g. "ModuleNotFoundError: ..."."""
    found = []
    for path in sorted((root / "autograded" / student / assignment).glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001
            continue
        for cell in nb.cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade") and cell.cell_type == "code":
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error":
                        found.append(f"{output.get('ename')}: {' '.join(str(output.get('evalue')).split())[:200]}")
                    text = output.get("text", "") if output.get("output_type") == "stream" else ""
                    found += [" ".join(line.split())[:200] for line in text.splitlines()
                              if "not checked:" in line or "Error" in line][:1]
    return list(dict.fromkeys(found))


def check(root: str | Path, assignment: str, env: dict | None = None, workers: int | None = None,
          say=print) -> str:
    """Run the canary (unless its last run with the same fingerprint passed); raise ``CanaryFailed`` when the
    solution or the release is graded wrongly.  Returns what it did, for the console and the report."""
    from . import trial

    root = Path(root).resolve()
    data_dir, torch_home = download.folders(root, {**os.environ, **(env or {})})
    env = {**(env or {}), "COURSE_DATA_DIR": str(data_dir), "TORCH_HOME": str(torch_home)}
    stamp = fingerprint(root, assignment, env)
    marker = root / "autograded" / f".canary-{assignment}"
    if marker.exists() and marker.read_text() == stamp:
        return "canary: passed before with these notebooks, configuration, kit and data (not run again)"
    say(f"canary: grading the solution and the untouched release of '{assignment}' in the same environment")
    with tempfile.TemporaryDirectory(prefix="coursekit-canary-") as scratch:
        try:
            trial_root, scores = trial.grade(Path(scratch) / "course", env, root, only={assignment: []},
                                             mistakes=False, workers=workers)
        except RuntimeError as error:  # nbgrader itself failed on the solution
            raise CanaryFailed(f"The canary failed: grading the solution of '{assignment}' failed ({error}). "
                               "Nothing was graded.") from None
        scores = scores.get(assignment, {})
        problems = []
        for r in scores.get("solution", []):
            if r.auto and r.score != r.max_score:
                problems.append(f"the solution of {r.notebook} scored {r.score:g} of {r.max_score:g} in {r.task}")
        for r in scores.get("untouched", []):
            if r.auto and r.score:
                problems.append(f"the untouched release of {r.notebook} scored {r.score:g} in {r.task}")
        errors = _test_errors(trial_root, "solution", assignment) if problems else []
    if problems:
        message = ("The canary failed: " + "; ".join(problems[:6]) + (" and more" if len(problems) > 6 else "")
                   + ". Nothing was graded: the grading environment is broken, and every student would get what the "
                   "solution got." + (" What the hidden tests said: " + " | ".join(errors[:3]) if errors else "")
                   + " Check that the kit the kernels import is this course's (python -m coursekit check-env), "
                   "that the data is there (python -m coursekit download-data --check), and run "
                   f"`python -m coursekit try {assignment}` to see the solution graded.")
        raise CanaryFailed(message)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(stamp)
    return (f"canary: the solution earned every automatic point and the untouched release none "
            f"({len({r.notebook for r in scores.get('solution', [])})} notebooks)")
