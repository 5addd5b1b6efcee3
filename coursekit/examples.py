"""The bundled example submissions: fictional students with realistic mistakes.

``examples/students.toml`` says which known mistakes (``examples/mistakes/<assignment>/<notebook>.toml``)
each fictional student made and what they wrote in the text answers;
:func:`write` turns that into ``examples/submissions/<student>/<assignment>/<notebook>.ipynb``,
the files a student would have uploaded.  ``python -m coursekit examples`` rewrites them
after the notebooks change, and a test fails while they are stale.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import nbformat

from . import submissions
from .course import ROOT


def mistakes(root: str | Path = ROOT, assignment: str = "exam") -> dict[str, submissions.Mistake]:
    """All known mistakes of an assignment: ``examples/mistakes/<assignment>/<notebook>.toml``."""
    found = {}
    for path in sorted((Path(root) / "examples" / "mistakes" / assignment).glob("*.toml")):
        for name, mistake in submissions.load_mistakes(path).items():
            if name in found:
                raise ValueError(f"mistake {name} is defined twice ({path})")
            found[name] = mistake
    return found


def students(root: str | Path = ROOT) -> list[dict]:
    with open(Path(root) / "examples" / "students.toml", "rb") as f:
        return tomllib.load(f)["student"]


def notebooks(root: str | Path = ROOT) -> dict[Path, object]:
    """``{relative path: notebook}`` of every example submission, built from the TOML files."""
    root = Path(root)
    built = {}
    for student in students(root):
        for assignment, entries in student.get("assignments", {}).items():
            known = mistakes(root, assignment)
            for notebook, spec in entries.items():
                path = Path(student["id"]) / assignment / f"{notebook}.ipynb"
                if spec.get("untouched"):
                    built[path] = submissions.read(root / "release" / assignment / f"{notebook}.ipynb")
                    continue
                chosen = [known[name] for name in spec.get("mistakes", [])]
                built[path] = submissions.build(root, assignment, notebook, chosen, spec.get("answers", {}),
                                                model_text=False)
    return built


def write(root: str | Path = ROOT) -> list[Path]:
    """Rewrite ``examples/submissions`` from the TOML files; return the files written."""
    target = Path(root) / "examples" / "submissions"
    if target.exists():
        shutil.rmtree(target)
    written = []
    for path, nb in notebooks(root).items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target / path)
        written.append(target / path)
    return written
